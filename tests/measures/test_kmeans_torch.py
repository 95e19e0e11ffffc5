"""Spherical k-means with torch (the GPU path), checked on the CPU against the exact loop."""

from __future__ import annotations

import numpy as np

from core.measures.clusters import spherical_kmeans
from core.measures.kmeans_torch import torch_kmeans


def _planted(sizes: list[int], d: int, seed: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), d))
    rows = np.concatenate(
        [c + spread * rng.standard_normal((s, d)) for c, s in zip(centres, sizes, strict=True)]
    ).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_torch_kmeans_finds_the_exact_clusters_of_a_planted_set() -> None:
    features = _planted([90, 70, 50, 40, 25, 12], d=24, seed=0, spread=0.15)
    exact = spherical_kmeans(features, n_clusters=6, seed=0, method="exact")
    result = spherical_kmeans(features, n_clusters=6, seed=0, method="torch")
    assert result.method == "torch"
    assert result.labels.tolist() == exact.labels.tolist()  # both numbered by decreasing size
    assert np.bincount(result.labels).tolist() == [90, 70, 50, 40, 25, 12]
    np.testing.assert_allclose(result.objective, exact.objective, rtol=1e-5)
    np.testing.assert_allclose(result.centroids, exact.centroids, atol=1e-5)


def test_random_row_start_at_k_of_a_tenth_is_within_one_percent_of_exact() -> None:
    """The start used at scale (k = N/10, seeded distinct rows) against the exact loop's best
    of 3 k-means++ starts: the objective (mean cosine to the own centroid) within 1%."""
    rng = np.random.default_rng(1)
    features = _planted(list(rng.integers(2, 40, size=150)), d=32, seed=2, spread=0.6)
    k = len(features) // 10
    exact = spherical_kmeans(features, n_clusters=k, seed=0, method="exact")
    result = torch_kmeans(features, n_clusters=k, seed=0, init="random")
    assert np.bincount(result.labels, minlength=k).min() >= 1  # no empty cluster
    assert abs(result.objective - exact.objective) <= 0.01 * exact.objective
    labels = result.labels
    # Every row sits with its most similar centroid (the assignment is exact).
    np.testing.assert_array_equal(labels, (features @ result.centroids.T).argmax(axis=1))
    again = torch_kmeans(features, n_clusters=k, seed=0, init="random")
    assert again.labels.tolist() == labels.tolist() and again.n_iter == result.n_iter
