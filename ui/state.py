"""The app's session state: every key in one place, and the current workspace and selection.

The current selection lives under ``SELECTION`` (not in a widget), so the map, the cluster table
and the saved subsets can all set it, and tests can inject it:

    st.session_state[SELECTION] = {"workspace": "/path/to/ws", "rows": [3, 17, 42],
                                   "how": {"method": "lasso"}}

``rows`` are row numbers of ``samples.parquet`` (a list, or the sorted int64 array the app itself
stores: a lasso of 500,000 rows costs seconds as a Python list). A selection of another
workspace, or one that is malformed, is ignored.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core.errors import PrismError, WorkspaceError
from core.features.proxy import prism_home
from core.workspace.demo import ensure_demo_workspace
from core.workspace.registry import register_workspace, registered_workspaces
from core.workspace.store import Workspace, list_workspaces, lock_file, problems, write_json

WORKSPACE = "prism_workspace"  # str path of the workspace the pages show
SELECTION = "prism_selection"  # {"workspace", "rows", "how"}
PENDING = "prism_pending"  # the dataset chosen on the Data page: {"source", "columns", "label"}
MAP_EVENT = "prism_map_event"  # signature of the last map selection event acted on
MAP_SHOWN = "prism_map_shown"  # what the last drawn map showed: {"base", "native"}
MAP_GENERATION = "prism_map_generation"  # bumped to redraw the map from scratch
CLUSTER_PICK = "prism_cluster_pick"  # signature of the last cluster-table selection acted on
SUBSET_PICK = "prism_subset_pick"  # the subset the Subsets page works with (widget key prefix)
SUBSET_NEXT = "prism_subset_next"  # a subset to pick on the next run (just made or renamed)
UNDO = "prism_undo"  # subsets deleted this session, newest last: [{"workspace", "name", "record"}]
EXPORT_CONFIRM = "prism_export_confirm"  # a write to an existing path, waiting for "Replace"
UPLOADS = "prism_uploads"  # uploaded file id → saved path
COLOR_BY = "prism_color_by"
FLASH = "prism_flash"  # one message to show after a rerun
GROW_TARGET = "prism_grow_target"  # cluster picked on Grow: {"workspace", "cluster", "how"}
GROW_MAP_EVENT = "prism_grow_map_event"  # signature of the last Grow-map selection acted on
GROW_CLUSTER_PICK = "prism_grow_cluster_pick"  # … and of the last Grow cluster-table pick
GROW_READ = "prism_grow_read"  # the candidate read on the Grow page (its id)
RECORD_DISMISSED = "prism_record_dismissed"  # record dialogs closed (a fresh record table each)
MAP_CHART = "map_chart"  # widget keys
CLUSTER_TABLE = "cluster_table"
RECORD_TABLE = "record_table"
GROW_MAP = "grow_map"
GROW_CLUSTER_TABLE = "grow_cluster_table"
GROW_CANDIDATE_TABLE = "grow_candidate_table"

_APP_STATE = "app.json"  # {"last_workspace": path, "recent_workspaces": [path, …] newest first}
RECENT_MAX = 20  # workspaces remembered in the recent list
PROJECT_FOLDER = "ws"  # workspaces built with `--workspace ws/NAME` in the working directory


def _app_state_path() -> Path:
    return prism_home() / _APP_STATE


def _app_state() -> dict[str, Any]:
    try:
        value = json.loads(_app_state_path().read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _remembered() -> str | None:
    value = _app_state().get("last_workspace")
    return value if isinstance(value, str) else None


def _default_workspace() -> str | None:
    """Last workspace opened in the app (so a refresh keeps it), else the demo, else any."""
    remembered = _remembered()
    if remembered and Workspace.exists(remembered) and _readable(remembered):
        return remembered
    try:
        return str(ensure_demo_workspace().path)
    except PrismError:
        pass
    except OSError:
        pass
    found = list_workspaces()
    return str(found[0]) if found else None


def recent_workspaces() -> list[str]:
    """Workspaces opened in the app, newest first; those no longer on disk are left out."""
    value = _app_state().get("recent_workspaces")
    if not isinstance(value, list):
        return []
    paths = dict.fromkeys(v for v in value if isinstance(v, str))
    return [p for p in paths if Workspace.exists(p)]


def remember_workspace(path: str) -> None:
    """Make ``path`` the last and the newest recent workspace in ``app.json``."""
    # Two tabs may open workspaces at once: the read-modify-write of app.json holds its lock.
    with lock_file(prism_home() / f".{_APP_STATE}.lock", timeout_s=5.0):
        recent = [path, *(p for p in recent_workspaces() if p != path)][:RECENT_MAX]
        data = _app_state()
        data.update(last_workspace=path, recent_workspaces=recent)
        write_json(_app_state_path(), data)


def known_workspaces() -> list[str]:
    """Every workspace the app can show, each once: the current one, the recent ones (newest
    first), those Prism registered wherever they are (``core.workspace.registry``, newest first),
    then those under ``$PRISM_HOME/workspaces`` and under ``./ws``.

    Only workspaces inside the folders the app may read (``ui.paths.check_server_path``), and on
    a local app the registered ones (made by Prism on this machine) wherever they are.
    """
    registered = [entry.path for entry in registered_workspaces()]
    found = [workspace_path() or "", *recent_workspaces(), *registered]
    found += [str(p) for p in list_workspaces()]
    found += [str(p) for p in list_workspaces(Path.cwd() / PROJECT_FOLDER)]
    listed: dict[str, str] = {}
    for path in found:
        key = _readable(path, registered=registered) if path and Workspace.exists(path) else None
        if key is not None:
            listed.setdefault(key, path)
    return list(listed.values())


def _readable(path: str, *, registered: list[str] | None = None) -> str | None:
    """The resolved path when the app may read it (inside its data roots, or registered by Prism
    on this machine while the app is local), else None."""
    # cycle: ui.paths imports this module
    from ui.paths import check_server_path, exposed, resolved

    try:
        return str(check_server_path(path))
    except PrismError:
        pass
    if registered is None:
        registered = [entry.path for entry in registered_workspaces()]
    try:
        real = resolved(Path(path))
    except PrismError:
        return None
    return str(real) if not exposed() and str(real) in registered else None


def open_workspace_folder(text: str) -> str:
    """The workspace folder a user typed, checked: inside the readable folders (or registered),
    a workspace, undamaged. Raises a PrismError that says what to do otherwise."""
    # cycle: ui.paths imports this module
    from ui.paths import check_server_path

    readable = _readable(text.strip()) if text.strip() else None
    path = Path(readable) if readable is not None else check_server_path(text)
    if not Workspace.exists(path):
        Workspace.open(path)  # raises: not a workspace, and how to build one
    found = problems(path)
    if found:
        raise WorkspaceError("\n".join(found))
    return str(path)


def set_workspace(path: str | Path | None) -> None:
    """Make ``path`` the current workspace (remembered across refreshes); clears the selection."""
    value = str(path) if path is not None else None
    if st.session_state.get(WORKSPACE) != value:
        st.session_state.pop(SELECTION, None)
        for key in [k for k in st.session_state if str(k).startswith(MAP_EVENT)]:
            st.session_state.pop(key, None)
        st.session_state.pop(CLUSTER_PICK, None)
    st.session_state[WORKSPACE] = value
    if value is not None:
        with contextlib.suppress(PrismError, OSError):  # remembering is a convenience
            remember_workspace(value)
        register_workspace(value, by="app")


def workspace_path() -> str | None:
    if WORKSPACE not in st.session_state:
        st.session_state[WORKSPACE] = _default_workspace()
    return st.session_state[WORKSPACE]


def current_workspace() -> Workspace | None:
    """The current workspace, or None when there is none yet (pages then show what to do)."""
    path = workspace_path()
    if not path or not Workspace.exists(path):
        return None
    found = problems(path)
    if found:  # a damaged file: say which and how to rebuild it, before any page trips on it
        raise WorkspaceError("\n".join(found))
    return Workspace.open(path)


# -- the selection ------------------------------------------------------------------------------


def selection_rows(workspace: Workspace, n_rows: int) -> np.ndarray | None:
    """Sorted unique row numbers of the current selection in ``workspace``, or None."""
    value = st.session_state.get(SELECTION)
    if not isinstance(value, dict):
        return None
    owner = value.get("workspace")
    if owner is not None and str(owner) != str(workspace.path):
        return None
    try:
        rows = np.asarray(value.get("rows", []), dtype=np.int64).ravel()
    except (TypeError, ValueError):
        return None
    rows = _sorted_unique(rows[(rows >= 0) & (rows < n_rows)])
    return rows if rows.size else None


def _sorted_unique(rows: np.ndarray) -> np.ndarray:
    """``np.unique(rows)``, without its sort when the rows are already sorted and unique."""
    return rows if bool(np.all(rows[1:] > rows[:-1])) else np.unique(rows)


def selection_how(workspace: Workspace) -> dict[str, Any]:
    value = st.session_state.get(SELECTION)
    if isinstance(value, dict) and isinstance(value.get("how"), dict):
        return dict(value["how"])
    return {"method": "selection"}


def set_selection(workspace: Workspace, rows: Any, how: dict[str, Any]) -> None:
    rows = _sorted_unique(np.array(rows, dtype=np.int64).ravel())  # a copy: ours to freeze
    rows.flags.writeable = False  # shared by every reader of the session state
    st.session_state[SELECTION] = {"workspace": str(workspace.path), "rows": rows, "how": how}


def clear_selection() -> None:
    st.session_state.pop(SELECTION, None)
    for key in [k for k in st.session_state if str(k).startswith(MAP_EVENT)]:
        st.session_state.pop(key, None)  # every map's last event
    # The map may still show Plotly's own selection: draw it afresh.
    st.session_state[MAP_GENERATION] = st.session_state.get(MAP_GENERATION, 0) + 1


def table_key(name: str) -> str:
    """The widget key of a selectable table: a new one (no rows picked) after ``reset_table``."""
    return f"{name}_{st.session_state.get(f'{name}_generation', 0)}"


def reset_table(name: str) -> None:
    st.session_state[f"{name}_generation"] = st.session_state.get(f"{name}_generation", 0) + 1


def flash(message: str, icon: str = "✅") -> None:
    """A toast shown on the next run (messages survive an st.rerun)."""
    st.session_state[FLASH] = (message, icon)


def show_flash() -> None:
    message = st.session_state.pop(FLASH, None)
    if message:
        st.toast(message[0], icon=message[1])
