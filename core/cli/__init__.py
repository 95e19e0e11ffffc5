"""The ``prism`` command line (also ``python -m core``).

    prism features demo:gsm8k --workspace ws/gsm8k
    prism score ws/gsm8k --json
    prism cluster ws/gsm8k --k 130 --seed 0
    prism map ws/gsm8k
    prism info ws/gsm8k --json
    prism select ws/gsm8k --method vendi_greedy --k 200 --seed 0 --name diverse-200
    prism compare ws/gsm8k diverse-200 --curves
    prism export ws/gsm8k --subset diverse-200 --format jsonl --out diverse.jsonl

Every command prints one clear message and exits with status 2 on bad input, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.errors import PrismError

app = typer.Typer(
    name="prism",
    help="Gradient-space diversity of language-model training data (G-Vendi, clusters, maps).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

WorkspaceArg = Annotated[Path, typer.Argument(help="Workspace directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _open(path: Path) -> Any:
    from core.workspace.store import Workspace

    return Workspace.open(path)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


# ------------------------------------------------------------------------------------------
# features / resume


@app.command()
def features(
    source: Annotated[
        str,
        typer.Argument(
            help="Dataset file or directory (CSV, TSV, JSON, JSONL, Parquet, HF save_to_disk) or demo:gsm8k."
        ),
    ],
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace", "-w", help="Workspace directory (default: under $PRISM_HOME/workspaces)."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="'default' (embedded SmolLM2-135M-Instruct), a Hugging Face causal-LM name, or a local path."
        ),
    ] = "default",
    scope: Annotated[
        str, typer.Option(help="'all' Linear weights incl. the output head, or 'last:K' blocks.")
    ] = "all",
    dim: Annotated[int, typer.Option(help="Sketch dimension d.")] = 1024,
    seed: Annotated[int, typer.Option(help="Seed of the random sketch.")] = 0,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Most samples per forward/backward pass (default 8 on a CPU, 128 on a GPU; "
            "does not change the features)."
        ),
    ] = None,
    batch_tokens: Annotated[
        int | None,
        typer.Option(
            help="Most padded tokens per batch (default 1,024 on a CPU, 32,768 on a GPU; does not change the features)."
        ),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Truncate samples to this many tokens (default: no truncation)."),
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    limit: Annotated[int | None, typer.Option(help="Use only the first N samples.")] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            help="Use a seeded random sample of N samples, kept in file order (instead of --limit)."
        ),
    ] = None,
    sample_seed: Annotated[int, typer.Option(help="Seed of the --sample draw.")] = 0,
    split: Annotated[
        str | None,
        typer.Option(help="Split of a saved DatasetDict folder (default: train)."),
    ] = None,
    prompt_col: Annotated[str | None, typer.Option(help="Column holding the prompt.")] = None,
    response_col: Annotated[str | None, typer.Option(help="Column holding the response.")] = None,
    messages_col: Annotated[
        str | None, typer.Option(help="Column holding a chat (list of role/content messages).")
    ] = None,
    text_col: Annotated[
        str | None, typer.Option(help="Column holding plain text (loss over all tokens).")
    ] = None,
    id_col: Annotated[
        str | None,
        typer.Option(
            help="Column of unique sample ids (default: 'id' if present, else the row number)."
        ),
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Most samples per resumable shard.")] = 128,
    shard_seconds: Annotated[
        float,
        typer.Option(
            help="A shard also closes after this many seconds of work (a kill loses at most that)."
        ),
    ] = 30.0,
    force: Annotated[
        bool, typer.Option(help="Rebuild a workspace that was built with other data or settings.")
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow the model's own code to run (off by default).")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Compute sketched per-sample gradient features of a dataset (resumes an interrupted run)."""
    from core.data.dataset import ColumnMap, load_dataset
    from core.features.extract import FeatureConfig
    from core.workspace.estimate import estimate_run
    from core.workspace.jobs import (
        check_workspace_target,
        outermost_missing,
        prepare_workspace,
        remove_created,
    )
    from core.workspace.store import default_workspace_path

    config = FeatureConfig(
        model=model,
        scope=scope,
        dim=dim,
        seed=seed,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        max_length=max_length,
        dtype=dtype,
        device=device,
        trust_remote_code=trust_remote_code,
    )
    if limit is not None and limit < 1:
        raise PrismError(f"--limit must be ≥ 1, got {limit}.")
    if workspace is not None:
        check_workspace_target(workspace)  # before reading a possibly large file
    columns = None
    if any(c is not None for c in (prompt_col, response_col, messages_col, text_col)):
        columns = ColumnMap(
            prompt=prompt_col,
            response=response_col,
            messages=messages_col,
            text=text_col,
            id=id_col,
        )
    elif id_col is not None:
        from core.data.dataset import detect_columns, read_table

        detected = detect_columns(read_table(source, split=split))
        columns = ColumnMap(**{**detected.to_dict(), "id": id_col})
    dataset = load_dataset(
        source, columns=columns, limit=limit, sample=sample, sample_seed=sample_seed, split=split
    )
    for note in dataset.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    path = workspace or default_workspace_path(source, dataset.fingerprint)
    if not quiet:
        skipped = f", {dataset.n_skipped:,} skipped (empty cells)" if dataset.n_skipped else ""
        err.print(
            f"[bold]{dataset.source}[/]: {dataset.n_samples:,} samples{skipped}; "
            f"columns {dataset.columns.to_dict()}"
        )
        err.print(f"estimate: {escape(estimate_run(dataset, config).sentence())}", highlight=False)
    fresh = not path.exists() or not any(path.iterdir())
    created = outermost_missing(path)
    ws = prepare_workspace(path, dataset, config, force=force)
    for note in ws.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    try:
        _run(
            ws,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            device=device,
            shard_size=shard_size,
            shard_seconds=shard_seconds,
            quiet=quiet,
        )
    except PrismError:
        # A new workspace whose job failed before finishing a single shard (a model that cannot
        # be loaded, a sample that cannot be encoded) is removed, so that bad input leaves
        # nothing half-written behind; one with finished shards is kept for a resume.
        status = ws.manifest.get("features", {}).get("status")
        if fresh and status == "failed" and not any(ws.shard_dir.glob("*.npz")):
            remove_created(path, created)
        raise


