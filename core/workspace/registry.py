"""The workspaces Prism made or opened on this machine, wherever their folders are.

A workspace is a folder anywhere (``--workspace ws/x`` in any directory), so the app cannot find
them all by looking under ``$PRISM_HOME/workspaces``. The commands that make one (`prism features`,
`prism import-features`, `prism demo`) and the app (on opening a folder) record its absolute path
in one small JSON file, ``$PRISM_HOME/workspaces.json`` (or the file named by
``PRISM_WORKSPACE_REGISTRY``)::

    {"version": 1, "workspaces": [{"path": "/abs/ws/x", "by": "prism features",
                                   "when": "2026-12-01T10:00:00+0000"}, …]}

newest first. Every write holds the file's lock and replaces it atomically, so concurrent commands
never lose each other's entries; an entry whose folder no longer holds a workspace is left out
when read and dropped on the next write. The file only points at workspaces: losing or damaging it
loses no data (a damaged file reads as empty and is rewritten).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import PrismError
from core.features.proxy import prism_home
from core.workspace.files import lock_file, now, write_json
from core.workspace.store import MANIFEST

REGISTRY = "workspaces.json"
REGISTRY_ENV = "PRISM_WORKSPACE_REGISTRY"
VERSION = 1
MAX_ENTRIES = 1000  # the oldest beyond this are forgotten (their folders are untouched)
LOCK_TIMEOUT_S = 5.0  # a registry write never holds up a finished command for long


@dataclass(frozen=True)
class Registered:
    """One registered workspace: its absolute folder, what recorded it, and when."""

    path: str
    by: str
    when: str


def registry_path() -> Path:
    """The registry file: ``PRISM_WORKSPACE_REGISTRY``, else ``$PRISM_HOME/workspaces.json``."""
    named = os.environ.get(REGISTRY_ENV, "").strip()
    return Path(named).expanduser() if named else prism_home() / REGISTRY


def _is_workspace(path: str) -> bool:
    return (Path(path) / MANIFEST).is_file()


def _read(file: Path) -> list[Registered]:
    """Every well-formed entry of ``file``, in file order; a missing or damaged file has none."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("workspaces") if isinstance(data, dict) else None
    entries = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            by, when = item.get("by"), item.get("when")
            entries.append(
                Registered(item["path"], by if isinstance(by, str) else "", str(when or ""))
            )
    return entries


def registered_workspaces() -> list[Registered]:
    """The registered workspaces that still exist, newest first, each folder once."""
    seen: dict[str, Registered] = {}
    for entry in _read(registry_path()):
        if entry.path not in seen and _is_workspace(entry.path):
            seen[entry.path] = entry
    return list(seen.values())


def register_workspace(path: str | os.PathLike[str], *, by: str) -> bool:
    """Record the workspace at ``path`` (made absolute, symlinks followed) as the newest entry, ``by`` naming what
    made or opened it; entries whose folders are gone are dropped.

    Returns False, changing nothing, when the registry cannot be written (a read-only
    ``$PRISM_HOME``, a lock held too long): the workspace itself is complete without it.
    """
    folder = str(Path(path).expanduser().resolve())
    file = registry_path()
    try:
        with lock_file(file.with_name(f".{file.name}.lock"), timeout_s=LOCK_TIMEOUT_S):
            others = [e for e in _read(file) if e.path != folder and _is_workspace(e.path)]
            entries = [Registered(folder, by, now()), *others][:MAX_ENTRIES]
            write_json(
                file,
                {"version": VERSION, "workspaces": [asdict(e) for e in entries]},
            )
    except (OSError, PrismError):
        return False
    return True
