"""Dedupe through a faiss index: the same kept rows and twins as the exact loop."""

from __future__ import annotations

import numpy as np
import pytest

import core.select.selectors as selectors
from core.errors import PrismError
from core.select.dedupe_index import indexed_near_duplicates
from core.select.pool import Pool
from core.select.selectors import near_duplicates, select


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def planted_duplicates(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1,500 random directions, 300 near-copies of some, and chains (copies of copies)."""
    rng = np.random.default_rng(seed)
    base = unit(rng.standard_normal((1500, 48)))  # random directions: max cosine ≈ 0.6
    twins_of = rng.choice(1500, size=300, replace=True)  # some rows get several copies
    twins = unit(base[twins_of] + 0.02 * rng.standard_normal((300, 48)))
    features = np.vstack([base, twins, twins[:50]])  # exact copies of copies too
    order = rng.permutation(len(features))  # duplicates before and after their originals
    return features[order], order


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("approximate", [False, True], ids=["flat", "ivf"])
def test_index_keeps_the_rows_of_the_exact_loop(seed: int, approximate: bool) -> None:
    features, _ = planted_duplicates(seed)
    exact = near_duplicates(features, threshold=0.95, method="exact")
    indexed = indexed_near_duplicates(features, threshold=0.95, approximate=approximate)
    assert (exact >= 0).sum() >= 300  # the planted duplicates are there to be found
    # Flat is exact; IVF probes 16 of its lists, which on this set finds every pair too.
    np.testing.assert_array_equal(indexed < 0, exact < 0)
    np.testing.assert_array_equal(indexed, exact)


def test_index_follows_the_given_row_order() -> None:
    features, _ = planted_duplicates(2)
    rows = np.random.default_rng(5).permutation(len(features))[:1200]
    exact = near_duplicates(features, threshold=0.9, rows=rows, method="exact")
    indexed = near_duplicates(features, threshold=0.9, rows=rows, method="index")
    np.testing.assert_array_equal(indexed, exact)
    # Every dropped row has a kept twin, earlier in the order, at cosine ≥ threshold.
    position = {int(r): i for i, r in enumerate(rows)}
    for i in np.flatnonzero(indexed >= 0):
        twin = int(indexed[i])
        assert position[twin] < i and exact[position[twin]] == -1
        assert float(features[rows[i]] @ features[twin]) >= 0.9 - 1e-6


def test_dedupe_selector_switches_to_the_index_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    features, _ = planted_duplicates(3)
    small = select("dedupe", Pool(features), budget=None, seed=0, threshold=0.95)
    monkeypatch.setattr(selectors, "DEDUPE_INDEX_MIN_ROWS", 100)
    calls: list[int] = []
    original = selectors.indexed_near_duplicates

    def counted(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(selectors, "indexed_near_duplicates", counted)
    large = select("dedupe", Pool(features), budget=None, seed=0, threshold=0.95)
    assert calls == [1]
    np.testing.assert_array_equal(large, small)


def test_bad_options_are_refused() -> None:
    features, _ = planted_duplicates(0)
    with pytest.raises(PrismError, match="threshold") as caught:
        indexed_near_duplicates(features, threshold=1.5)
    assert caught.value.param == "threshold"
    with pytest.raises(PrismError, match="method") as caught:
        near_duplicates(features, method="fast")
    assert caught.value.param == "method"
    assert indexed_near_duplicates(features[:0], threshold=0.9).shape == (0,)


def test_many_copies_of_one_row_keep_one() -> None:
    """More copies than a row consults (MAX_PAIRS): still only the first copy is kept."""
    from core.select.dedupe_index import MAX_PAIRS

    rng = np.random.default_rng(4)
    features = unit(rng.standard_normal((600, 32)))
    copies = rng.choice(600, size=4 * MAX_PAIRS, replace=False)
    features[copies] = features[copies[0]]
    for approximate in (False, True):
        twin = indexed_near_duplicates(features, threshold=0.95, approximate=approximate)
        first = int(np.sort(copies)[0])
        assert twin[first] == -1
        np.testing.assert_array_equal(twin[np.sort(copies)[1:]], first)
        np.testing.assert_array_equal(twin, near_duplicates(features, threshold=0.95))


def test_inverted_lists_find_the_exact_drops_on_a_clustered_set() -> None:
    """20,000 clustered rows, 1,000 near-copies: the lists find every pair the exact loop finds,
    and every row they drop has a kept twin, earlier, at cosine ≥ threshold."""
    rng = np.random.default_rng(6)
    centres = rng.standard_normal((2000, 32))
    features = unit(
        centres[rng.integers(0, 2000, 20_000)] + 0.5 * rng.standard_normal((20_000, 32))
    )
    copies = rng.choice(20_000, size=1000, replace=False)
    features[copies] = unit(
        features[rng.integers(0, 20_000, 1000)] + 0.01 * rng.standard_normal((1000, 32))
    )
    exact = near_duplicates(features, threshold=0.95, method="exact")
    lists = indexed_near_duplicates(features, threshold=0.95, approximate=True)
    dropped = np.flatnonzero(lists >= 0)
    assert (exact >= 0).sum() >= 900
    recall = np.isin(np.flatnonzero(exact >= 0), dropped).mean()
    assert recall >= 0.99, recall
    assert (lists[dropped] < dropped).all() and (lists[lists[dropped]] == -1).all()
    cosines = np.einsum("ij,ij->i", features[dropped], features[lists[dropped]])
    assert (cosines >= 0.95 - 1e-6).all()
