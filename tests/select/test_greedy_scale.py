"""The lazy greedy behind k_center and vendi_greedy makes the eager loop's choices at any size.

Ties (exact copies), memory-mapped features, a starting subset and candidate limits included; the
speed at 10⁶ rows is measured in ``bench/scale.py``, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.select.greedy import eager_greedy, lazy_greedy


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 20, dim))
    rows = centres[rng.integers(0, len(centres), n)] + 0.4 * rng.standard_normal((n, dim))
    rows[rng.choice(n, n // 10, replace=False)] = rows[rng.integers(0, n, n // 10)]  # copies
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("aggregate", ["sum_sq", "max"])
@pytest.mark.parametrize("batch", [1, 7, 64, 100_000])
def test_lazy_makes_the_eager_choices_with_copies(aggregate: str, batch: int) -> None:
    features = clustered(3000, 24, seed=1)
    free = np.ones(len(features), dtype=bool)
    eager = eager_greedy(features, budget=150, chosen=[5], free=free, aggregate=aggregate)
    lazy = lazy_greedy(
        features, budget=150, chosen=[5], free=free, aggregate=aggregate, batch=batch
    )
    # Copies tie exactly in exact arithmetic; float32 rounding along the two paths may pick
    # another copy first, so the choices agree as rows: the same features in the same order.
    np.testing.assert_array_equal(features[lazy], features[eager])
    assert len(set(lazy)) == 150


@pytest.mark.parametrize("aggregate", ["sum_sq", "max"])
def test_memory_map_start_rows_and_candidates(tmp_path: Path, aggregate: str) -> None:
    features = clustered(2000, 16, seed=2)
    np.save(tmp_path / "f.npy", features, allow_pickle=False)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    free = np.zeros(len(features), dtype=bool)
    free[300:1700] = True
    start = [3, 1999, 40]
    eager = eager_greedy(features, budget=90, chosen=start, free=free, aggregate=aggregate)
    lazy = lazy_greedy(mapped, budget=90, chosen=start, free=free, aggregate=aggregate, batch=32)
    np.testing.assert_array_equal(features[lazy], features[eager])
    assert lazy[:3] == start and all(300 <= i < 1700 for i in lazy[3:])


def test_all_rows_identical_are_taken_in_row_order() -> None:
    features = np.tile(np.eye(1, 8, dtype=np.float32), (50, 1))
    free = np.ones(50, dtype=bool)
    for aggregate in ("sum_sq", "max"):
        lazy = lazy_greedy(features, budget=10, chosen=[7], free=free, aggregate=aggregate)
        assert lazy == [7, 0, 1, 2, 3, 4, 5, 6, 8, 9]
