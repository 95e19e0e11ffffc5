"""The Subsets page's parts: the list, what to do with one subset (show, rename, delete with undo,
export), and the ways to make one — a selector, filters on any column, a set operation, the map's
selection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.features.proxy import prism_home
from core.measures.selection import baseline_at
from core.select import filters
from core.select.selectors import (
    DEDUPE_THRESHOLD,
    DESCRIPTIONS,
    FILTERS,
    NEEDS_CLUSTERS,
    OPTIONS,
    SELECTORS,
)
from core.workspace.compare import describe_how
from core.workspace.export import (
    FORMATS,
    download_name,
    export_bytes,
    export_columns,
    export_manifest,
    export_subset,
    manifest_path_for,
)
from core.workspace.store import Workspace
from core.workspace.subsets import (
    MAX_NAME,
    SET_OPERATIONS,
    combine_ids,
    combine_subsets,
    delete_subset,
    named_subset,
    rename_subset,
    restore_subset,
    run_selector,
    save_subset,
    stale_reason,
    subset_record,
)
from ui import cache, dataview, state
from ui import format as fmt
from ui.widgets import PAGES, code, error_message, plain

NOTICE = "prism_subset_notice"  # a success message to show once, after the rerun that made it
FORMAT_LABELS = {
    "jsonl": "JSON Lines",
    "csv": "CSV",
    "parquet": "Parquet",
    "hf": "HF dataset (zip)",
}
MIME = {
    "jsonl": "application/jsonl",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "hf": "application/zip",
}
OPERATION_HELP = {
    "union": "Samples in any of the chosen subsets.",
    "intersection": "Samples in every chosen subset.",
    "difference": "Samples of the first subset that are in none of the others.",
    "complement": "Every sample of the workspace that is not in the subset.",
}
OPERATION_SIGN = {"union": " ∪ ", "intersection": " ∩ ", "difference": " − "}


# -- the subsets of a workspace ------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def _positions(skey: tuple[str, float], subsets_mtime: float) -> dict[str, np.ndarray]:
    index = pd.Index(cache._samples(skey)["id"].astype(str))
    out = {}
    for name, entry in Workspace.open(skey[0]).subsets().items():
        if stale_reason(entry):  # its ids name other rows now: it selects nothing
            out[name] = np.zeros(0, dtype=np.int64)
            continue
        rows = index.get_indexer([str(i) for i in entry.get("ids", [])])
        out[name] = rows[rows >= 0].astype(np.int64)
    return out


def positions(ws: Workspace) -> dict[str, np.ndarray]:
    """Subset name → its row positions, in the subset's order (shared; do not modify)."""
    return _positions(cache.samples_version(ws), cache.subsets_version(ws))


def how_text(how: dict[str, Any]) -> str:
    """How a subset was made, in a line: the engine's description, plus filters or clusters."""
    text = describe_how(how)
    if how.get("where"):
        text += f": {how['where']}"
    elif how.get("clusters") and how.get("method") == "clusters":
        text += " " + ", ".join(str(c) for c in how["clusters"][:12])
    return text


def unique_name(base: str, taken: Any) -> str:
    """``base``, or ``base (2)``, ``base (3)``… — the first one not in ``taken``."""
    base = " ".join(base.split())[: MAX_NAME - 5] or "subset"
    name, i = base, 2
    while name in taken:
        name, i = f"{base} ({i})", i + 1
    return name


