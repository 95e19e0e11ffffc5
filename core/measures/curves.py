"""G-Vendi against subset size: selectors' budget curves and random baselines, in one schema.

Every curve in Prism (the Compare page's budget curves, the map's and the Subsets page's random
baseline, ``prism compare --curves``, the curves stored in a workspace) is one of two tables:

- raw, ``RAW_COLUMNS``: method, seed, size, g_vendi — the G-Vendi of one ordered subset;
- summary, ``CURVE_COLUMNS``: method, size, mean, sd, low, high, n_seeds — over the seeds per
  (method, size); a random baseline is the summary's ``method == "random"`` rows, its seeds the
  random draws.

- ``prefix_vendi``: G-Vendi of ``features[order[:s]]`` for several s, incrementally (the s×s
  kernel while s ≤ d, then a running d×d covariance): the one engine every curve is scored by.
- ``summarise_curves``: raw → summary.
- ``random_baseline``: the random rows of a feature matrix: random permutations, each scored
  prefix by prefix in one pass, fewer draws where a draw is dear and its spread small.
- ``budget_sizes`` / ``random_budget_sizes``: log-spaced sizes spanning the set (from a few rows
  to the largest budget).
- ``baseline_at`` / ``random_mean_at`` / ``random_equivalent``: the random curve read at a size,
  or the size at which it reaches a score — log–log interpolation from one row (G-Vendi exactly
  1), so a 5-row subset is matched against random subsets of about 5 rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from core.errors import PrismError
from core.measures.vendi import vendi_from_covariance
from core.validate import check_features, check_seed

RAW_COLUMNS = ("method", "seed", "size", "g_vendi")
CURVE_COLUMNS = ("method", "size", "mean", "sd", "low", "high", "n_seeds")
RANDOM = "random"
ABOVE_RANDOM = "above every random size"  # what a G-Vendi above the whole random curve reads as
SMALL_RANDOM_SIZES = (1, 2, 3, 5, 10)  # random subsets scored below the selectors' smallest budget
SMALLEST_BUDGET = 20  # the curves' smallest budget once a set has 200 rows or more


def _g_vendi(gram: np.ndarray) -> float:
    return vendi_from_covariance(gram, qs=(1.0,))[1.0]


def prefix_vendi(features: np.ndarray, order: np.ndarray, sizes: Iterable[int]) -> list[float]:
    """G-Vendi of ``features[order[:s]]`` for each s in ``sizes`` (ascending), incrementally:
    the s × s kernel while s ≤ d, then a running d × d covariance (float64 throughout)."""
    order = np.asarray(order, dtype=np.int64)
    dim = features.shape[1]
    out: list[float] = []
    cov = np.zeros((dim, dim), dtype=np.float64)
    filled = 0
    for size in sizes:
        if size > len(order):
            raise PrismError(
                f"prefix size {size} exceeds the {len(order)} ordered rows.", param="sizes"
            )
        if size <= dim:
            block = np.asarray(features[np.sort(order[:size])], dtype=np.float64)
            out.append(_g_vendi(block @ block.T))
            continue
        # Sorted reads are sequential on a memmap; the sum does not depend on row order.
        block = np.asarray(features[np.sort(order[filled:size])], dtype=np.float64)
        cov += block.T @ block
        filled = size
        out.append(_g_vendi(cov))
    return out


def summarise_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Raw curves → the summary: mean, sd, low, high and n_seeds over seeds per (method, size)."""
    grouped = curves.groupby(["method", "size"], sort=False)["g_vendi"]
    out = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.rename(columns={"std": "sd", "min": "low", "max": "high", "count": "n_seeds"})


