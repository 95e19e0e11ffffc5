"""Load and validate a dataset: `load_dataset` returns a `Dataset` of samples ready for features.

`load_dataset` reads the source in batches of rows (``core.data.read``), maps and checks the
content columns (``core.data.columns``), ids the rows, skips and counts rows whose mapped cells are
empty, optionally keeps the first `limit` rows or a seeded random `sample`, and returns a
`Dataset` whose `samples` start with a unique string `id`; `Dataset.notes` says what was done that
the user did not ask for. Rows in messages are counted from 1 over data rows (a CSV header is not
a row); default sample ids are 0-based row numbers in the file. With `limit`, reading stops at
the first batch of rows that holds `limit` rows with content: rows after it are neither read nor
checked, and `n_total` counts the rows read.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from core.data.cells import is_blank, iter_values, row_label, scalar_text, snippet, type_name
from core.data.columns import (
    ColumnMap,
    check_columns_exist,
    detect_columns,
    detect_id,
    fingerprint,
    sample_ids,
    storable,
    unused_id_note,
)
from core.data.limits import MAX_CELL_CHARS
from core.data.read import Stream, frame_of, open_stream
from core.data.stream import BATCH_ROWS, combine
from core.data.text import check_cell_size, looks_like_chat, normalise_chat
from core.errors import DataError

logger = logging.getLogger(__name__)


# Columns that Prism itself writes into `samples`; originals with these names are kept as
# f"{name}_orig" so an analysis never overwrites user data.
RESERVED_COLUMNS = (
    "id",
    "cluster",
    "umap_x",
    "umap_y",
    "loss",
    "grad_norm",
    "n_tokens",
    "n_response_tokens",
    "truncated",
    # text-space baseline (core.measures.embed)
    "emb_cluster",
    "emb_umap_x",
    "emb_umap_y",
    "nbr_agreement",
    # quality beside diversity (core.measures.quality)
    "ifd",
    "loss_alone",
    "is_high_loss_outlier",
    "is_low_loss_outlier",
)


@dataclass(frozen=True, eq=False)  # eq=False: DataFrames have no single truth value
class Dataset:
    """Validated samples plus where they came from.

    `samples` holds the string `id` column first, then every original column (values as read,
    reserved names renamed per `renamed`), one row per kept sample, with a RangeIndex.
    """

    samples: pd.DataFrame
    columns: ColumnMap  # names as stored in `samples`
    source: str
    fingerprint: str
    n_total: int  # rows read: all rows of the file, unless `limit` stopped reading early
    n_skipped: int  # rows read whose mapped content was empty
    renamed: dict[str, str]
    # What loading did that the user did not ask for (renamed headers, an id column not used,
    # the split chosen, columns kept as JSON text), one sentence each, to be shown as warnings.
    notes: tuple[str, ...] = ()
    json_columns: tuple[str, ...] = ()  # stored names of columns kept as JSON text
    split: str | None = None  # the split read from a saved DatasetDict
    sample: int | None = None  # rows asked for by a seeded random sample
    sample_seed: int | None = None

    @property
    def n_samples(self) -> int:
        return len(self.samples)


def _blank_rows(df: pd.DataFrame, columns: ColumnMap, name: str, ids: list[str]) -> np.ndarray:
    """Which rows have empty content; checks the types of the others on the way."""
    blank = np.zeros(len(df), dtype=bool)
    if columns.messages is not None:
        for i, value in enumerate(iter_values(df[columns.messages])):
            if is_blank(value):
                blank[i] = True
                continue
            chat = normalise_chat(value, where=f"{name}, {row_label(i, ids)}")
            check_cell_size(
                sum(len(m["content"]) for m in chat),
                col=columns.messages,
                where=f"{name}, {row_label(i, ids)}",
            )
            # A chat whose reply is empty teaches nothing, like an empty response cell.
            blank[i] = not chat or not chat[-1]["content"].strip()
        return blank
    for col in columns.content_columns:
        if isinstance(df[col].dtype, pd.StringDtype):
            blank |= _blank_strings(df[col], col, name, ids)
            continue
        for i, value in enumerate(iter_values(df[col])):
            text = None if is_blank(value) else scalar_text(value)
            if text is not None:
                check_cell_size(len(text), col=col, where=f"{name}, {row_label(i, ids)}")
            if is_blank(value) or (text is not None and not text.strip()):
                blank[i] = True
            elif text is None:
                hint = (
                    f" It looks like a chat: name it as the `messages` column ({col!r})."
                    if looks_like_chat(value)
                    else ""
                )
                raise DataError(
                    f"{name}, {row_label(i, ids)}: column {col!r} holds a {type_name(value)} "
                    f"({snippet(value)}), expected text.{hint}",
                    param=next(f.name for f in fields(columns) if getattr(columns, f.name) == col),
                )
    return blank


def _blank_strings(series: pd.Series, col: str, name: str, ids: list[str]) -> np.ndarray:
    """`_blank_rows` for a column of text (pandas' str dtype): only the cell size can be wrong."""
    lengths = series.str.len().to_numpy(dtype=float, na_value=0.0)
    too_long = np.flatnonzero(lengths > MAX_CELL_CHARS)
    if len(too_long):
        i = int(too_long[0])
        check_cell_size(int(lengths[i]), col=col, where=f"{name}, {row_label(i, ids)}")
    # `not v or v.isspace()` is `not v.strip()` without copying the text.
    cells = iter_values(series)
    blank = (not isinstance(v, str) or not v or v.isspace() for v in cells)
    return np.fromiter(blank, dtype=bool, count=len(series))


def _unique_name(base: str, taken: set[str]) -> str:
    candidate, n = f"{base}_orig", 2
    while candidate in taken:
        candidate, n = f"{base}_orig{n}", n + 1
    return candidate


def _build_samples(
    df: pd.DataFrame, keep: np.ndarray, ids: list[str], columns: ColumnMap
) -> tuple[pd.DataFrame, ColumnMap, dict[str, str]]:
    every = len(keep) == len(df)  # no copy of the rows when all are kept
    kept = df if every else df.iloc[keep].reset_index(drop=True)
    taken = set(df.columns) | set(RESERVED_COLUMNS)
    renamed: dict[str, str] = {}
    data: dict[str, Any] = {"id": pd.Series(ids if every else [ids[i] for i in keep], dtype="str")}
    for col in df.columns:
        if col == "id" and columns.id == "id":
            continue  # becomes the stored string id
        new = col
        if col in RESERVED_COLUMNS:
            new = _unique_name(col, taken)
            taken.add(new)
            renamed[col] = new
        data[new] = kept[col]
    stored = replace(
        columns,
        **{f.name: renamed.get(v, v) for f in fields(columns) if (v := getattr(columns, f.name))},
    )
    return pd.DataFrame(data, index=pd.RangeIndex(len(keep))), stored, renamed


def _checked_rows(
    frame: pd.DataFrame, columns: ColumnMap | None, name: str, notes: list[str], detect_ids: bool
) -> tuple[ColumnMap, list[str], np.ndarray]:
    """The column map (detected unless given; its id detected with `detect_ids`), the ids and
    which rows are blank."""
    if columns is None:
        columns = detect_columns(frame, source=name)
    elif detect_ids and columns.id is None:
        check_columns_exist(frame, columns, name)
        columns = replace(columns, id=detect_id(frame, content=columns.content_columns))
    check_columns_exist(frame, columns, name)
    if columns.id is None and (note := unused_id_note(frame, name)) is not None:
        notes.append(note)
    ids = sample_ids(frame, columns.id, name)
    return columns, ids, _blank_rows(frame, columns, name, ids)


def _read_rows(
    stream: Stream,
    columns: ColumnMap | None,
    limit: int | None,
    notes: list[str],
    detect_ids: bool = False,
) -> tuple[pd.DataFrame, ColumnMap, list[str], np.ndarray]:
    """Read the stream, all of it or (`limit`) until `limit` rows with content are in."""
    with contextlib.closing(stream.batches) as batches:
        if limit is None:
            frame = frame_of(stream, list(batches))
            return frame, *_checked_rows(frame, columns, stream.name, notes, detect_ids)
        raw: pd.DataFrame | None = None
        said: list[str] = []
        for batch in batches:
            raw = batch if raw is None else combine([raw, batch])
            said = []
            frame = frame_of(stream, [raw])
            found, ids, blank = _checked_rows(frame, columns, stream.name, said, detect_ids)
            if int((~blank).sum()) >= limit:
                break
        if raw is None:
            raise DataError(f"{stream.name} is empty: it contains no rows.")
        notes += said
        return frame, found, ids, blank


def _row_count(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise DataError(f"{param} must be a positive number of rows, got {value!r}.", param=param)
    return int(value)


def load_dataset(
    source: str | os.PathLike[str],
    *,
    columns: ColumnMap | None = None,
    limit: int | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    split: str | None = None,
    batch_rows: int = BATCH_ROWS,
    encoding: str | None = None,
    detect_ids: bool = False,
) -> Dataset:
    """Read, map, validate and id a dataset; rows with empty content are skipped and counted.

    `limit` keeps the first `limit` non-empty rows (reading stops at the first batch that holds
    them); `sample` keeps a random `sample` of them drawn with `sample_seed`, in their original
    order (one or the other). `split` picks the split of a saved DatasetDict (default `train`).
    The file is read `batch_rows` rows at a time; the result does not depend on it (with
    `limit`, only how many rows are read, `n_total`, does). `encoding` is that of a text file
    (default UTF-8). `detect_ids`: `columns` without an id still get the id column that
    `detect_columns` would find (a column named like an id, of unique present values).
    """
    name = os.fspath(source)
    if limit is not None:
        limit = _row_count(limit, "limit")
    if sample is not None:
        sample = _row_count(sample, "sample")
        if limit is not None:
            raise DataError(
                "Pass either limit (the first N rows) or sample (N random rows), not both.",
                param="sample",
            )
    if isinstance(sample_seed, bool) or not isinstance(sample_seed, int | np.integer):
        raise DataError(
            f"sample_seed must be an integer, got {sample_seed!r}.", param="sample_seed"
        )
    if sample_seed < 0:
        raise DataError(f"sample_seed must be ≥ 0, got {sample_seed}.", param="sample_seed")
    if columns is not None and not isinstance(columns, ColumnMap):
        raise TypeError(f"columns must be a ColumnMap, got {type(columns).__name__}")
    notes: list[str] = []
    batch_rows = _row_count(batch_rows, "batch_rows")
    if limit is not None:
        batch_rows = min(batch_rows, max(1024, 2 * limit))
    stream = open_stream(source, split=split, notes=notes, batch_rows=batch_rows, encoding=encoding)
    frame, columns, ids, blank = _read_rows(stream, columns, limit, notes, detect_ids)
    n_skipped = int(blank.sum())
    if n_skipped == len(frame):
        raise DataError(
            f"{name}: every row is empty in the column(s) "
            f"{', '.join(map(repr, columns.content_columns))}. Check the column mapping."
        )
    if n_skipped:
        logger.info("%s: skipped %d of %d rows with empty content", name, n_skipped, len(frame))
    keep = np.flatnonzero(~blank)
    if limit is not None:
        keep = keep[:limit]
    if sample is not None:
        if sample < len(keep):
            rng = np.random.default_rng(int(sample_seed))
            keep = np.sort(rng.choice(keep, size=sample, replace=False))
        else:
            notes.append(
                f"{name}: a sample of {sample:,} rows was asked for, but only {len(keep):,} rows "
                "have content; all of them are used."
            )
    samples, stored, renamed = _build_samples(frame, keep, ids, columns)
    samples, json_columns, json_notes = storable(samples, stored, name, renamed)
    notes += json_notes
    for note in notes:
        logger.info("%s", note)
    return Dataset(
        samples=samples,
        columns=stored,
        source=name,
        fingerprint=fingerprint(samples, stored),
        n_total=len(frame),
        n_skipped=n_skipped,
        renamed=renamed,
        notes=tuple(notes),
        json_columns=json_columns,
        split=stream.split,
        sample=sample,
        sample_seed=int(sample_seed) if sample is not None else None,
    )
