"""core.workspace.similar and `prism similar`: exact below the index threshold, the stored index
above it (recall, reuse, rebuild when the features change), pasted text through the proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import invoke, sample_records, write_jsonl
from measures.test_neighbour_index import clustered

from core.data.dataset import load_dataset
from core.errors import PrismError
from core.workspace.files import write_npy
from core.workspace.imported import import_features
from core.workspace.similar import index_is_current, similar_to_rows, similar_to_text
from core.workspace.store import Workspace

N, D, K = 3000, 32, 20


def exact(features: np.ndarray, query: np.ndarray, leave_out: list[int], k: int) -> list[int]:
    cosines = features @ query
    cosines[leave_out] = -np.inf
    return np.argsort(-cosines, kind="stable")[:k].tolist()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace of N rows with clustered imported features (no model involved)."""
    root = tmp_path_factory.mktemp("similar")
    data = write_jsonl(root / "data.jsonl", sample_records(N))
    np.save(root / "features.npy", clustered(N, D, seed=3), allow_pickle=False)
    return import_features(root / "ws", load_dataset(str(data)), root / "features.npy").path


def test_exact_below_the_threshold(built: dict[str, Any]) -> None:
    ws = Workspace.open(built["path"])
    features = np.asarray(ws.features())
    for rows in ([3], [0, 5, 9]):
        result = similar_to_rows(ws, rows, n_neighbors=6)
        centroid = features[rows].mean(axis=0)
        centroid /= np.linalg.norm(centroid)
        assert result.exact and not result.built_index
        assert result.rows.tolist() == exact(features, centroid, rows, 6)
        np.testing.assert_allclose(result.cosines, features[result.rows] @ centroid, atol=1e-5)


def test_index_above_the_threshold_recall_reuse_and_rebuild(imported: Path) -> None:
    ws = Workspace.open(imported)
    features = np.asarray(ws.features())
    queries = list(range(0, N, 97))
    first = similar_to_rows(ws, [queries[0]], n_neighbors=K, exact_max_rows=100)
    assert not first.exact and first.built_index and index_is_current(ws)
    stored = (imported / "index" / "features.faiss").stat().st_mtime_ns
    recalls = []
    for row in queries:
        result = similar_to_rows(ws, [row], n_neighbors=K, exact_max_rows=100)
        assert not result.built_index  # reused, not rebuilt
        assert row not in result.rows.tolist()
        truth = exact(features, features[row], [row], K)
        recalls.append(len(set(result.rows.tolist()) & set(truth)) / K)
    assert np.mean(recalls) >= 0.95
    assert (imported / "index" / "features.faiss").stat().st_mtime_ns == stored
    # New features (rows in another order): the index is stale, rebuilt, and right again.
    order = np.random.default_rng(0).permutation(N)
    write_npy(ws.features_path, features[order])
    assert not index_is_current(ws)
    again = similar_to_rows(ws, [0], n_neighbors=K, exact_max_rows=100)
    assert again.built_index and index_is_current(ws)
    moved = features[order]
    truth = exact(moved, moved[0], [0], K)
    assert len(set(again.rows.tolist()) & set(truth)) / K >= 0.9


def test_text_is_refused_for_imported_features(imported: Path) -> None:
    with pytest.raises(PrismError, match="imported features") as raised:
        similar_to_text(Workspace.open(imported), "a question about trains")
    assert raised.value.param == "text"


def test_pasted_text_of_a_row_finds_that_row(built: dict[str, Any]) -> None:
    """One forward and backward pass with the workspace's own proxy and sketch."""
    ws = Workspace.open(built["path"])
    row = ws.samples(columns=["prompt", "response"]).iloc[4]
    result = similar_to_text(ws, row["response"], prompt=row["prompt"], n_neighbors=3)
    assert result.rows[0] == 4 and result.cosines[0] > 0.999  # float32 batch shapes: ~1e-6


def test_similar_cli(built: dict[str, Any]) -> None:
    code, out, err = invoke("similar", built["path"], "--row", "s003", "--k", "4", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["exact"] and len(record["neighbours"]) == 4
    assert "s003" not in [n["id"] for n in record["neighbours"]]
    cosines = [n["cosine"] for n in record["neighbours"]]
    assert cosines == sorted(cosines, reverse=True)
    code, out, err = invoke("similar", built["path"], "--row", "nope")
    assert code == 2 and "--row" in err and "nope" in err
    code, out, err = invoke("similar", built["path"], "--row", "s003", "--k", "0")
    assert code == 2 and "--k" in err
