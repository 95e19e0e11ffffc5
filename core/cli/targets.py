"""Target commands: ``target add|list|delete|coverage`` and ``relevance``.

``target add`` brings a target set from a file (read with the column options of ``prism
features``), from a subset (``--subset``) or from typed text (``--text``, repeatable) and computes
its features in the workspace's space (``core.workspace.targets``); ``relevance`` stores each
row's relevance to a target as the column ``relevance:T``.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.markup import escape

from core.cli.options import (
    ColumnOptions,
    DeviceHelp,
    EncodingOpt,
    IdColOpt,
    JsonOpt,
    MessagesColOpt,
    PromptColOpt,
    ResponseColOpt,
    TextColOpt,
    WorkspaceArg,
    open_workspace,
    read_dataset,
)
from core.cli.render import console, err, print_json
from core.errors import PrismError
from core.measures.relevance import CLOSE_COSINE, MIN_CLOSE

target_app = typer.Typer(
    help="Target sets: examples of what the model should learn, in the pool's feature space.",
    no_args_is_help=True,
)
TargetOpt = Annotated[str, typer.Option("--target", help="Name of the target set.")]


@target_app.command("add")
def add(
    workspace: WorkspaceArg,
    source: Annotated[
        str | None,
        typer.Argument(help="Dataset file of target examples (any format `prism features` reads)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name of the target (letters, digits, _-.).")
    ] = None,
    subset: Annotated[
        str | None, typer.Option(help="Use this subset's rows (their stored features).")
    ] = None,
    text: Annotated[
        list[str] | None,
        typer.Option(help="A typed example, as plain text (repeat for several)."),
    ] = None,
    group_col: Annotated[
        str | None, typer.Option(help="Column that splits the target into groups (task, subject).")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Split of a saved DatasetDict folder (default: train).")
    ] = None,
    prompt_col: PromptColOpt = None,
    response_col: ResponseColOpt = None,
    messages_col: MessagesColOpt = None,
    text_col: TextColOpt = None,
    id_col: IdColOpt = None,
    encoding: EncodingOpt = None,
    device: Annotated[str | None, typer.Option(help=DeviceHelp)] = None,
    force: Annotated[bool, typer.Option(help="Replace a target of the same name.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a target set from a FILE, a --subset or --text, computed with the workspace's proxy."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.targets import (
        add_target_from_dataset,
        add_target_from_subset,
        add_target_from_texts,
        describe_target,
    )

    given = [s for s in (source, subset, text) if s]
    if len(given) != 1:
        raise PrismError('Give exactly one of FILE, --subset NAME or --text "…".')
    if name is None:
        raise PrismError("Give the target a --name.")
    ws = open_workspace(workspace)
    if subset:
        record = add_target_from_subset(
            ws, subset, name=name, group_column=group_col, overwrite=force
        )
    elif text:
        if group_col:
            raise PrismError("--group-col needs a FILE or a --subset; typed text has no columns.")
        record = add_target_from_texts(ws, text, name=name, device=device, overwrite=force)
    else:
        dataset = read_dataset(
            str(source),
            split=split,
            columns=ColumnOptions(
                prompt_col, response_col, messages_col, text_col, id_col, encoding
            ),
        )
        record = add_target_from_dataset(
            ws, dataset, name=name, group_column=group_col, device=device, overwrite=force
        )
    described = describe_target(ws, record)
    if as_json:
        print_json(described)
        return
    groups = ", ".join(f"{escape(g)} ({n})" for g, n in record.groups.items())
    truncated = f", {record.n_truncated} truncated" if record.n_truncated else ""
    console.print(
        f"target “{escape(record.name)}”: {record.n_rows:,} examples from {record.kind} "
        f"{escape(record.source)}{truncated}; groups: {groups}"
    )


@target_app.command("list")
def list_(workspace: WorkspaceArg, as_json: JsonOpt = False) -> None:
    """The workspace's target sets: source, examples, groups."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.targets import describe_target, list_targets

    ws = open_workspace(workspace)
    described = [describe_target(ws, r) for r in list_targets(ws)]
    if as_json:
        print_json(described)
        return
    if not described:
        console.print("no targets yet; add one with `prism target add WS FILE --name T`.")
        return
    for d in described:
        stale = f"  [yellow]stale: {escape(d['stale'])}[/]" if d["stale"] else ""
        console.print(
            f"{escape(d['name'])}: {d['rows']:,} examples ({d['kind']} {escape(d['source'])}), "
            f"{len(d['groups'])} group(s){stale}"
        )


