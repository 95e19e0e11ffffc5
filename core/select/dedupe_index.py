"""Near-duplicate detection at scale: inverted lists, then matrix products within each list.

``indexed_near_duplicates`` gives what ``core.select.selectors.near_duplicates`` gives — for each
row in order, −1 if kept, else a kept earlier row it duplicates. The rows are split into
``n_lists`` inverted lists by a seeded faiss spherical k-means (the coarse quantizer of an IVF
index, trained on a sample); each row is compared with the members of its ``N_PROBE`` nearest
lists in float32 matrix products (BLAS), the pairs at cosine ≥ ``threshold`` are kept, and rows
are resolved in order (a row is dropped when one of its earlier near neighbours was kept).

- With one list (below ``IVF_MIN_ROWS`` rows, or ``approximate=False``) every pair is compared: the
  kept rows are those of the exact loop (up to float32 rounding of cosines within ~1e-6 of the
  threshold).
- With more lists, a pair whose rows share no probed list is missed, so a few near-duplicates may
  be kept (recall against the exact loop: ``bench/scale.py``); no row is ever dropped without a
  kept twin at cosine ≥ threshold.
- A row consults at most ``MAX_PAIRS`` earlier near neighbours, the earliest ones (the first row
  of a group of copies is the one kept), so memory stays bounded when thousands of rows are copies.

Cost: about n_lists·N·d for the assignment and N_PROBE·N²/n_lists·d for the pairs, both matrix
products the BLAS runs at full speed; one block of rows is read at a time, so the features may be
memory-mapped. faiss's own IVF range search scans one query at a time and was slower than the
exact loop on two cores (167 s against 39 s at 10⁵ × 128).
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import PrismError
from core.measures.kmeans_faiss import centroid_index

IVF_MIN_ROWS = 50_000
N_PROBE = 2
MAX_PAIRS = 32
TRAIN_ROWS_PER_LIST = 32
TRAIN_ITER = 8
_QUERY_ROWS = 2048
_MEMBER_ROWS = 8192
_ASSIGN_ROWS = 16384
_TOLERANCE = 1e-6  # float32 rounding of a cosine of exactly 1 (as in the exact loop)


def _rows(features: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """features[ids] as a float32 array (ids sorted, so a memory map is read forwards)."""
    return np.ascontiguousarray(features[ids], dtype=np.float32)


def n_lists_for(n: int, n_probe: int = N_PROBE) -> int:
    """√(n_probe · n) lists: the assignment and the pair products then cost about the same."""
    return max(1, min(n // TRAIN_ROWS_PER_LIST, round(math.sqrt(n_probe * n))))


def _assign(
    features: np.ndarray, order: np.ndarray, *, n_lists: int, n_probe: int, seed: int
) -> np.ndarray:
    """The ``n_probe`` nearest lists of each row of ``order`` (n × n_probe, nearest first)."""
    n = len(order)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, TRAIN_ROWS_PER_LIST * n_lists), replace=False))
    index = centroid_index(
        _rows(features, order[sample]),
        n_lists,
        n_iter=TRAIN_ITER,
        seed=seed,
        max_points_per_centroid=TRAIN_ROWS_PER_LIST,
    )
    lists = np.empty((n, n_probe), dtype=np.int64)
    for lo in range(0, n, _ASSIGN_ROWS):
        _, found = index.search(_rows(features, order[lo : lo + _ASSIGN_ROWS]), n_probe)
        lists[lo : lo + _ASSIGN_ROWS] = found
    return lists


def _earliest(query: np.ndarray, limit: int) -> np.ndarray:
    """Mask keeping the first ``limit`` entries of each run of equal ``query`` values."""
    if not len(query):
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(query)]))
    return np.arange(len(query)) - first < limit


def _pairs_in_list(
    features: np.ndarray,
    order: np.ndarray,
    members: np.ndarray,
    queries: np.ndarray,
    cut: float,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(query, earlier member, cosine) of every pair at cosine ≥ ``cut`` (positions in order)."""
    found = []
    for q_lo in range(0, len(queries), _QUERY_ROWS):
        query = queries[q_lo : q_lo + _QUERY_ROWS]
        earlier = members[: np.searchsorted(members, query[-1])]  # only earlier rows matter
        if not len(earlier):
            continue
        block = _rows(features, order[query])
        for m_lo in range(0, len(earlier), _MEMBER_ROWS):
            member = earlier[m_lo : m_lo + _MEMBER_ROWS]
            sims = block @ _rows(features, order[member]).T
            hit = (sims >= cut) & (member[None, :] < query[:, None])
            qi, mi = np.nonzero(hit)  # query-major, members ascending: earliest first
            keep = _earliest(qi, MAX_PAIRS)
            qi, mi = qi[keep], mi[keep]
            found.append((query[qi], member[mi], sims[qi, mi]))
    return found


