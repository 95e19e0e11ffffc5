"""The filter form: conditions on any column (ranges of numbers, values of categories, text that
contains a string or matches a regular expression); the matches are scored, shown on the map or
saved as a subset."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.measures.curves import baseline_at
from core.select import filters
from core.workspace.store import Workspace
from ui import cache, state
from ui import format as fmt
from ui.panels.subsets import name_and_save, unique_name
from ui.widgets import PAGES, code, error_message


@st.cache_resource(max_entries=4, show_spinner=False)
def _column_kinds(skey: tuple[str, float]) -> dict[str, str]:
    return filters.column_kinds(cache.samples_at(skey))


def _value_label(frame: pd.DataFrame, column: str, ws: Workspace) -> Any:
    if column == "cluster":
        section = ws.clusters
        sizes, sparse = (section.sizes, set(section.sparse)) if section else ((), set())

        def label(c: Any) -> str:
            size = sizes[int(c)] if int(c) < len(sizes) else 0
            return f"cluster {c} · {size:,}" + (" · sparse" if int(c) in sparse else "")

        return label
    counts = frame[column].value_counts(dropna=True)
    return lambda v: f"{v} · {int(counts.get(v, 0)):,}"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _condition(
    ws: Workspace, frame: pd.DataFrame, column: str, kind: str
) -> filters.Condition | None:
    """The controls of one column's filter; None while they leave every row in."""
    key = f"filter_{ws.name}_{column}"
    if kind == "range":
        numbers = pd.to_numeric(frame[column], errors="coerce")
        low, high = float(numbers.min()), float(numbers.max())
        integer = pd.api.types.is_integer_dtype(frame[column])
        if not np.isfinite(low) or low == high:
            st.caption(f"{code(column)}: every sample has the value {low:g}.")
            return None
        picked: tuple[float, float]
        if integer:
            picked = st.slider(column, int(low), int(high), (int(low), int(high)), key=key)
        else:
            step = float(f"{(high - low) / 200:.2g}") or None
            picked = st.slider(  # type: ignore[call-overload]  # float bounds and step
                column, low, high, (low, high), step=step, key=key
            )
        if float(picked[0]) <= low and float(picked[1]) >= high:
            return None  # the whole range: no filter (rows without a value stay in too)
        return filters.Condition(column, "range", low=float(picked[0]), high=float(picked[1]))
    if kind == "values":
        options = sorted(frame[column].dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        values = st.multiselect(
            column,
            options,
            key=key,
            format_func=_value_label(frame, column, ws),
            placeholder="Choose values (none chosen: no filter)",
        )
        return filters.Condition(column, "values", values=tuple(_plain(v) for v in values))
    left, mid, right = st.columns([1, 3, 1], vertical_alignment="bottom")
    mode = (
        left.segmented_control(
            f"{column}: match", filters.TEXT_MODES, default="contains", key=f"{key}_mode"
        )
        or "contains"
    )
    pattern = mid.text_input(
        f"{column}: text" if mode == "contains" else f"{column}: regular expression",
        key=f"{key}_text",
        placeholder="e.g. percent" if mode == "contains" else r"e.g. \d+%",
    )
    case = right.checkbox("Match case", key=f"{key}_case")
    return filters.Condition(column, "text", pattern=pattern, mode=mode, case=case)


def filter_form(ws: Workspace) -> None:
    """Filters on any column (ranges, values, text); the matches can be shown or saved."""
    frame = cache.samples(ws)
    kinds = _column_kinds(cache.samples_version(ws))
    order = sorted(kinds, key=lambda c: (c not in ("cluster", "loss", "grad_norm"), c == "id"))
    kind_words = {"range": "range", "values": "values", "text": "text"}
    columns = st.multiselect(
        "Filter on columns",
        order,
        key=f"filter_columns_{ws.name}",
        format_func=lambda c: f"{c} ({kind_words[kinds[c]]})",
        placeholder="Choose columns: numbers by range, categories by value, text by contents",
    )
    if not columns:
        st.caption("Every sample passes until a column is chosen. All conditions must hold (and).")
        return
    conditions = []
    with st.container(border=True):
        for column in columns:
            try:
                condition = _condition(ws, frame, column, kinds[column])
            except PrismError as error:
                error_message(str(error))
                return
            if condition is not None:
                conditions.append(condition)
    try:
        mask = filters.filter_mask(frame, conditions)
    except PrismError as error:
        error_message(str(error))
        return
    rows = np.flatnonzero(mask)
    where = filters.describe(conditions)
    a, b, c = st.columns(3)
    a.metric("Matching samples", f"{rows.size:,}", help=f"Samples where {where}.")
    if not rows.size:
        st.warning(
            "No sample passes every filter; loosen one of them.", icon=":material/filter_alt_off:"
        )
        return
    g = cache.scorer(ws).g_vendi(rows)
    b.metric("G-Vendi of the matches", fmt.score(g))
    baseline = cache.curve(ws)
    if baseline is not None:
        c.metric("Random, same size", fmt.score(baseline_at(baseline, int(rows.size))[0]))
    how = {"method": "filter", "where": where}
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    if left.button("Show on map", icon=":material/scatter_plot:", key="filter_show"):
        state.set_selection(ws, rows, how)
        st.session_state[state.MAP_GENERATION] = st.session_state.get(state.MAP_GENERATION, 0) + 1
        st.switch_page(PAGES["map"])
    with right:
        name_and_save(
            ws, rows, how, key="filter_save", placeholder=unique_name(where, ws.subsets())
        )