@target_app.command("coverage")
def coverage(
    workspace: WorkspaceArg,
    name: Annotated[str, typer.Argument(help="The target set.")],
    threshold: Annotated[
        float,
        typer.Option(help="A pool row is close to a group at this cosine to one of its examples."),
    ] = CLOSE_COSINE,
    min_close: Annotated[
        int, typer.Option(help="A group with fewer close pool rows is under-served.")
    ] = MIN_CLOSE,
    top: Annotated[int, typer.Option(help="Best matches shown per group.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """How well the pool covers each group of a target: close rows, best matches, gaps."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.relevance import coverage as target_coverage

    ws = open_workspace(workspace)
    report = target_coverage(ws, name, threshold=threshold, min_close=min_close, top=top)
    if as_json:
        print_json(report)
        return
    console.print(
        f"target “{escape(name)}” against {report['pool_rows']:,} pool rows (close: cosine ≥ "
        f"{threshold:g} to one of a group's examples; under-served: fewer than {min_close} close)"
    )
    for row in report["groups"]:
        flag = "  [bold yellow]under-served[/]" if row["under_served"] else ""
        console.print(
            f"  {escape(row['group'])}: {row['examples']} examples, {row['close_rows']:,} close "
            f"rows, median nearest cosine {row['nearest_median']:.3f}{flag}"
        )
        for best in row["best"]:
            console.print(
                f"      {best['cosine']:.3f}  {escape(best['id'])}  {escape(best['preview'][:90])}",
                highlight=False,
            )


@target_app.command("delete")
def delete(
    workspace: WorkspaceArg,
    name: Annotated[str, typer.Argument(help="The target to delete.")],
) -> None:
    """Delete a target set (its features, examples and relevance column)."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.targets import delete_target

    ws = open_workspace(workspace)
    delete_target(ws, name)
    err.print(f"deleted target “{escape(name)}”")


def relevance(
    workspace: WorkspaceArg,
    target: TargetOpt,
    agg: Annotated[
        str,
        typer.Option(
            help="mean-max (LESS: mean cosine over each group's examples, then the best group) "
            "or max (the nearest target example)."
        ),
    ] = "mean-max",
    whiten: Annotated[
        bool,
        typer.Option(
            help="Precondition both sides by (C + λI)^-½, C the pool's covariance, λ = trace(C)/d."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store each row's relevance to a target set as the column relevance:T."""

    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.relevance import store_relevance
    from core.workspace.schema import relevance_column

    ws = open_workspace(workspace)
    values = store_relevance(ws, target, agg=agg, whiten=whiten)
    quantiles = np.quantile(values, [0.0, 0.5, 0.95, 1.0]).tolist()
    record = {
        "target": target,
        "column": relevance_column(target),
        "agg": agg,
        "whiten": whiten,
        "rows": int(len(values)),
        "min": quantiles[0],
        "median": quantiles[1],
        "p95": quantiles[2],
        "max": quantiles[3],
    }
    if as_json:
        print_json(record)
        return
    console.print(
        f"stored column “{escape(record['column'])}” ({agg}{', whitened' if whiten else ''}) "
        f"for {len(values):,} rows: median {quantiles[1]:.3f}, top 5 % from {quantiles[2]:.3f}, "
        f"max {quantiles[3]:.3f}"
    )
