"""Selection scores at scale: exact where cheap, otherwise a seeded estimate whose bound holds."""

from __future__ import annotations

import numpy as np
import pytest

from core.measures.selection import SelectionScorer, selection_stats
from core.measures.vendi import subset_vendi


def _clustered(n: int, dim: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 50), dim)).astype(np.float32)
    features = centres[rng.integers(0, len(centres), n)]
    features = features + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


@pytest.mark.parametrize(("dim", "spread"), [(64, 0.4), (64, 1.5), (24, 0.2)])
def test_estimate_bound_holds_against_the_exact_score(dim: int, spread: float) -> None:
    features = _clustered(12_000, dim, spread, seed=dim)
    scorer = SelectionScorer(features)
    rows = np.sort(np.random.default_rng(1).choice(12_000, size=9_000, replace=False))
    exact = subset_vendi(features, rows, qs=(1.0,))[1.0]
    for seed in range(3):
        value, bound, used = scorer.estimate(rows, sample_rows=1_000, seed=seed)
        assert used == 1_000
        assert 0 < bound < 0.2 * exact
        assert abs(value - exact) <= bound, (value, bound, exact)
    # The same seed gives the same estimate.
    assert scorer.estimate(rows, sample_rows=1_000, seed=0) == scorer.estimate(
        rows, sample_rows=1_000, seed=0
    )


def test_stats_are_exact_below_the_budget_and_labelled_estimates_above() -> None:
    features = _clustered(6_000, 32, 0.5, seed=3)
    scorer = SelectionScorer(features)
    rows = np.arange(0, 6_000, 2)
    labels = np.arange(6_000) % 40
    sizes = np.bincount(labels).tolist()
    exact = selection_stats(scorer, rows, whole_g_vendi=10.0, labels=labels, cluster_sizes=sizes)
    assert not exact.estimated and exact.g_vendi_rows is None
    assert exact.g_vendi == pytest.approx(subset_vendi(features, rows, qs=(1.0,))[1.0], rel=1e-4)
    assert scorer.exact_flops(rows) > 0
    cheap = selection_stats(
        scorer, rows, whole_g_vendi=10.0, labels=labels, cluster_sizes=sizes, max_flops=1e3
    )
    assert cheap.estimated and cheap.g_vendi_rows == 2_000 and cheap.g_vendi_bound is not None
    assert abs(cheap.g_vendi - exact.g_vendi) <= cheap.g_vendi_bound
    # Count and coverage are over every selected row either way.
    assert cheap.n_selected == exact.n_selected == 3_000
    assert cheap.coverage == exact.coverage and exact.coverage is not None
    assert exact.coverage.n_covered == 20  # even rows only reach the even labels


def test_versus_random_is_level_within_randoms_spread() -> None:
    from core.measures.selection import ABOVE, BELOW, LEVEL, LEVEL_FLOOR, versus_random

    # a selection of every row is every random subset of its size: spread 0, float noise
    assert versus_random(41.2, 41.2 + 1e-12, 0.0) == LEVEL
    assert versus_random(10.0, 10.0 + LEVEL_FLOOR / 2, None) == LEVEL
    assert versus_random(10.9, 10.0, 1.0) == LEVEL  # within one standard deviation
    assert versus_random(9.1, 10.0, 1.0) == LEVEL
    assert versus_random(11.2, 10.0, 1.0) == ABOVE
    assert versus_random(8.8, 10.0, 1.0) == BELOW
    assert versus_random(11.2, 10.0, 1.0, bound=0.5) == LEVEL  # an estimate's bound widens it
    assert versus_random(float("nan"), 10.0, 1.0) == LEVEL


def test_selection_of_every_row_reads_level_with_random() -> None:
    from core.measures.curves import random_baseline
    from core.measures.selection import LEVEL

    rng = np.random.default_rng(3)
    features = rng.standard_normal((60, 8)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    scorer = SelectionScorer(features)
    curve = random_baseline(features, seed=0)
    whole = subset_vendi(features, np.arange(60), qs=[1.0])[1.0]
    stats = selection_stats(scorer, np.arange(60), whole_g_vendi=whole, curve=curve)
    assert stats.random_mean is not None
    assert stats.versus_random == LEVEL
