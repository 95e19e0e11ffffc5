"""The shipped demo workspace: complete on first use, and an older copy is upgraded in place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.workspace.compare import load_curves
from core.workspace.demo import SHIPPED, ensure_demo_workspace
from core.workspace.records import SubsetRecord
from core.workspace.store import EMBEDDINGS, Workspace


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRISM_HOME", str(tmp_path))
    return tmp_path


def test_first_use_copies_features_embeddings_and_curves(home: Path) -> None:
    ws = ensure_demo_workspace()
    assert ws.path == home / "workspaces" / "demo-gsm8k"
    assert ws.has_features and ws.has_embeddings
    assert ws.n_samples == 1319 and ws.features().shape == (1319, 1024)
    assert {"emb_umap_x", "nbr_agreement", "cluster", "umap_x"} <= set(ws.samples().columns)
    curves = load_curves(ws, ws.manifest["curves"]["settings"])
    assert curves is not None and {"random", "vendi_greedy"} <= set(curves["method"])


def test_an_older_copy_gains_embeddings_and_keeps_its_subsets(home: Path) -> None:
    target = home / "workspaces" / "demo-gsm8k"
    shutil.copytree(SHIPPED, target)
    (target / EMBEDDINGS).unlink()
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.pop("embedding")
    (target / "manifest.json").write_text(json.dumps(manifest))
    (target / "subsets.json").write_text(json.dumps({"mine": {"ids": ["1", "2"], "how": {}}}))
    ws = ensure_demo_workspace()
    assert ws.has_embeddings
    assert ws.subsets() == {"mine": SubsetRecord(ids=("1", "2"))}


def test_a_workspace_the_user_rebuilt_is_never_replaced(home: Path) -> None:
    target = home / "workspaces" / "demo-gsm8k"
    shutil.copytree(SHIPPED, target)
    (target / EMBEDDINGS).unlink()
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.pop("embedding")
    manifest["features"]["completed"] = "2030-01-01T00:00:00+0000"  # recomputed by the user
    (target / "manifest.json").write_text(json.dumps(manifest))
    ws = ensure_demo_workspace()
    assert not ws.has_embeddings
    assert Workspace.open(target).manifest["features"]["completed"] == "2030-01-01T00:00:00+0000"
