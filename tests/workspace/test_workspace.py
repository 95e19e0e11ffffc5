"""Tests for core.workspace.store: round trips, safe formats, atomic writes and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import WorkspaceError
from core.workspace.files import atomic_path
from core.workspace.records import SubsetRecord
from core.workspace.store import (
    FEATURES,
    MANIFEST,
    SCHEMA_VERSION,
    Workspace,
    read_npy,
    write_json,
    write_npy,
)


def _samples() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "prompt": ["p1", "p2 ünïcödé", "p3\nwith newline"],
            "response": ["r1", "r2", "r3"],
            "score": [1.5, None, 3.0],
        }
    )


def _manifest() -> dict:
    return {
        "dataset": {"source": "x.jsonl", "fingerprint": "abc123", "n_samples": 3},
        "features": {"settings": {"model": "tiny", "seed": 7, "dim": 4}, "status": "pending"},
    }


def _temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp"))


def test_create_then_open_round_trips_manifest_and_samples(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    created = Workspace.create(root, _manifest(), _samples())
    opened = Workspace.open(root)
    assert opened.manifest == created.manifest
    assert opened.manifest["schema_version"] == SCHEMA_VERSION
    assert opened.manifest["features"]["settings"] == {"model": "tiny", "seed": 7, "dim": 4}
    assert opened.n_samples == 3
    pd.testing.assert_frame_equal(opened.samples(), _samples())
    assert Workspace.exists(root)
    assert _temp_files(root) == []


def test_add_and_drop_columns_keep_row_order(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", _manifest(), _samples())
    ws.add_columns({"cluster": np.array([2, 0, 1], dtype=np.int32)})
    assert Workspace.open(ws.path).samples()["cluster"].tolist() == [2, 0, 1]
    with pytest.raises(WorkspaceError, match="2 values for 3 samples"):
        ws.add_columns({"bad": np.array([1, 2])})
    ws.drop_columns(["cluster", "not-there"])
    assert "cluster" not in ws.samples().columns


def test_features_are_plain_npy_without_pickle(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", _manifest(), _samples())
    features = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    write_npy(ws.features_path, features)
    ws.set_section(ws.feature_section.replace(status="complete", dim=4))
    # A pickle-free load (np.load's default allow_pickle=False) reads it back exactly.
    assert np.array_equal(np.load(tmp_path / "ws" / FEATURES, allow_pickle=False), features)
    assert np.array_equal(Workspace.open(ws.path).features(), features)
    assert read_npy(ws.features_path, mmap=False).dtype == np.float32
    # An object array cannot be written: nothing that would need unpickling reaches the disk.
    with pytest.raises(ValueError, match="allow_pickle"):
        write_npy(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    assert not (tmp_path / "objects.npy").exists()
    assert _temp_files(tmp_path) == []


def test_features_missing_is_a_clear_error(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", _manifest(), _samples())
    with pytest.raises(WorkspaceError, match="no finished features"):
        ws.features()


def test_atomic_path_leaves_no_temp_file_when_the_writer_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("boom")
    assert target.read_text() == "old"  # the original is untouched
    assert list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.json.")
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_failed_json_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert _temp_files(tmp_path) == []


def test_numpy_values_are_written_as_json(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    write_json(target, {"x": np.float32(0.5), "v": np.arange(3), "n": np.int64(4)})
    assert json.loads(target.read_text()) == {"x": 0.5, "v": [0, 1, 2], "n": 4}


@pytest.mark.parametrize("make", ["missing", "empty_dir", "other_files"])
def test_opening_a_non_workspace_is_a_clear_error(tmp_path: Path, make: str) -> None:
    root = tmp_path / "notws"
    if make != "missing":
        root.mkdir()
    if make == "other_files":
        (root / "notes.txt").write_text("hello")
    with pytest.raises(WorkspaceError, match="not a Prism workspace"):
        Workspace.open(root)
    assert not Workspace.exists(root)


def test_unreadable_manifest_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(WorkspaceError, match="cannot be read"):
        Workspace.open(root)
    (root / MANIFEST).write_text(json.dumps({"hello": 1}))
    with pytest.raises(WorkspaceError, match="no schema_version"):
        Workspace.open(root)


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", _manifest(), _samples())
    manifest = json.loads((ws.path / MANIFEST).read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 98
    (ws.path / MANIFEST).write_text(json.dumps(manifest))
    before = (ws.path / MANIFEST).read_bytes()
    with pytest.raises(WorkspaceError, match="newer") as info:
        Workspace.open(ws.path)
    assert "Upgrade Prism" in str(info.value)
    assert (ws.path / MANIFEST).read_bytes() == before


def test_clear_features_drops_features_and_analyses_but_keeps_subsets(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", _manifest(), _samples())
    write_npy(ws.features_path, np.ones((3, 4), dtype=np.float32))
    ws.shard_dir.mkdir()
    (ws.shard_dir / "shard-00000.npz").write_bytes(b"x")
    ws.write_subsets({"keep": SubsetRecord(ids=("a",))})
    ws.manifest.update({"scores": {"g_vendi": 1.0}, "clusters": {}, "layout": {}})
    ws.clear_features()
    assert not ws.features_path.exists() and not ws.shard_dir.exists()
    assert not {"features", "scores", "clusters", "layout"} & set(ws.manifest)
    assert ws.subsets() == {"keep": SubsetRecord(ids=("a",))}
