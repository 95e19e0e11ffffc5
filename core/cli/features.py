"""Commands that build a workspace or say what it holds: ``features``, ``resume``, ``demo``, ``info``.

``features`` loads and validates a dataset, prepares the workspace and runs the resumable
extraction job with a progress bar; ``resume`` finishes an interrupted one.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from core.cli.options import (
    BatchTokensHelp,
    ColumnOptions,
    DeviceHelp,
    EncodingOpt,
    IdColOpt,
    JsonOpt,
    MessagesColOpt,
    NprocOpt,
    PromptColOpt,
    QuietOpt,
    ResponseColOpt,
    ShardSecondsHelp,
    TextColOpt,
    WorkspaceArg,
    open_workspace,
    read_dataset,
)
from core.cli.render import console, err, print_info, print_json, print_scores
from core.errors import PrismError


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
        typer.Option(help=BatchTokensHelp),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Truncate samples to this many tokens (default: no truncation)."),
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16.")] = "float32",
    device: Annotated[str, typer.Option(help=DeviceHelp)] = "auto",
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
    prompt_col: PromptColOpt = None,
    response_col: ResponseColOpt = None,
    messages_col: MessagesColOpt = None,
    text_col: TextColOpt = None,
    id_col: IdColOpt = None,
    encoding: EncodingOpt = None,
    shard_size: Annotated[int, typer.Option(help="Most samples per resumable shard.")] = 128,
    shard_seconds: Annotated[
        float,
        typer.Option(help=ShardSecondsHelp),
    ] = 30.0,
    force: Annotated[
        bool, typer.Option(help="Rebuild a workspace that was built with other data or settings.")
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow the model's own code to run (off by default).")
    ] = False,
    nproc: NprocOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Compute sketched per-sample gradient features of a dataset (resumes an interrupted run)."""
    _launch_ranks(nproc)
    group = _join(device)
    if not group.is_main:  # rank 0 reads the data and prepares the workspace; the others wait
        ws = open_workspace(Path(group.share(None)))
        _extract(ws, batch_size=batch_size, batch_tokens=batch_tokens, device=device,
                 shard_size=shard_size, shard_seconds=shard_seconds, quiet=True, group=group)  # fmt: skip
        return
    # heavy: torch, pandas and pyarrow, kept off `prism --help`
    from core.features.extract import FeatureConfig
    from core.features.proxy import conversion_note, reused_models
    from core.workspace.jobs.estimate import estimate_run
    from core.workspace.jobs.extraction import (
        check_workspace_target,
        outermost_missing,
        prepare_workspace,
        remove_created,
    )
    from core.workspace.registry import register_workspace
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
    dataset = read_dataset(
        source,
        split=split,
        columns=ColumnOptions(prompt_col, response_col, messages_col, text_col, id_col, encoding),
        limit=limit,
        sample=sample,
        sample_seed=sample_seed,
    )
    path = workspace or default_workspace_path(source, dataset.fingerprint)
    if not quiet:
        skipped = f", {dataset.n_skipped:,} skipped (empty cells)" if dataset.n_skipped else ""
        err.print(
            f"[bold]{escape(str(dataset.source))}[/]: {dataset.n_samples:,} samples{skipped}; "
            f"columns {escape(str(dataset.columns.to_dict()))}"
        )
    fresh = not path.exists() or not any(path.iterdir())
    created = outermost_missing(path)
    ws = prepare_workspace(path, dataset, config, force=force)
    register_workspace(ws.path, by="prism features")  # the app lists it, wherever it is
    group.share(str(ws.path))
    for note in ws.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    try:
        converting = None if ws.has_features else conversion_note(config.model)
        if converting is not None and not quiet:  # said before the minute or two it takes
            err.print(f"note: {escape(converting)}", highlight=False)
        with reused_models():  # the estimate's model load serves the run too
            if not quiet and not ws.has_features:  # a finished workspace needs no estimate
                sentence = estimate_run(dataset, config).sentence()
                err.print(f"estimate: {escape(sentence)}", highlight=False)
            _extract(
                ws,
                batch_size=batch_size,
                batch_tokens=batch_tokens,
                device=device,
                shard_size=shard_size,
                shard_seconds=shard_seconds,
                quiet=quiet,
                group=group,
            )
    except PrismError:
        # A new workspace whose job failed before finishing a single shard (a model that cannot
        # be loaded, a sample that cannot be encoded) is removed, so that bad input leaves
        # nothing half-written behind; one with finished shards is kept for a resume.
        status = ws.feature_section.status if ws.feature_section else None
        if fresh and status in ("pending", "failed") and not any(ws.shard_dir.glob("*.npz")):
            remove_created(path, created)
        raise


