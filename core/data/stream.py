"""Read a dataset file in batches of rows, so that memory holds one batch of parsed values at a time.

- `byte_lines` yields the raw lines of a file, gzip-compressed or not (a file in another
  `encoding` is decoded and its lines given as UTF-8); `text_lines` decodes them, reporting a byte
  that is not UTF-8 with its byte offset, line number and the encoding the file looks like.
- `jsonl_batches`, `delimited_batches` (CSV/TSV), `parquet_batches` (Parquet row groups through
  ``pyarrow.parquet.ParquetFile.iter_batches``) and `arrow_batches` (the Arrow files of a
  `save_to_disk` folder) yield DataFrames of at most `batch_rows` rows, in file order.
- `combine` joins the batches into one frame whose column dtypes are those that reading every row
  at once gives (``core.data.cells.series_from_values``): a column that is all integers in one
  batch and mixed in another comes out mixed, as it would from the whole file.

Strings stay in Arrow-backed columns (pandas' ``str`` dtype), so a batch costs about its text.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from charset_normalizer import from_bytes

from core.data.cells import (
    frame_from_arrow,
    frame_from_records,
    is_null,
    json_type,
    series_from_values,
    snippet,
)
from core.errors import DataError

# DataFrames of rows in file order; a generator, so that reading can stop early and close the file.
Batches = Generator[pd.DataFrame, None, None]

# Rows per batch: ~30 MB of parsed GSM8K-like rows, and few enough batches that joining is cheap.
BATCH_ROWS = 65_536


def byte_lines(
    path: Path, name: str, *, compressed: bool = False, encoding: str | None = None
) -> Iterator[bytes]:
    """The lines of a file (each with its b"\\n"), gzip-compressed or not, read on demand.

    Lines end at b"\\n" only, so line numbers count what an editor counts. A file with nothing
    but whitespace is refused as empty before the first line is given. With an `encoding` other
    than UTF-8 (see `check_encoding`) the file is decoded from it and its lines are given as
    UTF-8, so every reader reads UTF-8.
    """
    lines = _raw_lines(path, name, compressed=compressed, encoding=encoding)
    head: list[bytes] = []
    for line in lines:
        head.append(line)
        if line.strip():
            return chain(head, lines)
    raise DataError(f"{name} is empty: it contains no rows.")


def check_encoding(encoding: object) -> str | None:
    """A text encoding Python knows, as its codec name; None for UTF-8, the default."""
    if encoding is None or (isinstance(encoding, str) and not encoding.strip()):
        return None
    try:
        codec = codecs.lookup(encoding.strip()) if isinstance(encoding, str) else None
    except LookupError:
        codec = None
    if codec is None or not getattr(codec, "_is_text_encoding", True):
        raise DataError(
            "encoding must be a text encoding such as utf-8, cp1252, latin-1, utf-16 or "
            f"shift_jis; got {encoding!r}.",
            param="encoding",
        )
    return None if codec.name == "utf-8" else codec.name


def _raw_lines(
    path: Path, name: str, *, compressed: bool, encoding: str | None = None
) -> Iterator[bytes]:
    try:
        handle = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115
    except OSError as err:
        raise DataError(f"{name}: cannot read the file ({err.strerror or err}).") from err
    with handle:
        try:
            if encoding is None:
                yield from handle
            else:
                yield from _recoded_lines(handle, name, encoding)
        except (OSError, EOFError, zlib.error) as err:
            if not compressed:
                reason = getattr(err, "strerror", None) or err
                raise DataError(f"{name}: cannot read the file ({reason}).") from err
            raise DataError(
                f"{name} is not a complete gzip file ({err}). Compress it again with gzip, or "
                "pass the uncompressed file."
            ) from err


def _recoded_lines(handle: Any, name: str, encoding: str) -> Iterator[bytes]:
    """The lines of a binary file in `encoding`, as UTF-8 bytes (split after decoding, so that a
    two-byte encoding such as UTF-16 splits where its text has a newline)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    rest, offset, lineno = "", 0, 1
    while True:
        chunk = handle.read(1 << 16)
        held = len(getattr(decoder, "buffer", b""))  # bytes of the last chunk not yet decoded
        try:
            text = rest + decoder.decode(chunk, final=not chunk)
        except UnicodeError as err:  # UnicodeDecodeError, or a UTF-16 file without its BOM
            where, why = f"line {lineno}", str(err)
            if isinstance(err, UnicodeDecodeError):
                before = rest + err.object[: err.start].decode(encoding, "replace")
                at = offset - held + err.start
                where, why = f"byte offset {at}, line {lineno + before.count(chr(10))}", err.reason
            raise DataError(
                f"{name} cannot be read as {encoding} ({where}: {why}). "
                f"{_encoding_hint(name, chunk)}",
                param="encoding",
            ) from err
        offset += len(chunk)
        lines = text.split("\n")
        rest = lines.pop()
        for line in lines:
            yield (line + "\n").encode("utf-8")
        lineno += len(lines)
        if not chunk:
            break
    if rest:
        yield rest.encode("utf-8")


