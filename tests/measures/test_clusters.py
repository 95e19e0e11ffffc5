"""Spherical k-means, cluster sizes, sparse clusters and coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from core.errors import PrismError
from core.measures.clusters import (
    Clustering,
    Coverage,
    cluster_sizes,
    coverage,
    default_n_clusters,
    nearest_cluster,
    sparse_clusters,
    spherical_kmeans,
)


def planted(
    sizes: list[int], d: int = 32, *, spread: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows scattered around len(sizes) random directions; returns (features, true labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(truth)
    rows = centres[truth] + spread * rng.standard_normal((truth.size, d)) / math.sqrt(d)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32), truth


def test_default_n_clusters():
    assert default_n_clusters(1) == 1
    assert default_n_clusters(2) == 2
    assert default_n_clusters(9) == 2
    assert default_n_clusters(1319) == 132
    assert default_n_clusters(100_000) == 10_000
    with pytest.raises(PrismError, match="n_samples"):
        default_n_clusters(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_planted_clusters(seed):
    features, truth = planted([60, 45, 30, 20, 10], seed=seed)
    result = spherical_kmeans(features, n_clusters=5, seed=seed)
    assert isinstance(result, Clustering)
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert result.labels.dtype == np.int32 and result.labels.shape == (165,)
    assert result.centroids.dtype == np.float32 and result.centroids.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-5)
    # sizes are distinct, so label 0 is the 60-row cluster, label 4 the 10-row one
    assert cluster_sizes(result.labels, n_clusters=5).tolist() == [60, 45, 30, 20, 10]
    assert 0.9 < result.objective <= 1.0
    assert result.seed == seed


def test_objective_is_mean_cosine_to_own_centroid():
    features, _ = planted([50, 50, 50], spread=0.8)
    result = spherical_kmeans(features, n_clusters=4, seed=3)
    cosines = np.einsum("ij,ij->i", features, result.centroids[result.labels])
    assert result.objective == pytest.approx(float(cosines.mean()), rel=1e-5)
    # every centroid is the normalised mean of its members
    for label in range(4):
        mean = features[result.labels == label].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(result.centroids[label], mean / np.linalg.norm(mean), atol=1e-5)


def test_deterministic_for_a_seed_and_sorted_by_size():
    features, _ = planted([40, 30, 30, 20], spread=1.5)  # overlapping: the seed matters
    first = spherical_kmeans(features, n_clusters=6, seed=7)
    second = spherical_kmeans(features, n_clusters=6, seed=7)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    assert first.objective == second.objective and first.n_iter == second.n_iter
    sizes = cluster_sizes(first.labels, n_clusters=6)
    assert np.all(np.diff(sizes) <= 0)
    assert sizes.sum() == 120 and np.all(sizes > 0)


def test_best_of_n_init_is_no_worse():
    features, _ = planted([30] * 8, spread=1.0, seed=4)
    one = spherical_kmeans(features, n_clusters=8, seed=5, n_init=1)
    several = spherical_kmeans(features, n_clusters=8, seed=5, n_init=4)
    assert several.objective >= one.objective - 1e-9


def test_batched_init_for_many_clusters():
    """k above the greedy limit draws k-means++ centres in rounds; clusters stay non-empty."""
    features, truth = planted([3] * 150, d=64, spread=0.05, seed=6)
    result = spherical_kmeans(features, n_clusters=150, seed=0, n_init=1)
    assert np.all(cluster_sizes(result.labels, n_clusters=150) > 0)
    assert adjusted_rand_score(truth, result.labels) > 0.9


def test_edge_sizes_and_duplicates():
    features, _ = planted([4, 3])
    every_row = spherical_kmeans(features, n_clusters=7, seed=0)
    assert sorted(every_row.labels.tolist()) == list(range(7))
    assert every_row.objective == pytest.approx(1.0, abs=1e-6)
    one = spherical_kmeans(features, n_clusters=1)
    assert np.all(one.labels == 0)
    # fewer distinct rows than clusters: empty clusters are re-seeded, none stays empty
    duplicates = np.repeat(features[:2], 5, axis=0)
    result = spherical_kmeans(duplicates, n_clusters=3, seed=0)
    assert np.all(cluster_sizes(result.labels, n_clusters=3) > 0)


def test_does_not_mutate_input():
    features, _ = planted([20, 20])
    features = features * 3.0  # not unit: normalised internally, the input left alone
    before = features.copy()
    spherical_kmeans(features, n_clusters=2)
    np.testing.assert_array_equal(features, before)


@pytest.mark.parametrize("n_clusters", [0, 11, -1, 2.5, True])
def test_bad_n_clusters(n_clusters):
    features, _ = planted([5, 5])
    with pytest.raises(PrismError, match=r"n_clusters must be an integer from 1 to 10") as error:
        spherical_kmeans(features, n_clusters=n_clusters)
    assert error.value.param == "n_clusters"  # the CLI names --k, the app its field


@pytest.mark.parametrize(
    "option, value", [("seed", -1), ("max_iter", 0), ("n_init", 0), ("tol", -1.0)]
)
def test_bad_options(option, value):
    features, _ = planted([5, 5])
    with pytest.raises(PrismError, match=option):
        spherical_kmeans(features, n_clusters=2, **{option: value})


def test_cluster_sizes_and_sparse_clusters():
    sizes = cluster_sizes(np.array([0, 0, 2, 2, 2, 3]), n_clusters=5)
    assert sizes.tolist() == [2, 0, 3, 1, 0]
    # median of [10, 2, 7, 7, 1] is 7: strictly below it are 2 and 1
    assert sparse_clusters(np.array([10, 2, 7, 7, 1])).tolist() == [False, True, False, False, True]
    # even count: median of [1, 2, 3, 4] is 2.5
    assert sparse_clusters(np.array([4, 1, 3, 2])).tolist() == [False, True, False, True]
    assert not sparse_clusters(np.array([5, 5, 5])).any()
    with pytest.raises(PrismError, match="labels"):
        cluster_sizes(np.array([0, 5]), n_clusters=5)


def test_coverage_hand_example():
    reference_sizes = np.array([50, 30, 10, 10])
    result = coverage(np.array([0, 0, 2, 0]), reference_sizes=reference_sizes)
    assert isinstance(result, Coverage)
    assert result.n_covered == 2 and result.n_clusters == 4
    assert result.fraction == pytest.approx(0.5)
    assert result.weighted == pytest.approx(0.6)  # (50 + 10) / 100
    assert result.entropy == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    full = coverage(np.arange(4), reference_sizes=reference_sizes)
    assert (full.fraction, full.weighted) == (1.0, 1.0)
    assert full.entropy == pytest.approx(math.log(4))
    empty = coverage(np.array([], dtype=np.int64), reference_sizes=reference_sizes)
    assert (empty.fraction, empty.weighted, empty.entropy, empty.n_covered) == (0.0, 0.0, 0.0, 0)
    with pytest.raises(PrismError, match="subset_labels"):
        coverage(np.array([4]), reference_sizes=reference_sizes)


def test_nearest_cluster():
    features, truth = planted([30, 30, 30], seed=8)
    result = spherical_kmeans(features, n_clusters=3, seed=0)
    new_rows, new_truth = planted([5, 5, 5], seed=8)  # same centres, new noise
    labels, cosines = nearest_cluster(new_rows * 2.0, result.centroids)
    assert labels.dtype == np.int32 and cosines.dtype == np.float32
    mapping = {t: result.labels[truth == t][0] for t in range(3)}
    assert labels.tolist() == [mapping[t] for t in new_truth]
    assert np.all((cosines > 0.9) & (cosines <= 1.0 + 1e-6))
    with pytest.raises(PrismError, match="d="):
        nearest_cluster(new_rows[:, :10], result.centroids)


def test_few_rows_note_states_its_rule_where_cluster_figures_are_noise() -> None:
    from core.measures.clusters import FEW_ROWS_RULE, few_rows_note

    # the new user's case: 24 rows, k = 4
    note = few_rows_note(24, [8, 6, 6, 4])
    assert note is not None and "24 rows in 4 clusters (median size 6)" in note
    assert FEW_ROWS_RULE in note
    assert few_rows_note(1319, [10] * 131 + [9]) is None  # the demo's scale: k ≈ N/10
    assert few_rows_note(5000, [1000] * 5) is not None  # few clusters: coverage in 20 % steps
    assert few_rows_note(400, [2] * 150 + [100]) is not None  # median cluster of 2 rows
    assert few_rows_note(100, [10] * 10) is None  # the edge of every bound is fine
    assert few_rows_note(10, []) is None  # no clustering: nothing to warn about