def resume(
    workspace: WorkspaceArg,
    batch_size: Annotated[
        int | None, typer.Option(help="Samples per forward/backward pass.")
    ] = None,
    batch_tokens: Annotated[
        int | None,
        typer.Option(help=BatchTokensHelp),
    ] = None,
    device: Annotated[str | None, typer.Option(help=DeviceHelp)] = None,
    shard_size: Annotated[
        int, typer.Option(help="Most samples per shard (a started job keeps its own).")
    ] = 128,
    shard_seconds: Annotated[
        float,
        typer.Option(help=ShardSecondsHelp),
    ] = 30.0,
    nproc: NprocOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Finish the feature extraction of a prepared or interrupted workspace."""
    _launch_ranks(nproc)
    group = _join(device)
    _extract(
        open_workspace(workspace),
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        device=device,
        shard_size=shard_size,
        shard_seconds=shard_seconds,
        quiet=quiet or not group.is_main,
        group=group,
    )


def _launch_ranks(nproc: int) -> None:
    """Run this same command on ``nproc`` local ranks and exit with their status — unless
    ``nproc`` is 1 or this process is a rank already (torchrun started it)."""
    # heavy: torch, kept off `prism --help`
    from core.features.distributed import launch, torchrun_env, validate_nproc

    if validate_nproc(nproc) > 1 and not torchrun_env():
        raise typer.Exit(launch(nproc, sys.argv[1:]))


def _join(device: str | None) -> Any:
    """This process's rank group (``core.features.distributed.join``); SOLO without torchrun."""
    # heavy: torch, kept off `prism --help`
    from core.features.distributed import join

    return join(device)


def _extract(
    ws: Any,
    *,
    batch_size: int | None,
    device: str | None,
    shard_size: int,
    quiet: bool,
    batch_tokens: int | None = None,
    shard_seconds: float = 30.0,
    group: Any = None,
) -> None:
    """Run (or finish) the extraction job of ``ws``, with a progress bar unless ``quiet``.

    With a distributed ``group`` every rank runs its part; only rank 0 prints.
    """
    # heavy: rich.progress (~30 ms), kept off `prism --help`
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # heavy: torch, pandas and pyarrow, kept off `prism --help`
    from core.features.distributed import SOLO
    from core.workspace.jobs.extraction import run_features

    group = group or SOLO
    if group.share(ws.has_features):  # rank 0's answer, so that every rank takes the same path
        if not group.is_main:
            return
        err.print(
            f"{escape(str(ws.path))}: features already complete ({ws.n_samples:,} samples); nothing to do."
        )
        print_scores(ws.scores)
        return
    if quiet:
        run_features(
            ws,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            device=device,
            shard_size=shard_size,
            shard_seconds=shard_seconds,
            group=group,
        )
        if not group.is_main:
            return
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
                group=group,
            )
    err.print(f"wrote {escape(str(ws.path))}")
    section = ws.feature_section
    if section is not None and (n_truncated := int(section.n_truncated or 0)):
        err.print(
            f"note: {n_truncated:,} of {ws.n_samples:,} samples were longer than --max-length "
            f"{section.settings.get('max_length')} tokens and were "
            "truncated (the model read only their start).",
            highlight=False,
        )
    print_scores(ws.scores)


def demo(
    quiet: Annotated[bool, typer.Option(help="Print only the workspace path.")] = False,
) -> None:
    """Make sure the GSM8K demo workspace (features, clusters, map) is ready; print its path."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.demo import ensure_demo_workspace
    from core.workspace.registry import register_workspace

    ws = ensure_demo_workspace()
    register_workspace(ws.path, by="prism demo")
    if quiet:
        typer.echo(str(ws.path))
        return
    console.print(f"demo workspace ready: {escape(str(ws.path))}")
    print_scores(ws.scores)


def info(workspace: WorkspaceArg, as_json: JsonOpt = False) -> None:
    """What a workspace holds: dataset, settings, scores, analyses and columns."""
    # heavy: pandas and pyarrow, kept off `prism --help`
    from core.workspace.jobs.record import read_progress
    from core.workspace.quality import quality_signals

    ws = open_workspace(workspace)
    record = ws.record()
    record["columns"] = list(ws.samples().columns)
    record["quality_signals"] = [dataclasses.asdict(s) for s in quality_signals(ws)]
    record["subsets"] = {name: s.size for name, s in ws.subsets().items()}
    progress = read_progress(ws.path)
    if progress is not None:
        record["job"] = progress.__dict__
    if as_json:
        print_json(record)
        return
    if progress is not None and progress.status == "done":
        record.pop("job")  # a finished job is the features section
    print_info(ws.path, record)