def _encoding_hint(name: str, sample: bytes) -> str:
    """What to do about text that does not decode: the encodings it looks like, if any fit."""
    guesses = guess_encodings(name, sample)
    if not guesses:
        return "Pass the file's encoding (e.g. cp1252, latin-1, utf-16), or save it as UTF-8."
    others = f" (or {', '.join(guesses[1:])})" if len(guesses) > 1 else ""
    return (
        f"It looks like {guesses[0]}{others}, as detected by charset-normalizer: pass the "
        f"encoding {guesses[0]}, or save the file as UTF-8."
    )


def guess_encodings(name: str, sample: bytes, *, most: int = 3) -> list[str]:
    """The encodings the file `name` looks like to charset-normalizer, most likely first, as
    Python codec names (at most `most`; never UTF-8 or ASCII, which were tried).

    Judges the file's first 256 KiB (decompressed for `.gz`), or `sample` (bytes of the part that
    failed) when the file cannot be read.
    """

    head = sample
    path = Path(name)
    try:
        with gzip.open(path) if path.suffix.lower() == ".gz" else open(path, "rb") as handle:
            head = handle.read(1 << 18) or sample
    except (OSError, EOFError, zlib.error):
        pass
    names = dict.fromkeys(codecs.lookup(match.encoding).name for match in from_bytes(head))
    return [n for n in names if n not in ("utf-8", "ascii")][:most]


def text_lines(lines: Iterable[bytes], name: str) -> Iterator[str]:
    """`byte_lines` decoded as UTF-8 (Excel's byte-order mark dropped); a bad byte is reported
    with its byte offset, line number and the encoding the file looks like."""
    offset = 0
    for lineno, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise _not_utf8(name, raw, err, offset=offset, lineno=lineno) from err
        offset += len(raw)


def _not_utf8(name: str, raw: bytes, err: UnicodeDecodeError, *, offset: int, lineno: int) -> Any:
    return DataError(
        f"{name} is not valid UTF-8: byte 0x{raw[err.start]:02x} at byte offset "
        f"{offset + err.start} (line {lineno}) cannot be decoded. {_encoding_hint(name, raw)}",
        param="encoding",
    )


def jsonl_batches(lines: Iterable[bytes], name: str, *, batch_rows: int) -> Batches:
    """JSON Lines, `batch_rows` lines at a time: one object per line, blank lines skipped.

    Errors name the line (and, for a byte that is not UTF-8, its offset in the file).
    """
    lines = iter(lines)
    lineno, offset, any_rows = 1, 0, False
    while raw := list(islice(lines, batch_rows)):
        if lineno == 1 and raw[0].startswith(codecs.BOM_UTF8):  # Excel's byte-order mark
            raw[0] = raw[0][len(codecs.BOM_UTF8) :]
            offset += len(codecs.BOM_UTF8)
        frame = _jsonl_frame(raw, name, lineno=lineno, offset=offset)
        lineno, offset = lineno + len(raw), offset + sum(map(len, raw))
        if frame is not None:
            any_rows = True
            yield frame
    if not any_rows:
        raise DataError(f"{name} is empty: it contains no rows.")


