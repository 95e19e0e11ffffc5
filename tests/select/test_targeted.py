"""The targeted selectors: top-k by relevance, round-robin over target groups, Vendi in a shortlist."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.measures.relevance import group_relevance
from core.measures.vendi import vendi_score
from core.select.selectors import SELECTORS, Pool, select

N, DIM = 400, 24


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def pool() -> Pool:
    """Three tight modes; a two-group target near modes 0 (six examples) and 1 (two examples)."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((3, DIM))
    modes = rng.choice(3, size=N, p=[0.6, 0.1, 0.3])
    features = unit(centres[modes] + 0.6 * rng.standard_normal((N, DIM)))
    target = unit(centres[[0] * 6 + [1] * 2] + 0.3 * rng.standard_normal((8, DIM)))
    groups = np.array([0] * 6 + [1] * 2)
    relevance = group_relevance(features, target, groups=groups)
    return Pool(features, relevance=relevance)


def test_targeted_is_the_top_k_by_relevance(pool: Pool) -> None:
    rows = select("targeted", pool, budget=30, seed=0, target="t")
    best = pool.relevance.max(axis=1)
    np.testing.assert_array_equal(rows, np.argsort(-best, kind="stable")[:30])
    assert (np.diff(best[rows]) <= 0).all()


def test_round_robin_visits_every_group_in_turn(pool: Pool) -> None:
    turns = select("targeted", pool, budget=20, seed=0, round_robin="true")
    scores = pool.relevance
    taken: set[int] = set()
    for i, row in enumerate(turns.tolist()):
        g = i % 2  # the groups take turns; each adds its own best row not taken yet
        free = [r for r in np.argsort(-scores[:, g], kind="stable").tolist() if r not in taken]
        assert row == free[0], (i, g)
        taken.add(row)
    assert set(turns[:2].tolist()) >= {int(scores[:, 0].argmax())}


@pytest.mark.parametrize("method", ["targeted", "targeted_diverse"])
def test_deterministic_within_and_start(method: str, pool: Pool) -> None:
    first = select(method, pool, budget=25, seed=0)
    np.testing.assert_array_equal(first, select(method, pool, budget=25, seed=0))
    np.testing.assert_array_equal(first, select(method, pool, budget=25, seed=9))  # no seed used
    assert len(set(first.tolist())) == 25
    candidates = np.arange(100, 300)
    limited = Pool(pool.features, relevance=pool.relevance, candidates=candidates)
    rows = select(method, limited, budget=25, seed=0)
    assert np.isin(rows, candidates).all() and len(rows) == 25
    start = np.array([3, 7])
    grown = select(method, pool, budget=25, seed=0, start=start)
    np.testing.assert_array_equal(grown[:2], start)
    assert len(set(grown.tolist())) == 25


def test_targeted_diverse_trades_a_little_relevance_for_diversity(pool: Pool) -> None:
    budget = 20
    top = select("targeted", pool, budget=budget, seed=0)
    diverse = select("targeted_diverse", pool, budget=budget, seed=0)
    best = pool.relevance.max(axis=1)
    shortlist = np.argsort(-best, kind="stable")[: 4 * budget]
    assert np.isin(diverse, shortlist).all()
    assert diverse[0] == top[0]
    assert vendi_score(pool.features[diverse]) > vendi_score(pool.features[top])
    tight = select("targeted_diverse", pool, budget=budget, seed=0, shortlist=budget)
    np.testing.assert_array_equal(np.sort(tight), np.sort(top))


def test_targeted_needs_a_target_and_checks_options(pool: Pool) -> None:
    bare = Pool(pool.features)
    for method in ("targeted", "targeted_diverse"):
        assert SELECTORS[method].needs_target
        with pytest.raises(PrismError) as error:
            select(method, bare, budget=5)
        assert error.value.param == "target"
    with pytest.raises(PrismError, match="true or false"):
        select("targeted", pool, budget=5, round_robin="maybe")
    with pytest.raises(PrismError, match="mean-max or max"):
        select("targeted", pool, budget=5, agg="mean")
    with pytest.raises(PrismError) as error:
        select("targeted_diverse", pool, budget=10, shortlist=5)
    assert error.value.param == "shortlist"
