"""``prism quality``: the quality signals beside diversity — outlier flags, IFD, the blend curve.

    prism quality WS                  # flag loss outliers (the rule is printed), list the signals
    prism quality WS --ifd            # + IFD: one forward pass per row, resumable
    prism quality WS --blend-curve --k 200 --betas 0,0.5,1,2

The engine is ``core.workspace.quality`` and ``core.workspace.jobs.ifd``; this module parses the
options, calls them and prints.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from core.cli.options import (
    BatchTokensHelp,
    DeviceHelp,
    JsonOpt,
    QuietOpt,
    WorkspaceArg,
    open_workspace,
    parse_budget,
)
from core.cli.render import console, err, number, print_json
from core.cli.tables import key_value_table, table
from core.errors import PrismError


def _parse_betas(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PrismError(
            f"--betas takes numbers separated by commas (e.g. 0,0.5,1,2); got {text!r}.",
            param="betas",
        ) from None


def _run_ifd(ws: Any, *, force: bool, quiet: bool, **sizes: Any) -> Any:
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.jobs.ifd import run_ifd

    if quiet:
        return run_ifd(ws, force=force, **sizes)

    with Progress(
        TextColumn("IFD"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        console=err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("ifd", total=ws.n_samples, rate="")

        def on_progress(job: Any) -> None:
            rate = f"{job.samples_per_s:.1f} rows/s" if job.samples_per_s else job.message
            bar.update(task, completed=job.done, total=job.total, rate=rate)

        return run_ifd(ws, force=force, on_progress=on_progress, **sizes)


def quality(
    workspace: WorkspaceArg,
    ifd: Annotated[
        bool,
        typer.Option(
            "--ifd",
            help="Also compute IFD (loss with prompt / loss of the response alone): one forward "
            "pass per row with the workspace's proxy; a stopped run keeps its finished rows.",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="Compute IFD again even if it is current.")] = False,
    blend_curve: Annotated[
        bool,
        typer.Option(
            "--blend-curve",
            help="Print G-Vendi and mean quality of quality_blend at --k over --betas.",
        ),
    ] = False,
    k: Annotated[
        str, typer.Option("--k", help="Budget of the blend curve: rows or a fraction.")
    ] = "0.1",
    betas: Annotated[str, typer.Option(help="β values of the blend curve.")] = "0,0.25,0.5,1,2,4",
    score: Annotated[
        str, typer.Option(help="Quality column of the blend (a leading - reverses it).")
    ] = "-loss",
    seed: Annotated[int, typer.Option(help="Seed of the random reference subset.")] = 0,
    batch_size: Annotated[int | None, typer.Option(help="Rows per forward pass (IFD).")] = None,
    batch_tokens: Annotated[int | None, typer.Option(help=BatchTokensHelp)] = None,
    device: Annotated[str | None, typer.Option(help=DeviceHelp)] = None,
    shard_size: Annotated[
        int, typer.Option(help="Rows per IFD shard (a kill loses at most one shard).")
    ] = 64,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Quality beside diversity: flag loss outliers, compute IFD, print the quality signals."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.measures.quality import OUTLIER_RULE
    from core.validate import check_budget
    from core.workspace.quality import blend_curve as curve
    from core.workspace.quality import flag_outliers, quality_signals

    ws = open_workspace(workspace)
    record: dict[str, Any] = {}
    if ifd:
        section = _run_ifd(
            ws, force=force, quiet=quiet or as_json, batch_size=batch_size,
            batch_tokens=batch_tokens, device=device, shard_size=shard_size,
        )  # fmt: skip
        record["ifd"] = section.to_dict()
    if "loss" in ws.sample_columns():
        record["outliers"] = flag_outliers(ws).to_dict()
    record["rule"] = OUTLIER_RULE
    record["signals"] = [dataclasses.asdict(s) for s in quality_signals(ws)]
    if blend_curve:
        # heavy: pandas, pyarrow and the engine, kept off `prism --help`
        from core.workspace.selector_runs import selector_pool

        pool = selector_pool(ws, score=score)
        budget = check_budget(parse_budget(k), pool.n)
        points = curve(pool, budget=int(budget or 1), betas=_parse_betas(betas), score=score,
                       seed=seed)  # fmt: skip
        record["blend_curve"] = {
            "budget": budget, "score": score, "points": [dataclasses.asdict(p) for p in points]
        }  # fmt: skip
    if as_json:
        print_json(record)
        return
    print_signals(record)
    if blend_curve:
        print_blend(record["blend_curve"])


def print_signals(record: dict[str, Any]) -> None:
    """The signals (present or why not), then the outlier rule in words."""
    result = key_value_table("Quality signals", key_style="bold")
    for signal in record["signals"]:
        mark = "✓" if signal["present"] else "–"
        result.add_row(
            f"{mark} {escape(signal['name'])}",
            f"[dim]{escape(signal['column'])}[/] {escape(signal['note'])}",
        )
    console.print(result)
    console.print(f"[bold]outlier rule:[/] {escape(record['rule'])}", highlight=False)


def print_blend(curve: dict[str, Any]) -> None:
    """The blend curve: one line per β, the random reference last."""
    column = curve["score"].lstrip("-")
    with_loss = column != "loss"
    headers = ["β", "rows", "G-Vendi", f"mean {column}", *(["mean loss"] if with_loss else [])]
    result = table(
        f"quality_blend at {curve['budget']:,} rows (score {curve['score']})",
        [(h, True) for h in headers],
    )
    for point in curve["points"]:
        cells = [
            "random" if point["beta"] is None else number(point["beta"]),
            number(point["size"]),
            f"{point['g_vendi']:.2f}",
            f"{point['mean_quality']:.3f}",
        ]
        if with_loss:
            cells.append("–" if point["mean_loss"] is None else f"{point['mean_loss']:.3f}")
        result.add_row(*cells)
    console.print(result)
