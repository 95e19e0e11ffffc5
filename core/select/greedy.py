"""Greedy row selection by cosine: the lazy greedy and the eager reference it must agree with.

A row's score over the chosen rows is Σ cos² (``aggregate="sum_sq"``: the order-2 Vendi gain used
by ``vendi_greedy``) or max cos (``"max"``: farthest-point traversal, ``k_center``); each step adds
the free row of least score.

- ``lazy_greedy``: keeps a lower bound per row, refreshes only the rows near the frontier in
  matrix–matrix products and picks among them while they stay below every other row's bound (the
  one used by the selectors; the same choices as the eager loop, at BLAS speed).
- ``eager_greedy``: every score recomputed every step, one pass over the features per chosen row;
  the reference that tests and benchmarks compare ``lazy_greedy`` with.
- ``greedy``: what the selectors call: ``lazy_greedy`` on the CPU, the eager loop on a CUDA
  device (``core.select.greedy_torch``) from ``DEVICE_MIN_ROWS`` rows when there is one.
"""

from __future__ import annotations

import numpy as np

from core.devices import resolve_device
from core.errors import PrismError
from core.select.greedy_torch import device_greedy

DEVICE_MIN_ROWS = 20_000  # from this many rows the selectors' greedy runs on a CUDA device
BLOCK_ROWS = 8192  # rows per block of a full pass over the features (8192 × 1024 float32 = 32 MB)