@app.command()
def resume(
    workspace: WorkspaceArg,
    batch_size: Annotated[
        int | None, typer.Option(help="Samples per forward/backward pass.")
    ] = None,
    batch_tokens: Annotated[
        int | None,
        typer.Option(
            help="Most padded tokens per batch (default 1,024 on a CPU, 32,768 on a GPU; does not change the features)."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    shard_size: Annotated[
        int, typer.Option(help="Most samples per shard (a started job keeps its own).")
    ] = 128,
    shard_seconds: Annotated[
        float,
        typer.Option(
            help="A shard also closes after this many seconds of work (a kill loses at most that)."
        ),
    ] = 30.0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Finish the feature extraction of a prepared or interrupted workspace."""
    _run(
        _open(workspace),
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        device=device,
        shard_size=shard_size,
        shard_seconds=shard_seconds,
        quiet=quiet,
    )


def _run(
    ws: Any,
    *,
    batch_size: int | None,
    device: str | None,
    shard_size: int,
    quiet: bool,
    batch_tokens: int | None = None,
    shard_seconds: float = 30.0,
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from core.workspace.jobs import run_features

    if ws.has_features:
        err.print(
            f"{ws.path}: features already complete ({ws.n_samples:,} samples); nothing to do."
        )
        _print_scores(ws.manifest.get("scores", {}), as_json=False)
        return
    if quiet:
        run_features(
            ws,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            device=device,
            shard_size=shard_size,
            shard_seconds=shard_seconds,
        )
    else:
        with Progress(
            TextColumn("[bold]features"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[message]}"),
            console=err,
            transient=False,
        ) as bar:
            task = bar.add_task("features", total=ws.n_samples, rate="", message="")

            def on_progress(p: Any) -> None:
                rate = f"{p.samples_per_s:.2f} samples/s" if p.samples_per_s else ""
                bar.update(
                    task,
                    completed=p.done,
                    total=p.total,
                    rate=rate,
                    message=p.message if p.status == "running" else "",
                )

            run_features(
                ws,
                batch_size=batch_size,
                batch_tokens=batch_tokens,
                device=device,
                shard_size=shard_size,
                shard_seconds=shard_seconds,
                on_progress=on_progress,
            )
    err.print(f"wrote {ws.path}")
    if n_truncated := int(ws.manifest.get("features", {}).get("n_truncated") or 0):
        err.print(
            f"note: {n_truncated:,} of {ws.n_samples:,} samples were longer than --max-length "
            f"{ws.manifest['features'].get('settings', {}).get('max_length')} tokens and were "
            "truncated (the model read only their start).",
            highlight=False,
        )
    _print_scores(ws.manifest.get("scores", {}), as_json=False)


# ------------------------------------------------------------------------------------------
# score


def _parse_q(text: str) -> float:
    value = math.inf if text.lower() in ("inf", "infinity", "∞") else float(text)
    if not value > 0:
        raise PrismError(f"--q must be > 0 (or 'inf'), got {text!r}.")
    return value


def _print_scores(record: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        _print_json(record)
        return
    if not record:
        return
    table = Table(title=f"Vendi scores (n = {record['n']:,}, d = {record['dim']:,})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("G-Vendi (q = 1)", f"{record['g_vendi']:.2f}")
    for q, value in record["vendi"].items():
        if q != "1":
            table.add_row(f"Vendi q = {q}", f"{value:.2f}")
    text = record.get("text")
    if text:
        embedding = text.get("embedding_vendi")
        ngrams = text.get("ngram_vendi")
        table.add_row(
            "embedding Vendi (text space)",
            "– (run `prism embed`)" if embedding is None else f"{embedding:.2f}",
        )
        table.add_row("n-gram Vendi (1–2-grams)", "–" if ngrams is None else f"{ngrams:.2f}")
        table.add_row("distinct-2", f"{text['distinct_2']:.3f}")
    console.print(table)


@app.command()
def score(
    workspace: WorkspaceArg,
    as_json: JsonOpt = False,
    q: Annotated[
        list[str] | None,
        typer.Option("--q", help="Orders q to report (repeatable; default 0.5 1 2 inf)."),
    ] = None,
    subset: Annotated[
        str | None, typer.Option(help="Score only this named subset of the workspace.")
    ] = None,
    ids: Annotated[
        Path | None, typer.Option(help="Score only the ids listed in this file (one per line).")
    ] = None,
    per_cluster: Annotated[
        bool, typer.Option(help="Also score each cluster (needs `prism cluster`).")
    ] = False,
) -> None:
    """G-Vendi and the order-q Vendi family of the whole set, a subset, or each cluster."""
    from core.measures.vendi import (
        QS_DEFAULT,
        covariance_from_npy,
        subset_vendi,
        vendi_from_covariance,
    )
    from core.workspace.jobs import scores_record

    ws = _open(workspace)
    qs = tuple(sorted({1.0, *(_parse_q(x) for x in q)})) if q else QS_DEFAULT
    dim = int(ws.manifest["features"]["dim"]) if ws.has_features else 0
    selected = _selected_indices(ws, subset, ids)
    if selected is None:
        ws.features()  # raises a clear message when features are missing
        covariance, n = covariance_from_npy(ws.features_path)
        record = scores_record(vendi_from_covariance(covariance, qs=qs), n=n, dim=dim)
    else:
        record = scores_record(
            subset_vendi(ws.features(), selected, qs=qs), n=len(selected), dim=dim
        )
        record["subset"] = subset or str(ids)
    record["text"] = _score_text(ws, selected)
    if per_cluster:
        record["clusters"] = _cluster_scores(ws, qs)
    if as_json:
        _print_json(record)
        return
    _print_scores(record, as_json=False)
    if per_cluster:
        _print_cluster_table(record["clusters"])


def _score_text(ws: Any, selected: np.ndarray | None) -> dict[str, float | None]:
    """Embedding Vendi, n-gram Vendi and distinct-2 of the same rows (text-space baselines)."""
    from core.measures.textspace import text_scores

    # The whole set's lexical numbers are stored by `prism embed`; without them they are
    # computed here (nothing is written: `score` only reads).
    return text_scores(ws, np.arange(ws.n_samples) if selected is None else selected)


def _selected_indices(ws: Any, subset: str | None, ids_file: Path | None) -> np.ndarray | None:
    if subset is None and ids_file is None:
        return None
    if subset is not None and ids_file is not None:
        raise PrismError("Pass either --subset or --ids, not both.")
    from core.workspace.subsets import subset_rows

    if subset is not None:
        subsets = ws.subsets()
        if subset not in subsets:
            names = ", ".join(sorted(subsets)) or "none yet"
            raise PrismError(
                f"Workspace {ws.path} has no subset named {subset!r} (subsets: {names}).",
                param="subset",
            )
        return np.unique(subset_rows(ws, subset))
    path = Path(str(ids_file))
    if not path.is_file():
        raise PrismError(f"--ids file {path} does not exist.")
    wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not wanted:
        raise PrismError(f"--ids file {path} names no ids; nothing to score.")
    return np.unique(subset_rows(ws, str(path), ids=wanted))


def _cluster_scores(ws: Any, qs: tuple[float, ...]) -> list[dict[str, Any]]:
    from core.measures.vendi import cluster_vendi
    from core.workspace.jobs import q_label

    if "cluster" not in ws.samples(columns=None).columns:
        raise PrismError(f"{ws.path} has no clusters yet; run `prism cluster {ws.path}` first.")
    labels = ws.samples(columns=["cluster"])["cluster"].to_numpy()
    scores = cluster_vendi(ws.features(), labels, qs=qs)
    sizes = np.bincount(labels)
    sparse = set(ws.manifest.get("clusters", {}).get("sparse", []))
    return [
        {
            "cluster": int(c),
            "size": int(sizes[c]),
            "sparse": int(c) in sparse,
            "vendi": {q_label(q): float(v) for q, v in scores[c].items()},
        }
        for c in sorted(scores)
    ]


def _print_cluster_table(rows: list[dict[str, Any]], *, limit: int = 40) -> None:
    table = Table(title=f"Clusters ({len(rows):,})")
    for name in ("cluster", "size", "sparse", "Vendi q=1"):
        table.add_column(name, justify="right")
    for row in rows[:limit]:
        table.add_row(
            str(row["cluster"]),
            f"{row['size']:,}",
            "yes" if row["sparse"] else "",
            f"{row['vendi']['1']:.2f}" if "vendi" in row else "",
        )
    console.print(table)
    if len(rows) > limit:
        console.print(f"… {len(rows) - limit:,} more (use --json for all)")


# ------------------------------------------------------------------------------------------
# cluster / map / info


@app.command()
def cluster(
    workspace: WorkspaceArg,
    k: Annotated[
        int | None, typer.Option("--k", help="Number of clusters (default ≈ N/10, as published).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the k-means initialisation.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Spherical k-means on the features: sizes, sparse clusters (below the median size)."""
    from core.workspace.analyses import cluster_workspace

    ws = _open(workspace)
    summary = cluster_workspace(ws, n_clusters=k, seed=seed)
    if as_json:
        _print_json(summary)
        return
    console.print(
        f"{summary['n_clusters']:,} clusters (seed {seed}); median size {summary['median_size']:g}; "
        f"{summary['n_sparse']:,} sparse clusters holding {summary['n_in_sparse']:,} samples; "
        f"mean cosine to centroid {summary['objective']:.3f}"
    )
    rows = [
        {"cluster": c, "size": s, "sparse": c in set(summary["sparse"])}
        for c, s in enumerate(summary["sizes"])
    ]
    table = Table(title="Largest and smallest clusters")
    for name in ("cluster", "size", "sparse"):
        table.add_column(name, justify="right")
    shown = rows[:10] + (rows[-5:] if len(rows) > 15 else rows[10:])
    for row in shown:
        table.add_row(str(row["cluster"]), f"{row['size']:,}", "yes" if row["sparse"] else "")
    console.print(table)


@app.command("map")
def map_(
    workspace: WorkspaceArg,
    seed: Annotated[int, typer.Option(help="UMAP seed.")] = 0,
    n_neighbors: Annotated[int, typer.Option(help="UMAP n_neighbors.")] = 15,
    min_dist: Annotated[float, typer.Option(help="UMAP min_dist.")] = 0.1,
) -> None:
    """UMAP 2-D layout of the features (cosine), stored as umap_x / umap_y."""
    from core.workspace.analyses import layout_workspace

    ws = _open(workspace)
    layout_workspace(ws, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    console.print(f"stored a 2-D map of {ws.n_samples:,} samples in {ws.path} (umap_x, umap_y)")


@app.command()
def embed(
    workspace: WorkspaceArg,
    model: Annotated[
        str,
        typer.Option(
            help="'default' (packaged all-MiniLM-L6-v2, offline), a sentence-transformers model name, or a local path."
        ),
    ] = "default",
    batch_size: Annotated[
        int, typer.Option(help="Texts per forward pass (does not change the embeddings).")
    ] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[
        int, typer.Option(help="Seed of the k-means, the UMAP map and the sampled pairs.")
    ] = 0,
    k: Annotated[
        int | None,
        typer.Option("--k", help="Number of embedding clusters (default ≈ N/10, as for features)."),
    ] = None,
    neighbours: Annotated[
        int, typer.Option(help="Neighbours per sample compared for nbr_agreement.")
    ] = 10,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Sentence embeddings (text space): Vendi, clusters, map, agreement with gradient space."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core.measures.embed import EmbedConfig, embed_workspace

    config = EmbedConfig(
        model=model, batch_size=batch_size, device=device, seed=seed, n_clusters=k, k=neighbours
    )
    ws = _open(workspace)
    options: dict[str, Any] = {
        "model": config.model,
        "seed": config.seed,
        "n_clusters": config.n_clusters,
        "batch_size": config.batch_size,
        "device": config.device,
        "k": config.k,
    }
    if quiet or as_json:
        section = embed_workspace(ws, **options)
    else:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as bar:
            task = bar.add_task("embedding", total=ws.n_samples)

            def on_progress(done: int, total: int, stage: str) -> None:
                if stage == "embedding":
                    bar.update(task, completed=done, total=total)
                else:
                    bar.update(task, description=f"embedded; {stage} done")

            section = embed_workspace(ws, **options, progress=on_progress)
    if as_json:
        _print_json({"embedding": section, "lexical": ws.manifest.get("lexical")})
        return
    console.print(
        f"embedded {section['n']:,} samples with {section['model_name']} in "
        f"{section['seconds']:.1f} s (d = {section['dim']}; {section['n_truncated']:,} longer "
        f"than {section['max_seq_length']} tokens, truncated)"
    )
    clusters = section["clusters"]
    console.print(
        f"embedding Vendi {section['embedding_vendi']:.2f}; {clusters['n_clusters']:,} clusters "
        f"(seed {section['seed']}), {clusters['n_sparse']:,} sparse"
    )
    lexical = ws.manifest.get("lexical", {})
    ngrams = lexical.get("ngram_vendi")
    console.print(
        f"n-gram Vendi {'–' if ngrams is None else f'{ngrams:.2f}'}; distinct-1…4 "
        + " / ".join(f"{lexical[f'distinct_{n}']:.3f}" for n in (1, 2, 3, 4))
    )
    near = section["neighbours"]
    if near is None:
        console.print("no gradient features yet: run `prism features` for nbr_agreement")
    else:
        console.print(
            f"neighbourhood agreement (k = {near['k']}): mean {near['mean_agreement']:.3f} vs "
            f"chance {near['chance']:.4f}; rank correlation of pairwise cosines ρ = "
            f"{near['rank_correlation']:.3f}"
        )
    stored = ["emb_cluster", "emb_umap_x", "emb_umap_y", *(["nbr_agreement"] if near else [])]
    console.print(f"stored embeddings.npy and the columns {', '.join(stored)} in {ws.path}")


@app.command()
def info(workspace: WorkspaceArg, as_json: JsonOpt = False) -> None:
    """What a workspace holds: dataset, settings, scores, analyses and columns."""
    from core.workspace.jobs import read_progress

    ws = _open(workspace)
    record = dict(ws.manifest)
    record["columns"] = list(ws.samples().columns)
    record["subsets"] = {name: len(s.get("ids", [])) for name, s in ws.subsets().items()}
    progress = read_progress(ws.path)
    if progress is not None:
        record["job"] = progress.__dict__
    if as_json:
        _print_json(record)
        return
    if progress is not None and progress.status == "done":
        record.pop("job")  # a finished job is the features section
    _print_info(ws, record)


INFO_SECTIONS = {  # manifest section → heading; sections not named here follow, in their order
    "dataset": "Dataset",
    "features": "Features",
    "job": "Job",
    "scores": "Scores",
    "clusters": "Clusters",
    "layout": "Map",
}
INFO_SKIP = {"schema_version", "prism_version", "created", "updated", "columns", "subsets"}


def _info_value(value: Any) -> str:
    """One manifest value for people: numbers rounded, short lists listed, long ones summarised."""
    if isinstance(value, dict):
        return ", ".join(f"{escape(str(k))} {_info_value(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list):
        if len(value) <= 8 and all(not isinstance(v, (dict, list)) for v in value):
            return ", ".join(_info_value(v) for v in value) or "none"
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(value):
            return f"{len(value):,} values, {_number(min(numbers))} to {_number(max(numbers))}"
        return f"{len(value):,} values"
    return _number(value)


def _info_rows(section: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in section.items():
        label = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict) and value and len(value) > 3 and not prefix:
            rows += _info_rows(value, prefix=f"{key}.")
        else:
            rows.append((escape(label), _info_value(value)))
    return rows


def _print_info(ws: Any, record: dict[str, Any]) -> None:
    """``prism info`` for people: a heading per manifest section, one line per setting."""
    console.print(
        f"[bold]{escape(str(ws.path))}[/] · workspace schema {record.get('schema_version')}, "
        f"Prism {escape(str(record.get('prism_version')))}, updated "
        f"{escape(str(record.get('updated') or record.get('created') or '–'))}"
    )
    _print_info_summary(record)
    names = [k for k in INFO_SECTIONS if isinstance(record.get(k), dict)]
    names += [k for k, v in record.items() if k not in INFO_SECTIONS and k not in INFO_SKIP]
    for name in names:
        value = record[name]
        table = _table(INFO_SECTIONS.get(name, name.replace("_", " ").capitalize()), [])
        table.show_header = False
        table.add_column(no_wrap=True, style="dim")
        table.add_column(overflow="fold")
        rows = _info_rows(value) if isinstance(value, dict) else [("", _info_value(value))]
        for label, text in rows:
            table.add_row(label, text)
        console.print(table)


def _print_info_summary(record: dict[str, Any]) -> None:
    """The lines most people open `prism info` for, before the full sections."""
    table = _table("Summary", [])
    table.show_header = False
    table.add_column(no_wrap=True, style="bold")
    table.add_column(overflow="fold")
    dataset, feats = record.get("dataset") or {}, record.get("features") or {}
    skipped = dataset.get("n_skipped") or 0
    table.add_row(
        "data",
        f"{_number(dataset.get('n_samples', 0))} samples ({_number(skipped)} skipped) from "
        + escape(str(dataset.get("source", "–"))),
    )
    settings = feats.get("settings") or {}
    table.add_row(
        "features",
        " · ".join(
            escape(str(part))
            for part in (
                feats.get("status", "not started"),
                f"model {settings.get('model', '–')}",
                f"scope {settings.get('scope', '–')}",
                f"d {_number(settings.get('dim'))}",
                f"seed {settings.get('seed', '–')}",
                f"{_number(feats.get('n_truncated', 0))} truncated",
            )
        ),
    )
    scores = record.get("scores") or {}
    if scores:
        orders = ", ".join(
            f"q={'∞' if q == 'inf' else q} {_number(v)}"
            for q, v in (scores.get("vendi") or {}).items()
            if q != "1"
        )
        table.add_row("G-Vendi", f"{_number(scores.get('g_vendi'))} ({orders})")
    clusters = record.get("clusters") or {}
    if clusters:
        table.add_row(
            "clusters",
            f"{_number(clusters.get('n_clusters'))} (seed {clusters.get('seed')}), "
            f"{_number(clusters.get('n_sparse'))} sparse",
        )
    columns = record.get("columns", [])
    table.add_row("columns", escape(", ".join(map(str, columns))))
    subsets = record.get("subsets", {})
    table.add_row(
        "subsets",
        ", ".join(f"{escape(str(n))} ({size:,})" for n, size in subsets.items()) or "none yet",
    )
    console.print(table)


@app.command()
def demo(
    quiet: Annotated[bool, typer.Option(help="Print only the workspace path.")] = False,
) -> None:
    """Make sure the GSM8K demo workspace (features, clusters, map) is ready; print its path."""
    from core.workspace.demo import ensure_demo_workspace

    ws = ensure_demo_workspace()
    if quiet:
        typer.echo(str(ws.path))
        return
    console.print(f"demo workspace ready: {ws.path}")
    _print_scores(ws.manifest.get("scores", {}), as_json=False)


# ------------------------------------------------------------------------------------------
# curation: select / subset / compare / export


def _parse_budget(text: str | None) -> float | int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise PrismError(
            f"--k must be a number of rows (e.g. 200) or a fraction (e.g. 0.1), got {text!r}."
        ) from None
    return int(value) if value >= 1 and value == int(value) else value


def _parse_options(pairs: list[str] | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise PrismError(f"--option takes name=value (e.g. threshold=0.9), got {pair!r}.")
        options[name.strip()] = value.strip()
    return options


@app.command()
def select(
    workspace: WorkspaceArg,
    method: Annotated[
        str | None,
        typer.Option(
            help="random, cluster_balanced, k_center, vendi_greedy, sparse_clusters or dedupe."
        ),
    ] = None,
    k: Annotated[
        str | None,
        typer.Option("--k", help="Budget: rows (200) or a fraction (0.1); filters may omit it."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the selector.")] = 0,
    name: Annotated[str | None, typer.Option(help="Name of the subset to store.")] = None,
    within: Annotated[
        str | None, typer.Option(help="Only choose among the rows of this subset.")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Grow this subset (its rows count towards --k).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="Selector option name=value (threshold=0.9 for dedupe, rescore=8 …)."),
    ] = None,
    from_manifest: Annotated[
        Path | None,
        typer.Option(help="Rebuild the subset recorded in an export's .manifest.json."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a subset of the same name.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Choose a subset with a selector and store it under --name."""
    from core.workspace.compare import subset_report
    from core.workspace.export import read_manifest
    from core.workspace.subsets import reproduce_subset, run_selector, subset_rows

    ws = _open(workspace)
    identical = None
    if from_manifest is not None:
        manifest = read_manifest(from_manifest)
        stored = manifest["subset"].get("name") or "reproduced"
        text, identical = reproduce_subset(ws, manifest, name=name or stored, overwrite=force)
        rows = subset_rows(ws, text)
    else:
        if method is None or name is None:
            raise PrismError("Pass --method and --name (or --from-manifest PATH).")
        text, rows = run_selector(
            ws,
            method,
            name=name,
            k=_parse_budget(k),
            seed=seed,
            within=within,
            start=start,
            options=_parse_options(option),
            overwrite=force,
        )
    report = subset_report(ws.features(), rows)
    reused = from_manifest is None and name is not None and text != " ".join(name.split())
    record = {"name": text, "size": int(len(rows)), "g_vendi": report["g_vendi"]}
    if identical is not None:
        record["identical_to_manifest"] = identical
    if reused:
        record["reused"] = True
    if as_json:
        _print_json(record)
        return
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


subset_app = typer.Typer(
    help="List, combine, rename and delete named subsets.", no_args_is_help=True
)
app.add_typer(subset_app, name="subset")


@subset_app.command("list")
def subset_list(workspace: WorkspaceArg, as_json: JsonOpt = False) -> None:
    """The workspace's named subsets: size and how each was made."""
    from core.workspace.compare import describe_how
    from core.workspace.subsets import stale_reason

    subsets = _open(workspace).subsets()
    if as_json:
        _print_json(
            {
                n: {
                    "size": len(r["ids"]),
                    "how": r.get("how"),
                    "created": r.get("created"),
                    "stale": stale_reason(r),
                }
                for n, r in subsets.items()
            }
        )
        return
    if not subsets:
        console.print("no subsets yet: make one with `prism select` or in the app")
        return
    table = _table(
        f"Subsets ({len(subsets)})",
        [("name", False), ("size", True), ("how", False), ("created", True)],
    )
    for name, record in subsets.items():
        table.add_row(
            escape(name),
            f"{len(record['ids']):,}",
            escape(
                f"STALE: {stale_reason(record)}; delete it"
                if stale_reason(record)
                else describe_how(record.get("how") or {})
            ),
            escape(str(record.get("created", ""))[:16].replace("T", " ")),
        )
    console.print(table)


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
    from core.workspace.subsets import combine_subsets, subset_record

    ws = _open(workspace)
    text = combine_subsets(ws, operation, names, name=name, overwrite=force)
    console.print(f"stored subset “{text}”: {len(subset_record(ws, text)['ids']):,} rows")


@subset_app.command("rename")
def subset_rename(workspace: WorkspaceArg, old: str, new: str) -> None:
    """Rename a subset."""
    from core.workspace.subsets import rename_subset

    console.print(f"renamed to “{rename_subset(_open(workspace), old, new)}”")


@subset_app.command("delete")
def subset_delete(workspace: WorkspaceArg, name: str) -> None:
    """Delete a subset (its rows stay in the workspace)."""
    from core.workspace.subsets import delete_subset

    delete_subset(_open(workspace), name)
    console.print(f"deleted subset “{name}”")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _number(value: Any) -> str:
    """A number for people: thousands separated, 3–4 significant digits ("1,319", "87.42",
    "0.0531"); text as it is (escaped)."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return "∞" if value > 0 else "–" if math.isnan(value) else "−∞"
        magnitude = abs(value)
        if magnitude >= 1000 or magnitude == 0 or value == int(value):
            return f"{value:,.0f}"
        if magnitude >= 1:
            return f"{value:,.{3 - int(math.floor(math.log10(magnitude)))}f}"
        return f"{value:.3g}"
    return escape(str(value))


def _table(title: str | None, columns: list[tuple[str, bool]]) -> Table:
    """A table that fits a 100-column terminal: number columns never break (``True``), text
    columns fold onto more lines; light borders leave the width to the numbers."""
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False
    )
    for header, numeric in columns:
        if numeric:
            table.add_column(header, justify="right", no_wrap=True)
        else:
            table.add_column(header, overflow="fold", min_width=8)
    return table


SUBSET_COLUMNS = [  # (header, key, digits); the rest come with --wide
    ("rows", "size", 0),
    ("G-Vendi", "g_vendi", 2),
    ("q=2", "vendi_q2", 2),
    ("q=∞", "vendi_qinf", 2),
    ("cover", "coverage", -1),
    ("loss", "mean_loss", 2),
]
WIDE_COLUMNS = [
    ("q=0.5", "vendi_q0.5", 2),
    ("cover (w)", "coverage_weighted", -1),
    ("entropy", "cluster_entropy", 2),
    ("emb. Vendi", "embedding_vendi", 2),
    ("n-gram Vendi", "ngram_vendi", 2),
    ("distinct-2", "distinct_2", 3),
]


def _cell(value: Any, digits: int) -> str:
    if digits < 0:  # a fraction, shown as a percentage
        return "–" if value is None or value != value else f"{100 * value:.0f}%"
    return _fmt(value, digits)


def _random_at(equal: float | None, size: int, n: int) -> tuple[str, str]:
    """("≈ random at", "rows saved") in words: a size, or above every random size."""
    from core.workspace.compare import ABOVE_RANDOM

    if equal is None or equal != equal:
        return ABOVE_RANDOM, f"> {n / size:,.1f}×"
    return f"{equal:,.0f}", f"{equal / size:,.1f}×"


def _print_subsets(ws: Any, rows: Any, summary: Any, *, wide: bool) -> None:
    from core.workspace.compare import random_equivalents

    table = _table(
        f"Subsets of {escape(ws.name)}",
        [("subset", False), ("rows", True), ("G-Vendi", True)]
        + ([("≈ random at", False), ("saved", True)] if summary is not None else [])
        + [(header, True) for header, _, _ in SUBSET_COLUMNS[2:]]
        + [("how", False)],
    )
    equals = random_equivalents(rows, summary, n=ws.n_samples) if summary is not None else None
    for i, row in enumerate(rows.to_dict(orient="records")):
        cells = [escape(str(row["subset"])), _cell(row["size"], 0), _cell(row["g_vendi"], 2)]
        if equals is not None:
            cells += _random_at(equals[i], int(row["size"]), ws.n_samples)
        cells += [_cell(row.get(key), digits) for _, key, digits in SUBSET_COLUMNS[2:]]
        table.add_row(*cells, escape(str(row["how"])))
    console.print(table)
    more = [c for c in WIDE_COLUMNS if c[1] in rows and not rows[c[1]].isna().all()]
    if not wide:
        console.print("more measures: --wide; every number: --json", style="dim")
        return
    # A second table, so that both fit a narrow terminal.
    table = _table("More measures", [("subset", False)] + [(h, True) for h, _, _ in more])
    for row in rows.to_dict(orient="records"):
        table.add_row(escape(str(row["subset"])), *[_cell(row.get(k), d) for _, k, d in more])
    console.print(table)


def _print_curves(summary: Any, *, sizes: list[int], seeds: int, n: int) -> None:
    table = _table(
        f"G-Vendi against budget (mean ± sd over {seeds} seeds)",
        [
            ("method", False),
            ("budget", True),
            ("G-Vendi", True),
            ("± sd", True),
            ("≈ random at", False),
            ("saved", True),
        ],
    )
    methods = list(dict.fromkeys(summary["method"]))
    for method in methods:
        part = summary[summary["method"] == method]
        if method == "random":
            part = part[part["size"].isin(sizes)]
        records = part.to_dict(orient="records")
        for i, row in enumerate(records):
            size = int(row["size"])
            equal, saved = (
                ("the baseline" if i == 0 else "", "")
                if method == "random"
                else _random_at(row["random_equivalent"], size, n)
            )
            table.add_row(
                escape(method) if i == 0 else "",
                f"{size:,}",
                f"{row['mean']:,.2f}",
                f"{row['sd']:.2f}",
                equal,
                saved,
                end_section=i == len(records) - 1,
            )
    console.print(table)


@app.command()
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
    from core.workspace.compare import (
        budget_sizes,
        compare_subsets,
        curve_settings,
        workspace_curves,
    )

    ws = _open(workspace)
    names = list(subsets) if subsets else list(ws.subsets())
    table_rows = compare_subsets(ws, names, text_scores=_text_scores())
    record: dict[str, Any] = {"subsets": table_rows.to_dict(orient="records")}
    summary = None
    if curves:
        settings = curve_settings(ws, methods=methods or None, seeds=seeds, largest=largest)
        with console.status("scoring selectors over budgets …") as status:
            summary = workspace_curves(
                ws, settings, progress=lambda text: status.update(f"scoring {text} …")
            )
        record["curves"] = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in summary.to_dict(orient="records")
        ]
    if as_json:
        _print_json(record)
        return
    _print_subsets(ws, table_rows, summary, wide=wide)
    if summary is not None:
        sizes = budget_sizes(ws.n_samples, largest=int(settings["largest"]))
        _print_curves(summary, sizes=sizes, seeds=seeds, n=ws.n_samples)
        console.print(f"stored the curves in {escape(str(ws.path))} for the app's Compare page")


def _text_scores() -> Any:
    """The text-space scorer, when that part of Prism is installed."""
    try:
        from core.measures.textspace import text_scores
    except ImportError:
        return None
    return text_scores


@app.command()
def export(
    workspace: WorkspaceArg,
    out: Annotated[Path, typer.Option(help="File to write (a folder for --format hf).")],
    subset: Annotated[
        str | None, typer.Option(help="Name of the subset to export (default: the whole set).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv, parquet or hf.")] = "jsonl",
    derived: Annotated[
        bool, typer.Option(help="Add Prism's columns (cluster, umap_x/umap_y, loss, grad_norm…).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Replace a previous export or a file of the same kind (never a folder that is "
            "not a previous export, nor anything in a workspace)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a subset's rows (all original columns, original order) and a manifest beside them."""
    from core.workspace.export import export_subset

    result = export_subset(_open(workspace), subset, fmt=fmt, out=out, derived=derived, force=force)
    what = "the whole set" if subset is None else f"“{escape(subset)}”"
    if as_json:
        _print_json(
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


def main() -> None:
    """Entry point: run the app, turning user errors into one-line messages (exit status 2)."""
    from core.errors import JobStopped

    try:
        code = app(standalone_mode=False)
    except JobStopped as error:
        err.print(f"[bold yellow]stopped:[/] {escape(str(error))}", highlight=False)
        sys.exit(error.exit_code)
    except PrismError as error:
        err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; nothing was left half-written.")
        sys.exit(130)
    except Exception as error:  # usage errors and the like
        import click

        # Typer ≥ 0.20 raises its own vendored copy of click's exceptions (not click's classes),
        # so both families are handled; typer.TyperException is the base of its ClickException.
        if isinstance(error, (click.exceptions.ClickException, typer.TyperException)):
            error.show()  # type: ignore[union-attr]
            sys.exit(error.exit_code)
        if isinstance(error, (click.exceptions.Exit, typer.Exit)):
            sys.exit(error.exit_code)
        if isinstance(error, (click.exceptions.Abort, typer.Abort)):
            sys.exit(130)
        if os.environ.get("PRISM_DEBUG"):
            raise
        # Not a known kind of bad input: one line, not a traceback; PRISM_DEBUG=1 shows it.
        err.print(
            f"[bold red]error:[/] unexpected {type(error).__name__}: {escape(str(error))}\n"
            "This is a bug in Prism or an input it does not recognise; run again with "
            "PRISM_DEBUG=1 for the details.",
            highlight=False,
        )
        sys.exit(1)
    # Typer returns the exit code instead of exiting when standalone_mode is off (e.g. 130 for
    # a Ctrl-C it caught itself).
    if isinstance(code, int) and code:
        if code == 130:
            err.print("interrupted.")
        sys.exit(code)


if __name__ == "__main__":
    main()