@st.cache_data(max_entries=8, show_spinner=False)
def _listing(
    fkey: tuple[str, float], skey: tuple[str, float], subsets_mtime: float, baseline: bool
) -> pd.DataFrame:
    ws = Workspace.open(fkey[0])
    rows_of = _positions(skey, subsets_mtime)
    scorer = cache._scorer(fkey)
    n = ws.n_samples
    curve = cache.curve(ws) if baseline else None
    records = []
    for name, entry in ws.subsets().items():
        rows = rows_of.get(name, np.zeros(0, dtype=np.int64))
        g = scorer.g_vendi(np.sort(rows)) if rows.size else float("nan")
        random_mean = baseline_at(curve, int(rows.size))[0] if curve is not None else None
        records.append(
            {
                "Name": name,
                "Samples": int(rows.size),
                "Share": 100 * rows.size / n if n else 0.0,
                "G-Vendi": g,
                "vs random": None if random_mean is None else g - random_mean,
                "Made by": (
                    f"⚠ stale: {stale_reason(entry)}; delete it"
                    if stale_reason(entry)
                    else how_text(entry.get("how") or {})
                ),
                "Created": str(entry.get("created", ""))[:16].replace("T", " "),
            }
        )
    return pd.DataFrame(
        records,
        columns=["Name", "Samples", "Share", "G-Vendi", "vs random", "Made by", "Created"],
    )


def listing(ws: Workspace) -> pd.DataFrame:
    """One row per subset: name, size, share of the set, G-Vendi (and against random), how."""
    # Large workspaces get their random baseline in the background: list without it until then.
    baseline = cache.curve(ws) is not None
    return _listing(
        cache.features_version(ws), cache.samples_version(ws), cache.subsets_version(ws), baseline
    )


def subset_table(ws: Workspace) -> None:
    table = listing(ws)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="subset_table",
        height=min(38 + 35 * max(len(table), 1), 360),
        column_config={
            "Name": st.column_config.TextColumn("Name", width="medium"),
            "Samples": st.column_config.NumberColumn("Samples", format="localized"),
            "Share": st.column_config.ProgressColumn(
                "Share of the set", format="%.1f%%", min_value=0.0, max_value=100.0
            ),
            "G-Vendi": st.column_config.NumberColumn(
                "G-Vendi",
                format="%.1f",
                help="Effective number of distinct gradient directions in the subset.",
            ),
            "vs random": st.column_config.NumberColumn(
                "vs random",
                format="%+.1f",
                help="G-Vendi minus the mean G-Vendi of random subsets of the same size.",
            ),
            "Made by": st.column_config.TextColumn("Made by", width="large"),
        },
    )


def pick_subset(ws: Workspace) -> str | None:
    """The subset to work with (a just-made or renamed one is picked for the user)."""
    names = list(ws.subsets())
    if not names:
        return None
    # The widget's key changes with the list of subsets, so a deleted or renamed subset never
    # lingers in it; the pick itself is kept under its own key and carried over.
    current = f"{state.SUBSET_PICK}_{ws.name}"
    key = f"{current}_{hashlib.sha1(json.dumps(names).encode()).hexdigest()[:10]}"
    upcoming = st.session_state.pop(state.SUBSET_NEXT, None)
    if upcoming in names:
        st.session_state[key] = upcoming
    elif st.session_state.get(key) not in names:
        previous = st.session_state.get(current)
        st.session_state[key] = previous if previous in names else names[0]
    st.session_state[current] = st.selectbox("Work with", names, key=key)
    return st.session_state[current]


# -- show, rename, delete (with undo) ------------------------------------------------------------


def show_on_map(ws: Workspace, name: str) -> None:
    """Make the subset the current selection and open the map."""
    rows = positions(ws).get(name, np.zeros(0, dtype=np.int64))
    state.set_selection(ws, rows, {"method": "subset", "subset": name})
    st.session_state[state.MAP_GENERATION] = st.session_state.get(state.MAP_GENERATION, 0) + 1
    st.switch_page(PAGES["map"])


def actions(ws: Workspace, name: str) -> None:
    row = st.container(horizontal=True)
    if row.button("Show on map", icon=":material/scatter_plot:", key="act_show"):
        show_on_map(ws, name)
    with row.popover("Rename", icon=":material/edit:"):
        with st.form(f"rename_{name}", border=False):
            new = st.text_input("New name", value=name, max_chars=MAX_NAME)
            done = st.form_submit_button("Rename", type="primary")
        if done:
            try:
                text = rename_subset(ws, name, new)
            except PrismError as error:
                error_message(str(error))
            else:
                st.session_state[state.SUBSET_NEXT] = text
                state.flash(f"Renamed to “{plain(text)}”.", icon="✏️")
                st.rerun()
    if row.button("Delete", icon=":material/delete:", key="act_delete"):
        delete_with_undo(ws, name)


