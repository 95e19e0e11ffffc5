"""Regions of the 2-D map: which rows a lasso or box holds, and which rows a big map draws.

- ``PointIndex``: the map's points sorted by y once, so that a polygon (``in_polygon``, even-odd
  rule) or a box (``in_box``) is tested against every point at a cost that follows the rows its
  edges span, not rows × vertices — a many-vertex lasso over 10⁶ points stays well under a second.
- ``points_in_polygon``: the same test for one call, without keeping an index.
- ``rows_in_shapes``: the rows inside the lassos and boxes of a Plotly selection event (their
  polygons and ranges in data coordinates), unioned — what a lasso means on a sampled map.
- ``grid_cells`` / ``density_sample``: a seeded sample of at most ``limit`` rows, stratified on a
  grid over the map: every non-empty cell keeps at least one row (outliers stay visible) and the
  rest of the budget is shared in proportion to each cell's count (dense regions stay dense).

Boundary rule: a point on an edge belongs to the region on its left/below side only (half-open in
y, strict in x), so two regions that share an edge never both hold a point of it.
Pure functions on arrays; nothing here knows about Streamlit or Plotly's objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import PrismError


class PointIndex:
    """Points (x, y), n of them, sorted by y for fast region tests. Inputs are not modified."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise PrismError(
                f"x and y must have the same length; got {x.size:,} and {y.size:,}.", param="coords"
            )
        self.n = int(x.size)
        self._order = np.argsort(y, kind="stable")
        self._xs = x[self._order]
        self._ys = y[self._order]

    def _unsorted(self, inside_sorted: np.ndarray) -> np.ndarray:
        mask = np.empty(self.n, dtype=bool)
        mask[self._order] = inside_sorted
        return mask

    def in_polygon(self, polygon_x: Sequence[float], polygon_y: Sequence[float]) -> np.ndarray:
        """Boolean mask (n,) of the points inside the closed polygon (even-odd rule).

        The polygon may be concave or self-crossing; its last vertex joins its first. Fewer than
        three vertices hold nothing.
        """
        px = np.asarray(polygon_x, dtype=np.float64).ravel()
        py = np.asarray(polygon_y, dtype=np.float64).ravel()
        inside = np.zeros(self.n, dtype=bool)
        if px.size < 3 or px.size != py.size:
            return inside
        qx, qy = np.roll(px, 1), np.roll(py, 1)
        # An edge can only be crossed by a rightward ray from a point whose y lies in
        # [min(ay, by), max(ay, by)): a contiguous run of the y-sorted points.
        starts = np.searchsorted(self._ys, np.minimum(py, qy), side="left")
        stops = np.searchsorted(self._ys, np.maximum(py, qy), side="left")
        for ax, ay, bx, by, start, stop in zip(px, py, qx, qy, starts, stops, strict=True):
            if start == stop:
                continue  # no point in the edge's band (horizontal edges included)
            at_x = ax + (self._ys[start:stop] - ay) * (bx - ax) / (by - ay)
            inside[start:stop] ^= self._xs[start:stop] < at_x
        return self._unsorted(inside)

    def in_box(self, x_range: Sequence[float], y_range: Sequence[float]) -> np.ndarray:
        """Boolean mask (n,) of the points with x and y within the closed ranges (any order)."""
        x0, x1 = sorted(float(v) for v in x_range[:2])
        y0, y1 = sorted(float(v) for v in y_range[:2])
        start = np.searchsorted(self._ys, y0, side="left")
        stop = np.searchsorted(self._ys, y1, side="right")
        inside = np.zeros(self.n, dtype=bool)
        xs = self._xs[start:stop]
        inside[start:stop] = (xs >= x0) & (xs <= x1)
        return self._unsorted(inside)


def points_in_polygon(
    x: np.ndarray, y: np.ndarray, polygon_x: Sequence[float], polygon_y: Sequence[float]
) -> np.ndarray:
    """Boolean mask of the points (x, y) inside a closed polygon (even-odd rule)."""
    return PointIndex(x, y).in_polygon(polygon_x, polygon_y)


