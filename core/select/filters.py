"""Row filters on any column of the samples table: ranges, values, text.

- ``column_kinds``: which kind of filter fits each column ("range" for numbers, "values" for
  booleans, clusters and columns with few distinct values, "text" for the rest of the strings);
  columns of lists or dicts (chats) are filtered as their text.
- ``Condition``: one filter, validated on construction; ``matches`` gives its boolean mask.
- ``filter_mask`` / ``describe``: all conditions together (AND), and the same in words for the
  subset's ``how`` record.

Pure functions on DataFrames; errors name the column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import PrismError

KINDS = ("range", "values", "text")
TEXT_MODES = ("contains", "regex")
MAX_VALUES = 50  # a column with at most this many distinct values is filtered by its values
_VALUE_COLUMNS = {"cluster", "truncated"}  # Prism's columns that are categories, not measures
_HIDDEN = {"id"}  # filtered as text: never as a range or a category


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _distinct(series: pd.Series) -> int | None:
    try:
        return int(series.nunique(dropna=True))
    except TypeError:  # lists or dicts in cells
        return None


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Column → the kind of filter that fits it, for every column of ``frame``."""
    kinds: dict[str, str] = {}
    for column in frame.columns:
        series = frame[column]
        name = str(column)
        if name in _HIDDEN:
            kinds[name] = "text"
        elif name in _VALUE_COLUMNS or pd.api.types.is_bool_dtype(series):
            kinds[name] = "values"
        elif _is_number(series):
            kinds[name] = "range"
        else:
            distinct = _distinct(series)
            kinds[name] = "values" if distinct is not None and distinct <= MAX_VALUES else "text"
    return kinds


def as_text(series: pd.Series) -> pd.Series:
    """Cells as strings (a chat: its messages' contents joined), missing as the empty string."""

    def one(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (list, tuple, np.ndarray)):
            return "\n".join(
                str(v.get("content", "")) if isinstance(v, dict) else str(v) for v in value
            )
        if isinstance(value, dict):
            return str(value.get("content", value))
        return str(value)

    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return series.astype("string").fillna("").astype(str)
    return series.map(one).astype(str)


@dataclass(frozen=True)
class Condition:
    """One filter on ``column``: ``low``–``high`` (range, both ends included), one of ``values``,
    or text that ``contains`` ``pattern`` (``mode`` "regex": matches the regular expression)."""

    column: str
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()
    pattern: str = ""
    mode: str = "contains"
    case: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PrismError(
                f"A filter kind must be one of {', '.join(KINDS)}; got {self.kind!r}.", param="kind"
            )
        if self.kind == "range":
            if self.low is None or self.high is None:
                raise PrismError(
                    f"The range of “{self.column}” needs a lowest and a highest value.", param="low"
                )
            if float(self.low) > float(self.high):
                raise PrismError(
                    f"The range of “{self.column}” is empty: its lowest value {self.low:g} is "
                    f"above its highest {self.high:g}.",
                    param="low",
                )
        if self.kind == "text":
            if self.mode not in TEXT_MODES:
                raise PrismError(
                    f"A text filter is “contains” or “regex”; got {self.mode!r} for “{self.column}”.",
                    param="mode",
                )
            if self.mode == "regex":
                try:
                    re.compile(self.pattern)
                except re.error as error:
                    raise PrismError(
                        f"The pattern for “{self.column}” is not a valid regular expression: "
                        f"{error} (in {self.pattern!r}). To match text as typed, choose “contains”.",
                        param="pattern",
                    ) from None

    @property
    def active(self) -> bool:
        """Whether the condition restricts anything (an empty text or value list does not)."""
        if self.kind == "text":
            return bool(self.pattern)
        if self.kind == "values":
            return bool(self.values)
        return True

    def matches(self, frame: pd.DataFrame) -> np.ndarray:
        if self.column not in frame.columns:
            raise PrismError(
                f"There is no column “{self.column}” in this workspace.", param="column"
            )
        series = frame[self.column]
        if self.kind == "range":
            numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
            with np.errstate(invalid="ignore"):
                return (numbers >= float(self.low)) & (numbers <= float(self.high))  # type: ignore[arg-type]
        if self.kind == "values":
            return series.isin(list(self.values)).to_numpy(dtype=bool)
        if not self.active:
            return np.ones(len(frame), dtype=bool)
        text = as_text(series)
        found = text.str.contains(
            self.pattern, case=self.case, regex=self.mode == "regex", na=False
        )
        return found.to_numpy(dtype=bool)

    def describe(self) -> str:
        if self.kind == "range":
            return f"{self.column} {self.low:.4g}–{self.high:.4g}"
        if self.kind == "values":
            shown = ", ".join(str(v) for v in self.values[:8])
            more = f", … ({len(self.values):,} values)" if len(self.values) > 8 else ""
            return f"{self.column} in {{{shown}{more}}}"
        how = "matches" if self.mode == "regex" else "contains"
        case = "" if self.case else " (any case)"
        return f"{self.column} {how} {self.pattern!r}{case}"


def filter_mask(frame: pd.DataFrame, conditions: Sequence[Condition]) -> np.ndarray:
    """Rows that pass every active condition (all rows when there is none)."""
    mask = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        if condition.active:
            mask &= condition.matches(frame)
    return mask


def describe(conditions: Sequence[Condition]) -> str:
    """All conditions in words, joined by “and”."""
    active = [c for c in conditions if c.active]
    return " and ".join(c.describe() for c in active) if active else "every row"
