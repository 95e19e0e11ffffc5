"""A table of records, one record in full, and its subsets: add it to one or take it out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.workspace.export import export_columns
from core.workspace.store import Workspace
from core.workspace.subsets import edit_subset
from ui import cache, state
from ui import format as fmt
from ui.widgets import code, error_message, plain

MAX_RECORDS = 500  # rows listed in a record table
RECORD_HEIGHT = 460  # px: a long sample scrolls inside a box of this height, not the whole page
LONG_CHARS = 1_500  # a sample longer than this (or of more lines than LONG_LINES) gets that box
LONG_LINES = 24
PREVIEW_CHARS = 60  # of the prompt in a record table: the row stays one line in a narrow column


def records(
    ws: Workspace,
    frame: pd.DataFrame,
    rows: np.ndarray,
    *,
    title: str = "Selected records",
    in_dialog: bool = False,
) -> None:
    """The first MAX_RECORDS of ``rows``; a click on one shows it in full, with its subsets:
    below the table, or (``in_dialog``, for a narrow column) in a dialog over the page."""
    shown = rows[:MAX_RECORDS]
    # id, cluster and loss first: a narrow column still shows them, and the prompt is cut.
    table = pd.DataFrame({"id": frame["id"].iloc[shown].astype(str).to_numpy()})
    if "cluster" in frame.columns:
        table["cluster"] = frame["cluster"].iloc[shown].to_numpy()
    if "loss" in frame.columns:
        table["loss"] = frame["loss"].iloc[shown].to_numpy()
    previews = cache.previews(ws)
    table["prompt"] = [fmt.shorten(previews[r], PREVIEW_CHARS) for r in shown]
    more = f" (the first {MAX_RECORDS:,})" if len(rows) > MAX_RECORDS else ""
    st.markdown(f"**{title}**{more} — click one to read it in full")
    # A dismissed dialog clears the pick (a new key), so a rerun does not open it again.
    dismissed = st.session_state.get(state.RECORD_DISMISSED, 0)
    signature = f"{len(rows)}-{int(rows[0])}-{int(rows[-1])}-{dismissed}"
    event = st.dataframe(
        table,
        key=f"{state.RECORD_TABLE}_{signature}",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        height=250,
        width="stretch",
        column_config={
            "id": st.column_config.TextColumn("id", width="small"),
            "cluster": st.column_config.NumberColumn("Cluster", format="%d", width="small"),
            "loss": st.column_config.NumberColumn("Loss", format="%.3f", width="small"),
            "prompt": st.column_config.TextColumn("Prompt", width="large"),
        },
    )
    selected: Mapping[str, Any] = event if isinstance(event, Mapping) else {}
    picked = (selected.get("selection") or {}).get("rows") or []
    if not picked:
        return
    row = int(shown[picked[0]])
    if in_dialog:
        name = str(frame["id"].iloc[row])
        st.dialog(f"Record {name}", width="large", on_dismiss=_dismiss)(_record)(ws, frame, row)
    else:
        _record(ws, frame, row)


def _record(ws: Workspace, frame: pd.DataFrame, row: int) -> None:
    record_view(ws, row)
    membership(ws, frame, row)


def _dismiss() -> None:
    st.session_state[state.RECORD_DISMISSED] = st.session_state.get(state.RECORD_DISMISSED, 0) + 1


def membership(ws: Workspace, frame: pd.DataFrame, row: int) -> None:
    """Which subsets hold this record, and buttons to add it to one or take it out of one."""
    subsets = ws.subsets()
    record_id = str(frame["id"].iloc[row])
    holding = [name for name, entry in subsets.items() if record_id in entry.ids]
    if not subsets:
        st.caption("Save a subset first; then records can be added to it or taken out of it here.")
        return
    listed = ", ".join(f"“{plain(n)}”" for n in holding) if holding else "no subset yet"
    st.markdown(f":material/bookmarks: In {listed}")
    name = st.selectbox("Subset for this record", list(subsets), key=f"member_pick_{row}")
    buttons = st.container(horizontal=True)
    inside = name in holding
    last = inside and subsets[name].size == 1
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


# -- one record in full ---------------------------------------------------------------------------


def record_view(ws: Workspace, row: int) -> None:
    """One sample in full: its id and scores, what the model read, and every other column."""
    frame = cache.samples(ws)
    values = frame.iloc[row]
    facts = [f"id **{plain(str(values['id']))}**"]
    if "cluster" in frame.columns:
        facts.append(f"cluster {int(values['cluster'])}")
    if "loss" in frame.columns:
        facts.append(f"loss {float(values['loss']):.3f}")
    if "n_tokens" in frame.columns:
        facts.append(fmt.count(int(values["n_tokens"]), "token"))
    with st.container(border=True):
        st.markdown(" · ".join(facts))
        cut = truncation_note(values, kind=cache.column_map(ws).kind)
        if cut:
            st.warning(cut, icon=":material/content_cut:")
        parts = sample_parts(ws, row)
        text_size = sum(len(text) for _, text in parts)
        n_lines = sum(text.count("\n") + 1 for _, text in parts)
        long = text_size > LONG_CHARS or n_lines > LONG_LINES
        with st.container(height=RECORD_HEIGHT) if long else st.container():
            for label, text in parts:
                st.markdown(label)
                st.markdown(plain(text))
        others = other_columns(ws, values, row)
        if not others.empty:
            st.dataframe(
                others,
                hide_index=True,
                width="stretch",
                height=min(38 + 35 * len(others), 320),
                column_config={
                    "column": st.column_config.TextColumn("Column"),
                    "value": st.column_config.TextColumn("Value", width="large"),
                },
            )


def sample_parts(ws: Workspace, row: int) -> list[tuple[str, str]]:
    """(heading as Markdown, text) per part of what the model read, named after its column."""
    columns = cache.column_map(ws)
    sample = cache.record(ws, row)
    if isinstance(sample, str):
        return [(f"**{plain(str(columns.text))}**", sample)]
    if columns.kind == "prompt_response":
        names = {"user": ("Prompt", columns.prompt), "assistant": ("Response", columns.response)}
        return [
            (f"**{names[m['role']][0]}** · {code(str(names[m['role']][1]))}", m["content"])
            for m in sample
        ]
    return [
        (f"**{plain(m['role'].title())}** · {code(str(columns.messages))}", m["content"])
        for m in sample
    ]


def truncation_note(values: pd.Series, *, kind: str) -> str | None:
    """Where the model stopped reading a sample cut by --max-length; None when it read it all."""
    if not bool(values.get("truncated", False)) or "n_tokens" not in values.index:
        return None
    n_tokens = int(values["n_tokens"])
    if kind == "text" or "n_response_tokens" not in values.index:
        return f"The model read the first {n_tokens:,} tokens; the rest was cut by `--max-length`."
    n_response = int(values["n_response_tokens"])
    n_prompt = n_tokens - n_response
    if (
        n_prompt > 1
    ):  # the response fitted: the prompt lost its start (core.features.tokenize.encode)
        return (
            f"The model read {n_tokens:,} tokens: the whole response and the last "
            f"{n_prompt:,} tokens of the prompt (with the chat template); the start of the "
            "prompt was cut by `--max-length`."
        )
    return (
        f"The model read the first {n_response:,} tokens of the response and no prompt; the "
        "rest was cut by `--max-length`."
    )


def _cell(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def other_columns(ws: Workspace, values: pd.Series, row: int) -> pd.DataFrame:
    """The sample's columns besides the text the model read (label, model, category…; a
    synthetic row's provenance).

    Names are the dataset's own (a column renamed on the way in is shown as it was called).
    """
    stored, names = export_columns(ws, derived=False, rows=np.array([row]))
    shown = set(cache.column_map(ws).content_columns) | {"id"}
    kept = [c for c in stored if c not in shown and c in values.index]
    return pd.DataFrame(
        {"column": [names.get(c, c) for c in kept], "value": [_cell(values[c]) for c in kept]}
    )
