"""A table of records, one record in full, and its subsets: add it to one or take it out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.subsets import edit_subset
from core.workspace import Workspace
from ui import cache, state
from ui import format as fmt
from ui.widgets import error_message, plain, record_view

MAX_RECORDS = 500  # rows listed in a record table


def records(
    ws: Workspace, frame: pd.DataFrame, rows: np.ndarray, *, title: str = "Selected records"
) -> None:
    """The first MAX_RECORDS of ``rows``; a click on one shows it in full, with its subsets."""
    shown = rows[:MAX_RECORDS]
    previews = cache.previews(ws)
    table = pd.DataFrame(
        {
            "id": frame["id"].iloc[shown].astype(str).to_numpy(),
            "prompt": [previews[r] for r in shown],
        }
    )
    if "cluster" in frame.columns:
        table["cluster"] = frame["cluster"].iloc[shown].to_numpy()
    if "loss" in frame.columns:
        table["loss"] = frame["loss"].iloc[shown].to_numpy()
    more = f" (the first {MAX_RECORDS:,})" if len(rows) > MAX_RECORDS else ""
    st.markdown(f"**{title}**{more} — click one to read it in full")
    signature = f"{len(rows)}-{int(rows[0])}-{int(rows[-1])}"
    event = st.dataframe(
        table,
        key=f"{state.RECORD_TABLE}_{signature}",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        height=250,
        width="stretch",
        column_config={
            "prompt": st.column_config.TextColumn("Prompt", width="large"),
            "loss": st.column_config.NumberColumn("Loss", format="%.3f"),
            "cluster": st.column_config.NumberColumn("Cluster", format="%d"),
        },
    )
    picked = ((event or {}).get("selection") or {}).get("rows") or []
    if picked:
        row = int(shown[picked[0]])
        record_view(ws, row)
        membership(ws, frame, row)


def membership(ws: Workspace, frame: pd.DataFrame, row: int) -> None:
    """Which subsets hold this record, and buttons to add it to one or take it out of one."""
    subsets = ws.subsets()
    record_id = str(frame["id"].iloc[row])
    holding = [name for name, entry in subsets.items() if record_id in set(entry.get("ids", []))]
    if not subsets:
        st.caption("Save a subset first; then records can be added to it or taken out of it here.")
        return
    listed = ", ".join(f"“{plain(n)}”" for n in holding) if holding else "no subset yet"
    st.markdown(f":material/bookmarks: In {listed}")
    name = st.selectbox("Subset for this record", list(subsets), key=f"member_pick_{row}")
    buttons = st.container(horizontal=True)
    inside = name in holding
    last = inside and len(subsets[name].get("ids", [])) == 1
    if buttons.button(
        "Add to it",
        key=f"member_add_{row}",
        icon=":material/add:",
        disabled=inside,
        help="Add this record to the subset." if not inside else "It is in this subset already.",
    ):
        _edit(ws, name, add=[record_id])
    if buttons.button(
        "Take it out",
        key=f"member_remove_{row}",
        icon=":material/remove:",
        disabled=not inside or last,
        help=(
            "It is the subset's only record: delete the subset instead."
            if last
            else "Remove this record from the subset."
            if inside
            else "It is not in this subset."
        ),
    ):
        _edit(ws, name, remove=[record_id])


def _edit(ws: Workspace, name: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
    try:
        size = edit_subset(ws, name, add=add, remove=remove)
    except PrismError as error:
        error_message(str(error))
        return
    verb = "Added to" if add else "Took out of"
    state.flash(f"{verb} “{plain(name)}”: now {fmt.count(size, 'sample')}.", icon="✏️")
    st.rerun()