def delete_with_undo(ws: Workspace, name: str) -> None:
    """Delete the subset; it can be put back (Undo) for the rest of the session."""
    try:
        record = subset_record(ws, name)
        delete_subset(ws, name)
    except PrismError as error:
        error_message(str(error))
        return
    stack = st.session_state.setdefault(state.UNDO, [])
    stack.append({"workspace": str(ws.path), "name": name, "record": record})
    st.rerun()


def undo_notice(ws: Workspace) -> None:
    """The last subset deleted in this session (in this workspace), with an Undo button."""
    stack = [u for u in st.session_state.get(state.UNDO, []) if u["workspace"] == str(ws.path)]
    if not stack:
        return
    last = stack[-1]
    size = len(last["record"].get("ids", []))
    with st.container(border=True):
        text, undo, dismiss = st.columns([4, 1, 1], vertical_alignment="center")
        more = f" ({len(stack) - 1:,} more deleted this session)" if len(stack) > 1 else ""
        text.markdown(
            f":material/delete: Deleted subset “{plain(last['name'])}” "
            f"({fmt.count(size, 'sample')}){more}."
        )
        if undo.button("Undo", icon=":material/undo:", key="undo_delete", width="stretch"):
            try:
                restore_subset(ws, last["name"], last["record"])
            except PrismError as error:
                error_message(str(error))
                return
            st.session_state[state.UNDO].remove(last)
            st.session_state[state.SUBSET_NEXT] = last["name"]
            state.flash(f"Restored “{plain(last['name'])}”.", icon="↩️")
            st.rerun()
        if dismiss.button("Dismiss", key="undo_dismiss", width="stretch", type="tertiary"):
            st.session_state[state.UNDO] = [
                u for u in st.session_state[state.UNDO] if u["workspace"] != str(ws.path)
            ]
            st.rerun()


# -- making subsets -------------------------------------------------------------------------------


def notice(message: str) -> None:
    """A success message for the next run (the run that saved a subset ends in a rerun)."""
    st.session_state[NOTICE] = message


def show_notice() -> None:
    message = st.session_state.pop(NOTICE, None)
    if message:
        st.success(message, icon=":material/bookmark_added:")


def _saved(ws: Workspace, name: str, rows: np.ndarray) -> None:
    """Say what was saved (size, G-Vendi against random), pick it, and rerun."""
    g = cache.scorer(ws).g_vendi(np.sort(rows))
    baseline = cache.curve(ws)
    against = ""
    if baseline is not None:
        mean, _ = baseline_at(baseline, len(rows))
        against = f" (random subsets of this size: {fmt.score(mean)})"
    notice(
        f"Saved “{plain(name)}”: {fmt.count(len(rows), 'sample')} · G-Vendi {fmt.score(g)}{against}."
    )
    st.session_state[state.SUBSET_NEXT] = name
    st.rerun()


def save_rows_form(ws: Workspace, rows: np.ndarray, how: dict[str, Any], *, key: str) -> None:
    """Name and save ``rows`` as a subset; a refused name is a message under the form."""
    with st.form(key, clear_on_submit=True, border=False):
        name = st.text_input(
            "Subset name", placeholder="e.g. sparse word problems", max_chars=MAX_NAME
        )
        submitted = st.form_submit_button("Save as subset", icon=":material/bookmark_add:")
    if submitted:
        ids = cache.samples(ws)["id"].iloc[rows].astype(str).tolist()
        try:
            stored = save_subset(ws, name, ids, how=how)
        except PrismError as error:
            error_message(str(error))
            return
        st.success(
            f"Saved “{plain(stored)}” ({fmt.count(len(ids), 'sample')}).",
            icon=":material/bookmark:",
        )


