"""Near-duplicate detection through a faiss inner-product index (cosine on unit rows).

``indexed_near_duplicates`` gives what ``core.select.selectors.near_duplicates`` gives — for each
row in order, −1 if kept, else a kept earlier row it duplicates — from a range search: every pair
of rows with cosine ≥ ``threshold`` is found once through the index, then rows are resolved in
order (a row is dropped when one of its earlier neighbours was kept). Memory holds one float32
copy of the rows in the index plus the pairs found.

- below ``IVF_MIN_ROWS`` rows the index is ``IndexFlatIP``: every pair is found, so the kept rows
  are those of the exact loop (up to float32 rounding of cosines within ~1e-6 of the threshold);
- from there on an ``IndexIVFFlat`` (``n_lists`` ≈ 4·√N inverted lists, ``N_PROBE`` of them
  searched per row): a pair whose rows fall in lists not probed together can be missed, so a few
  near-duplicates may be kept; no row is ever dropped without a kept twin at cosine ≥ threshold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.errors import PrismError

IVF_MIN_ROWS = 200_000
N_PROBE = 16
_QUERY_ROWS = 4096
_ADD_ROWS = 65536
_TOLERANCE = 1e-6  # float32 rounding of a cosine of exactly 1 (as in the exact loop)


def _index(rows: np.ndarray, *, approximate: bool) -> object:
    """An inner-product index over ``rows`` (n × d float32, unit rows)."""
    import faiss

    n, d = rows.shape
    index: Any
    if not approximate:
        index = faiss.IndexFlatIP(d)
    else:
        n_lists = max(1, min(n // 39, round(4 * math.sqrt(n))))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, n_lists, faiss.METRIC_INNER_PRODUCT)
        # faiss trains on a sample of at most 256 rows per list, drawn with its fixed seed.
        index.train(rows)
        index.nprobe = min(N_PROBE, n_lists)
    for start in range(0, n, _ADD_ROWS):
        index.add(rows[start : start + _ADD_ROWS])
    return index


def indexed_near_duplicates(
    features: np.ndarray,
    *,
    threshold: float,
    rows: np.ndarray | None = None,
    approximate: bool | None = None,
) -> np.ndarray:
    """For each of ``rows`` (default all) in order: −1 if kept, else the kept row it duplicates.

    ``approximate``: None chooses by size (an IVF index from ``IVF_MIN_ROWS`` rows); False forces
    the exact flat index, True the IVF one.
    """
    if not 0.0 < threshold <= 1.0:
        raise PrismError(f"threshold must be in (0, 1], got {threshold!r}.", param="threshold")
    order = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(order)
    twin = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return twin
    data = np.empty((n, features.shape[1]), dtype=np.float32)
    for start in range(0, n, _ADD_ROWS):
        data[start : start + _ADD_ROWS] = features[order[start : start + _ADD_ROWS]]
    if approximate is None:
        approximate = n >= IVF_MIN_ROWS
    index = _index(data, approximate=approximate)
    cut = threshold - _TOLERANCE
    # faiss keeps inner products strictly above the radius; the test against ``cut`` is below.
    radius = float(np.nextafter(np.float32(cut), np.float32(-np.inf)))
    kept = np.zeros(n, dtype=bool)
    for lo in range(0, n, _QUERY_ROWS):
        hi = min(n, lo + _QUERY_ROWS)
        lims, sims, found = index.range_search(data[lo:hi], radius)  # type: ignore[attr-defined]
        query = np.repeat(np.arange(lo, hi), np.diff(lims.astype(np.int64)))
        earlier = (found < query) & (sims >= cut)
        query, found, sims = query[earlier], found[earlier], sims[earlier]
        has_pair = np.zeros(hi - lo, dtype=bool)
        has_pair[query - lo] = True
        kept[lo:hi] = ~has_pair  # no earlier near neighbour: kept whatever came before
        # Rows with earlier neighbours are resolved in order (pairs are grouped by query row).
        bounds = np.flatnonzero(np.diff(query)) + 1
        for part in np.split(np.arange(len(query)), bounds):
            if not len(part):
                continue
            row = int(query[part[0]])
            alive = kept[found[part]]
            if alive.any():
                best = part[alive][np.argmax(sims[part[alive]])]
                twin[row] = order[found[best]]
            else:
                kept[row] = True
    return twin
