"""Shared pieces of every page: the error guard, the sidebar, empty states, a record viewer."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from core.errors import PrismError
from core.workspace.jobs.record import read_progress
from core.workspace.store import Workspace
from core.workspace.tables import DAMAGED, workspace_summaries
from ui import format as fmt
from ui import state

logger = logging.getLogger("prism.app")

# A fresh Streamlit server runs its first script run in the legacy multipage mode whenever a
# pages/ folder sits beside app.py, so a deep link (/map) would run the page without app.py's
# router. Prism routes with st.navigation only; page_header() reruns such a first run.
PagesManager.uses_pages_directory = False
LOGO = Path(__file__).resolve().parent / "assets" / "prism.svg"
PAGES = {
    "data": "pages/data.py",
    "features": "pages/features.py",
    "map": "pages/map.py",
    "diversity": "pages/diversity.py",
    "subsets": "pages/subsets.py",
    "compare": "pages/compare.py",
    "grow": "pages/grow.py",
}


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn any error into a message: a PrismError as it is, anything else as a friendly note.

    Streamlit's own control flow (st.rerun, st.stop, st.switch_page) passes through: it raises
    BaseException subclasses, which are not caught here.
    """
    try:
        yield
    except PrismError as error:
        error_message(str(error))
    except Exception as error:  # the last line of defence: never a traceback on the page
        logger.exception("unexpected error on a page")
        st.error(
            "Something went wrong while showing this page. Reload the page to try again; if it "
            "keeps happening, the details below help to report it.",
            icon=":material/error:",
        )
        with st.expander("Details"):
            st.code(f"{type(error).__name__}: {error}", language=None, wrap_lines=True)


_ROUTED = "prism_routed"  # set by the router (sidebar) in every run, consumed by page_header


def page_header(title: str, caption: str) -> None:
    if not st.session_state.pop(_ROUTED, False):
        # A page run without app.py's router (see above): route it properly.
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.title(title, anchor=False)
    st.caption(caption)


# Layout polish only; a constant, never data.
_CSS = """
<style>
[data-testid="stMainBlockContainer"] { padding: 2.2rem 3rem 3rem 3rem; max-width: 1560px; }
h1 { letter-spacing: -0.02em; }
[data-testid="stMetricValue"] { font-size: 1.7rem; }
[data-testid="stCaptionContainer"] { color: #5F6577; }
</style>
"""


def sidebar() -> None:
    """Brand, the current workspace and a switcher; shown on every page."""
    st.session_state[_ROUTED] = True
    st.html(_CSS)
    state.show_flash()
    with st.sidebar, guard():
        paths = state.known_workspaces()
        current = state.workspace_path()
        if not paths:
            st.caption("No workspace yet. Start on the **Data** page.")
            return
        summaries = workspace_summaries(paths).set_index("path")

        def label(path: str) -> str:
            row = summaries.loc[path]
            rows = row.get("rows")
            if row["status"] == DAMAGED:
                return f"{row['name']} · damaged"
            return (
                f"{row['name']} · {fmt.count(int(rows), 'row')}"
                if rows == rows and rows
                else str(row["name"])
            )

        index = paths.index(current) if current in paths else 0
        labels = {path: label(path) for path in paths}
        # The browser keeps a keyed selectbox's shown label across reruns: a key that changes
        # with the labels (a join's new row count, a rebuild) draws the box afresh.
        version = hashlib.sha256("\n".join(labels.values()).encode()).hexdigest()[:12]
        choice = st.selectbox(
            "Workspace",
            paths,
            index=index,
            format_func=labels.__getitem__,
            help="The workspaces under $PRISM_HOME/workspaces and ./ws, and those opened on the "
            "Data page (open any other workspace folder there). The pages show the one chosen "
            "here.",
            key=f"sidebar_ws_{current}_{version}",
        )
        if choice != current:
            state.set_workspace(choice)
            st.rerun()
        row = summaries.loc[choice]
        status = row.get("status", "")
        if status == DAMAGED:
            st.caption(f"status: {status} (see the page for what to do)")
            return
        g = row.get("g_vendi")
        details = [f"source {code(str(row.get('source', '')))}", f"status: {status}"]
        if g == g and g is not None:
            details.append(f"G-Vendi {fmt.score(float(g))}")
        st.caption(" · ".join(details))


def empty_state(
    title: str,
    body: str,
    *,
    page: str | None = None,
    label: str = "",
    icon: str = ":material/arrow_forward:",
) -> None:
    with st.container(border=True):
        st.markdown(f"#### {title}")
        st.markdown(body)
        if page:
            st.page_link(PAGES[page], label=label, icon=icon)


def workspace_with_features() -> Workspace:
    """The current workspace if its features are ready; otherwise show what to do and stop."""
    ws = state.current_workspace()
    if ws is None:
        no_workspace()
        st.stop()
    if not ws.has_features:
        no_features(ws)
        st.stop()
    return ws


def no_workspace() -> None:
    empty_state(
        "No data yet",
        "Prism measures how diverse a dataset is *as a model sees it*. Start by choosing the demo "
        "(GSM8K, 1,319 maths questions) or your own file on the **Data** page.",
        page="data",
        label="Choose data",
    )


def no_features(ws: Workspace) -> None:
    progress = read_progress(ws.path)
    if progress is not None and progress.status == "running":
        empty_state(
            "Gradient features are being computed",
            f"Workspace **{plain(ws.name)}**: {progress.done:,} of "
            f"{fmt.count(progress.total, 'sample')} done. This page fills in when they are ready.",
            page="features",
            label="Follow the job",
        )
        return
    empty_state(
        "No gradient features yet",
        f"Workspace **{plain(ws.name)}** holds {fmt.count(ws.n_samples, 'sample')} but no finished "
        "features. Compute them (or resume a stopped run) on the **Features** page.",
        page="features",
        label="Compute features",
    )


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<&$^=:])")


def plain(text: str) -> str:
    """Text from the data as inert Markdown: every special character escaped, lines kept."""
    escaped = _MD_SPECIAL.sub(r"\\\1", str(text))
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def error_message(message: str) -> None:
    """An error for the user; its text (which may quote the data) is shown as plain text."""
    st.error(plain(message), icon=":material/error:")


def code(text: object) -> str:
    """Text from the data as an inline code span (backticks inside cannot close it)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"
