"""Spherical k-means through faiss against the exact Lloyd loop, and the automatic choice."""

from __future__ import annotations

import numpy as np
import pytest
from measures.test_clusters import planted
from sklearn.metrics import adjusted_rand_score

import core.measures.clusters as clusters
from core.errors import PrismError
from core.measures.clusters import spherical_kmeans

SIZES = [300, 220, 160, 120, 90, 60, 40, 30, 20, 10]


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return planted(SIZES, d=48, spread=0.3, seed=4)[0]


def test_faiss_objective_within_one_percent_of_exact(features):
    exact = spherical_kmeans(features, n_clusters=len(SIZES), seed=0, method="exact")
    scaled = spherical_kmeans(features, n_clusters=len(SIZES), seed=0, method="faiss")
    assert scaled.method == "faiss"
    assert exact.method == "exact"
    assert abs(scaled.objective - exact.objective) <= 0.01 * exact.objective
    # Same clusters on planted data, and the same label order (by decreasing size).
    assert adjusted_rand_score(exact.labels, scaled.labels) > 0.99
    assert np.array_equal(np.bincount(scaled.labels), np.sort(np.bincount(scaled.labels))[::-1])
    # The objective is the mean cosine of each row to its own (unit) centroid.
    assert np.allclose(np.linalg.norm(scaled.centroids, axis=1), 1.0, atol=1e-5)
    cosines = np.einsum("ij,ij->i", features, scaled.centroids[scaled.labels])
    assert cosines.mean() == pytest.approx(scaled.objective, rel=1e-5)


def test_faiss_is_seeded(features):
    first = spherical_kmeans(features, n_clusters=12, seed=3, method="faiss", n_init=1)
    second = spherical_kmeans(features, n_clusters=12, seed=3, method="faiss", n_init=1)
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.centroids, second.centroids)
    assert first.seed == 3


def test_auto_is_exact_below_the_threshold(features, monkeypatch):
    assert clusters.FAISS_MIN_SAMPLES == 20_000
    small = spherical_kmeans(features, n_clusters=len(SIZES), seed=0)
    assert small.method == "exact"
    monkeypatch.setattr(clusters, "FAISS_MIN_SAMPLES", len(features))
    monkeypatch.setattr(clusters, "_cuda", lambda: False)
    large = spherical_kmeans(features, n_clusters=len(SIZES), seed=0)
    assert large.method == "faiss"
    monkeypatch.setattr(clusters, "TWO_LEVEL_MIN_CLUSTERS", len(SIZES))
    many = spherical_kmeans(features, n_clusters=len(SIZES), seed=0)
    assert many.method == "two-level"


def test_unknown_method_is_refused(features):
    with pytest.raises(PrismError, match="method") as caught:
        spherical_kmeans(features, n_clusters=3, method="fast")
    assert caught.value.param == "method"
