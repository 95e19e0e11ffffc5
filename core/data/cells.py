"""What a cell holds: missing or blank values, text of scalars, and typed columns built from cells.

Every reader and check in ``core.data`` looks at cells through these helpers, so that "missing",
"empty" and "text" mean the same thing everywhere: a JSON null, NaN or None is missing; an empty
string, list or array is blank; numbers and booleans read as their text.
``series_from_values`` / ``frame_from_records`` / ``frame_from_arrow`` turn read values into
columns with the narrowest faithful dtype (integers with gaps stay integers, not floats).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


def is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, list, tuple, dict, np.ndarray)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def is_blank(value: Any) -> bool:
    if is_null(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return False


def scalar_text(value: Any) -> str | None:
    """The text of a scalar cell (a number becomes its string), or None if it is not one."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)) and not is_null(value):
        return str(value)
    return None


def type_name(value: Any) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def json_type(value: Any) -> str:
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


def snippet(value: Any, *, max_chars: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:max_chars] + ("…" if len(text) > max_chars else ""))


def row_label(i: int, ids: list[str] | None = None) -> str:
    return f"row {i + 1}" + (f" (id {ids[i]!r})" if ids is not None else "")


def iter_values(series: pd.Series, *, step: int = 65_536) -> Iterator[Any]:
    """The cells of a column as Python values, converted `step` rows at a time.

    Iterating a pandas column converts one cell per call (slow for Arrow-backed strings), and
    `tolist()` of a whole column holds every value at once; this does neither.
    """
    for start in range(0, len(series), step):
        yield from series.iloc[start : start + step].tolist()


def plain_value(value: Any) -> Any:
    """A cell as plain Python (lists, dicts, scalars; missing → None), to compare and to JSON."""
    if isinstance(value, np.ndarray | list | tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    return None if is_null(value) else value


def series_from_values(values: list[Any]) -> pd.Series:
    """A column with the narrowest faithful dtype: ints with gaps stay ints (Int64), not floats."""
    present = [v for v in values if not is_null(v)]
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


def frame_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    keys = dict.fromkeys(k for record in records for k in record)
    return pd.DataFrame(
        {k: series_from_values([r.get(k) for r in records]) for k in keys},
        index=pd.RangeIndex(len(records)),
    )


def frame_from_arrow(table: Any) -> pd.DataFrame:
    # integer_object_nulls: integer columns with nulls would otherwise become floats.
    # maps_as_pydicts: a map cell becomes a dict (pandas' default, a list of pairs, is neither
    # what the file meant nor something Parquet can store again); a map with a repeated key
    # stays a list of pairs, so that no value is lost.
    try:
        frame = table.to_pandas(integer_object_nulls=True, maps_as_pydicts="strict")
    except pa.ArrowException:
        frame = table.to_pandas(integer_object_nulls=True)
    return pd.DataFrame(
        {
            c: series_from_values(list(frame[c])) if frame[c].dtype == object else frame[c]
            for c in frame.columns
        }
    )
