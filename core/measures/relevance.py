"""Relevance of pool rows to a target set: cosines of unit features, aggregated per target group.

- ``group_relevance``: per pool row and target group (n × G), ``agg="mean-max"``'s mean cosine
  over the group's examples (LESS) or ``agg="max"``'s cosine to the group's nearest example;
  ``relevance`` is its maximum over groups (LESS: mean over a group, then max over groups).
- ``whitener``: (C + λI)^-½ with C = UᵀU / N the pool's covariance (``core.measures.vendi``), the
  cheap form of the preconditioning of TAROT and influence methods; λ = ``ridge`` × trace(C) / d
  (the mean eigenvalue, ``WHITEN_RIDGE`` = 1 by default), so directions the pool barely spans are
  not blown up by noise. With ``whiten=True`` both sides are multiplied by it and re-normalised.
- ``nearest_rows``: per target example, the pool rows of highest cosine.
- ``target_coverage``: per target group, how many pool rows are close to it (cosine to its nearest
  example ≥ ``threshold``, ``CLOSE_COSINE`` by default), its best matches, and whether the pool
  under-serves it (fewer than ``min_close`` close rows, ``MIN_CLOSE`` by default).

The pool is read in blocks of ``BLOCK_ROWS`` rows (a memory map stays one: no full copy, no
float64 copy); the target side is small and held whole. All products are float32 BLAS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.errors import PrismError
from core.measures.vendi import covariance as pool_covariance
from core.validate import check_features, check_int

AGGREGATIONS = ("mean-max", "max")
WHITEN_RIDGE = 1.0  # λ = WHITEN_RIDGE × trace(C) / d
BLOCK_ROWS = 8192
CLOSE_COSINE = 0.5  # a pool row is close to a group at this cosine to one of its examples
MIN_CLOSE = 10  # a group with fewer close pool rows is under-served


def check_agg(agg: object) -> str:
    if agg not in AGGREGATIONS:
        raise PrismError(
            f"agg must be one of {', '.join(AGGREGATIONS)}; got {agg!r}. mean-max (LESS): the "
            "mean cosine over each group's examples, then the best group; max: the nearest "
            "example.",
            param="agg",
        )
    return str(agg)


def check_groups(groups: object, m: int) -> np.ndarray:
    """Group numbers 0…G−1 of the m target examples, every group non-empty (None: one group)."""
    if groups is None:
        return np.zeros(m, dtype=np.int64)
    codes = np.asarray(groups)
    if codes.shape != (m,) or not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0:
        raise PrismError(
            f"groups must give one group number ≥ 0 per target example ({m}); got dtype "
            f"{codes.dtype} and shape {codes.shape}.",
            param="groups",
        )
    present = np.bincount(codes)
    if (present == 0).any():
        raise PrismError(
            f"groups must number the groups 0…G−1 with none empty; group "
            f"{int(np.flatnonzero(present == 0)[0])} has no example.",
            param="groups",
        )
    return codes.astype(np.int64)


def whitener(covariance: np.ndarray, *, ridge: float = WHITEN_RIDGE) -> np.ndarray:
    """(C + λI)^-½ (d × d float32), λ = ``ridge`` × trace(C) / d."""
    if not ridge > 0:
        raise PrismError(f"ridge must be > 0; got {ridge!r}.", param="ridge")
    c = np.asarray(covariance, dtype=np.float64)
    d = c.shape[0]
    lam = ridge * float(np.trace(c)) / d
    values, vectors = np.linalg.eigh((c + c.T) / 2)
    scale = 1.0 / np.sqrt(np.maximum(values, 0.0) + lam)
    return ((vectors * scale) @ vectors.T).astype(np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def _prepared(
    features: np.ndarray,
    target: object,
    *,
    whiten: bool,
    covariance: np.ndarray | None,
    ridge: float,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(unit, whitened-if-asked target rows (m × d float32), the whitener or None)."""
    pool = check_features(features, min_rows=1)
    rows = check_features(target, param="target", min_rows=1)
    if rows.shape[1] != pool.shape[1]:
        raise PrismError(
            f"target has {rows.shape[1]} numbers per row but the pool has {pool.shape[1]}; "
            "they must come from one feature space.",
            param="target",
        )
    w = None
    t = np.asarray(rows, dtype=np.float32)
    if whiten:
        w = whitener(pool_covariance(pool) if covariance is None else covariance, ridge=ridge)
        t = t @ w
    return _unit(t).astype(np.float32), w