def _resolve(n: int, query: np.ndarray, member: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """Twin positions (−1 kept) from the pairs: in order, a row with a kept earlier neighbour is
    dropped in favour of the most similar such neighbour."""
    twin = np.full(n, -1, dtype=np.int64)
    if not len(query):
        return twin
    by_row = np.lexsort((member, query))
    query, member, sims = query[by_row], member[by_row], sims[by_row]
    keep = _earliest(query, MAX_PAIRS)  # pairs of one row may come from several lists
    query, member, sims = query[keep], member[keep], sims[keep]
    kept = np.ones(n, dtype=bool)
    bounds = np.flatnonzero(np.r_[True, query[1:] != query[:-1], True])
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        alive = kept[member[start:stop]]
        if alive.any():
            row = int(query[start])
            kept[row] = False
            twin[row] = member[start:stop][alive][np.argmax(sims[start:stop][alive])]
    return twin


def indexed_near_duplicates(
    features: np.ndarray,
    *,
    threshold: float,
    rows: np.ndarray | None = None,
    approximate: bool | None = None,
    seed: int = 0,
) -> np.ndarray:
    """For each of ``rows`` (default all) in order: −1 if kept, else the kept row it duplicates.

    ``approximate``: None chooses by size (``n_lists_for(N)`` lists from ``IVF_MIN_ROWS`` rows);
    False compares every pair (one list), True always splits into lists. ``seed`` seeds the
    coarse quantizer's sample and k-means.
    """
    if not 0.0 < threshold <= 1.0:
        raise PrismError(f"threshold must be in (0, 1], got {threshold!r}.", param="threshold")
    order = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(order)
    if n == 0:
        return np.full(0, -1, dtype=np.int64)
    if approximate is None:
        approximate = n >= IVF_MIN_ROWS
    n_lists = n_lists_for(n) if approximate else 1
    n_probe = min(N_PROBE, n_lists)
    if n_lists == 1:
        lists = np.zeros((n, 1), dtype=np.int64)
    else:
        lists = _assign(features, order, n_lists=n_lists, n_probe=n_probe, seed=seed)
    cut = threshold - _TOLERANCE
    members_of = np.argsort(lists[:, 0], kind="stable")  # positions, ascending within a list
    member_bounds = np.searchsorted(lists[members_of, 0], np.arange(n_lists + 1))
    probe_list = lists.ravel()
    probes_of = np.argsort(probe_list, kind="stable") // n_probe  # positions, ascending
    probe_bounds = np.searchsorted(np.sort(probe_list), np.arange(n_lists + 1))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for cell in range(n_lists):
        members = members_of[member_bounds[cell] : member_bounds[cell + 1]]
        queries = probes_of[probe_bounds[cell] : probe_bounds[cell + 1]]
        if len(members) and len(queries):
            found += _pairs_in_list(features, order, members, queries, cut)
    if not found:
        return np.full(n, -1, dtype=np.int64)
    query, member, sims = (np.concatenate(part) for part in zip(*found, strict=True))
    twin = _resolve(n, query, member, sims)
    return np.where(twin >= 0, order[np.maximum(twin, 0)], -1)
