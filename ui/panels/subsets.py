"""Saved subsets: their rows, the list (size, G-Vendi against random, how each was made), the
one to work with, what to do with it (show on the map, rename, delete with undo), and the forms
that save rows as a new subset (a map selection, filter matches)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.measures.curves import baseline_at
from core.workspace.compare import describe_how
from core.workspace.records import SubsetRecord
from core.workspace.store import Workspace
from core.workspace.subsets import (
    MAX_NAME,
    delete_subset,
    rebuilt_note,
    rename_subset,
    restore_subset,
    rows_of_all,
    save_subset,
    stale_reason,
    subset_record,
)
from ui import cache, state
from ui import format as fmt
from ui.widgets import PAGES, error_message, plain

NOTICE = "prism_subset_notice"  # a success message to show once, after the rerun that made it


# -- the subsets of a workspace ------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def _positions(skey: tuple[str, float], subsets_mtime: float) -> dict[str, np.ndarray]:
    # A stale subset selects nothing; ids no longer in the workspace are left out.
    return rows_of_all(Workspace.open(skey[0]))


def positions(ws: Workspace) -> dict[str, np.ndarray]:
    """Subset name → its row positions, in the subset's order (shared; do not modify)."""
    return _positions(cache.samples_version(ws), cache.subsets_version(ws))


def positions_of(ws: Workspace, name: str) -> np.ndarray:
    """Rows of a subset just written (read afresh: the cache keys on the file's mtime)."""
    return positions(ws).get(name, np.zeros(0, dtype=np.int64))


def how_text(how: Mapping[str, Any]) -> str:
    """How a subset was made, in a line: the engine's description, plus filters or clusters."""
    text = describe_how(how)
    if how.get("where"):
        text += f": {how['where']}"
    elif how.get("clusters") and how.get("method") == "clusters":
        text += " " + ", ".join(str(c) for c in how["clusters"][:12])
    return text


def made_by(entry: SubsetRecord) -> str:
    """How a saved subset was made (``how_text``), and where it was rebuilt from, if it was."""
    text = how_text(entry.how)
    rebuilt = rebuilt_note(entry)
    return f"{text}; {rebuilt}" if rebuilt else text


def recipe(ws: Workspace, name: str) -> None:
    """How the subset was made, in full under its name (the list's column is cut to its width),
    where it was rebuilt from included."""
    entry = ws.subsets().get(name) or SubsetRecord()
    reason = stale_reason(entry)
    st.caption(plain(f"Stale: {reason}; delete it." if reason else f"Made by {made_by(entry)}."))


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
    scorer = cache.scorer_at(fkey)
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
                    else made_by(entry)
                ),
                "Created": str(entry.created or "")[:16].replace("T", " "),
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
    size = last["record"].size
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


def subsets_list(ws: Workspace, frame: pd.DataFrame) -> None:
    subsets = ws.subsets()
    st.markdown("#### Saved subsets")
    undo_notice(ws)
    if not subsets:
        st.caption("None yet. Select samples on the map and use **Save as subset**.")
        st.page_link(
            PAGES["subsets"], label="Or make one with a selector", icon=":material/bookmarks:"
        )
        return
    listing = pd.DataFrame(
        [
            {
                "Name": name,
                "Samples": entry.size,
                "Made by": made_by(entry),
                "Created": str(entry.created or "")[:16].replace("T", " "),
            }
            for name, entry in subsets.items()
        ]
    )
    st.dataframe(listing, hide_index=True, width="stretch", key="subset_listing")
    name = st.selectbox("Subset", list(subsets), key="subset_choice")
    show, drop = st.columns(2)
    if show.button("Show on map", icon=":material/visibility:", width="stretch"):
        state.set_selection(ws, positions_of(ws, name), {"method": "subset", "subset": name})
        state.reset_table(state.CLUSTER_TABLE)
        st.rerun()
    if drop.button("Delete", icon=":material/delete:", width="stretch"):
        delete_with_undo(ws, name)
    st.page_link(
        PAGES["subsets"], label="Export, combine and compare subsets", icon=":material/bookmarks:"
    )


# -- saving rows as a subset ----------------------------------------------------------------------


def notice(message: str) -> None:
    """A success message for the next run (the run that saved a subset ends in a rerun)."""
    st.session_state[NOTICE] = message


def show_notice() -> None:
    message = st.session_state.pop(NOTICE, None)
    if message:
        st.success(message, icon=":material/bookmark_added:")


def saved(ws: Workspace, name: str, rows: np.ndarray) -> None:
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


def name_and_save(
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
        saved(ws, stored, rows)


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
    name_and_save(
        ws, rows, how, key="selection_save", placeholder=unique_name(method, ws.subsets())
    )


def saved_subset(ws: Workspace) -> str | None:
    """The Subsets page's list and the subset picked from it (None, with a note, when none)."""
    name = pick_subset(ws)
    if name is None:
        st.caption(
            f"None yet in **{plain(ws.name)}** "
            f"({fmt.count(ws.n_samples, 'sample')}). Make one above, or save a lasso on the map."
        )
        return None
    subset_table(ws)
    return name
