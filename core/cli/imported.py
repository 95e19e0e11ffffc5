"""The ``import-features`` command: a workspace from a dataset and features computed elsewhere.

The engine is ``core.workspace.imported``; this module reads the options (the dataset's column
options are those of ``prism features``) and prints what was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from core.cli.options import (
    ColumnOptions,
    EncodingOpt,
    IdColOpt,
    MessagesColOpt,
    PromptColOpt,
    ResponseColOpt,
    TextColOpt,
    read_dataset,
)
from core.cli.render import err, print_scores


def import_features(
    source: Annotated[
        str, typer.Argument(help="Dataset file or directory (as for `prism features`).")
    ],
    features_file: Annotated[
        Path,
        typer.Argument(
            help="N×d features, one row per sample in file order: .npy (never unpickled) or a "
            ".parquet file with a list column."
        ),
    ],
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="New or empty workspace directory.")
    ],
    features_col: Annotated[
        str | None,
        typer.Option(help="List column of a Parquet features file (default: its only one)."),
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
) -> None:
    """Build a workspace from a dataset and an N×d feature array computed elsewhere."""
    # heavy: torch, pandas and pyarrow, kept off `prism --help`
    from core.workspace.imported import import_features as build
    from core.workspace.jobs.extraction import check_workspace_target
    from core.workspace.registry import register_workspace

    check_workspace_target(workspace)  # before reading a possibly large file
    dataset = read_dataset(
        source,
        split=split,
        columns=ColumnOptions(prompt_col, response_col, messages_col, text_col, id_col, encoding),
    )
    ws = build(workspace, dataset, features_file, column=features_col)
    register_workspace(ws.path, by="prism import-features")
    section = ws.feature_section
    original = section.settings.get("original_dim") if section else None
    err.print(
        f"wrote {escape(str(ws.path))}: {ws.n_samples:,} samples × d {original} imported from "
        f"{escape(str(features_file))} (rows scaled to unit length)"
    )
    print_scores(ws.scores)
