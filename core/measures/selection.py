"""The map's selection, scored fast enough for a lasso on 50,000 points.

- ``SelectionScorer``: G-Vendi of any row subset, from the smaller of the k×k kernel and the d×d
  covariance; a selection holding more than half the rows is scored from the whole set's Gram
  matrix minus its complement's, and with tiles of the map (``grid_tiles``) from precomputed
  per-tile Gram matrices, so the cost never exceeds half a full pass.
- ``selection_stats``: what the map shows for one selection (G-Vendi, the random baseline at its
  size from ``core.measures.curves``, cluster coverage), over every selected row; G-Vendi is a
  labelled estimate with an error bound (``SelectionScorer.estimate``, a seeded sample) only where
  the exact one would cost more than ``EXACT_FLOPS``.
- ``versus_random``: whether a selection's G-Vendi is above, below or level with random subsets
  of its size, by one stated rule (``VERSUS_RANDOM_RULE``).

Pure functions on arrays; scores come from ``core.measures.vendi``. Reading a Plotly selection
event into row numbers is the app's (``ui/events.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.measures.clusters import Coverage, coverage
from core.measures.curves import baseline_at
from core.measures.vendi import covariance, vendi_from_covariance


def _g_vendi(gram: np.ndarray) -> float:
    """VS_1 of a Gram matrix (kernel or covariance)."""
    return vendi_from_covariance(gram, qs=(1.0,))[1.0]


TILE_BYTES = 128 * 2**20  # memory for per-tile Gram matrices (float32)
# Above this many floating-point operations (the Gram matrix of 10,000 rows at d = 1,024) a
# selection's G-Vendi is estimated from a sample of at most ESTIMATE_ROWS of its rows.
EXACT_FLOPS = 2e10
ESTIMATE_ROWS = 20_000


def grid_tiles(x: np.ndarray, y: np.ndarray, per_side: int) -> np.ndarray:
    """A tile number per point: per_side columns of equal counts in x, each cut in per_side by y."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    cuts = np.linspace(0, 1, per_side + 1)[1:-1]
    column = np.searchsorted(np.quantile(x, cuts), x) if x.size else np.zeros(0, dtype=np.int64)
    tiles = np.empty(x.size, dtype=np.int64)
    for c in range(per_side):
        inside = column == c
        if inside.any():
            ys = y[inside]
            tiles[inside] = c * per_side + np.searchsorted(np.quantile(ys, cuts), ys)
    return tiles


