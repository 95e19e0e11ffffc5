"""Arguments and options shared by several commands, and the parsers of option text.

Only the CLI knows flags, so the messages here name them (``--k``, ``--q``, ``--ids``).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from core.cli.flags import name_flags
from core.cli.render import err
from core.errors import PrismError

WorkspaceArg = Annotated[Path, typer.Argument(help="Workspace directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QuietOpt = Annotated[bool, typer.Option(help="No progress bar.")]
DeviceHelp = "auto, cpu, cuda or cuda:N."
BatchTokensHelp = (
    "Most tokens per batch (default 1,024 padded tokens on a CPU; 32,768 real tokens on a GPU, "
    "where rows are packed without padding; does not change the features)."
)
ShardSecondsHelp = (
    "A shard also closes after this many seconds of work (a kill loses at most that)."
)
NprocOpt = Annotated[
    int,
    typer.Option(
        help="Processes (ranks) to extract on, started through torch's elastic launcher: one per "
        "GPU, or CPU processes (gloo). 1: this process. Under torchrun it is ignored."
    ),
]


def open_workspace(path: Path) -> Any:
    """The workspace at ``path`` (a clear message when it is none, or from a newer Prism)."""
    # heavy: pandas and pyarrow, kept off `prism --help`
    from core.workspace.store import Workspace

    return Workspace.open(path)


def parse_q(text: str) -> float:
    """An order q of ``--q``: a positive number or 'inf'."""
    value = math.inf if text.lower() in ("inf", "infinity", "∞") else float(text)
    if not value > 0:
        raise PrismError(f"--q must be > 0 (or 'inf'), got {text!r}.")
    return value


def parse_budget(text: str | None) -> float | int | None:
    """``--k`` of ``prism select``: a whole number of rows, or a fraction of them."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise PrismError(
            f"--k must be a number of rows (e.g. 200) or a fraction (e.g. 0.1), got {text!r}."
        ) from None
    return int(value) if value >= 1 and value == int(value) else value


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """Repeated ``--option name=value`` as a dict of strings (the selector types them)."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise PrismError(f"--option takes name=value (e.g. threshold=0.9), got {pair!r}.")
        options[name.strip()] = value.strip()
    return options


def read_ids(path: Path) -> list[str]:
    """The ids listed in an ``--ids`` file, one per line (blank lines skipped)."""
    if not path.is_file():
        raise PrismError(f"--ids file {path} does not exist.")
    wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not wanted:
        raise PrismError(f"--ids file {path} names no ids; nothing to score.")
    return wanted


PromptColOpt = Annotated[str | None, typer.Option(help="Column holding the prompt.")]
ResponseColOpt = Annotated[str | None, typer.Option(help="Column holding the response.")]
MessagesColOpt = Annotated[
    str | None, typer.Option(help="Column holding a chat (list of role/content messages).")
]
TextColOpt = Annotated[
    str | None, typer.Option(help="Column holding plain text (loss over all tokens).")
]
IdColOpt = Annotated[
    str | None,
    typer.Option(
        help="Column of unique sample ids (default: a column named id, _id, uid or sample_id "
        "whose values are unique, else the row number)."
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option(
        help="Text encoding of a CSV, TSV, JSON or JSON Lines file, e.g. cp1252, latin-1, "
        "utf-16 (default: UTF-8)."
    ),
]


@dataclass(frozen=True)
class ColumnOptions:
    """The column options of a command that reads a dataset (``--prompt-col`` … ``--id-col``,
    ``--encoding``)."""

    prompt_col: str | None
    response_col: str | None
    messages_col: str | None
    text_col: str | None
    id_col: str | None
    encoding: str | None = None


def read_dataset(source: str, *, split: str | None, columns: ColumnOptions, **load: Any) -> Any:
    """``load_dataset`` with the column options of a command, its notes printed to stderr (the
    one path of `prism features` and `prism import-features`). Without ``--id-col`` the id column
    is detected, also when the content columns are given."""

    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.data.dataset import load_dataset

    mapped = column_map(source, split=split, **dataclasses.asdict(columns))
    dataset = load_dataset(
        source,
        columns=mapped,
        split=split,
        encoding=columns.encoding,
        detect_ids=columns.id_col is None,
        **load,
    )
    for note in dataset.notes:
        err.print(f"[yellow]note:[/] {escape(name_flags(note, sys.argv[1:]))}", highlight=False)
    return dataset


def column_map(
    source: str,
    *,
    split: str | None,
    prompt_col: str | None,
    response_col: str | None,
    messages_col: str | None,
    text_col: str | None,
    id_col: str | None,
    encoding: str | None = None,
) -> Any:
    """The ColumnMap the column options ask for, or None to detect every column (with only
    ``--id-col`` given, the others are detected from the first rows)."""
    # heavy: pandas and pyarrow, kept off `prism --help`
    from core.data.columns import ColumnMap, detect_columns
    from core.data.read import read_head

    if any(c is not None for c in (prompt_col, response_col, messages_col, text_col)):
        return ColumnMap(
            prompt=prompt_col,
            response=response_col,
            messages=messages_col,
            text=text_col,
            id=id_col,
        )
    if id_col is not None:
        detected = detect_columns(read_head(source, split=split, encoding=encoding), source=source)
        return ColumnMap(**{**detected.to_dict(), "id": id_col})
    return None
