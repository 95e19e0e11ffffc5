"""Find rows of a workspace: text search over the content columns, and a condition over columns.

- ``find_text``: rows whose content columns (prompt and response, the chat, or the text) hold a
  substring (case-insensitive unless ``case_sensitive``) or match a regular expression (RE2
  syntax, as Arrow runs it). ``samples.parquet`` is streamed in record batches: memory stays
  bounded at any size.
- ``find_where``: rows for which a SQL condition over the samples' and the analyses' columns is
  true (``loss > 2 AND cluster IN (3, 7) AND prompt ILIKE '%proof%'``), run by DuckDB over the
  workspace's Parquet files (``samples.parquet`` joined by position with ``derived/*.parquet``),
  never copied into pandas.

The condition is checked before it runs (``check_condition``): one expression, no statement, no
comment, no subquery; every name a column of the workspace, every function one of
``FUNCTIONS`` (no file-reading or system function); the result must be true or false per row.
DuckDB runs it with external access disabled and only the workspace's own files readable, its
configuration locked, so even a condition that slipped past the check reads nothing else.

A result is a ``Found``: row positions in row order, the same kind as a lasso, and how it was
found (what a subset saved from it records).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.data.columns import ColumnMap
from core.data.text import preview_text
from core.errors import PrismError, WorkspaceError
from core.workspace.derived import derived_files
from core.workspace.store import Workspace

BATCH_ROWS = 65_536
ROW = "__prism_row"  # the row position in the query's view (not a user column)
MAX_CONDITION = 4000  # characters


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Keywords a condition may use: boolean logic, comparisons, CASE, CAST and literals.
KEYWORDS = _words(
    """and or not is null true false in between like ilike glob similar to escape case when then
    else end cast try_cast as distinct from collate interval ::"""
)
# Type names (CAST(x AS INTEGER), x::DOUBLE), read as identifiers or keywords.
TYPES = _words(
    """boolean bool tinyint smallint integer int bigint hugeint utinyint usmallint uinteger
    ubigint float real double decimal numeric varchar text string date time timestamp"""
)
# Scalar functions a condition may call: text, numbers, lists, JSON text, dates. Nothing that
# reads files, the environment, settings or other tables.
FUNCTIONS = _words(
    """lower upper lcase ucase length len strlen char_length character_length octet_length trim
    ltrim rtrim substr substring left right replace reverse repeat strpos instr position concat
    concat_ws split_part contains starts_with ends_with prefix suffix like_escape ilike_escape
    regexp_matches regexp_full_match regexp_extract regexp_replace levenshtein jaccard
    damerau_levenshtein hamming abs sign round floor ceil ceiling trunc sqrt cbrt exp ln log log2
    log10 pow power mod greatest least isnan isinf isfinite coalesce ifnull nullif if
    array_length list_contains list_has array_contains list_position list_extract array_extract
    json_extract json_extract_string json_valid json_array_length json_type year month day
    date_part epoch"""
)
_FORBIDDEN_OPERATORS = (";",)


@dataclass(frozen=True)
class Found:
    """Rows found: ``rows`` (int64 positions, row order) and ``how`` (what a subset records)."""

    rows: np.ndarray
    how: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(len(self.rows))


# -- text ---------------------------------------------------------------------------------------


def content_columns(workspace: Workspace) -> list[str]:
    """The columns the text search reads: the mapped prompt/response, chat or text column."""
    return list(ColumnMap.from_dict(dict(workspace.dataset.columns)).content_columns)


def _as_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as strings: text as is, anything else (a chat, numbers) as its JSON text."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    values = column.to_pylist()
    return pa.array(
        [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values],
        type=pa.string(),
    )


def _batches(workspace: Workspace, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    try:
        yield from pq.ParquetFile(workspace.samples_path).iter_batches(
            batch_size=BATCH_ROWS, columns=list(columns)
        )
    except (OSError, ValueError) as error:
        raise WorkspaceError(
            f"{workspace.samples_path} cannot be read ({error}). {workspace.rebuild_hint()}"
        ) from None


def find_text(
    workspace: Workspace,
    pattern: str,
    *,
    regex: bool = False,
    case_sensitive: bool = False,
    columns: Sequence[str] | None = None,
) -> Found:
    """Rows whose content ``columns`` (default: ``content_columns``) contain ``pattern``.

    ``regex``: ``pattern`` is a regular expression (RE2: no look-around or back-references)
    that matches anywhere in the text; otherwise a plain substring. Case is ignored unless
    ``case_sensitive``. A missing value matches nothing.
    """
    param = "regex" if regex else "text"
    if not isinstance(pattern, str) or not pattern:
        raise PrismError(f"{param} must be some text to search for; got {pattern!r}.", param=param)
    wanted = content_columns(workspace) if columns is None else list(columns)
    stored = pq.read_schema(workspace.samples_path).names
    unknown = [c for c in wanted if c not in stored]
    if unknown or not wanted:
        raise PrismError(
            f"columns must be columns of the samples; {unknown or 'none given'} are not "
            f"(columns: {', '.join(stored)}).",
            param="columns",
        )
    if regex:
        try:
            re.compile(pattern)  # a quick syntax check; Arrow (RE2) gives the final word below
        except re.error as error:
            raise PrismError(
                f"regex {pattern!r} is not a valid pattern: {error}.", param=param
            ) from None
    match = pc.match_substring_regex if regex else pc.match_substring
    found: list[np.ndarray] = []
    start = 0
    for batch in _batches(workspace, wanted):
        hit = np.zeros(batch.num_rows, dtype=bool)
        for name in wanted:
            text = _as_text(batch.column(name))
            try:
                matched = match(text, pattern=pattern, ignore_case=not case_sensitive)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise PrismError(
                    f"regex {pattern!r} cannot be used: {error}. Patterns follow RE2 syntax (no "
                    "look-around, no back-references).",
                    param=param,
                ) from None
            hit |= matched.fill_null(False).to_numpy(zero_copy_only=False)
        found.append(np.flatnonzero(hit) + start)
        start += batch.num_rows
    rows = np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)
    how = {"method": "find", param: pattern, "case_sensitive": bool(case_sensitive)}
    return Found(rows=rows, how=how)


# -- conditions -----------------------------------------------------------------------------------


def _tokens(condition: str) -> list[tuple[str, str]]:
    """(kind, text) of each token of ``condition``: identifier, numeric_const, string_const,
    operator, keyword (DuckDB's own tokenizer, so quoting follows its rules)."""
    # heavy: duckdb, only when a condition is run
    import duckdb

    found = duckdb.tokenize(condition)
    out = []
    for i, (start, kind) in enumerate(found):
        stop = found[i + 1][0] if i + 1 < len(found) else len(condition)
        out.append((kind.name, condition[start:stop].strip()))
    return out


def _refuse(message: str) -> PrismError:
    return PrismError(
        f"{message} A condition is one expression over the columns, e.g. "
        "loss > 2 AND cluster IN (3, 7) AND prompt ILIKE '%proof%'.",
        param="where",
    )


def check_condition(condition: object, columns: Sequence[str]) -> str:
    """``condition`` trimmed, when it is one expression over ``columns`` using only the allowed
    keywords and ``FUNCTIONS``; a PrismError naming the offending part otherwise."""
    if not isinstance(condition, str) or not condition.strip():
        raise _refuse("where is empty.")
    text = condition.strip()
    if len(text) > MAX_CONDITION:
        raise _refuse(f"where has {len(text):,} characters (at most {MAX_CONDITION:,}).")
    names = {c.lower() for c in columns}
    tokens = _tokens(text)
    depth = 0
    for i, (kind, token) in enumerate(tokens):
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        before = tokens[i - 1][1] if i else ""
        if kind != "string_const" and ("--" in token or "/*" in token):
            raise _refuse("where may not hold comments (-- or /* */).")
        if kind == "operator":
            if token in _FORBIDDEN_OPERATORS:
                raise _refuse(f"where may not hold {token!r}: one expression, not statements.")
            depth += token.count("(") - token.count(")")
            if depth < 0:
                raise _refuse("where closes a parenthesis it never opened.")
        elif kind == "keyword" and token.lower() == "from" and before.lower() != "distinct":
            raise _refuse("where may use FROM only in IS [NOT] DISTINCT FROM (no subqueries).")
        elif kind == "keyword" and token.lower() not in KEYWORDS | TYPES | FUNCTIONS | names:
            raise _refuse(f"where may not use {token.upper()} (only a condition, no statements).")
        elif kind == "keyword" and token.lower() in FUNCTIONS - KEYWORDS and after != "(":
            if token.lower() not in names:
                raise _refuse(f"where names {token}, which is not a column of this workspace.")
        elif kind == "identifier":
            name = token.strip('"').lower()
            if after.startswith("("):
                if name not in FUNCTIONS:
                    raise _refuse(
                        f"where may not call {token}(): only text, number, list and JSON "
                        "functions such as lower, length, regexp_matches, abs, round, coalesce, "
                        "json_extract_string."
                    )
            elif name not in names and name not in TYPES and not before.endswith("."):
                raise _refuse(
                    f"where names {token}, which is not a column of this workspace (columns: "
                    f"{', '.join(columns)}; quote names with spaces in double quotes)."
                )
    if depth != 0:
        raise _refuse("where opens a parenthesis it never closes.")
    return text


def _view(workspace: Workspace, connection: Any) -> list[str]:
    """Create the view ``samples`` (every column ``workspace.samples()`` gives, plus ``ROW``) over
    the workspace's Parquet files; returns its user columns."""
    samples = workspace.samples_path
    n_rows = pq.read_metadata(samples).num_rows
    sources: dict[str, str] = {}  # column → alias of the file it is read from
    files = [("s", samples)]
    for n, (_, path) in enumerate(derived_files(workspace.path)):
        if pq.read_metadata(path).num_rows != n_rows:
            raise WorkspaceError(
                f"{path} does not have one row per sample ({n_rows:,}); recompute that analysis."
            )
        files.append((f"d{n}", path))
    for alias, path in reversed(files):  # a derived column wins over a stored one (schema 1)
        for name in pq.read_schema(path).names:
            sources.setdefault(name, alias)
    ordered = [c for _, p in files for c in pq.read_schema(p).names]
    columns = [c for c in dict.fromkeys(ordered) if c != ROW]
    allowed = [str(p.resolve()) for _, p in files]
    connection.execute("SET allowed_paths = $1", [allowed])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    select = ", ".join(f'{sources[c]}."{_quoted(c)}"' for c in columns)
    scans = f"read_parquet('{_literal(allowed[0])}', file_row_number = true) AS s" + "".join(
        f" POSITIONAL JOIN read_parquet('{_literal(path)}') AS {alias}"
        for (alias, _), path in zip(files[1:], allowed[1:], strict=True)
    )
    connection.execute(
        f"CREATE VIEW samples AS SELECT s.file_row_number AS {ROW}, {select} FROM {scans}"
    )
    return columns


def _quoted(name: str) -> str:
    return name.replace('"', '""')


def _literal(text: str) -> str:
    return text.replace("'", "''")


def find_where(workspace: Workspace, condition: str) -> Found:
    """Rows for which the SQL ``condition`` over the workspace's columns is true (NULL is not)."""
    # heavy: duckdb, only when a condition is run
    import duckdb

    connection = duckdb.connect(":memory:")
    try:
        columns = _view(workspace, connection)
        text = check_condition(condition, columns)
        try:
            kind = connection.execute(f"DESCRIBE SELECT ({text}) AS keep FROM samples").fetchall()
            if kind[0][1] != "BOOLEAN":
                raise _refuse(
                    f"where must be true or false for each row; {text!r} gives {kind[0][1]} "
                    "values (compare it: loss > 2)."
                )
            result = connection.execute(
                f"SELECT {ROW} FROM samples WHERE ({text}) ORDER BY {ROW}"
            ).fetchnumpy()
        except duckdb.Error as error:
            first = str(error).strip().splitlines()[0]
            raise _refuse(f"where {text!r} cannot run: {first}") from None
    finally:
        connection.close()
    rows = np.asarray(result[ROW], dtype=np.int64)
    return Found(rows=rows, how={"method": "find", "where": text})


def rows_of_samples(workspace: Workspace, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
    """``columns`` of ``samples.parquet`` at positions ``rows`` (in that order), reading only the
    row groups that hold them: a few rows of a 10⁶-row workspace without reading all its text."""
    handle = pq.ParquetFile(workspace.samples_path)
    meta = handle.metadata
    starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    wanted = np.asarray(rows, dtype=np.int64)
    groups = sorted(set(np.searchsorted(starts, wanted, side="right").tolist()))
    parts, offsets, offset = [], {}, 0
    for group in groups:
        part = handle.read_row_group(group - 1, columns=list(columns))
        offsets[group - 1] = offset - int(starts[group - 1])
        offset += part.num_rows
        parts.append(part)
    table = pa.concat_tables(parts) if parts else handle.schema_arrow.empty_table()
    group_of = np.searchsorted(starts, wanted, side="right") - 1
    index = wanted + np.array([offsets[g] for g in group_of], dtype=np.int64)
    return table.select(list(columns)).take(pa.array(index, type=pa.int64()))


def previews(workspace: Workspace, rows: np.ndarray, *, max_chars: int = 120) -> list[str]:
    """Per row of ``rows``, the start of its content on one line (``preview_text``)."""

    columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
    frame = rows_of_samples(workspace, rows, ["id", *columns.content_columns]).to_pandas()
    return preview_text(frame, columns, max_chars=max_chars)