class SelectionScorer:
    """G-Vendi of row subsets of one feature matrix (n × d unit float32 rows; a memory-mapped
    float32 matrix is used in place, not copied).

    With ``build_tiles`` (tiles of the 2-D map, each with its Gram matrix precomputed), a lasso,
    which takes whole regions of the map, costs only the rows of the tiles it cuts through.
    """

    def __init__(self, features: np.ndarray):
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.n, self.dim = self.features.shape
        self._gram: np.ndarray | None = None
        self._tiles: tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]] | None = None

    @property
    def gram(self) -> np.ndarray:
        """Σ_i u_i u_iᵀ over every row (d × d, float64), computed once."""
        if self._gram is None:
            self._gram = covariance(self.features) * self.n
        return self._gram

    def tiles_per_side(self) -> int:
        """How finely the map can be tiled within TILE_BYTES of Gram matrices."""
        fit = TILE_BYTES // (4 * self.dim * self.dim)
        return int(min(8, max(0, math.isqrt(max(fit, 0)))))

    def build_tiles(self, tiles: np.ndarray) -> None:
        """Precompute the Gram matrix of every tile (tiles: a tile number per row)."""
        tiles = np.asarray(tiles, dtype=np.int64)
        n_tiles = int(tiles.max()) + 1 if tiles.size else 0
        order = np.argsort(tiles, kind="stable")
        sizes = np.bincount(tiles, minlength=n_tiles)
        grams = np.zeros((n_tiles, self.dim, self.dim), dtype=np.float32)
        members = []
        start = 0
        for t in range(n_tiles):
            rows = np.sort(order[start : start + sizes[t]])
            start += sizes[t]
            members.append(rows)
            if rows.size:
                block = self.features[rows]
                grams[t] = block.T @ block
        if self._gram is None:
            self._gram = grams.sum(axis=0, dtype=np.float64)
        self._tiles = (tiles, sizes, grams, members)  # assigned last: all or nothing

    def _gram_of(self, rows: np.ndarray) -> np.ndarray:
        chosen = self.features[rows]
        return (chosen.T @ chosen).astype(np.float64)

    def _plan(self, rows: np.ndarray) -> tuple[str, int, np.ndarray]:
        """The cheapest exact way to score ``rows`` (k > dim): the rows themselves, the whole set
        minus the rest, or tile by tile; with the rows it multiplies and the per-tile counts."""
        k = rows.size
        costs = {"rows": k, "rest": self.n - k}
        counts = np.zeros(0, dtype=np.int64)
        if self._tiles is not None:
            tile_of, sizes, _, _ = self._tiles
            counts = np.bincount(tile_of[rows], minlength=sizes.size)
            costs["tiles"] = int(np.minimum(counts, sizes - counts).sum()) + sizes.size * 64
        way = min(costs, key=costs.__getitem__)
        return way, costs[way], counts

    def exact_flops(self, rows: np.ndarray) -> float:
        """Floating-point operations of the exact ``g_vendi(rows)`` (its matrix products)."""
        rows = np.asarray(rows, dtype=np.int64)
        k = rows.size
        if k <= 1:
            return 0.0
        if k <= self.dim:
            return 2.0 * k * k * self.dim
        return 2.0 * self._plan(rows)[1] * self.dim * self.dim

    def estimate(
        self, rows: np.ndarray, *, sample_rows: int = ESTIMATE_ROWS, seed: int = 0
    ) -> tuple[float, float, int]:
        """G-Vendi of ``features[rows]`` estimated from a seeded sample: (value, bound, m).

        A sample of m rows scores low by an amount that shrinks as 1/m (its covariance is
        noisier); scoring both halves too measures that amount, and the estimate extrapolates
        from m to the k selected rows: VS_m + (VS_m − VS_m/2)(1 − m/k). ``bound`` adds the size
        of that correction to half the gap between the two halves. On clustered sets the exact
        value lies within it (tests/measures/test_selection.py; bench/app_scale.py records both).
        """
        rows = np.asarray(rows, dtype=np.int64)
        k = rows.size
        m = min(k, max(2, int(sample_rows)))
        if m == k:
            return self.g_vendi(rows), 0.0, k
        picked = np.random.default_rng(seed).choice(rows, size=m, replace=False)
        first, second = np.sort(picked[: m // 2]), np.sort(picked[m // 2 :])
        gram_a, gram_b = self._gram_of(first), self._gram_of(second)
        whole, half_a, half_b = _g_vendi(gram_a + gram_b), _g_vendi(gram_a), _g_vendi(gram_b)
        shrink = whole - (half_a + half_b) / 2
        value = whole + shrink * (1 - m / k)
        bound = abs(shrink) * (1 - m / k) + abs(half_a - half_b) / 2
        return float(value), float(bound), m

    def g_vendi(self, rows: np.ndarray) -> float:
        """VS_1 of ``features[rows]`` (rows: unique sorted row numbers)."""
        rows = np.asarray(rows, dtype=np.int64)
        k = rows.size
        if k == 0:
            return float("nan")
        if k == 1:
            return 1.0
        if k <= self.dim:
            chosen = self.features[rows]
            return _g_vendi(chosen @ chosen.T)
        way, _, counts = self._plan(rows)
        if way == "rows":
            return _g_vendi(self._gram_of(rows))
        if way == "rest":
            keep = np.ones(self.n, dtype=bool)
            keep[rows] = False
            return _g_vendi(self.gram - self._gram_of(np.flatnonzero(keep)))
        _, sizes, grams, members_of = self._tiles  # type: ignore[misc]
        selected = np.zeros(self.n, dtype=bool)
        selected[rows] = True
        total = np.zeros((self.dim, self.dim), dtype=np.float64)
        for t in np.flatnonzero(counts):
            if counts[t] == sizes[t]:
                total += grams[t]
                continue
            members = members_of[t]
            inside = members[selected[members]]
            if counts[t] * 2 > sizes[t]:
                total += grams[t]
                total -= self._gram_of(members[~selected[members]])
            else:
                total += self._gram_of(inside)
        return _g_vendi(total)


# ------------------------------------------------------------------------------------------
# Everything the map shows for one selection


ABOVE, BELOW, LEVEL = "above", "below", "level"
# A difference that shows as 0.0 at one decimal is level too (a selection of every row is every
# random subset of its size: its spread is 0 and the difference float rounding).
LEVEL_FLOOR = 0.05
VERSUS_RANDOM_RULE = (
    "level (≈ random) when the selection's G-Vendi is within ± 1 standard deviation of random "
    f"subsets of its size (at least ± {LEVEL_FLOOR}), widened by an estimate's bound"
)


def versus_random(
    g_vendi: float, random_mean: float, random_sd: float | None, *, bound: float | None = None
) -> str:
    """``ABOVE``, ``BELOW`` or ``LEVEL`` with random subsets of the same size, by
    ``VERSUS_RANDOM_RULE``: a difference within the random draws' spread says nothing."""
    margin = max(random_sd or 0.0, LEVEL_FLOOR) + (bound or 0.0)
    difference = g_vendi - random_mean
    if abs(difference) <= margin or math.isnan(difference):
        return LEVEL
    return ABOVE if difference > 0 else BELOW


@dataclass(frozen=True)
class SelectionStats:
    n_selected: int
    n_total: int
    g_vendi: float
    whole_g_vendi: float
    random_mean: float | None
    random_sd: float | None
    coverage: Coverage | None
    # An estimate when the exact score would cost more than EXACT_FLOPS: g_vendi is then within
    # ± g_vendi_bound of the exact value, scored on g_vendi_rows seeded rows of the selection.
    g_vendi_bound: float | None = None
    g_vendi_rows: int | None = None

    @property
    def estimated(self) -> bool:
        return self.g_vendi_bound is not None

    @property
    def versus_random(self) -> str | None:
        """``versus_random`` of this selection, or None while the random baseline is unknown."""
        if self.random_mean is None:
            return None
        return versus_random(
            self.g_vendi, self.random_mean, self.random_sd, bound=self.g_vendi_bound
        )


def selection_stats(
    scorer: SelectionScorer,
    rows: np.ndarray,
    *,
    whole_g_vendi: float,
    curve: pd.DataFrame | None = None,
    labels: np.ndarray | None = None,
    cluster_sizes: Sequence[int] | None = None,
    max_flops: float | None = None,
    seed: int = 0,
) -> SelectionStats:
    """Count, G-Vendi, random baseline and coverage of ``rows``, all over every selected row
    except G-Vendi above ``max_flops`` (default ``EXACT_FLOPS``), which is then a seeded estimate
    with its bound."""
    rows = np.asarray(rows, dtype=np.int64)
    max_flops = EXACT_FLOPS if max_flops is None else max_flops
    bound = used = None
    if scorer.exact_flops(rows) > max_flops:
        sample_rows = max(2_000, min(ESTIMATE_ROWS, int(max_flops / (2 * scorer.dim**2))))
        g_vendi, bound, used = scorer.estimate(rows, sample_rows=sample_rows, seed=seed)
    else:
        g_vendi = scorer.g_vendi(rows)
    mean = sd = None
    if curve is not None and rows.size:
        mean, sd = baseline_at(curve, int(rows.size))
    cover = None
    if labels is not None and cluster_sizes is not None and len(cluster_sizes):
        cover = coverage(labels[rows], reference_sizes=np.asarray(cluster_sizes))
    return SelectionStats(
        n_selected=int(rows.size),
        n_total=scorer.n,
        g_vendi=g_vendi,
        whole_g_vendi=whole_g_vendi,
        random_mean=mean,
        random_sd=sd,
        coverage=cover,
        g_vendi_bound=bound,
        g_vendi_rows=used,
    )