def budget_sizes(
    n: int,
    *,
    largest: int | None = None,
    points: int = 10,
    smallest: int | None = None,
    extra: Iterable[int] = (),
) -> list[int]:
    """Log-spaced sizes from a few rows to ``largest`` (default n), both included, and the
    ``extra`` sizes in that range (a workspace's subsets, so each is scored at its own size).

    The smallest size is ``smallest`` if given, else a tenth of the largest, from 2 to
    ``SMALLEST_BUDGET``: 24 rows give 3, 4, 5, … 24, so a 25 % subset is on the curve.
    """
    top = max(1, min(n, largest or n))
    low = min(smallest if smallest is not None else max(2, min(SMALLEST_BUDGET, top // 10)), top)
    sizes = {int(s) for s in np.round(np.geomspace(low, top, points))}
    return sorted(sizes | {int(s) for s in extra if low <= int(s) <= top})


def random_budget_sizes(n: int) -> list[int]:
    """The sizes random subsets are scored at: a few small ones (a subset of one row has G-Vendi
    exactly 1), then ``budget_sizes`` up to all ``n`` rows, so that small subsets are matched
    against measured random ones rather than clamped to the smallest budget."""
    return sorted({s for s in SMALL_RANDOM_SIZES if s <= n} | set(budget_sizes(n)))


def _draws(size: int, n: int, dim: int) -> int:
    """Fewer draws where a draw is dear and its spread small."""
    if size >= n:
        return 1
    if size <= 256:
        return 8
    return 4 if size <= dim else 3


def random_baseline(
    features: np.ndarray, *, sizes: Sequence[int] | None = None, seed: int = 0
) -> pd.DataFrame:
    """G-Vendi of uniformly random subsets per size, as the summary's ``random`` rows.

    Each draw is one seeded random permutation; a size-s subset is its first s rows, so every
    draw is one pass over the data (``prefix_vendi``). Default sizes: 12 log-spaced from 10 to n.
    """
    features = check_features(features, min_rows=1)
    seed = check_seed(seed)
    n, dim = features.shape
    wanted = budget_sizes(n, points=12, smallest=10) if sizes is None else sizes
    grid = sorted({min(int(s), n) for s in wanted if int(s) >= 1})
    if not grid:
        raise PrismError(f"sizes must hold at least one size ≥ 1; got {sizes!r}.", param="sizes")
    rng = np.random.default_rng(seed)
    records = []
    for draw in range(max(_draws(s, n, dim) for s in grid)):
        order = rng.permutation(n)
        sizes_now = [s for s in grid if draw < _draws(s, n, dim)]
        for size, value in zip(sizes_now, prefix_vendi(features, order, sizes_now), strict=True):
            records.append({"method": RANDOM, "seed": draw, "size": size, "g_vendi": value})
    return summarise_curves(pd.DataFrame(records, columns=list(RAW_COLUMNS)))


def _random_curve(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(log size, log mean G-Vendi) of the random curve, from (1, 1) on and non-decreasing.

    One row has G-Vendi exactly 1, so the curve starts at (1, 1) whatever sizes were measured;
    between measured sizes it is read as a power law (linear in log–log), which is exact for
    near-orthogonal rows (G-Vendi ≈ size) and follows the curve where it saturates.
    """
    curve = summary[summary["method"] == RANDOM] if "method" in summary else summary
    curve = curve.sort_values("size")
    curve = curve[curve["size"] > 1]
    if curve.empty:
        return None
    sizes = np.concatenate([[1.0], curve["size"].to_numpy(dtype=float)])
    means = np.concatenate([[1.0], np.maximum(curve["mean"].to_numpy(dtype=float), 1.0)])
    return np.log(sizes), np.log(np.maximum.accumulate(means))


def random_mean_at(summary: pd.DataFrame, size: int) -> float | None:
    """Mean G-Vendi of random subsets of ``size`` rows (log–log interpolation of the curve);
    None when the summary has no random rows above one row."""
    curve = _random_curve(summary)
    if curve is None:
        return None
    log_sizes, log_means = curve
    return float(np.exp(np.interp(math.log(max(size, 1)), log_sizes, log_means)))


def baseline_at(curve: pd.DataFrame, size: int) -> tuple[float, float]:
    """(mean, sd) of random-subset G-Vendi at ``size``: ``random_mean_at`` and the spread
    interpolated in log size; (1, 0) for one row, NaNs when the curve has no random rows."""
    if size <= 1:
        return 1.0, 0.0
    mean = random_mean_at(curve, size)
    if mean is None:
        return math.nan, math.nan
    rows = curve[curve["method"] == RANDOM] if "method" in curve else curve
    rows = rows.sort_values("size")
    sd = float(
        np.interp(math.log(size), np.log(rows["size"].to_numpy(float)), rows["sd"].to_numpy(float))
    )
    return mean, sd


def random_equivalent(summary: pd.DataFrame, value: float) -> float | None:
    """The subset size at which random subsets reach G-Vendi ``value`` (log–log interpolation of
    the mean random curve, from one row at G-Vendi 1); None if ``value`` is above the random
    curve's largest point (``ABOVE_RANDOM``)."""
    curve = _random_curve(summary)
    if curve is None:
        return None
    log_sizes, log_means = curve
    if value > math.exp(log_means[-1]) * (1 + 1e-9):  # the whole set's own score reads as it
        return None
    log_value = math.log(min(max(value, 1.0), math.exp(log_means[-1])))
    # np.interp needs strictly increasing x: plateaus read as their smallest size.
    keep = np.concatenate([[True], np.diff(log_means) > 0])
    return float(np.exp(np.interp(log_value, log_means[keep], log_sizes[keep])))
