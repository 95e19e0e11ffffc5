"""UMAP layout: deterministic for a seed, finite, tiny inputs handled, planted clusters kept apart.

The first UMAP call in a process compiles umap-learn's numba code (tens of seconds on a small CPU);
the module-scoped fixture pays it once for the file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import core.measures.layout as layout
from core.errors import PrismError
from core.measures.layout import (
    FIT_SAMPLE,
    fit_rows,
    neighbourhood_preservation,
    umap_layout,
)


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


def manifold_clusters(n_per_cluster: int, n_clusters: int, d: int = 32, *, seed: int = 0):
    """Planted clusters, each spread along its own random 2-D plane (so neighbourhoods mean something)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(n_clusters), n_per_cluster)
    planes = rng.standard_normal((n_clusters, 2, d)) / math.sqrt(d)
    spread = np.einsum("ni,nid->nd", rng.standard_normal((truth.size, 2)), planes[truth])
    rows = (
        centres[truth] + 0.5 * spread + 0.01 * rng.standard_normal((truth.size, d)) / math.sqrt(d)
    )
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), truth


@pytest.mark.parametrize("search", ["flat", "inverted lists"])
def test_fit_on_a_sample_then_placement_keeps_neighbourhoods(search, monkeypatch):
    if search == "inverted lists":  # what 10⁶ rows take: the sampled rows in a faiss IVF
        monkeypatch.setattr(layout, "PLACE_EXACT_MAX_WORK", 0)
        monkeypatch.setattr(layout, "PLACE_PROBES", 4)
    features, _ = manifold_clusters(100, 9, seed=1)
    sampled = umap_layout(features, seed=2, fit_sample=450)
    assert sampled.shape == (900, 2) and sampled.dtype == np.float32
    assert np.all(np.isfinite(sampled))
    np.testing.assert_array_equal(sampled, umap_layout(features, seed=2, fit_sample=450))
    full = umap_layout(features, seed=2, fit_sample=None)
    kept_full = neighbourhood_preservation(features, full, k=10)
    kept_sampled = neighbourhood_preservation(features, sampled, k=10)
    assert kept_full > 0.5  # the planted planes are laid out well by full UMAP
    assert kept_sampled >= 0.8 * kept_full


def test_below_the_threshold_is_full_umap(clustered_layout):
    features, _, coords = clustered_layout
    assert fit_rows(len(features)) == len(features) and fit_rows(10**6) == FIT_SAMPLE
    assert fit_rows(10**6, fit_sample=None) == 10**6
    np.testing.assert_array_equal(coords, umap_layout(features, seed=3, fit_sample=len(features)))
    with pytest.raises(PrismError, match="fit_sample"):
        umap_layout(features, fit_sample=2)


def test_neighbourhood_preservation_bounds():
    features, _ = planted(20, 3)
    rng = np.random.default_rng(0)
    assert neighbourhood_preservation(features, features, k=5) == pytest.approx(1.0)
    shuffled = neighbourhood_preservation(features, rng.standard_normal((60, 2)), k=5)
    assert 0.0 <= shuffled < 0.5
    sampled = neighbourhood_preservation(features, features, k=5, n_queries=10, seed=1)
    assert sampled == pytest.approx(1.0)


def test_inverted_list_search_in_matrix_products_finds_the_exact_neighbours(monkeypatch):
    """Probing every list is the exact search; probing a few keeps k distinct rows, best first."""
    import faiss

    rng = np.random.default_rng(0)
    anchors, _ = manifold_clusters(200, 10, seed=3)
    queries = anchors[rng.choice(len(anchors), 300, replace=False)] + 0.05 * rng.standard_normal(
        (300, anchors.shape[1])
    ).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    lists = layout._anchor_lists(anchors, 10**12, seed=0)  # far above the exact-search work
    assert lists.flat is None and lists.cuts[-1] == len(anchors)
    exact = faiss.IndexFlatIP(anchors.shape[1])
    exact.add(anchors)
    exact_cos, exact_rows = exact.search(queries, 10)
    monkeypatch.setattr(layout, "PLACE_PROBES", lists.cuts.size - 1)
    cos, rows = layout._search(lists, queries, 10)
    np.testing.assert_allclose(cos, exact_cos, atol=1e-5)
    assert np.mean(rows == exact_rows) >= 0.99  # ties aside, the same rows in the same order
    monkeypatch.setattr(layout, "PLACE_PROBES", 4)
    cos, rows = layout._search(lists, queries, 10)
    assert all(len(set(r)) == 10 for r in rows) and np.all(np.diff(cos, axis=1) <= 0)
    np.testing.assert_allclose(cos, np.einsum("qd,qkd->qk", queries, anchors[rows]), atol=1e-5)
    assert np.mean(rows[:, 0] == exact_rows[:, 0]) >= 0.9  # the nearest row is almost always found