def _blocks(
    features: np.ndarray, w: np.ndarray | None, block_rows: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, unit float32 block), whitened first when ``w`` is given."""
    for lo in range(0, len(features), block_rows):
        block = np.asarray(features[lo : lo + block_rows], dtype=np.float32)
        if w is not None:
            block = block @ w
        yield lo, _unit(block)


def group_relevance(
    features: np.ndarray,
    target: object,
    *,
    groups: object = None,
    agg: str = "mean-max",
    whiten: bool = False,
    covariance: np.ndarray | None = None,
    ridge: float = WHITEN_RIDGE,
    block_rows: int = BLOCK_ROWS,
) -> np.ndarray:
    """Relevance of each pool row (n × d) to each target group: (n × G) float32.

    ``target`` is m × d; ``groups`` numbers its examples 0…G−1 (None: one group). ``covariance``
    is the pool's C (computed from ``features`` when whitening without one).
    """
    agg = check_agg(agg)
    block_rows = check_int(block_rows, param="block_rows", minimum=1)
    t, w = _prepared(features, target, whiten=whiten, covariance=covariance, ridge=ridge)
    codes = check_groups(groups, len(t))
    n_groups = int(codes.max()) + 1
    if agg == "mean-max":
        # Cosines are linear in the target row: a group's mean cosine is the product with its
        # mean row, so mean-max costs one product per group, not per example.
        means = np.zeros((n_groups, t.shape[1]), dtype=np.float64)
        np.add.at(means, codes, t)
        side = (means / np.bincount(codes, minlength=n_groups)[:, None]).astype(np.float32)
    else:
        order = np.argsort(codes, kind="stable")
        side = t[order]
        starts = np.searchsorted(codes[order], np.arange(n_groups))
    out = np.empty((len(features), n_groups), dtype=np.float32)
    for lo, block in _blocks(features, w, block_rows):
        products = block @ side.T
        if agg == "mean-max":
            out[lo : lo + len(block)] = products
        else:
            out[lo : lo + len(block)] = np.maximum.reduceat(products, starts, axis=1)
    return out


def relevance(
    features: np.ndarray,
    target: object,
    *,
    groups: object = None,
    agg: str = "mean-max",
    whiten: bool = False,
    covariance: np.ndarray | None = None,
    ridge: float = WHITEN_RIDGE,
) -> np.ndarray:
    """Relevance of each pool row to the target: ``group_relevance`` maximised over groups (n,)."""
    return group_relevance(
        features, target, groups=groups, agg=agg, whiten=whiten, covariance=covariance, ridge=ridge
    ).max(axis=1)


def nearest_rows(
    features: np.ndarray, target: object, *, top: int = 3, block_rows: int = BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Per target example, its ``top`` nearest pool rows by cosine: (rows, cosines), m × top each,
    best first (fewer columns when the pool has fewer rows)."""
    top = check_int(top, param="top", minimum=1)
    t, _ = _prepared(features, target, whiten=False, covariance=None, ridge=WHITEN_RIDGE)
    k = min(top, len(features))
    best = np.full((len(t), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(t), k), dtype=np.int64)
    for lo, block in _blocks(features, None, block_rows):
        sims = (block @ t.T).T  # m × b
        both = np.concatenate([best, sims], axis=1)
        rows = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(lo, lo + len(block)), sims.shape)], axis=1
        )
        pick = np.argpartition(-both, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(both, pick, axis=1)
        best_rows = np.take_along_axis(rows, pick, axis=1)
    order = np.lexsort((best_rows, -best), axis=1)  # best first; ties: the lower row
    return np.take_along_axis(best_rows, order, axis=1), np.take_along_axis(best, order, axis=1)


@dataclass(frozen=True)
class GroupCoverage:
    """How well the pool covers one target group.

    ``n_close``: pool rows whose cosine to one of the group's examples is ≥ the threshold;
    ``best_rows`` / ``best_cosines``: its nearest pool rows, best first; ``nearest_median``: the
    median over its examples of each one's nearest pool cosine; ``under_served``: fewer than
    ``min_close`` close rows.
    """

    group: int
    n_examples: int
    n_close: int
    best_rows: tuple[int, ...]
    best_cosines: tuple[float, ...]
    nearest_median: float
    under_served: bool


def target_coverage(
    features: np.ndarray,
    target: object,
    *,
    groups: object = None,
    threshold: float = CLOSE_COSINE,
    min_close: int = MIN_CLOSE,
    top: int = 3,
    block_rows: int = BLOCK_ROWS,
) -> list[GroupCoverage]:
    """Per target group (0…G−1), its coverage by the pool (``GroupCoverage``)."""
    if not -1.0 <= float(threshold) <= 1.0:
        raise PrismError(
            f"threshold must be a cosine from -1 to 1; got {threshold!r}.", param="threshold"
        )
    min_close = check_int(min_close, param="min_close", minimum=1)
    top = check_int(top, param="top", minimum=1)
    per_group = group_relevance(features, target, groups=groups, agg="max", block_rows=block_rows)
    codes = check_groups(groups, len(np.asarray(target)))
    _, nearest = nearest_rows(features, target, top=1, block_rows=block_rows)
    out = []
    for g in range(per_group.shape[1]):
        column = per_group[:, g]
        n_close = int((column >= threshold).sum())
        best = np.lexsort((np.arange(len(column)), -column))[:top]
        out.append(
            GroupCoverage(
                group=g,
                n_examples=int((codes == g).sum()),
                n_close=n_close,
                best_rows=tuple(int(r) for r in best),
                best_cosines=tuple(float(column[r]) for r in best),
                nearest_median=float(np.median(nearest[codes == g, 0])),
                under_served=n_close < min_close,
            )
        )
    return out
