"""Commands that measure a workspace: ``score``, ``cluster``, ``map``, ``embed``.

Each parses its options, calls one function of ``core.workspace.analyses`` (or the text-space
measures) and renders what it returns; ``--json`` prints the same record for machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape

from core.cli.options import (
    DeviceHelp,
    JsonOpt,
    QuietOpt,
    WorkspaceArg,
    open_workspace,
    parse_q,
    read_ids,
)
from core.cli.render import (
    console,
    err,
    print_cluster_scores,
    print_clusters,
    print_embedding,
    print_json,
    print_scores,
)
from core.errors import PrismError


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
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.analyses import cluster_scores, text_scores, workspace_scores

    ws = open_workspace(workspace)
    qs = tuple(parse_q(x) for x in q) if q else None
    rows = _selected_rows(ws, subset, ids)
    record = workspace_scores(ws, rows=rows, qs=qs).to_dict()
    if rows is not None:
        record["subset"] = subset or str(ids)
    # The whole set's lexical numbers are stored by `prism embed`; without them they are
    # computed here (nothing is written: `score` only reads).
    record["text"] = text_scores(ws, np.arange(ws.n_samples) if rows is None else rows).to_dict()
    if per_cluster:
        record["clusters"] = [c.to_dict() for c in cluster_scores(ws, qs=qs)]
    if as_json:
        print_json(record)
        return
    print_scores(record)
    if per_cluster:
        print_cluster_scores(record["clusters"])


def _selected_rows(ws: Any, subset: str | None, ids_file: Path | None) -> np.ndarray | None:
    """Sorted unique row positions of ``--subset`` or ``--ids``; None for the whole set."""
    if subset is None and ids_file is None:
        return None
    if subset is not None and ids_file is not None:
        raise PrismError("Pass either --subset or --ids, not both.")
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.subsets import rows_of

    if subset is not None:
        subsets = ws.subsets()
        if subset not in subsets:
            names = ", ".join(sorted(subsets)) or "none yet"
            raise PrismError(
                f"Workspace {ws.path} has no subset named {subset!r} (subsets: {names})."
            )
        return np.unique(rows_of(ws, subset))
    path = Path(str(ids_file))
    return np.unique(rows_of(ws, str(path), ids=read_ids(path)))


def cluster(
    workspace: WorkspaceArg,
    k: Annotated[
        int | None, typer.Option("--k", help="Number of clusters (default ≈ N/10, as published).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the k-means initialisation.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Spherical k-means on the features: sizes, sparse clusters (below the median size)."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.measures.clusters import few_rows_note
    from core.workspace.analyses import cluster_workspace

    ws = open_workspace(workspace)
    summary = cluster_workspace(ws, n_clusters=k, seed=seed).to_dict()
    caution = few_rows_note(ws.n_samples, summary["sizes"])
    if as_json:
        print_json({**summary, "few_rows": caution})
        return
    print_clusters(summary)
    if caution is not None:
        console.print(f"[yellow]few rows:[/] {escape(caution)}", highlight=False)


def map_(
    workspace: WorkspaceArg,
    seed: Annotated[int, typer.Option(help="UMAP seed.")] = 0,
    n_neighbors: Annotated[int, typer.Option(help="UMAP n_neighbors.")] = 15,
    min_dist: Annotated[float, typer.Option(help="UMAP min_dist.")] = 0.1,
) -> None:
    """UMAP 2-D layout of the features (cosine), stored as umap_x / umap_y."""
    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.workspace.analyses import layout_workspace

    ws = open_workspace(workspace)
    layout_workspace(ws, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    console.print(
        f"stored a 2-D map of {ws.n_samples:,} samples in {escape(str(ws.path))} (umap_x, umap_y)"
    )


def embed(
    workspace: WorkspaceArg,
    model: Annotated[
        str,
        typer.Option(
            help="'default' (packaged all-MiniLM-L6-v2, offline), a sentence-transformers model "
            "name, or a local path."
        ),
    ] = "default",
    batch_size: Annotated[
        int, typer.Option(help="Texts per forward pass (does not change the embeddings).")
    ] = 32,
    device: Annotated[str, typer.Option(help=DeviceHelp)] = "auto",
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
    quiet: QuietOpt = False,
) -> None:
    """Sentence embeddings (text space): Vendi, clusters, map, agreement with gradient space."""
    # heavy: rich.progress (~30 ms), kept off `prism --help`
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # heavy: pandas, pyarrow and scipy, kept off `prism --help`
    from core.measures.embed import EmbedConfig
    from core.workspace.analyses import embed_workspace

    config = EmbedConfig(
        model=model,
        batch_size=batch_size,
        device=device,
        seed=seed,
        n_clusters=k,
        n_neighbors=neighbours,
    )
    ws = open_workspace(workspace)
    if quiet or as_json:
        section = embed_workspace(ws, config)
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

            section = embed_workspace(ws, config, progress=on_progress)
    lexical = ws.lexical
    record = {**section.to_dict(), "neighbours": section.neighbours}
    if as_json:
        print_json({"embedding": record, "lexical": lexical and lexical.to_dict()})
        return
    print_embedding(record, lexical.to_dict() if lexical else {}, ws.path)
