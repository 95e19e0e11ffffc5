"""UMAP layout: deterministic for a seed, finite, tiny inputs handled, planted clusters kept apart.

The first UMAP call in a process compiles umap-learn's numba code (tens of seconds on a small CPU);
the module-scoped fixture pays it once for the file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import PrismError
from core.measures.layout import umap_layout


def planted(n_per_cluster: int, n_clusters: int, d: int = 32, *, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(n_clusters), n_per_cluster)
    rows = centres[truth] + 0.3 * rng.standard_normal((truth.size, d)) / math.sqrt(d)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), truth


@pytest.fixture(scope="module")
def clustered_layout():
    features, truth = planted(40, 4)
    return features, truth, umap_layout(features, seed=3)


def test_shape_dtype_finite_and_normalised(clustered_layout):
    features, _, coords = clustered_layout
    assert coords.shape == (len(features), 2) and coords.dtype == np.float32
    assert np.all(np.isfinite(coords))
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-5)
    assert float(np.sqrt((coords.astype(np.float64) ** 2).sum(axis=1).mean())) == pytest.approx(1.0)


def test_deterministic_for_a_seed(clustered_layout):
    features, _, coords = clustered_layout
    before = features.copy()
    again = umap_layout(features, seed=3)
    np.testing.assert_array_equal(coords, again)
    np.testing.assert_array_equal(features, before)


def test_planted_clusters_stay_separated(clustered_layout):
    _, truth, coords = clustered_layout
    distances = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    neighbour = distances.argmin(axis=1)
    assert np.mean(truth[neighbour] == truth) >= 0.95


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 12])
def test_tiny_inputs(n):
    features, _ = planted(n, 1, seed=n)
    coords = umap_layout(features, seed=0, n_neighbors=15)
    assert coords.shape == (n, 2) and coords.dtype == np.float32
    assert np.all(np.isfinite(coords))
    np.testing.assert_array_equal(coords, umap_layout(features, seed=0, n_neighbors=15))
    if n == 1:
        assert coords.tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize(
    "option, value",
    [
        ("seed", -1),
        ("seed", 1.5),
        ("n_neighbors", 1),
        ("n_neighbors", 2.0),
        ("min_dist", -0.1),
        ("min_dist", 1.5),
        ("min_dist", float("nan")),
    ],
)
def test_bad_options(option, value):
    features, _ = planted(5, 2)
    with pytest.raises(PrismError, match=option):
        umap_layout(features, **{option: value})


def test_bad_features():
    with pytest.raises(PrismError, match="no rows"):
        umap_layout(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(PrismError, match="2-D"):
        umap_layout(np.zeros(4, dtype=np.float32))
    with pytest.raises(PrismError, match="NaN"):
        umap_layout(np.full((5, 4), np.nan, dtype=np.float32))