def _pair(value: Any) -> list[float] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) < 2:
        return None
    try:
        return [float(value[0]), float(value[1])]
    except (TypeError, ValueError):
        return None


def rows_in_shapes(selection: Mapping[str, Any], points: PointIndex) -> np.ndarray | None:
    """Sorted rows inside any lasso polygon or box of a Plotly selection (data coordinates).

    ``selection`` is the event's ``selection`` dict: ``lasso`` is a list of ``{"x": [...],
    "y": [...]}`` polygons and ``box`` a list of ``{"x": [x0, x1], "y": [y0, y1]}`` ranges (more
    than one when the user adds shapes with Shift held). None when it holds no shape at all.
    """
    mask = np.zeros(points.n, dtype=bool)
    found = False
    for lasso in selection.get("lasso") or []:
        if isinstance(lasso, Mapping):
            mask |= points.in_polygon(lasso.get("x") or [], lasso.get("y") or [])
            found = True
    for box in selection.get("box") or []:
        if not isinstance(box, Mapping):
            continue
        x_range, y_range = _pair(box.get("x")), _pair(box.get("y"))
        if x_range is not None and y_range is not None:
            mask |= points.in_box(x_range, y_range)
            found = True
    return np.flatnonzero(mask) if found else None


# -- the drawn sample of a big map -----------------------------------------------------------------


def cells_per_side(limit: int) -> int:
    """Grid resolution for a sample of ``limit`` rows: at most a quarter of it goes to the
    one-row-per-cell guarantee, and at most 256 × 256 cells."""
    return int(min(256, max(1, math.isqrt(max(limit, 0) // 4))))


def grid_cells(x: np.ndarray, y: np.ndarray, per_side: int) -> np.ndarray:
    """A cell number (0 … per_side² − 1) per point: equal-width bins over the points' extent."""
    if per_side < 1:
        raise PrismError(f"per_side must be at least 1; got {per_side}.", param="per_side")

    def bins(values: np.ndarray) -> np.ndarray:
        values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        if values.size == 0:
            return np.zeros(0, dtype=np.int64)
        low, high = float(values.min()), float(values.max())
        if not high > low:
            return np.zeros(values.size, dtype=np.int64)
        scaled = (values - low) * (per_side / (high - low))
        return np.minimum(scaled.astype(np.int64), per_side - 1)

    return bins(x) * per_side + bins(y)


def density_sample(
    x: np.ndarray,
    y: np.ndarray,
    limit: int,
    *,
    seed: int,
    per_side: int | None = None,
) -> np.ndarray | None:
    """Sorted rows of a seeded sample of at most ``limit`` of the points; None when all fit.

    The map is cut into ``per_side`` × ``per_side`` cells (``cells_per_side(limit)`` by
    default). Each of the m non-empty cells keeps one row; the other ``limit − m`` are shared
    out exactly in proportion: a cell of c points keeps ``1 + ⌊(c − 1)(limit − m)/(n − m)⌋``,
    chosen uniformly at random within the cell. So a cell's drawn share differs from its true
    share by less than one row, and an isolated point is never left out.
    """
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise PrismError(f"limit must be a positive whole number; got {limit!r}.", param="limit")
    n = len(x)
    if n <= limit:
        return None
    side = cells_per_side(int(limit)) if per_side is None else per_side
    if side * side > limit:
        raise PrismError(
            f"per_side = {side} gives {side * side:,} cells, more than the {limit:,} rows drawn; "
            f"use at most {math.isqrt(int(limit))}.",
            param="per_side",
        )
    cells = grid_cells(x, y, side)
    counts = np.bincount(cells, minlength=side * side).astype(np.int64)
    m = int(np.count_nonzero(counts))
    quota = np.where(counts > 0, 1 + ((counts - 1) * (int(limit) - m)) // (n - m), 0)
    priority = np.random.default_rng(seed).random(n)
    order = np.lexsort((priority, cells))  # by cell, then by a seeded random priority
    starts = np.cumsum(counts) - counts
    in_cell = cells[order]
    rank = np.arange(n) - starts[in_cell]
    return np.sort(order[rank < quota[in_cell]])
