"""core.measures.neighbour_index: the stored inner-product index against exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.measures.neighbour_index import (
    build_index,
    n_lists_for,
    read_index,
    search_index,
    write_index,
)
from core.measures.neighbours import nearest_in_pool

K = 20


def clustered(n: int, dim: int, *, n_centres: int = 60, seed: int = 0) -> np.ndarray:
    """Unit rows around ``n_centres`` directions: neighbourhoods like gradient features have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim))
    rows = centres[rng.integers(0, n_centres, n)] + 0.7 * rng.standard_normal((n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_scanning_every_list_is_exact() -> None:
    features = clustered(600, 32)
    index = build_index(features, seed=0)
    rows, cosines = search_index(index, features[:25], K, n_probe=index.nlist)
    exact_rows, exact_cosines = nearest_in_pool(features, features[:25], K)
    np.testing.assert_allclose(cosines, exact_cosines, atol=1e-5)
    assert (rows == exact_rows).mean() > 0.99  # ties of equal cosines may swap places


def test_recall_of_the_default_probe_and_a_stored_copy(tmp_path: Path) -> None:
    features = clustered(6000, 48)
    index = build_index(features, seed=0)
    assert index.nlist == n_lists_for(6000) > 100
    path = tmp_path / "features.faiss"
    write_index(index, path)
    queries = features[::150]
    rows, cosines = search_index(read_index(path), queries, K)
    exact_rows, _ = nearest_in_pool(features, queries, K)

    def recall(found: np.ndarray) -> float:
        pairs = zip(found, exact_rows, strict=True)
        return float(np.mean([len(set(a) & set(b)) / K for a, b in pairs]))

    assert recall(rows) >= 0.95
    # The approximation is real: scanning one list instead of the default misses most neighbours.
    assert recall(search_index(index, queries, K, n_probe=1)[0]) < 0.5
    # The cosines given are the rows' own, not approximations.
    np.testing.assert_allclose(cosines, np.einsum("qd,qkd->qk", queries, features[rows]), atol=1e-5)