def _budget(ws: Workspace, method: str) -> float | int | None:
    n = ws.n_samples
    modes = ["Rows", "Fraction"] + (["All that pass"] if method in FILTERS else [])
    left, right = st.columns([1.2, 1], vertical_alignment="bottom")
    with left:
        mode = (
            st.segmented_control(
                "Budget",
                modes,
                default="All that pass" if method in FILTERS else "Rows",
                key=f"budget_mode_{method in FILTERS}",
                help="How many samples to keep: a number of rows or a fraction of the set. "
                "Filters can also keep everything that passes.",
            )
            or modes[0]
        )
    with right:
        if mode == "Rows":
            return int(
                st.number_input(
                    "Rows",
                    min_value=1,  # no max: a budget above the data is refused with a message
                    value=min(200, max(1, n // 5)),
                    step=10,
                    key="budget_rows",
                )
            )
        if mode == "Fraction":
            return float(
                st.number_input(
                    "Fraction of the set",
                    min_value=0.01,
                    max_value=0.99,
                    value=0.10,
                    step=0.01,
                    format="%.2f",
                    key="budget_fraction",
                )
            )
        st.caption("Keeps every sample that passes the filter.")
        return None


def selector_form(ws: Workspace) -> None:
    """Run a selector (method, budget, seed, options, within/start) and save what it picks."""
    has_clusters = "cluster" in cache.samples(ws).columns
    methods = [m for m in SELECTORS if has_clusters or m not in NEEDS_CLUSTERS]
    subsets = list(ws.subsets())
    method = st.selectbox(
        "Selector",
        methods,
        index=methods.index("vendi_greedy") if "vendi_greedy" in methods else 0,
        format_func=lambda m: f"{m} — {DESCRIPTIONS.get(m, '')}",
        key="selector_method",
        help="random is the baseline; the others aim for diversity in gradient space. Every "
        "selector is deterministic for a seed.",
    )
    if not has_clusters:
        st.caption("cluster_balanced and sparse_clusters appear once the map's clusters are built.")
    k = _budget(ws, method)
    a, b, c = st.columns(3)
    seed = int(a.number_input("Seed", min_value=0, value=0, step=1, key="selector_seed"))
    within = b.selectbox(
        "Choose within",
        ["(whole set)", *subsets],
        key="selector_within",
        help="Only samples of this subset can be picked.",
    )
    start = c.selectbox(
        "Start from",
        ["(nothing)", *subsets],
        key="selector_start",
        help="Samples of this subset are kept first and count towards the budget.",
    )
    options: dict[str, Any] = {}
    for option, kind in OPTIONS.get(method, {}).items():
        if option == "rescore":
            options[option] = int(
                st.number_input(
                    "Re-score candidates (rescore)",
                    min_value=0,
                    max_value=500,
                    value=0,
                    step=4,
                    key="selector_rescore",
                    help="Re-rank this many best candidates of each greedy step by their exact "
                    "G-Vendi: higher G-Vendi, slower. 0 uses the closed-form order-2 gain only.",
                )
            )
        elif option == "threshold":
            options[option] = float(
                st.number_input(
                    "Duplicate when cosine ≥ (threshold)",
                    min_value=0.5,
                    max_value=1.0,
                    value=DEDUPE_THRESHOLD,
                    step=0.01,
                    format="%.2f",
                    key="selector_threshold",
                )
            )
        else:
            options[option] = kind(st.text_input(option, key=f"selector_{option}"))
    budget_word = (
        "all"
        if k is None
        else f"{k:,}"
        if isinstance(k, int)
        else f"{fmt.percent(float(k), digits=0)}"
    )
    auto = unique_name(f"{method} {budget_word}" + (f" seed {seed}" if seed else ""), subsets)
    name = st.text_input("Name", placeholder=auto, max_chars=MAX_NAME, key="selector_name")
    if st.button("Run selector", type="primary", icon=":material/play_arrow:", key="run_selector"):
        with st.spinner(
            f"Running {method} on {fmt.count(ws.n_samples, 'sample')}…", show_time=True
        ):
            try:
                stored, rows = run_selector(
                    ws,
                    method,
                    name=name.strip() or auto,
                    k=k,
                    seed=seed,
                    within=None if within == "(whole set)" else within,
                    start=None if start == "(nothing)" else start,
                    options=options,
                )
            except PrismError as error:
                error_message(str(error))
                return
        if stored != " ".join((name.strip() or auto).split()):  # the same run was stored before
            notice(f"Same as stored subset “{plain(stored)}” (same selector, settings and rows).")
            st.session_state[state.SUBSET_NEXT] = stored
            st.rerun()
        _saved(ws, stored, rows)


@st.cache_resource(max_entries=4, show_spinner=False)
def _column_kinds(skey: tuple[str, float]) -> dict[str, str]:
    return filters.column_kinds(cache._samples(skey))


def _value_label(frame: pd.DataFrame, column: str, ws: Workspace) -> Any:
    if column == "cluster":
        info = ws.manifest.get("clusters", {})
        sizes, sparse = info.get("sizes", []), set(info.get("sparse", []))

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
        if integer:
            picked = st.slider(column, int(low), int(high), (int(low), int(high)), key=key)
        else:
            step = float(f"{(high - low) / 200:.2g}") or None
            picked = st.slider(column, low, high, (low, high), step=step, key=key)
        if float(picked[0]) <= low and float(picked[1]) >= high:
            return None  # the whole range: no filter (rows without a value stay in too)
        return filters.Condition(column, "range", low=float(picked[0]), high=float(picked[1]))
    if kind == "values":
        options = sorted(frame[column].dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        picked = st.multiselect(
            column,
            options,
            key=key,
            format_func=_value_label(frame, column, ws),
            placeholder="Choose values (none chosen: no filter)",
        )
        return filters.Condition(column, "values", values=tuple(_plain(v) for v in picked))
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
        _name_and_save(
            ws, rows, how, key="filter_save", placeholder=unique_name(where, ws.subsets())
        )


def _name_and_save(
    ws: Workspace, rows: np.ndarray, how: dict[str, Any], *, key: str, placeholder: str
) -> None:
    with st.form(key, clear_on_submit=True, border=False):
        name = st.text_input("Subset name", placeholder=placeholder[:MAX_NAME], max_chars=MAX_NAME)
        submitted = st.form_submit_button(
            "Save as subset", icon=":material/bookmark_add:", type="primary"
        )
    if submitted:
        ids = cache.samples(ws)["id"].iloc[rows].astype(str).tolist()
        try:
            stored = save_subset(ws, name.strip() or placeholder[:MAX_NAME], ids, how=how)
        except PrismError as error:
            error_message(str(error))
            return
        _saved(ws, stored, rows)


def combine_form(ws: Workspace) -> None:
    """Union, intersection, difference or complement of saved subsets, previewed before saving."""
    subsets = ws.subsets()
    names = list(subsets)
    if not names:
        st.info("Set operations work on saved subsets; make one first.", icon=":material/info:")
        return
    operation = (
        st.segmented_control(
            "Operation",
            SET_OPERATIONS,
            default="union",
            key="combine_operation",
            format_func=str.capitalize,
        )
        or "union"
    )
    st.caption(OPERATION_HELP[operation])
    if operation == "complement":
        chosen = [st.selectbox("Everything not in", names, key="combine_one")]
    elif operation == "difference":
        first = st.selectbox("Start from", names, key="combine_first")
        rest = st.multiselect(
            "Take away the samples of", [n for n in names if n != first], key="combine_rest"
        )
        chosen = [first, *rest]
    else:
        chosen = st.multiselect(
            "Subsets", names, default=names[: min(2, len(names))], key=f"combine_{operation}"
        )
    members = [[str(i) for i in subsets[n].get("ids", [])] for n in chosen]
    all_ids = None
    if operation == "complement":
        all_ids = cache.samples(ws)["id"].astype(str).tolist()
    try:
        ids = combine_ids(operation, members, all_ids=all_ids)
    except PrismError as error:
        st.caption(plain(str(error)))
        return
    st.markdown(f"Result: **{fmt.count(len(ids), 'sample')}**")
    if operation == "complement":
        auto = f"not {chosen[0]}"
    else:
        auto = OPERATION_SIGN[operation].join(chosen)
    auto = unique_name(auto, subsets)
    with st.form("combine_save", clear_on_submit=True, border=False):
        name = st.text_input("Subset name", placeholder=auto, max_chars=MAX_NAME)
        submitted = st.form_submit_button(
            f"Save the {operation}", icon=":material/join:", type="primary", disabled=not ids
        )
    if submitted:
        try:
            stored = combine_subsets(ws, operation, chosen, name=name.strip() or auto)
        except PrismError as error:
            error_message(str(error))
            return
        _saved(ws, stored, positions_of(ws, stored))


def positions_of(ws: Workspace, name: str) -> np.ndarray:
    """Rows of a subset just written (read afresh: the cache keys on the file's mtime)."""
    return positions(ws).get(name, np.zeros(0, dtype=np.int64))


def selection_form(ws: Workspace) -> None:
    """Save the current map selection (a lasso, a box, picked clusters) as a subset."""
    rows = state.selection_rows(ws, ws.n_samples)
    if rows is None:
        st.info(
            "Nothing is selected on the map. Draw a lasso or a box there, or click clusters in "
            "its cluster table; then save the selection here or under the map.",
            icon=":material/gesture_select:",
        )
        st.page_link(PAGES["map"], label="Open the map", icon=":material/scatter_plot:")
        return
    how = state.selection_how(ws)
    st.markdown(
        f"**{fmt.count(int(rows.size), 'sample')}** selected on the map "
        f"(by {plain(how_text(how))}) · G-Vendi {fmt.score(cache.scorer(ws).g_vendi(rows))}"
    )
    method = str(how.get("method", "selection"))
    _name_and_save(
        ws, rows, how, key="selection_save", placeholder=unique_name(method, ws.subsets())
    )


# -- export -------------------------------------------------------------------------------------


def _stem(name: str) -> str:
    return download_name(name, "hf").removesuffix(".zip")


# The two below run when a download button is clicked, on a thread of their own (no script run,
# so no streamlit caches): they read the subset afresh.


def export_file(path: str, name: str, fmt_name: str, derived: bool) -> bytes:
    """The export of subset ``name`` as bytes: the file itself, or a zip for ``hf``."""
    ws = Workspace.open(path)
    rows, how = named_subset(ws, name)
    data, _ = export_bytes(ws, rows, fmt=fmt_name, derived=derived, subset=name, how=how)
    return data


def manifest_file(path: str, name: str, fmt_name: str, derived: bool) -> bytes:
    """The manifest an export of subset ``name`` carries, as JSON bytes."""
    ws = Workspace.open(path)
    rows, how = named_subset(ws, name)
    manifest = export_manifest(ws, rows, fmt=fmt_name, derived=derived, subset=name, how=how)
    return json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")


def exports_folder() -> Path:
    return prism_home() / "exports"


def check_target(text: str) -> Path:
    """Where a write may go: an absolute path under the exports folder or a data root."""
    if not text.strip():
        raise PrismError("Type the path of the file to write.")
    target = Path(text.strip()).expanduser()
    if not target.is_absolute():
        raise PrismError(f"{text.strip()} is not an absolute path; start it with / (or ~).")
    inside = list(dict.fromkeys([exports_folder().resolve(), *dataview.data_roots()]))
    if not dataview.within(target, inside):
        raise PrismError(
            f"{target} is outside the folders this app may write to. " + dataview.roots_note(inside)
        )
    if dataview.resolved(target).parent == exports_folder().resolve():
        exports_folder().mkdir(parents=True, exist_ok=True)
    return target


WRITTEN = "prism_export_written"  # the message of the last write, shown once after a rerun


def _write(
    ws: Workspace, name: str, target: Path, fmt_name: str, derived: bool, force: bool
) -> None:
    result = export_subset(ws, name, fmt=fmt_name, out=target, derived=derived, force=force)
    st.session_state[WRITTEN] = (
        f"Wrote {fmt.count(result.n_rows, 'row')} to {code(result.path)} "
        f"({FORMAT_LABELS[fmt_name]}); manifest {code(result.manifest_path)}."
    )
    st.rerun()


def export_panel(ws: Workspace, name: str) -> None:
    """Download buttons (built on click) and a write to a path, for one subset."""
    rows = positions(ws).get(name, np.zeros(0, dtype=np.int64))
    fmt_name = (
        st.segmented_control(
            "Format",
            FORMATS,
            default="jsonl",
            format_func=FORMAT_LABELS.get,
            key="export_format",
        )
        or "jsonl"
    )
    derived = st.checkbox(
        "Include Prism's columns",
        key="export_derived",
        help="Adds cluster, umap_x/umap_y, loss, gradient norm and token counts (and Prism's "
        "id as prism_id) to the original columns.",
    )
    columns, names = export_columns(ws, derived=derived)
    shown = [names[c] for c in columns]
    st.caption(
        f"{fmt.count(int(rows.size), 'row')} in the original order · columns: "
        + ", ".join(code(c) for c in shown[:14])
        + (f" and {len(shown) - 14:,} more" if len(shown) > 14 else "")
        + " · the manifest records where the rows came from and how the subset was made, so "
        "`prism select --from-manifest` can rebuild it."
    )
    path = str(ws.path)
    download, manifest = st.columns(2)
    download.download_button(
        f"Download {FORMAT_LABELS[fmt_name]}",
        data=lambda: export_file(path, name, fmt_name, derived),
        file_name=download_name(name, fmt_name),
        mime=MIME[fmt_name],
        on_click="ignore",
        type="primary",
        icon=":material/download:",
        width="stretch",
        key="export_download",
    )
    manifest.download_button(
        "Download manifest (JSON)",
        data=lambda: manifest_file(path, name, fmt_name, derived),
        file_name=f"{download_name(name, fmt_name)}.manifest.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/description:",
        width="stretch",
        key="export_manifest",
    )
    write_form(ws, name, fmt_name, derived)


def write_form(ws: Workspace, name: str, fmt_name: str, derived: bool) -> None:
    allowed, note = dataview.server_paths_allowed()
    default = exports_folder() / (
        _stem(name) if fmt_name == "hf" else download_name(name, fmt_name)
    )
    with st.expander("Write to a path on the server", icon=":material/save:"):
        with st.form(f"export_write_{fmt_name}", border=False):
            text = st.text_input(
                "File to write" if fmt_name != "hf" else "Folder to write",
                value=str(default),
                disabled=not allowed,
                help="The manifest goes beside it (<file>.manifest.json). An existing file is "
                "replaced only after you confirm.",
            )
            write = st.form_submit_button("Write", icon=":material/save:")
        if not allowed:
            st.caption(note)
        written = st.session_state.pop(WRITTEN, None)
        if written:
            st.success(written, icon=":material/task_alt:")
        confirm_key = (str(ws.path), name, fmt_name, derived)
        if write:
            st.session_state.pop(state.EXPORT_CONFIRM, None)
            try:
                target = check_target(text)
                if target.exists() or manifest_path_for(target).exists():
                    st.session_state[state.EXPORT_CONFIRM] = {
                        "key": confirm_key,
                        "target": str(target),
                    }
                else:
                    _write(ws, name, target, fmt_name, derived, force=False)
            except PrismError as error:
                error_message(str(error))
        pending = st.session_state.get(state.EXPORT_CONFIRM)
        if pending and tuple(pending["key"]) == confirm_key:
            target = Path(pending["target"])
            st.warning(
                f"{code(target)} (or its manifest) already exists. Replace it?",
                icon=":material/warning:",
            )
            yes, no, _ = st.columns([1, 1, 3])
            if yes.button("Replace", type="primary", key="export_replace"):
                st.session_state.pop(state.EXPORT_CONFIRM, None)
                try:
                    _write(ws, name, target, fmt_name, derived, force=True)
                except PrismError as error:
                    error_message(str(error))
            if no.button("Cancel", key="export_cancel"):
                st.session_state.pop(state.EXPORT_CONFIRM, None)
                st.rerun()
