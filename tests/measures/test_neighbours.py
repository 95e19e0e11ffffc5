"""Tests for core.measures.neighbours: kNN against brute force, agreement 1 for one space and chance for two."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.measures.neighbours import (
    chance_agreement,
    compare_spaces,
    nearest_neighbours,
    neighbourhood_agreement,
    similarity_rank_correlation,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    rows = rng.standard_normal((n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_nearest_neighbours_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((50, 8))  # not unit: cosine normalises
    neighbours = nearest_neighbours(features, n_neighbors=5)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(neighbours, expected)
    assert not np.any(neighbours == np.arange(50)[:, None])  # self excluded


def test_blocks_do_not_change_the_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.measures.neighbours as module

    features = _unit(np.random.default_rng(1), 300, 16)
    whole = nearest_neighbours(features, n_neighbors=7)
    monkeypatch.setattr(module, "_BLOCK_BYTES", 4 * 300 * 13)  # 13 rows per block
    np.testing.assert_array_equal(nearest_neighbours(features, n_neighbors=7), whole)


def test_the_torch_path_finds_the_same_neighbours() -> None:
    """The GPU path (torch products and top-k), run here on the CPU, against the numpy path."""
    from core.measures.neighbours import _knn, _knn_torch

    features = _unit(np.random.default_rng(8), 400, 24)
    np.testing.assert_array_equal(_knn_torch(features, 6, "cpu"), _knn(features, 6))


def test_identical_spaces_agree_fully() -> None:
    features = _unit(np.random.default_rng(2), 200, 32)
    agreement = neighbourhood_agreement(features, features, n_neighbors=10)
    assert agreement.shape == (200,) and agreement.dtype == np.float32
    np.testing.assert_array_equal(agreement, 1.0)
    # a rotation, a scale per row and another dimension keep every cosine, so every neighbour
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((32, 32)))
    rotated = np.hstack([features @ q, np.zeros((200, 5), np.float32)]) * 3.0
    np.testing.assert_array_equal(neighbourhood_agreement(features, rotated, n_neighbors=10), 1.0)


def test_independent_spaces_agree_at_chance_level() -> None:
    rng = np.random.default_rng(4)
    n, k = 2000, 10
    a, b = _unit(rng, n, 64), _unit(rng, n, 48)
    agreement = neighbourhood_agreement(a, b, n_neighbors=k)
    chance = chance_agreement(n, k)
    assert chance == pytest.approx(10 / 1999)
    # mean of n overlaps (≈ hypergeometric, sd of the mean ≈ sqrt(chance / (k n)) ≈ 5e-4)
    assert agreement.mean() == pytest.approx(chance, abs=4 * np.sqrt(chance / (k * n)))
    assert set(np.unique(agreement * k).round().astype(int)) <= set(range(k + 1))


def test_partly_shared_structure_lies_between() -> None:
    rng = np.random.default_rng(5)
    shared = _unit(rng, 500, 16)
    a = np.hstack([shared, 0.5 * _unit(rng, 500, 16)])
    b = np.hstack([shared, 0.5 * _unit(rng, 500, 16)])
    comparison = compare_spaces(a, b, n_neighbors=10, seed=0)
    assert comparison.chance < comparison.mean_agreement < 1.0
    assert 0.3 < comparison.rank_correlation < 1.0
    assert comparison.agreement.shape == (500,)


def test_rank_correlation_of_one_space_and_of_unrelated_spaces() -> None:
    rng = np.random.default_rng(6)
    a = _unit(rng, 300, 16)
    # scaling rows keeps every cosine, so their order: ρ = 1
    assert similarity_rank_correlation(a, 2.0 * a) == pytest.approx(1.0)
    rho = similarity_rank_correlation(a, _unit(rng, 300, 16), n_pairs=20_000, seed=1)
    assert abs(rho) < 0.05
    # all pairs when there are few; a seeded sample otherwise, the same for the same seed
    small = similarity_rank_correlation(a[:20], a[:20] + 0.1 * _unit(rng, 20, 16))
    assert 0.5 < small <= 1.0
    noisy = a + 0.2 * _unit(rng, 300, 16)
    first = similarity_rank_correlation(a, noisy, n_pairs=5000, seed=7)
    assert 0.3 < first < 1.0
    assert similarity_rank_correlation(a, noisy, n_pairs=5000, seed=7) == first
    other = similarity_rank_correlation(a, noisy, n_pairs=5000, seed=8)
    assert other != first and other == pytest.approx(first, abs=0.05)


def test_bad_input_is_named() -> None:
    a = np.ones((5, 3))
    with pytest.raises(PrismError, match="same rows"):
        neighbourhood_agreement(a, np.ones((6, 3)))
    with pytest.raises(PrismError, match="n_neighbors must be at most n − 1 = 4"):
        neighbourhood_agreement(a, a, n_neighbors=5)
    with pytest.raises(PrismError, match="n_neighbors must be an integer ≥ 1"):
        nearest_neighbours(a, n_neighbors=0)
    with pytest.raises(PrismError, match="2-D array"):
        nearest_neighbours(np.ones(5))
    with pytest.raises(PrismError, match="NaN"):
        nearest_neighbours(np.full((3, 2), np.nan))
    with pytest.raises(PrismError, match="device must be cpu, cuda or cuda:N"):
        nearest_neighbours(a, n_neighbors=2, device="tpu")
    with pytest.raises(PrismError, match="n must be an integer ≥ 2"):
        chance_agreement(1, 1)


def test_nearest_in_pool_reads_blocks_and_ranks_best_first() -> None:
    from core.measures.neighbours import nearest_in_pool

    rng = np.random.default_rng(3)
    pool = rng.standard_normal((500, 12)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries = pool[[7, 99, 480]] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows, cosines = nearest_in_pool(pool, queries, 5, chunk_rows=64)
    exact = queries @ pool.T
    expected = np.argsort(-exact, axis=1, kind="stable")[:, :5]
    assert rows[:, 0].tolist() == [7, 99, 480]
    assert rows.tolist() == expected.tolist()
    np.testing.assert_allclose(cosines, np.take_along_axis(exact, expected, axis=1), atol=1e-6)
    assert nearest_in_pool(pool[:0], queries, 5)[0].shape == (3, 0)