def block_dot(features: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """features @ vector in float32, block by block (features may be memory-mapped)."""
    out = np.empty(len(features), dtype=np.float32)
    for lo in range(0, len(features), BLOCK_ROWS):
        block = np.asarray(features[lo : lo + BLOCK_ROWS], dtype=np.float32)
        out[lo : lo + len(block)] = block @ vector
    return out


def row_of(features: np.ndarray, i: int) -> np.ndarray:
    """Row ``i`` as float32."""
    return np.asarray(features[int(i)], dtype=np.float32)


LAZY_BATCH = 4096  # rows refreshed per round, and the frontier the next picks come from
PENDING_MAX = 2048  # chosen rows per matrix product when a row catches up with many
POOL_FACTOR = 16  # the rows of least bound kept aside, in batches: a round sorts only those
REFRESH_GROUPS = 8  # products per refresh of rows that saw different numbers of chosen rows


def _absorb(score: np.ndarray, cosines: np.ndarray, aggregate: str) -> None:
    """Fold cosines (rows × chosen) into the rows' scores, in place."""
    if aggregate == "sum_sq":
        score += np.square(cosines, dtype=np.float64).sum(axis=1)
    else:
        np.maximum(score, cosines.max(axis=1), out=score)


class _Gram:
    """Σ u uᵀ over the first ``m`` chosen rows (d × d, float64), grown as rows are chosen."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((dim, dim), dtype=np.float64)
        self.m = 0

    def upto(self, rows: np.ndarray) -> np.ndarray:
        new = rows[self.m :].astype(np.float64)
        self.matrix += new.T @ new
        self.m = len(rows)
        return self.matrix


def _refresh(
    features: np.ndarray,
    score: np.ndarray,
    seen: np.ndarray,
    rows: np.ndarray,
    candidates: np.ndarray,
    aggregate: str,
    gram: _Gram,
) -> None:
    """Bring the scores of ``candidates`` up to all ``len(rows)`` chosen rows, in place.

    The stale rows, sorted by how many chosen rows they have seen, go in at most
    ``REFRESH_GROUPS`` (or ``BLOCK_ROWS``-row) groups; each group is one matrix product (BLAS)
    over the chosen rows from the least its rows have seen, with the columns a row already has
    masked out — a few wide products, not one pass over the features per chosen row. A Σ cos²
    score that misses more than d/4 chosen rows is recomputed whole as uᵀ(Σ u_s u_sᵀ)u instead
    (d² per row however many rows were chosen).
    """
    m, dim = rows.shape
    stale = candidates[seen[candidates] < m]
    if not len(stale):
        return
    stale = stale[np.argsort(seen[stale], kind="stable")]
    n_groups = max(-(-len(stale) // BLOCK_ROWS), min(REFRESH_GROUPS, len(stale)))
    for group in np.array_split(stale, n_groups):
        ids = np.sort(group)  # a memory map is read forwards
        block = np.asarray(features[ids], dtype=np.float32)
        have = seen[ids]
        if aggregate == "sum_sq" and m - int(have.min()) > dim // 4:
            product = block @ gram.upto(rows).astype(np.float32)
            score[ids] = np.einsum("ij,ij->i", product, block, dtype=np.float64)
            continue
        part = score[ids]
        for p in range(int(have.min()), m, PENDING_MAX):
            cosines = block @ rows[p : min(m, p + PENDING_MAX)].T
            unseen = np.arange(p, p + cosines.shape[1])[None, :] >= have[:, None]
            if aggregate == "sum_sq":
                part += np.square(cosines, dtype=np.float64).sum(axis=1, where=unseen)
            else:
                np.maximum(part, cosines.max(axis=1, where=unseen, initial=-np.inf), out=part)
        score[ids] = part
    seen[stale] = m


def _least(values: np.ndarray, count: int) -> tuple[np.ndarray, float]:
    """Positions of about the ``count`` least values below +inf, and a cut: every other value is
    at least the cut and every value returned is below it (all the least values when they tie)."""
    present = values < np.inf
    if count >= int(present.sum()):
        return np.flatnonzero(present), np.inf
    cut = float(np.partition(values, count)[count])
    chosen = np.flatnonzero(values < cut)
    if not len(chosen):  # more than ``count`` values tie at the least
        least = float(values.min())
        chosen, cut = np.flatnonzero(values == least), float(np.nextafter(least, np.inf))
    return chosen, cut


def lazy_greedy(
    features: np.ndarray,
    *,
    budget: int,
    chosen: list[int],
    free: np.ndarray,
    aggregate: str,
    batch: int = LAZY_BATCH,
) -> list[int]:
    """Grow ``chosen`` to ``budget`` rows, each step adding the free row of least score, where a
    row's score over the chosen rows is Σ cos² (``aggregate="sum_sq"``) or max cos ("max").

    Both scores only grow as rows are chosen, so a score computed against the first m chosen
    rows is a lower bound later. Each round refreshes the ``batch`` free rows of least bound
    (``_refresh``: matrix products over the chosen rows each has not seen) and then picks from
    them alone, keeping their scores exact with one product per pick over those rows, for as
    long as the least of them stays below every other row's bound — exactly the choices of
    recomputing every score each step (``eager_greedy``). A round costs O(n) bookkeeping and
    rows whose bound stays above the frontier are never read again.
    """
    if aggregate not in ("sum_sq", "max"):
        raise PrismError(
            f"aggregate must be 'sum_sq' or 'max', got {aggregate!r}", param="aggregate"
        )
    order = list(chosen)
    free = free.copy()
    free[order] = False
    n, dim = features.shape
    rows = np.zeros((max(budget, 1), dim), dtype=np.float32)  # the chosen rows, in order
    for j, i in enumerate(order):
        rows[j] = features[i]
    score = np.full(n, 0.0 if aggregate == "sum_sq" else -np.inf)
    seen = np.zeros(n, dtype=np.int64)  # how many chosen rows each score has absorbed
    gram = _Gram(dim)
    pool, pool_cut = np.zeros(0, dtype=np.int64), -np.inf
    while len(order) < budget:
        pool = pool[free[pool]]
        if not len(pool) or score[pool].min() >= pool_cut:
            pool, pool_cut = _least(np.where(free, score, np.inf), POOL_FACTOR * batch)
            pool = pool[free[pool]]
        # Rows outside the pool have bounds of at least ``pool_cut``; the candidates are the
        # ``batch`` rows of least bound in the pool, so every other row's bound is at least ``cut``.
        candidates, cut = _least(score[pool], batch)
        candidates, cut = pool[candidates], min(cut, pool_cut)
        _refresh(features, score, seen, rows[: len(order)], candidates, aggregate, gram)
        exact = score[candidates]
        if len(candidates) > batch:  # only after ties: keep the picks' products small
            least = float(exact.min())
            candidates = candidates[exact == least]
            cut = min(cut, float(np.nextafter(least, np.inf)))
        # Every other free row's score is at least ``cut``: a candidate below it is the least.
        local = score[candidates]
        block = np.asarray(features[candidates], dtype=np.float32)
        while len(order) < budget:
            j = int(np.argmin(local))  # the first of equal scores, as in the eager loop
            if not local[j] < cut:
                break
            i = int(candidates[j])
            order.append(i)
            free[i] = False
            rows[len(order) - 1] = features[i]
            cosines = block @ rows[len(order) - 1]
            _absorb(local, cosines[:, None], aggregate)
            local[j] = np.inf
        score[candidates] = local
        seen[candidates] = len(order)
    return order


def eager_greedy(
    features: np.ndarray, *, budget: int, chosen: list[int], free: np.ndarray, aggregate: str
) -> list[int]:
    """The reference for ``lazy_greedy``: every free row's score recomputed at every step (one
    matrix–vector pass over the features per chosen row). Tests and benchmarks compare with it."""
    order = list(chosen)
    free = free.copy()
    free[order] = False
    score = np.full(len(features), 0.0 if aggregate == "sum_sq" else -np.inf)

    def absorb(i: int) -> None:
        cosines = block_dot(features, row_of(features, i)).astype(np.float64)
        if aggregate == "sum_sq":
            score[:] += np.square(cosines)
        else:
            np.maximum(score, cosines, out=score)

    for i in order:
        absorb(i)
    while len(order) < budget:
        i = int(np.argmin(np.where(free, score, np.inf)))
        order.append(i)
        free[i] = False
        absorb(i)
    return order


def greedy(
    features: np.ndarray, *, budget: int, chosen: list[int], free: np.ndarray, aggregate: str
) -> list[int]:
    """``lazy_greedy``, or from ``DEVICE_MIN_ROWS`` rows on a machine with CUDA the eager loop
    there (``core.select.greedy_torch.device_greedy``); the same choices up to rounding."""
    if len(features) >= DEVICE_MIN_ROWS and (device := resolve_device("auto")) != "cpu":
        return device_greedy(
            features, budget=budget, chosen=chosen, free=free, aggregate=aggregate, device=device
        )
    return lazy_greedy(features, budget=budget, chosen=chosen, free=free, aggregate=aggregate)
