"""Which columns hold the samples, what identifies a row, and how cells are kept on disk.

- `ColumnMap` records the content columns: a prompt/response pair, a chat (`messages`) or plain
  text, and optionally an id column; `detect_columns` guesses it from common names and cell types,
  `detect_id` the id column alone (for content columns the user named).
- `sample_ids` / `unused_id_note`: ids come from a column of unique present values, else from
  0-based row numbers.
- `fingerprint`: 16 hex chars of sha256 over (id, content as the model sees it) of every row.
- `storable` keeps metadata columns that a Parquet column cannot hold as they are (mixed value
  types, integers beyond 64 bits, objects with differing keys) as JSON text;
  `restore_json_columns` turns them back into values.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import pandas as pd
import pyarrow as pa

from core.data.cells import (
    is_blank,
    is_null,
    iter_values,
    plain_value,
    scalar_text,
    type_name,
)
from core.data.text import conversations, looks_like_chat, message_list
from core.errors import DataError

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


_COLUMN_HELP = (
    "Name the columns: `prompt` and `response` for prompt/response pairs, `messages` for a column "
    'of chats (lists of {"role", "content"} messages), or `text` for plain text.'
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
                    f"The {f.name} column must be a non-empty column name, got {name!r}.",
                    param=f.name,
                )
        if self.prompt is not None and self.response is None:
            raise DataError(
                f"A prompt column ({self.prompt!r}) needs a response column: name it (`response`).",
                param="response",
            )
        if self.response is not None and self.prompt is None:
            raise DataError(
                f"A response column ({self.response!r}) needs a prompt column: name it (`prompt`).",
                param="prompt",
            )
        n_modes = sum(x is not None for x in (self.prompt, self.messages, self.text))
        if n_modes != 1:
            given = {k: v for k, v in self.to_dict().items() if v is not None and k != "id"}
            raise DataError(
                f"Map exactly one kind of content column, got {given or 'none'}. {_COLUMN_HELP}"
            )
        if self.prompt is not None and self.prompt == self.response:
            raise DataError(
                f"The prompt and response columns must differ, both are {self.prompt!r}.",
                param="response",
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


def _first_values(series: pd.Series, n: int) -> list[Any]:
    out = []
    for value in series:
        if not is_blank(value):
            out.append(value)
            if len(out) == n:
                break
    return out


# A named column with no values at all still matches, so that load_dataset can say that every
# row is empty rather than that no column was found.
def _holds_text(series: pd.Series) -> bool:
    return all(scalar_text(v) is not None for v in _first_values(series, 20))


def _holds_chats(series: pd.Series) -> bool:
    # An empty chat ("[]" in a CSV) says nothing either way, like an empty cell.
    values = [v for v in _first_values(series, 10) if message_list(v) != []][:5]
    return all(looks_like_chat(v) for v in values)


def _id_strings(series: pd.Series) -> list[str | None]:
    if isinstance(series.dtype, pd.StringDtype):  # text: `is_blank` without copying it
        return [
            v if isinstance(v, str) and v and not v.isspace() else None for v in iter_values(series)
        ]
    return [None if is_blank(v) else scalar_text(v) for v in iter_values(series)]


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
    if len(set(ids)) == len(ids):
        return None
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
    lower = _by_lower_name(df)
    id_col = detect_id(df)
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


def _by_lower_name(df: pd.DataFrame) -> dict[str, Any]:
    lower: dict[str, Any] = {}
    for c in df.columns:
        lower.setdefault(str(c).lower(), c)
    return lower


def detect_id(df: pd.DataFrame, *, content: Sequence[str] = ()) -> str | None:
    """The id column `detect_columns` would pick (id, _id, uid, sample_id: the first whose values
    are present and unique), never one of the `content` columns; None when there is none."""
    lower = _by_lower_name(df)
    for key in _ID_NAMES:
        if key in lower and lower[key] not in content and _id_problem(df[lower[key]]) is None:
            return str(lower[key])
    return None


def check_columns_exist(df: pd.DataFrame, columns: ColumnMap, name: str) -> None:
    available = [str(c) for c in df.columns]
    for f in fields(columns):
        col = getattr(columns, f.name)
        if col is None or col in df.columns:
            continue
        by_lower = {c.lower(): c for c in available}
        close = difflib.get_close_matches(col.lower(), list(by_lower), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""
        raise DataError(
            f"{name} has no column {col!r} (`{f.name}`).{hint} Available columns: "
            f"{', '.join(available)}.",
            param=f.name,
        )


def sample_ids(df: pd.DataFrame, id_col: str | None, name: str) -> list[str]:
    if id_col is None:
        return [str(i) for i in range(len(df))]
    problem = _id_problem(df[id_col])
    if problem is not None:
        raise DataError(
            f"{name}: the id column {id_col!r} {problem}. Ids must be unique and present; "
            "fix them, or leave the id column unset to number the rows.",
            param="id",
        )
    return [str(v) for v in _id_strings(df[id_col])]


def unused_id_note(df: pd.DataFrame, name: str) -> str | None:
    """Say so when a column named like an id was passed over because it cannot serve as one."""
    for c in df.columns:
        if str(c).lower() in _ID_NAMES and (problem := _id_problem(df[c])) is not None:
            return (
                f"{name}: the column {c!r} {problem}, so it is not used as the sample id; rows "
                "are numbered from 0 instead (the column is kept). Name a column of unique ids "
                "(`id`) to use your own."
            )
    return None


def _parquet_can_hold(arrow_type: Any) -> bool:
    """False for types Arrow builds but Parquet cannot write (a struct without fields)."""
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
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return False
    return _parquet_can_hold(array.type) and array.to_pylist() == [plain_value(v) for v in series]


def _json_text(value: Any) -> str | None:
    if is_null(value):
        return None
    return json.dumps(plain_value(value), ensure_ascii=False, default=str)


def storable(
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
            out[col] = pd.Series([scalar_text(v) for v in series], dtype="str")
        else:
            out[col] = pd.Series([_json_text(v) for v in series], dtype=object)
            as_json.append(col)
            kinds = sorted({type_name(plain_value(v)) for v in series if not is_null(v)})
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
    """A copy of `frame` whose JSON-text columns `names` hold their values again (see `storable`).

    Names not in the frame are ignored, so a subset of the columns can be restored.
    """
    out = frame.copy()
    for col in names:
        if col in out.columns:
            out[col] = pd.Series(
                [None if is_null(v) else json.loads(v) for v in out[col]],
                dtype=object,
                index=out.index,
            )
    return out


def _digest_rows(digest: Any, ids: list[Any], chats: list[list[dict[str, str]] | str]) -> None:
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for sample_id, chat in zip(ids, chats, strict=True):
        # Compact JSON escapes newlines, so one line per row cannot be forged by content.
        digest.update(encode([str(sample_id), chat]).encode("utf-8") + b"\n")


def fingerprint(samples: pd.DataFrame, columns: ColumnMap, *, step: int = 16_384) -> str:
    """16 hex chars of sha256 over (id, content as the model sees it) of every row, in order.

    Rows are turned into chats `step` at a time, so memory holds one slice of chats.
    """
    digest = hashlib.sha256()
    for start in range(0, max(len(samples), 1), step):
        rows = samples.iloc[start : start + step]
        lines = _text_lines(rows, columns)
        if lines is None:
            _digest_rows(digest, rows["id"].tolist(), conversations(rows, columns))
        else:
            digest.update("".join(lines).encode("utf-8"))
    return digest.hexdigest()[:16]


def _text_lines(rows: pd.DataFrame, columns: ColumnMap) -> list[str] | None:
    """`_digest_rows`' lines, written directly when every content cell is a string (else None).

    A text cell is what the model reads as it is, so the line is the same compact JSON.
    """
    names = [columns.text] if columns.text is not None else [columns.prompt, columns.response]
    if columns.messages is not None or not all(
        isinstance(rows[c].dtype, pd.StringDtype) and not rows[c].hasnans for c in names
    ):
        return None
    quote = encode_basestring  # what json.dumps(..., ensure_ascii=False) writes for a string
    ids = [quote(str(v)) for v in rows["id"].tolist()]
    if columns.text is not None:
        return [
            f"[{i},{quote(t)}]\n" for i, t in zip(ids, rows[columns.text].tolist(), strict=True)
        ]
    pairs = zip(
        ids, rows[str(columns.prompt)].tolist(), rows[str(columns.response)].tolist(), strict=True
    )
    return [
        f'[{i},[{{"role":"user","content":{quote(p)}}},{{"role":"assistant","content":{quote(r)}}}]]\n'
        for i, p, r in pairs
    ]
