"""Curation commands: ``select``, ``subset list|combine|rename|delete``, ``compare``, ``export``.

Each parses its options, calls the workspace function that does the work (``run_selector``,
``combine_subsets``, ``compare_subsets``, ``workspace_curves``, ``export_subset``) and says what it
did; subset names are user text and are always printed escaped.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from core.cli.options import JsonOpt, WorkspaceArg, open_workspace, parse_budget, parse_options
from core.cli.render import console, print_curves, print_json, print_subset_list, print_subsets
from core.errors import PrismError
from core.workspace.records import SubsetRecord


def select(
    workspace: WorkspaceArg,
    method: Annotated[
        str | None,
        typer.Option(
            help="random, cluster_balanced, k_center, vendi_greedy, sparse_clusters, dedupe, "
            "targeted, targeted_diverse, quality_diverse or quality_blend."
        ),
    ] = None,
    k: Annotated[
        str | None,
        typer.Option("--k", help="Budget: rows (200) or a fraction (0.1); filters may omit it."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the selector.")] = 0,
    name: Annotated[str | None, typer.Option(help="Name of the subset to store.")] = None,
    within: Annotated[
        str | None,
        typer.Option(
            help="Only choose among the rows of this subset (tag:keep: the rows tagged keep)."
        ),
    ] = None,
    exclude: Annotated[
        str | None,
        typer.Option(help="Never choose the rows of this subset (tag:drop: the rows tagged drop)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Grow this subset (its rows count towards --k).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="Selector option name=value (threshold=0.9 for dedupe, rescore=8, score=ifd, "
            "beta=2 …)."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="Target set of targeted / targeted_diverse (same as --option target=T)."),
    ] = None,
    from_manifest: Annotated[
        Path | None,
        typer.Option(help="Rebuild the subset recorded in an export's .manifest.json."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a subset of the same name.")] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Say why each row left out was left out (quality_diverse, quality_blend); "
            "with --json every such row is listed.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Choose a subset with a selector and store it under --name."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.compare import subset_report
    from core.workspace.export import read_manifest
    from core.workspace.selector_runs import reproduce_subset, run_selector
    from core.workspace.subsets import rows_of

    ws = open_workspace(workspace)
    identical = None
    left_out: list[Any] = []  # run_selector puts the selector's reasons here (--explain)
    if from_manifest is not None:
        manifest = read_manifest(from_manifest)
        stored = manifest.subset.get("name") or "reproduced"
        text, identical = reproduce_subset(
            ws, manifest, name=name or stored, overwrite=force, source=from_manifest
        )
        rows = rows_of(ws, text)
    else:
        if method is None or name is None:
            raise PrismError("Pass --method and --name (or --from-manifest PATH).")
        text, rows = run_selector(
            ws,
            method,
            name=name,
            k=parse_budget(k),
            seed=seed,
            within=within,
            exclude=exclude,
            start=start,
            options={**parse_options(option), **({"target": target} if target else {})},
            overwrite=force,
            explain=left_out if explain else None,
        )
    report = subset_report(ws.features(), rows)
    reused = from_manifest is None and name is not None and text != " ".join(name.split())
    record = {"name": text, "size": int(len(rows)), "g_vendi": report["g_vendi"]}
    if identical is not None:
        record["identical_to_manifest"] = identical
    if reused:
        record["reused"] = True
    reasons = left_out_records(ws, left_out[0]) if left_out else None
    if reasons is not None:
        record["left_out"] = reasons
    if as_json:
        print_json(record)
        return
    if reasons is not None:
        print_left_out(reasons)
    if reused:
        console.print(
            f"same as stored subset “{escape(text)}” (the same selector, settings and rows): "
            f"nothing new stored; {len(rows):,} rows, G-Vendi {report['g_vendi']:.2f}"
        )
        return
    console.print(
        f"stored subset “{escape(text)}”: {len(rows):,} rows, G-Vendi {report['g_vendi']:.2f}"
        + (
            ""
            if identical is None
            else f"; same ids as the manifest: {'yes' if identical else 'NO'}"
        )
    )


def left_out_records(ws: Any, left_out: Any) -> list[dict[str, Any]]:
    """One record per row a selector left out: id, reason (key and words), the other row, cosine."""
    ids = ws.samples(columns=["id"])["id"].astype(str).to_numpy()
    return [
        {
            "id": str(ids[row]),
            "reason": reason,
            "why": left_out.describe(i, ids),
            "other": None if left_out.other[i] < 0 else str(ids[left_out.other[i]]),
            "cosine": None
            if math.isnan(left_out.cosine[i])
            else round(float(left_out.cosine[i]), 4),
            "score": None if math.isnan(left_out.score[i]) else float(left_out.score[i]),
        }
        for i, (row, reason) in enumerate(zip(left_out.rows, left_out.reasons, strict=True))
    ]


def print_left_out(records: list[dict[str, Any]], limit: int = 20) -> None:
    """How many rows were left out for each reason, then the first ``limit`` of them."""

    counts = Counter(r["reason"] for r in records)
    console.print(
        f"left out {len(records):,} rows: "
        + (", ".join(f"{n:,} {escape(reason)}" for reason, n in counts.most_common()) or "none")
    )
    for r in records[:limit]:
        console.print(f"  {escape(r['id'])}: {escape(r['why'])}", highlight=False)
    if len(records) > limit:
        console.print(f"  … {len(records) - limit:,} more (--json lists them all)")


subset_app = typer.Typer(
    help="List, combine, rename and delete named subsets.", no_args_is_help=True
)


@subset_app.command("list")
def subset_list(workspace: WorkspaceArg, as_json: JsonOpt = False) -> None:
    """The workspace's named subsets: size and how each was made."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.compare import describe_how
    from core.workspace.subsets import rebuilt_note, stale_reason

    subsets = open_workspace(workspace).subsets()
    if as_json:
        print_json(
            {
                n: {
                    "size": r.size,
                    "how": dict(r.how),
                    "created": r.created,
                    "stale": stale_reason(r),
                    "rebuilt": r.rebuilt.to_dict() if r.rebuilt else None,
                }
                for n, r in subsets.items()
            }
        )
        return

    def describe(record: SubsetRecord) -> str:
        rebuilt = rebuilt_note(record, full=False)
        how = describe_how(record.how)
        return f"{how}; {rebuilt}" if rebuilt else how

    print_subset_list(subsets, describe=describe, stale=stale_reason)


