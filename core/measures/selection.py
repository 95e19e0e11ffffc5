"""The map's selection, scored fast enough for a lasso on 50,000 points.

- ``SelectionScorer``: G-Vendi of any row subset, from the smaller of the k×k kernel and the d×d
  covariance; a selection holding more than half the rows is scored from the whole set's Gram
  matrix minus its complement's, and with tiles of the map (``grid_tiles``) from precomputed
  per-tile Gram matrices, so the cost never exceeds half a full pass.
- ``selection_stats``: what the map shows for one selection (G-Vendi, the random baseline at its
  size from ``core.measures.curves``, cluster coverage).
- ``rows_from_event`` / ``points_in_polygon`` / ``event_signature``: the global row numbers of a
  Plotly selection event (``customdata`` holds the row number; a lasso or box on a sampled map
  is resolved against every point's coordinates).

Pure functions on arrays and event dicts; scores come from ``core.measures.vendi``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.measures.clusters import Coverage, coverage
from core.measures.curves import baseline_at
from core.measures.vendi import covariance, vendi_from_covariance


def _g_vendi(gram: np.ndarray) -> float:
    """VS_1 of a Gram matrix (kernel or covariance)."""
    return vendi_from_covariance(gram, qs=(1.0,))[1.0]


TILE_BYTES = 128 * 2**20  # memory for per-tile Gram matrices (float32)


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
    """G-Vendi of row subsets of one feature matrix (n × d unit rows, held in memory as float32).

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
        # The cheapest of: the rows themselves, the whole set minus the rest, or tile by tile.
        costs = {"rows": k, "rest": self.n - k}
        tiles = self._tiles
        if tiles is not None:
            tile_of, sizes, _, _ = tiles
            counts = np.bincount(tile_of[rows], minlength=sizes.size)
            costs["tiles"] = int(np.minimum(counts, sizes - counts).sum()) + sizes.size * 64
        way = min(costs, key=costs.__getitem__)
        if way == "rows":
            return _g_vendi(self._gram_of(rows))
        if way == "rest":
            keep = np.ones(self.n, dtype=bool)
            keep[rows] = False
            return _g_vendi(self.gram - self._gram_of(np.flatnonzero(keep)))
        tile_of, sizes, grams, members_of = tiles  # type: ignore[misc]
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


@dataclass(frozen=True)
class SelectionStats:
    n_selected: int
    n_total: int
    g_vendi: float
    whole_g_vendi: float
    random_mean: float | None
    random_sd: float | None
    coverage: Coverage | None


def selection_stats(
    scorer: SelectionScorer,
    rows: np.ndarray,
    *,
    whole_g_vendi: float,
    curve: pd.DataFrame | None = None,
    labels: np.ndarray | None = None,
    cluster_sizes: Sequence[int] | None = None,
) -> SelectionStats:
    rows = np.asarray(rows, dtype=np.int64)
    mean = sd = None
    if curve is not None and rows.size:
        mean, sd = baseline_at(curve, int(rows.size))
    cover = None
    if labels is not None and cluster_sizes is not None and len(cluster_sizes):
        cover = coverage(labels[rows], reference_sizes=np.asarray(cluster_sizes))
    return SelectionStats(
        n_selected=int(rows.size),
        n_total=scorer.n,
        g_vendi=scorer.g_vendi(rows),
        whole_g_vendi=whole_g_vendi,
        random_mean=mean,
        random_sd=sd,
        coverage=cover,
    )


# ------------------------------------------------------------------------------------------
# Plotly selection events


def points_in_polygon(
    x: np.ndarray, y: np.ndarray, polygon_x: Sequence[float], polygon_y: Sequence[float]
) -> np.ndarray:
    """Boolean mask of the points (x, y) inside a closed polygon (even-odd rule, ray casting)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    px = np.asarray(polygon_x, dtype=np.float64)
    py = np.asarray(polygon_y, dtype=np.float64)
    inside = np.zeros(x.shape, dtype=bool)
    if px.size < 3:
        return inside
    qx, qy = np.roll(px, 1), np.roll(py, 1)
    for ax, ay, bx, by in zip(px, py, qx, qy, strict=True):
        if ay == by:
            continue  # a horizontal edge never crosses a horizontal ray
        crosses = (ay > y) != (by > y)
        at_x = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < at_x)
    return inside


def _customdata_row(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def rows_from_event(
    event: Any,
    n_rows: int,
    *,
    coords: tuple[np.ndarray, np.ndarray] | None = None,
    sampled: bool = False,
) -> np.ndarray | None:
    """Sorted unique row numbers selected by a Plotly event; None when the event selects nothing.

    On a sampled map (``sampled``) the drawn lasso or box is applied to every point's
    coordinates, so points that were not drawn are selected too.
    """
    selection = (event or {}).get("selection", {}) if isinstance(event, Mapping) else {}
    if not isinstance(selection, Mapping):
        return None
    if sampled and coords is not None:
        mask = np.zeros(n_rows, dtype=bool)
        found = False
        for lasso in selection.get("lasso") or []:
            mask |= points_in_polygon(*coords, lasso.get("x", []), lasso.get("y", []))
            found = True
        for box in selection.get("box") or []:
            xs, ys = sorted(box.get("x", [0, 0])[:2]), sorted(box.get("y", [0, 0])[:2])
            mask |= (
                (coords[0] >= xs[0])
                & (coords[0] <= xs[1])
                & (coords[1] >= ys[0])
                & (coords[1] <= ys[1])
            )
            found = True
        if found:
            return np.flatnonzero(mask) if mask.any() else None
    rows = []
    for point in selection.get("points") or []:
        if isinstance(point, Mapping):
            row = _customdata_row(point.get("customdata"))
            if row is not None and 0 <= row < n_rows:
                rows.append(row)
    if not rows:
        return None
    return np.unique(np.asarray(rows, dtype=np.int64))


def event_signature(event: Any) -> str | None:
    """A short fingerprint of an event's selection, to act on each new selection only once."""
    import hashlib
    import json

    selection = (event or {}).get("selection") if isinstance(event, Mapping) else None
    if not selection or not (
        selection.get("points") or selection.get("lasso") or selection.get("box")
    ):
        return None
    blob = json.dumps(
        {
            "p": [
                _customdata_row(p.get("customdata"))
                for p in selection.get("points") or []
                if isinstance(p, Mapping)
            ],
            "l": selection.get("lasso") or [],
            "b": selection.get("box") or [],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
