"""The two-level k-means for many clusters: close to the exact loop where both run, seeded."""

from __future__ import annotations

import numpy as np
import pytest
from measures.test_clusters import planted

from core.measures.clusters import spherical_kmeans, unit_rows_or_self
from core.measures.kmeans_twolevel import share_clusters, two_level_kmeans


@pytest.fixture(scope="module")
def many() -> tuple[np.ndarray, np.ndarray]:
    # 200 planted directions of 8–16 rows: k = N/10-ish, the regime the two levels are for.
    sizes = np.random.default_rng(0).integers(8, 17, size=200).tolist()
    return planted(sizes, d=64, spread=0.6, seed=1)


@pytest.fixture(scope="module")
def flat() -> np.ndarray:
    """6,000 rows around 600 random directions (noise half the centre's norm): no coarse structure,
    so coarse cells cut many clusters in two; the bench's synthetic features have this shape."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((600, 32))
    rows = centres[rng.integers(0, 600, 6000)] + 0.5 * rng.standard_normal((6000, 32))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_objective_within_one_percent_of_exact_at_k_n_over_10(flat):
    exact = spherical_kmeans(flat, n_clusters=600, seed=0, n_init=1, method="exact")
    two = spherical_kmeans(flat, n_clusters=600, seed=0, method="two-level")
    assert two.method == "two-level" and two.n_clusters == 600
    assert two.objective >= 0.99 * exact.objective
    # The probed rounds are what joins clusters cut by cell borders: one probe stays far below.
    own_cell_only = two_level_kmeans(flat, n_clusters=600, seed=0, probes=1, wide_rounds=0)
    assert own_cell_only.objective < 0.97 * exact.objective


def test_objective_is_the_mean_cosine_and_labels_are_sorted(many):
    features, _ = many
    k = round(len(features) / 10)
    two = spherical_kmeans(features, n_clusters=k, seed=0, method="two-level")
    # Every cluster has rows, labels are sorted by size and the objective is what it says.
    sizes = np.bincount(two.labels, minlength=k)
    assert sizes.min() >= 1 and np.array_equal(sizes, np.sort(sizes)[::-1])
    cosines = np.einsum("ij,ij->i", features, two.centroids[two.labels])
    assert cosines.mean() == pytest.approx(two.objective, rel=1e-5)


def test_planted_clusters_are_found(many):
    features, truth = many
    from sklearn.metrics import adjusted_rand_score

    two = spherical_kmeans(features, n_clusters=200, seed=0, method="two-level")
    assert adjusted_rand_score(truth, two.labels) > 0.9


def test_seeded(many):
    features, _ = many
    first = spherical_kmeans(features, n_clusters=150, seed=5, method="two-level")
    second = spherical_kmeans(features, n_clusters=150, seed=5, method="two-level")
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.centroids, second.centroids)


@pytest.mark.parametrize(
    "sizes, k",
    [([100, 50, 0, 3, 1], 20), ([5, 5, 5], 15), ([1, 1, 1, 97], 4), ([10, 0, 7], 2), ([9], 9)],
)
def test_share_clusters(sizes, k):
    share = share_clusters(np.array(sizes), k)
    sizes = np.array(sizes)
    assert share.sum() == k
    assert (
        np.all(share <= sizes) and np.all(share[sizes > 0] >= 1) and np.all(share[sizes == 0] == 0)
    )


def test_unit_features_are_clustered_in_place(flat, tmp_path):
    """Unit float32 rows (Prism's features) are read where they are, a memory map included: no
    unit copy is made, the input is not changed, and the clusters are the copy's."""
    path = tmp_path / "features.npy"
    np.save(path, flat)
    mapped = np.load(path, mmap_mode="r")
    assert unit_rows_or_self(mapped) is mapped
    scaled = flat * 3
    assert unit_rows_or_self(scaled) is not scaled
    np.testing.assert_allclose(unit_rows_or_self(scaled), flat, atol=1e-6)
    with_zero = flat.copy()
    with_zero[5] = 0
    assert unit_rows_or_self(with_zero) is with_zero  # a zero row stays zero either way
    assert unit_rows_or_self(flat.astype(np.float64)).dtype == np.float32  # a float32 copy
    in_place = spherical_kmeans(mapped, n_clusters=600, seed=0, method="two-level")
    copied = spherical_kmeans(scaled, n_clusters=600, seed=0, method="two-level")
    assert np.array_equal(np.load(path), flat)
    assert abs(in_place.objective - copied.objective) <= 1e-5
    assert np.mean(in_place.labels == copied.labels) >= 0.99


def test_bounded_rounds_keep_the_labels_of_searching_every_probed_cluster(flat, monkeypatch):
    """A row skips a cell only when no cluster there can beat its own (the bound is a proof), so
    the labels are those of comparing every row with every probed cluster, at fewer products."""
    import core.measures.kmeans_twolevel as twolevel

    shares: list[float] = []
    probed_round = twolevel._probed_round

    def counted(*args):
        result = probed_round(*args)
        shares.append(result[3])
        return result

    monkeypatch.setattr(twolevel, "_probed_round", counted)
    bounded = two_level_kmeans(flat, n_clusters=600, seed=0, max_iter=6)
    bounded_shares = shares.copy()
    monkeypatch.setattr(twolevel, "BOUND_EPS", np.inf)  # every bound fails: search everything
    shares.clear()
    searched = two_level_kmeans(flat, n_clusters=600, seed=0, max_iter=6)
    assert bounded.n_iter == searched.n_iter >= 3
    assert np.mean(bounded.labels == searched.labels) >= 0.999
    assert bounded.objective == pytest.approx(searched.objective, rel=1e-6)
    assert bounded_shares[0] == pytest.approx(1.0) and min(shares) == pytest.approx(1.0)
    assert max(bounded_shares[1:]) < 0.5  # later rounds compare far fewer (row, cluster) pairs


def test_rounds_stop_when_no_row_moves_and_the_objective_never_drops(flat):
    # Well-separated planted clusters: once the rounds have found them no row moves, and the loop
    # stops at that round, wide rounds included (it used to run at least wide_rounds + 1).
    features, truth = planted([10] * 100, d=64, spread=0.05, seed=3)
    separated = two_level_kmeans(features, n_clusters=100, seed=0, max_iter=10)
    assert separated.n_iter <= 2
    assert np.unique(truth * 100 + separated.labels).size == 100  # the planted partition
    # A longer run continues a shorter one (same seed), so prefixes show every round's objective.
    objectives = [
        two_level_kmeans(flat, n_clusters=600, seed=0, max_iter=m).objective for m in (1, 2, 3)
    ]
    assert all(b >= a - 1e-6 for a, b in zip(objectives, objectives[1:], strict=False))
    stopped = two_level_kmeans(flat, n_clusters=600, seed=0, max_iter=50)
    assert stopped.n_iter < 50 and stopped.objective >= objectives[-1] - 1e-6