@subset_app.command("combine")
def subset_combine(
    workspace: WorkspaceArg,
    operation: Annotated[
        str, typer.Argument(help="union, intersection, difference or complement.")
    ],
    names: Annotated[
        list[str], typer.Argument(help="Subsets to combine (difference: A minus the rest).")
    ],
    name: Annotated[str, typer.Option(help="Name of the new subset.")],
    force: Annotated[bool, typer.Option(help="Replace a subset of the same name.")] = False,
) -> None:
    """Store a set operation over named subsets as a new subset."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.subsets import combine_subsets, subset_record

    ws = open_workspace(workspace)
    text = combine_subsets(ws, operation, names, name=name, overwrite=force)
    console.print(f"stored subset “{escape(text)}”: {subset_record(ws, text).size:,} rows")


@subset_app.command("rename")
def subset_rename(workspace: WorkspaceArg, old: str, new: str) -> None:
    """Rename a subset."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.subsets import rename_subset

    console.print(f"renamed to “{escape(rename_subset(open_workspace(workspace), old, new))}”")


@subset_app.command("delete")
def subset_delete(workspace: WorkspaceArg, name: str) -> None:
    """Delete a subset (its rows stay in the workspace)."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.subsets import delete_subset

    delete_subset(open_workspace(workspace), name)
    console.print(f"deleted subset “{escape(name)}”")


def compare(
    workspace: WorkspaceArg,
    subsets: Annotated[
        list[str] | None, typer.Argument(help="Subsets to compare (default all).")
    ] = None,
    curves: Annotated[
        bool,
        typer.Option(
            help="Also G-Vendi against budget for each selector next to random (stored for the "
            "app's Compare page)."
        ),
    ] = False,
    methods: Annotated[
        list[str] | None, typer.Option("--method", help="Selectors for --curves (default all).")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per selector and budget for --curves.")] = 5,
    largest: Annotated[
        int, typer.Option(help="Largest selector budget on the curves (random goes to N).")
    ] = 2000,
    wide: Annotated[
        bool,
        typer.Option(help="All measures: q=0.5, weighted coverage, entropy, text-space scores."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Subsets side by side: size, G-Vendi, Vendi q=2/∞, coverage, loss (--wide: more)."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.measures.clusters import few_rows_note
    from core.workspace.analyses import text_scores
    from core.workspace.compare import (
        compare_subsets,
        curve_budgets,
        curve_settings,
        random_equivalents,
        workspace_curves,
    )

    ws = open_workspace(workspace)
    names = list(subsets) if subsets else list(ws.subsets())
    table_rows = compare_subsets(ws, names, text_scores=text_scores)
    record: dict[str, Any] = {"subsets": table_rows.to_dict(orient="records")}
    summary = None
    if curves:
        settings = curve_settings(ws, methods=methods or None, seeds=seeds, largest=largest)
        with console.status("scoring selectors over budgets …") as status:
            summary = workspace_curves(
                ws,
                settings,
                by="prism compare --curves",
                progress=lambda text: status.update(f"scoring {text} …"),
            )
        record["curves"] = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in summary.to_dict(orient="records")
        ]
    if as_json:
        print_json(record)
        return
    equals = None if summary is None else random_equivalents(table_rows, summary, n=ws.n_samples)
    print_subsets(ws.name, table_rows, summary, equals, n=ws.n_samples, wide=wide)
    caution = few_rows_note(ws.n_samples, ws.clusters.sizes) if ws.clusters is not None else None
    if caution is not None:
        console.print(f"[yellow]few rows:[/] {escape(caution)}", highlight=False)
    if summary is not None:
        sizes = curve_budgets(ws, settings)
        print_curves(summary, sizes=sizes, seeds=seeds, n=ws.n_samples)
        console.print(f"stored the curves in {escape(str(ws.path))} for the app's Compare page")


def export(
    workspace: WorkspaceArg,
    out: Annotated[Path, typer.Option(help="File to write (a folder for --format hf).")],
    subset: Annotated[
        str | None, typer.Option(help="Name of the subset to export (default: the whole set).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv, parquet or hf.")] = "jsonl",
    derived: Annotated[
        bool,
        typer.Option(
            help="Add Prism's columns (cluster, umap_x/umap_y, loss, grad_norm, provenance…)."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Replace a previous export or a file of the same kind (never a folder that is "
            "not a previous export, nor anything in a workspace)."
        ),
    ] = False,
    origin: Annotated[
        str,
        typer.Option(
            help="all rows, only the dataset's own (source) or only those `prism synthesize` "
            "added (synthetic)."
        ),
    ] = "all",
    drop_tagged: Annotated[
        str | None, typer.Option(help="Leave out the rows with this tag (drop, flag or keep).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a subset's rows (all original columns, original order) and a manifest beside them."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.export import export_subset

    result = export_subset(
        open_workspace(workspace),
        subset,
        fmt=fmt,
        out=out,
        derived=derived,
        force=force,
        origin=origin,
        drop_tagged=drop_tagged,
    )
    what = "the whole set" if subset is None else f"“{escape(subset)}”"
    if as_json:
        print_json(
            {
                "path": str(result.path),
                "manifest": str(result.manifest_path),
                "n_rows": result.n_rows,
                "columns": list(result.columns),
            }
        )
        return
    console.print(
        f"wrote {result.n_rows:,} rows of {what} to {escape(str(result.path))} ({escape(fmt)}); "
        f"manifest {escape(str(result.manifest_path))}"
    )
