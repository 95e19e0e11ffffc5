"""The map of a workspace above the fit-sample threshold: UMAP fit on a seeded sample, the rest
transformed from the memory-mapped features, and the ``layout`` section saying so."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from core.data.dataset import load_dataset
from core.measures.layout import SAMPLED_METHOD
from core.workspace.analyses import layout_workspace
from core.workspace.imported import import_features
from core.workspace.store import Workspace


def _workspace(tmp_path: Path, n: int = 90, d: int = 16) -> Workspace:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, d))
    rows = centres[np.arange(n) % 3] + 0.2 * rng.standard_normal((n, d)) / math.sqrt(d)
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"row {i}"}) + "\n" for i in range(n))
    )
    np.save(tmp_path / "features.npy", rows.astype(np.float32), allow_pickle=False)
    return import_features(tmp_path / "ws", load_dataset(str(data)), tmp_path / "features.npy")


def test_sampled_layout_is_stored_with_its_fit_rows(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    coords = layout_workspace(ws, seed=1, n_neighbors=5, fit_sample=30)
    again = Workspace.open(ws.path)
    section = again.manifest["layout"]
    assert section["fit_rows"] == 30 and section["method"] == SAMPLED_METHOD
    assert section["seed"] == 1 and section["n_neighbors"] == 5
    stored = again.samples()[["umap_x", "umap_y"]].to_numpy()
    assert stored.shape == (90, 2) and np.all(np.isfinite(stored))
    np.testing.assert_array_equal(stored, coords)
    np.testing.assert_array_equal(
        coords, layout_workspace(ws, seed=1, n_neighbors=5, fit_sample=30)
    )
    # Every row of a planted group lands nearer its group's centre on the map than another's.
    labels = np.arange(90) % 3
    centres = np.stack([coords[labels == c].mean(axis=0) for c in range(3)])
    nearest = np.linalg.norm(coords[:, None] - centres[None], axis=-1).argmin(axis=1)
    assert np.mean(nearest == labels) >= 0.95