def _jsonl_frame(raw: list[bytes], name: str, *, lineno: int, offset: int) -> pd.DataFrame | None:
    """One batch of lines as a frame (None when every line is blank)."""
    table = _arrow_jsonl(raw)
    if table is not None:
        return frame_from_arrow(table)
    records = []
    for i, data in enumerate(raw):
        try:
            line = data.decode("utf-8").removesuffix("\n").rstrip("\r")
        except UnicodeDecodeError as err:
            raise _not_utf8(name, data, err, offset=offset, lineno=lineno + i) from err
        offset += len(data)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            start = max(0, err.colno - 40)
            raise DataError(
                f"{name}: line {lineno + i} is not valid JSON ({err.msg} at column {err.colno}): "
                f"{snippet(line[start : start + 80])}. Each line must hold one JSON object."
            ) from err
        if not isinstance(record, dict):
            raise DataError(
                f"{name}: line {lineno + i} holds a JSON {json_type(record)}, expected an object "
                'such as {"prompt": ..., "response": ...}.'
            )
        records.append(record)
    return frame_from_records(records) if records else None


def _arrow_jsonl(raw: list[bytes]) -> Any:
    """The lines parsed by pyarrow's JSON reader (C++, threaded) when that is exact, else None.

    Exact means valid UTF-8, one object per non-blank line, and only text, 64-bit integer,
    boolean or null columns: pyarrow reads larger integers as floats and unifies the keys of
    nested objects, so batches holding numbers with a fraction, lists or objects (and every bad
    line, so that its message names the line) go through ``json.loads``, one line at a time.
    """
    data = b"".join(raw)
    n_lines = sum(1 for line in raw if line.strip())
    if not n_lines:
        return None
    try:
        data.decode("utf-8")  # pyarrow checks values, not keys
        options = pa_json.ReadOptions(block_size=max(1 << 22, len(data) // 8))
        table = pa_json.read_json(pa.py_buffer(data), read_options=options)
    except (pa.ArrowException, OSError, ValueError):
        return None
    exact = (pa.types.is_string, pa.types.is_int64, pa.types.is_boolean, pa.types.is_null)
    if table.num_rows != n_lines or not all(
        any(kind(t) for kind in exact) for t in table.schema.types
    ):
        return None
    return table


class _LineReader(io.TextIOBase):
    """A text stream over an iterator of lines, for pandas' CSV reader."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self._rest = ""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        parts, n = [self._rest], len(self._rest)
        while size is None or size < 0 or n < size:
            line = next(self._lines, None)
            if line is None:
                break
            parts.append(line)
            n += len(line)
        text = "".join(parts)
        if size is None or size < 0:
            self._rest = ""
            return text
        self._rest = text[size:]
        return text[:size]


def delimited_batches(
    lines: Iterator[str], name: str, *, fmt: str, notes: list[str], batch_rows: int
) -> Batches:
    """CSV/TSV with every cell as text (empty cells missing); `combine` + `typed_text` type it.

    At least one frame is given, so a file with a header and no rows still names its columns.
    """
    sep = "\t" if fmt == "tsv" else ","
    first = next(lines, "")
    try:
        header = next(csv.reader([first], delimiter=sep), [])
    except csv.Error:
        header = []  # pandas reports the malformed file below
    if fmt == "csv" and len(header) == 1 and ";" in header[0]:
        raise DataError(
            f"{name}: the header {snippet(header[0])} is one column containing ';', so the file "
            "looks semicolon-delimited; Prism reads comma-separated CSV. Save it with commas as "
            "separators (or tabs, as .tsv) and try again."
        )
    try:
        # Only truly empty cells are missing: pandas' default would also turn the words
        # "NA", "null" or "None" into missing values and drop real text.
        reader = pd.read_csv(
            _LineReader(chain([first], lines)),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=batch_rows,
        )
        with reader:
            n_frames = 0
            for frame in reader:
                if n_frames == 0:
                    _note_renamed(header, frame, name, notes)
                if n_frames == 0 or len(frame):
                    n_frames += 1
                    yield frame
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{name} is empty: it contains no rows.") from err
    except (pd.errors.ParserError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{name} could not be read as {fmt.upper()}: {str(err).strip()}. Check that every row "
            "has as many fields as the header and that quotes are closed."
        ) from err


def _note_renamed(header: list[str], frame: pd.DataFrame, name: str, notes: list[str]) -> None:
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


def typed_text(frame: pd.DataFrame, is_number: Callable[[pd.Series], pd.Series]) -> pd.DataFrame:
    """A frame of text cells with each column passed through `is_number` (text stays text)."""
    return pd.DataFrame({c: is_number(frame[c]) for c in frame.columns}, index=frame.index)


def parquet_batches(path: Path, name: str, *, batch_rows: int) -> Batches:
    """A Parquet file, `batch_rows` rows at a time (at least one frame, for the column names)."""
    if path.stat().st_size == 0:
        raise DataError(f"{name} is empty: it contains no rows.")
    try:
        with pq.ParquetFile(path) as file:
            schema = file.schema_arrow
            any_rows = False
            for batch in file.iter_batches(batch_size=batch_rows):
                any_rows = True
                yield frame_from_arrow(batch)
            if not any_rows:
                yield frame_from_arrow(schema.empty_table())
    except (pa.ArrowException, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{name} is not a readable Parquet file ({err}). Re-export it, or save it as "
            "CSV or JSON Lines."
        ) from err


def arrow_batches(files: list[Path], name: str, *, batch_rows: int) -> Batches:
    """The record batches of Arrow IPC files (what `save_to_disk` writes), memory-mapped."""
    try:
        yield from _arrow_frames(files, batch_rows)
    except (OSError, ValueError, pa.ArrowException) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{name}: the saved dataset in {files[0].parent} cannot be read ({err}). Save it "
            "again with save_to_disk."
        ) from err


def _arrow_frames(files: list[Path], batch_rows: int) -> Batches:
    group: list[Any] = []
    schema = None
    for path in files:
        with pa.memory_map(str(path)) as source:
            try:
                batches = iter(pa.ipc.open_stream(source))
            except pa.ArrowInvalid:
                source.seek(0)
                reader = pa.ipc.open_file(source)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            for batch in batches:
                schema = schema or batch.schema
                group.append(batch)
                if sum(b.num_rows for b in group) >= batch_rows:
                    yield frame_from_arrow(pa.Table.from_batches(group))
                    group = []
    if group:
        yield frame_from_arrow(pa.Table.from_batches(group))
    elif schema is None:  # no batch at all: the columns come from the first file's schema
        with pa.memory_map(str(files[0])) as source:
            try:
                schema = pa.ipc.open_stream(source).schema
            except pa.ArrowInvalid:
                source.seek(0)
                schema = pa.ipc.open_file(source).schema
        yield frame_from_arrow(schema.empty_table())


def combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame of all batches, typed as if read at once; `frames` is emptied on the way."""
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1 or any(f.columns.duplicated().any() for f in frames):
        return frames[0]  # a repeated column name is refused by the caller
    names = list(dict.fromkeys(c for f in frames for c in f.columns))
    lengths = [len(f) for f in frames]
    out: dict[str, pd.Series] = {}
    for col in names:
        parts = [
            f[col] if col in f.columns else pd.Series([None] * n, dtype=object)
            for f, n in zip(frames, lengths, strict=True)
        ]
        if len({p.dtype for p in parts}) == 1:
            out[col] = pd.concat(parts, ignore_index=True)
        else:  # batches typed differently: type the whole column from its values
            values = [None if is_null(v) else v for p in parts for v in p.tolist()]
            out[col] = series_from_values(values)
        for f in frames:  # free each batch's column once it is joined
            if col in f.columns:
                del f[col]
    frames.clear()
    return pd.DataFrame(out, index=pd.RangeIndex(sum(lengths)))
