"""The workspace registry: newest first, each folder once, gone folders dropped, a damaged file
read as empty, and concurrent writers (real processes) never losing each other's entries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import REPO

from core.workspace.registry import (
    REGISTRY_ENV,
    register_workspace,
    registered_workspaces,
    registry_path,
)


def fake_workspace(path: Path) -> Path:
    """A folder that passes for a workspace in the registry (it holds a manifest.json)."""
    path.mkdir(parents=True)
    (path / "manifest.json").write_text("{}")
    return path


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home" / "workspaces.json"
    monkeypatch.setenv(REGISTRY_ENV, str(path))
    return path


def test_newest_first_each_once_absolute(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = fake_workspace(tmp_path / "proj" / "ws" / "a")
    b = fake_workspace(tmp_path / "b")
    monkeypatch.chdir(tmp_path / "proj")
    assert register_workspace("ws/a", by="prism features")  # relative: made absolute
    assert register_workspace(b, by="prism import-features")
    assert register_workspace(a, by="app")  # again: moves to the front, listed once
    entries = registered_workspaces()
    assert [e.path for e in entries] == [str(a.resolve()), str(b.resolve())]
    assert [e.by for e in entries] == ["app", "prism import-features"]
    assert all(e.when[:2] == "20" for e in entries)  # an ISO date
    on_disk = json.loads(registry.read_text())
    assert on_disk["version"] == 1 and len(on_disk["workspaces"]) == 2


def test_gone_folders_are_left_out_then_dropped(registry: Path, tmp_path: Path) -> None:
    gone = fake_workspace(tmp_path / "gone")
    kept = fake_workspace(tmp_path / "kept")
    register_workspace(gone, by="prism features")
    register_workspace(kept, by="prism features")
    shutil.rmtree(gone)
    assert [e.path for e in registered_workspaces()] == [str(kept)]
    assert str(gone) in registry.read_text()  # reading changes nothing on disk
    other = fake_workspace(tmp_path / "other")
    register_workspace(other, by="prism demo")
    assert str(gone) not in registry.read_text()  # the next write prunes it
    assert [e.path for e in registered_workspaces()] == [str(other), str(kept)]


def test_a_damaged_or_unwritable_registry_loses_nothing_else(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.parent.mkdir(parents=True)
    registry.write_text('{"workspaces": [{"path": 3}, "x", {"path": ')  # cut short
    assert registered_workspaces() == []
    ws = fake_workspace(tmp_path / "ws")
    assert register_workspace(ws, by="prism features")
    assert [e.path for e in registered_workspaces()] == [str(ws)]
    # a registry that cannot be written: the call says so and raises nothing
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv(REGISTRY_ENV, str(blocked / "workspaces.json"))
    assert register_workspace(ws, by="prism features") is False


def test_the_default_registry_is_under_prism_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REGISTRY_ENV, raising=False)
    monkeypatch.setenv("PRISM_HOME", str(tmp_path))
    assert registry_path() == tmp_path / "workspaces.json"


WRITER = """
import sys
from core.workspace.registry import register_workspace
for path in sys.argv[1:]:
    assert register_workspace(path, by="prism features")
"""


def test_concurrent_processes_keep_every_entry(registry: Path, tmp_path: Path) -> None:
    folders = [str(fake_workspace(tmp_path / f"w{i:02d}")) for i in range(24)]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, *folders[i::3]], cwd=REPO, env=_env(registry)
        )
        for i in range(3)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    assert sorted(e.path for e in registered_workspaces()) == folders


def _env(registry: Path) -> dict[str, str]:
    return {**os.environ, REGISTRY_ENV: str(registry), "PYTHONPATH": str(REPO)}
