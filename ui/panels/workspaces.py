"""The workspaces the app knows: a card per workspace (source, rows, status, G-Vendi, Open), a
filter and pages for long lists, and a folder typed by the user."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.workspace.tables import DAMAGED, workspace_summaries
from ui import format as fmt
from ui import state
from ui.paths import resolved
from ui.widgets import PAGES, code, error_message, plain

PAGE_SIZE = 8  # workspaces per page of the list


def workspace_card(row: pd.Series) -> None:
    """One workspace: its name, source and folder, its state, and an Open button."""
    damaged = row["status"] == DAMAGED
    with st.container(border=True):
        name, facts, action = st.columns([2.2, 3, 1], vertical_alignment="center")
        source = "" if damaged else f"{code(row.get('source', ''))}  \n"
        name.markdown(f"**{plain(row['name'])}**  \n{source}")
        name.caption(plain(row["path"]))
        if damaged:
            facts.error(plain(row["problems"]), icon=":material/report:")
        else:
            g = row.get("g_vendi")
            g_text = f" · G-Vendi {fmt.score(float(g))}" if g == g and g is not None else ""
            rows = row.get("rows")
            rows_text = fmt.count(int(rows), "row") if rows == rows and rows is not None else ""
            updated = str(row.get("updated", ""))[:16].replace("T", " ")
            facts.markdown(f"{rows_text} · {row.get('status', '')}{g_text}  \n{updated}")
        is_current = row["path"] == state.workspace_path()
        if action.button(
            "Opened" if is_current else "Open",
            key=f"open_{row['path']}",
            icon=":material/open_in_new:",
            type="secondary" if is_current or damaged else "primary",
            width="stretch",
            disabled=damaged,
            help="Damaged: see the message beside it for how to rebuild it." if damaged else None,
        ):
            state.set_workspace(row["path"])
            ready = row.get("status") in ("ready", "features only")
            st.switch_page(PAGES["map" if ready else "features"])


def one_page(summaries: pd.DataFrame) -> pd.DataFrame:
    """The part of a long list shown now, with a filter and a page number; says what it shows."""
    total = len(summaries)
    if total <= PAGE_SIZE:
        return summaries
    find, number = st.columns([3, 1], vertical_alignment="bottom")
    needle = (
        find.text_input(
            "Find a workspace",
            key="ws_find",
            placeholder="part of its name, source or folder",
        )
        .strip()
        .lower()
    )
    if needle:
        source = summaries.get("source", pd.Series("", index=summaries.index))
        haystack = (
            summaries["name"].astype(str)
            + " "
            + source.fillna("").astype(str)
            + " "
            + summaries["path"].astype(str)
        ).str.lower()
        summaries = summaries[haystack.str.contains(needle, regex=False)]
    pages = max(1, math.ceil(len(summaries) / PAGE_SIZE))
    page = int(number.number_input("Page", 1, pages, key="ws_page")) if pages > 1 else 1
    page = min(page, pages)
    first = (page - 1) * PAGE_SIZE
    shown = summaries.iloc[first : first + PAGE_SIZE]
    matching = f" matching “{plain(needle)}”" if needle else ""
    if shown.empty:
        st.caption(f"No workspace{matching} among {total:,}.")
    else:
        st.caption(
            f"Showing {first + 1:,}–{first + len(shown):,} of {len(summaries):,}{matching}"
            + (f" ({total:,} in all)." if needle else ".")
        )
    return shown


def resolved_note(text: str) -> str:
    """Which folder a typed path names on the server, said before it is opened."""
    typed = Path(text.strip()).expanduser()
    try:
        folder = resolved(typed)
    except PrismError as error:
        return plain(str(error))
    if typed.is_absolute():
        return f"Opens {code(str(folder))}."
    return (
        f"Opens {code(str(folder))}: a relative path starts from the folder the app was "
        f"started in, {code(str(Path.cwd()))}."
    )


def open_folder() -> None:
    """A workspace folder typed by the user (built with `prism features … --workspace FOLDER`)."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        text = st.text_input(
            "Open a workspace folder",
            key="open_folder",
            placeholder="ws/my_dataset",
            help="A folder written by `prism features DATA --workspace FOLDER`; a relative path "
            "starts from the folder the app was started in.",
        )
        clicked = st.button("Open folder", key="open_folder_button", icon=":material/folder_open:")
    if text.strip():
        st.caption(resolved_note(text))
    if not (clicked and text.strip()):
        return
    try:
        path = state.open_workspace_folder(text)
    except PrismError as error:
        error_message(str(error))
        return
    state.set_workspace(path)
    summary = workspace_summaries([path]).iloc[0]
    ready = summary.get("status") in ("ready", "features only")
    st.switch_page(PAGES["map" if ready else "features"])


def workspace_list() -> None:
    """Every workspace the app knows (``ui.state.known_workspaces``), a page at a time."""
    summaries = workspace_summaries(state.known_workspaces())
    if summaries.empty:
        st.caption("None yet: the first one is made when you compute features below.")
    else:
        st.caption(
            f"{fmt.count(len(summaries), 'workspace')}: those made by `prism` on this machine "
            f"(wherever they are), those under $PRISM_HOME/workspaces and "
            f"./{state.PROJECT_FOLDER}, and the folders opened here before."
        )
    for _, row in one_page(summaries).iterrows():
        workspace_card(row)
    open_folder()
