"""Greedy row selection by cosine: the lazy greedy and the eager reference it must agree with.

A row's score over the chosen rows is Σ cos² (``aggregate="sum_sq"``: the order-2 Vendi gain used
by ``vendi_greedy``) or max cos (``"max"``: farthest-point traversal, ``k_center``); each step adds
the free row of least score.

- ``lazy_greedy``: keeps a lower bound per row and refreshes only the rows near the frontier, in
  matrix–matrix products (the one used by the selectors).
- ``eager_greedy``: every score recomputed every step, one pass over the features per chosen row;
  the reference that tests and benchmarks compare ``lazy_greedy`` with.
"""

from __future__ import annotations

import numpy as np

from core.errors import PrismError

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


LAZY_BATCH = 512  # candidates refreshed together by the lazy greedy


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
    rows is a lower bound later. Each row keeps such a bound and how many chosen rows it has
    seen; a step refreshes the ``batch`` free rows of least bound against the chosen rows they
    have not seen (one matrix product), and accepts the least exact score once no bound is
    below it. That is the same choice as recomputing every score each step, at a fraction of
    the work: rows far behind the frontier are never looked at again, and the products are
    matrix–matrix, not one matrix–vector pass over all features per step.
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
    empty = 0.0 if aggregate == "sum_sq" else -np.inf
    bound = np.full(n, empty, dtype=np.float64)
    seen = np.zeros(n, dtype=np.int64)
    while len(order) < budget:
        m = len(order)
        while True:
            stale = free & (seen < m)
            exact = free & (seen == m)
            best = int(np.argmin(np.where(exact, bound, np.inf))) if exact.any() else -1
            lowest_stale = float(np.min(bound, where=stale, initial=np.inf))
            if best >= 0 and bound[best] <= lowest_stale:
                break
            candidates = np.flatnonzero(stale)
            if len(candidates) > batch:
                part = np.argpartition(bound[candidates], batch - 1)[:batch]
                candidates = np.sort(candidates[part])
            lo = int(seen[candidates].min())
            cosines = np.asarray(features[candidates], dtype=np.float32) @ rows[lo:m].T
            unseen = np.arange(lo, m)[None, :] >= seen[candidates][:, None]
            if aggregate == "sum_sq":
                fresh = np.square(cosines, dtype=np.float64).sum(axis=1, where=unseen)
                bound[candidates] += fresh
            else:
                fresh = np.max(cosines, axis=1, where=unseen, initial=-np.inf)
                bound[candidates] = np.maximum(bound[candidates], fresh)
            seen[candidates] = m
        order.append(best)
        free[best] = False
        rows[m] = features[best]
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
