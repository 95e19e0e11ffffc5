"""Selectors: determinism, budgets, valid ids, and the property each one exists for."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.measures.vendi import vendi_score
from core.select.selectors import (
    DEDUPE_THRESHOLD,
    SELECTORS,
    Pool,
    near_duplicates,
    quotas,
    select,
)
from core.validate import check_budget

N, DIM, N_CLUSTERS = 600, 32, 12
# The targeted selectors rank by a target's relevance and use no seed (tests/select/test_targeted.py).
UNTARGETED = sorted(m for m, spec in SELECTORS.items() if not spec.needs_target)


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered() -> Pool:
    """Zipf-sized clusters of tight directions: random sampling over-draws the big clusters."""
    rng = np.random.default_rng(7)
    weights = 1.0 / np.arange(1, N_CLUSTERS + 1) ** 1.2
    labels = rng.choice(N_CLUSTERS, size=N, p=weights / weights.sum())
    labels[:N_CLUSTERS] = np.arange(N_CLUSTERS)
    centres = rng.standard_normal((N_CLUSTERS, DIM))
    features = unit(centres[labels] + 0.35 * rng.standard_normal((N, DIM)))
    loss = np.exp(rng.normal(0.3, 0.2, N))  # what the quality selectors read
    return Pool(features, labels=labels, columns={"loss": loss})


# Options the generic tests run a selector with: the quality filter's cosine threshold high
# enough that more rows than the budget pass within these tight clusters.
OPTIONS = {"quality_diverse": {"threshold": 0.97}}


@pytest.mark.parametrize("method", UNTARGETED)
def test_selector_is_deterministic_valid_and_within_budget(method: str, clustered: Pool) -> None:
    k = 50
    options = OPTIONS.get(method, {})
    first = select(method, clustered, budget=k, seed=3, **options)
    again = select(method, clustered, budget=k, seed=3, **options)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.int64
    assert len(first) == len(set(first.tolist())), "ids must be unique"
    assert first.min() >= 0 and first.max() < N
    assert len(first) <= k
    spec = SELECTORS[method]
    if not spec.is_filter:
        assert len(first) == k
    # A seeded selector uses its seed: the filters sample what passes (more rows pass than the
    # budget here), the others draw their rows or their first row with it. The others give the
    # same rows for every seed.
    other = select(method, clustered, budget=k, seed=4, **options)
    assert np.array_equal(np.sort(first), np.sort(other)) != spec.seeded
    if spec.is_filter:
        passing = select(method, clustered, budget=None, seed=3, **options)
        assert len(passing) > k and len(first) == k and np.isin(first, passing).all()
    if method == "sparse_clusters":
        sizes = np.bincount(clustered.labels)
        assert (sizes[clustered.labels[first]] < np.median(sizes)).all()
    if method == "dedupe":
        cosines = clustered.features[first] @ clustered.features[first].T
        assert (cosines[~np.eye(k, dtype=bool)] < DEDUPE_THRESHOLD).all()


@pytest.mark.parametrize("method", ["random", "cluster_balanced", "k_center", "vendi_greedy"])
def test_fraction_budget_and_start_subset(method: str, clustered: Pool) -> None:
    rows = select(method, clustered, budget=0.1, seed=0)
    assert len(rows) == 60
    start = np.array([5, 17, 300])
    grown = select(method, clustered, budget=40, seed=0, start=start)
    assert len(grown) == 40
    np.testing.assert_array_equal(grown[:3], start)


def test_candidates_limit_what_is_added(clustered: Pool) -> None:
    candidates = np.arange(100, 250)
    pool = Pool(
        clustered.features,
        labels=clustered.labels,
        candidates=candidates,
        columns=clustered.columns,
    )
    for method in UNTARGETED:
        rows = select(method, pool, budget=30, seed=1, **OPTIONS.get(method, {}))
        assert np.isin(rows, candidates).all(), method


def test_vendi_greedy_beats_median_random(clustered: Pool) -> None:
    k = 40
    greedy = vendi_score(clustered.features[select("vendi_greedy", clustered, budget=k, seed=0)])
    randoms = [
        vendi_score(clustered.features[select("random", clustered, budget=k, seed=s)])
        for s in range(11)
    ]
    assert greedy > np.median(randoms)
    assert greedy > max(randoms)  # on clustered data it is not even close


def test_vendi_greedy_rescore_scores_at_least_as_high_in_order_one(clustered: Pool) -> None:
    plain = select("vendi_greedy", clustered, budget=25, seed=0)
    rescored = select("vendi_greedy", clustered, budget=25, seed=0, rescore=6)
    assert len(rescored) == 25
    assert (
        vendi_score(clustered.features[rescored]) >= vendi_score(clustered.features[plain]) - 1e-6
    )


def test_vendi_greedy_prefix_is_the_smaller_budget(clustered: Pool) -> None:
    long = select("vendi_greedy", clustered, budget=60, seed=2)
    short = select("vendi_greedy", clustered, budget=20, seed=2)
    np.testing.assert_array_equal(long[:20], short)


def test_k_center_spreads_out(clustered: Pool) -> None:
    rows = select("k_center", clustered, budget=N_CLUSTERS, seed=0)
    # One farthest-point pass over tight clusters lands in a different cluster each time.
    assert len(set(clustered.labels[rows].tolist())) >= N_CLUSTERS - 1
    radius = 1 - (clustered.features @ clustered.features[rows].T).max(axis=1)
    random_rows = select("random", clustered, budget=N_CLUSTERS, seed=0)
    random_radius = 1 - (clustered.features @ clustered.features[random_rows].T).max(axis=1)
    assert radius.max() < random_radius.max()


def test_cluster_balanced_covers_every_cluster(clustered: Pool) -> None:
    for k in (N_CLUSTERS, N_CLUSTERS + 5, 100):
        rows = select("cluster_balanced", clustered, budget=k, seed=0)
        assert len(rows) == k
        assert set(clustered.labels[rows].tolist()) == set(range(N_CLUSTERS))


def test_quotas_water_fill_then_largest() -> None:
    np.testing.assert_array_equal(quotas(np.array([10, 2, 5]), 9), [4, 2, 3])
    np.testing.assert_array_equal(quotas(np.array([10, 2, 5]), 10), [4, 2, 4])
    np.testing.assert_array_equal(quotas(np.array([3, 3]), 100), [3, 3])
    counts = quotas(np.array([50, 40, 7, 1]), 20)
    assert counts.sum() == 20 and counts[3] == 1 and counts[2] == 6


def test_sparse_clusters_keeps_exactly_the_small_clusters(clustered: Pool) -> None:
    rows = select("sparse_clusters", clustered, budget=None, seed=0)
    sizes = np.bincount(clustered.labels)
    small = np.flatnonzero(sizes < np.median(sizes))
    assert set(clustered.labels[rows].tolist()) == set(small.tolist())
    assert len(rows) == int(sizes[small].sum())
    sampled = select("sparse_clusters", clustered, budget=10, seed=0)
    assert len(sampled) == 10 and np.isin(sampled, rows).all()


def test_dedupe_removes_planted_duplicates_and_nothing_else() -> None:
    rng = np.random.default_rng(0)
    base = unit(rng.standard_normal((300, 64)))  # random directions: max cosine ≈ 0.5
    twins_of = rng.choice(300, size=40, replace=False)
    noise = 0.01 * rng.standard_normal((40, 64))
    twins = unit(base[twins_of] + noise)  # cosine ≈ 0.997 with their original
    features = np.vstack([base, twins])
    rows = select("dedupe", Pool(features), budget=None, seed=0, threshold=0.95)
    np.testing.assert_array_equal(np.sort(rows), np.arange(300))
    twin = near_duplicates(features, threshold=0.95)
    np.testing.assert_array_equal(twin[300:], twins_of)
    assert (twin[:300] == -1).all()


def test_dedupe_crosses_blocks_and_keeps_one_per_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.select.selectors as select_module

    monkeypatch.setattr(select_module, "BLOCK_ROWS", 7)  # duplicates land in different blocks
    rng = np.random.default_rng(1)
    base = unit(rng.standard_normal((20, 16)))
    features = np.vstack([base, base[::-1], base[:5]])  # each base row appears 2–3 times
    rows = select("dedupe", Pool(features), budget=None, seed=0, threshold=0.99)
    np.testing.assert_array_equal(np.sort(rows), np.arange(20))


def test_bad_input_is_refused_with_a_message(clustered: Pool) -> None:
    with pytest.raises(PrismError, match="Unknown selector"):
        select("best", clustered, budget=5)
    with pytest.raises(PrismError, match="budget"):
        select("random", clustered, budget=None)
    with pytest.raises(PrismError, match="more than"):
        select("random", clustered, budget=N + 1)
    with pytest.raises(PrismError, match="whole number"):
        select("random", clustered, budget=2.5)
    with pytest.raises(PrismError, match="no option"):
        select("k_center", clustered, budget=5, threshold=0.3)
    with pytest.raises(PrismError, match="threshold"):
        select("dedupe", clustered, budget=None, threshold=1.5)
    with pytest.raises(PrismError, match="prism cluster"):
        select("cluster_balanced", Pool(clustered.features), budget=5)
    with pytest.raises(PrismError, match="more than the budget"):
        select("random", clustered, budget=2, start=np.array([1, 2, 3]))
    with pytest.raises(PrismError, match=r"budget = 10 is more than the 5 rows") as error:
        select("random", Pool(clustered.features, candidates=np.arange(5)), budget=10)
    assert error.value.param == "budget"  # the CLI shows it as --k, the app beside the budget
    assert check_budget(0.5, 10) == 5 and check_budget(3, 10) == 3


@pytest.mark.parametrize("aggregate", ["sum_sq", "max"])
@pytest.mark.parametrize("batch", [1, 16, 4096])
def test_lazy_greedy_makes_the_eager_choices(clustered: Pool, aggregate: str, batch: int) -> None:
    from core.select.greedy import eager_greedy, lazy_greedy

    free = np.ones(N, dtype=bool)
    eager = eager_greedy(clustered.features, budget=60, chosen=[11], free=free, aggregate=aggregate)
    lazy = lazy_greedy(
        clustered.features, budget=60, chosen=[11], free=free, aggregate=aggregate, batch=batch
    )
    assert lazy == eager
