"""The greedy behind k_center and vendi_greedy makes the eager loop's choices at any size.

The lazy loop (CPU) and the eager loop on a torch device (a GPU when there is one) both.

Ties (exact copies), memory-mapped features, a starting subset and candidate limits included; the
speed at 10⁶ rows is measured in ``bench/scale.py``, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.select.greedy import eager_greedy, lazy_greedy
from core.select.greedy_torch import device_greedy


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


@pytest.mark.parametrize("aggregate", ["sum_sq", "max"])
def test_device_loop_makes_the_eager_choices(aggregate: str) -> None:
    features = clustered(3000, 24, seed=3)
    free = np.ones(len(features), dtype=bool)
    free[:100] = False
    eager = eager_greedy(features, budget=150, chosen=[105], free=free, aggregate=aggregate)
    on_device = device_greedy(
        features, budget=150, chosen=[105], free=free, aggregate=aggregate, device="cpu"
    )
    np.testing.assert_array_equal(features[on_device], features[eager])
    assert len(set(on_device)) == 150 and min(on_device) >= 100


def test_device_loop_stops_when_no_row_is_free() -> None:
    features = clustered(200, 8, seed=4)
    free = np.zeros(200, dtype=bool)
    free[:5] = True
    order = device_greedy(features, budget=50, chosen=[0], free=free, aggregate="max", device="cpu")
    assert sorted(order) == [0, 1, 2, 3, 4]


@pytest.mark.gpu
@pytest.mark.parametrize("aggregate", ["sum_sq", "max"])
def test_gpu_loop_makes_the_lazy_choices_at_scale(aggregate: str) -> None:
    features = clustered(50_000, 64, seed=5)
    free = np.ones(len(features), dtype=bool)
    lazy = lazy_greedy(features, budget=500, chosen=[0], free=free, aggregate=aggregate)
    gpu = device_greedy(
        features, budget=500, chosen=[0], free=free, aggregate=aggregate, device="cuda"
    )
    # Different kernels round differently: near-ties may swap, so the chosen sets nearly agree.
    assert len(set(gpu) & set(lazy)) >= 0.98 * 500
    np.testing.assert_array_equal(features[gpu[:50]], features[lazy[:50]])
