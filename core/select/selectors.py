"""Subset selectors: budget in, row positions out, deterministically for a seed.

    SELECTORS = {"random", "cluster_balanced", "k_center", "vendi_greedy", "sparse_clusters", "dedupe"}

Every selector has the signature ``fn(pool, *, k, seed, start, **options) -> rows``:

- ``pool`` holds the unit features (n × d), and the cluster labels where the selector needs them;
- ``k`` is the size of the result (``start`` counts towards it); the filters ``sparse_clusters``
  and ``dedupe`` take ``k=None`` to keep everything that passes;
- ``start`` are rows already chosen (kept in the result, first); ``candidates`` in ``Pool`` limits
  which rows may be added;
- the result is an int64 array of distinct row positions in the order they were chosen, so for
  ``random``, ``k_center`` and ``vendi_greedy`` every prefix is the selector's answer for a
  smaller budget (the budget curves on the Compare page rely on it).

Cosine is the inner product of unit rows, so every distance here is one matrix–vector product
per step over the memory-mapped features: O(n · d) per chosen row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import PrismError
from core.measures.clusters import sparse_clusters as sparse_cluster_mask

BLOCK_ROWS = 8192  # rows per block of a full pass over the features (8192 × 1024 float32 = 32 MB)
DEDUPE_THRESHOLD = 0.95


@dataclass(frozen=True, eq=False)
class Pool:
    """What a selector chooses from: unit ``features`` (n × d), optional ``labels`` (n,).

    ``candidates`` (row positions) limits the rows a selector may add; None means all rows.
    """

    features: np.ndarray
    labels: np.ndarray | None = None
    candidates: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or len(self.features) == 0:
            raise PrismError(
                f"Selectors need an n × d feature matrix with n ≥ 1; got shape {self.features.shape}."
            )
        if self.labels is not None and len(self.labels) != len(self.features):
            raise PrismError(
                f"There are {len(self.labels):,} cluster labels for {len(self.features):,} rows; "
                "re-run `prism cluster` on this workspace."
            )
        if self.candidates is not None:
            object.__setattr__(
                self, "candidates", _check_rows(self.candidates, self.n, "candidates")
            )

    @property
    def n(self) -> int:
        return len(self.features)

    def candidate_mask(self) -> np.ndarray:
        if self.candidates is None:
            return np.ones(self.n, dtype=bool)
        mask = np.zeros(self.n, dtype=bool)
        mask[self.candidates] = True
        return mask

    def require_labels(self, method: str) -> np.ndarray:
        if self.labels is None:
            raise PrismError(
                f"{method} needs gradient clusters; run `prism cluster WS` (or Cluster on the Map "
                "page) first."
            )
        return np.asarray(self.labels)


def _check_rows(rows: object, n: int, name: str) -> np.ndarray:
    array = np.asarray(rows)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise PrismError(
            f"{name} must be a list of row positions; got {array.dtype} {array.shape}."
        )
    if array.min() < 0 or array.max() >= n:
        raise PrismError(f"{name} holds row positions outside 0..{n - 1}.")
    return np.asarray(list(dict.fromkeys(array.tolist())), dtype=np.int64)


def resolve_budget(k: float | int | None, n: int, *, allow_none: bool = False) -> int | None:
    """A budget as a row count: an integer ≥ 1, or a fraction in (0, 1) of the ``n`` rows."""
    if k is None:
        if allow_none:
            return None
        raise PrismError("Give a budget --k: a number of rows (e.g. 200) or a fraction (e.g. 0.1).")
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise PrismError(f"--k must be a number of rows or a fraction, got {k!r}.")
    value = float(k)
    if 0 < value < 1:
        return max(1, round(value * n))
    if value < 1 or value != int(value):
        raise PrismError(
            f"--k must be a whole number of rows ≥ 1 or a fraction between 0 and 1, got {k!r}."
        )
    return int(value)


def _start_rows(pool: Pool, start: object, k: int | None) -> np.ndarray:
    rows = _check_rows(start if start is not None else [], pool.n, "start")
    if k is not None and len(rows) > k:
        raise PrismError(
            f"The starting subset has {len(rows):,} rows, more than the budget k = {k:,}; raise k "
            "or start from a smaller subset."
        )
    return rows


def _available(pool: Pool, chosen: np.ndarray) -> np.ndarray:
    mask = pool.candidate_mask()
    mask[chosen] = False
    return mask


def _check_fit(method: str, k: int, chosen: int, available: int) -> None:
    if k - chosen > available:
        kept = f" ({chosen:,} of them already chosen)" if chosen else ""
        raise PrismError(
            f"budget (--k) = {k:,} is more than the {chosen + available:,} rows {method} can "
            f"choose from{kept}; lower the budget."
        )


def _block_dot(features: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """features @ vector in float32, block by block (features may be memory-mapped)."""
    out = np.empty(len(features), dtype=np.float32)
    for lo in range(0, len(features), BLOCK_ROWS):
        block = np.asarray(features[lo : lo + BLOCK_ROWS], dtype=np.float32)
        out[lo : lo + len(block)] = block @ vector
    return out


def _row(features: np.ndarray, i: int) -> np.ndarray:
    return np.asarray(features[int(i)], dtype=np.float32)


# -- selectors --------------------------------------------------------------------------------


def random_sample(pool: Pool, *, k: int, seed: int, start: object = None) -> np.ndarray:
    """Uniform sample without replacement: the baseline every other selector is compared with."""
    chosen = _start_rows(pool, start, k)
    free = np.flatnonzero(_available(pool, chosen))
    _check_fit("random", k, len(chosen), len(free))
    order = np.random.default_rng(seed).permutation(free)
    return np.concatenate([chosen, order[: k - len(chosen)]]).astype(np.int64)


def quotas(sizes: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster counts summing to min(k, Σ sizes): the largest equal quota q every cluster
    can fill up to its size (water-filling), then one more for each of the largest clusters that
    still have room until the budget is spent."""
    sizes = np.asarray(sizes, dtype=np.int64)
    k = min(int(k), int(sizes.sum()))
    lo, hi = 0, int(sizes.max(initial=0))
    while lo < hi:  # largest q with Σ min(size, q) ≤ k
        mid = (lo + hi + 1) // 2
        if np.minimum(sizes, mid).sum() <= k:
            lo = mid
        else:
            hi = mid - 1
    counts = np.minimum(sizes, lo)
    remainder = k - int(counts.sum())
    room = np.flatnonzero(sizes > counts)
    by_size = room[np.argsort(-sizes[room], kind="stable")]
    counts[by_size[:remainder]] += 1
    return counts


def cluster_balanced(pool: Pool, *, k: int, seed: int, start: object = None) -> np.ndarray:
    """Equal quota per gradient cluster, the remainder over the largest clusters; random within.

    Rows in ``start`` count towards their cluster's quota.
    """
    labels = pool.require_labels("cluster_balanced")
    chosen = _start_rows(pool, start, k)
    free = _available(pool, chosen)
    _check_fit("cluster_balanced", k, len(chosen), int(free.sum()))
    n_clusters = int(labels.max()) + 1
    have = np.bincount(labels[chosen], minlength=n_clusters)
    room = np.bincount(labels[free], minlength=n_clusters)
    # Quotas over "what the cluster already has + what it could still take", minus what it has.
    target = quotas(have + room, k)
    extra = np.maximum(target - have, 0)
    # Clusters already above their quota (from start) free budget: spread it over the largest.
    short = (k - len(chosen)) - int(extra.sum())
    if short > 0:
        spare = room - extra
        order = np.argsort(-(have + room), kind="stable")
        for c in order:
            if short == 0:
                break
            take = min(short, int(spare[c]))
            extra[c] += take
            short -= take
    rng = np.random.default_rng(seed)
    picks = [chosen]
    free_rows = np.flatnonzero(free)
    free_labels = labels[free_rows]
    for c in np.flatnonzero(extra):
        members = free_rows[free_labels == c]
        picks.append(rng.choice(members, size=int(extra[c]), replace=False))
    added = np.concatenate(picks[1:]) if len(picks) > 1 else np.zeros(0, dtype=np.int64)
    # A seeded shuffle of the additions, so a prefix is not all of one cluster.
    return np.concatenate([chosen, rng.permutation(added)]).astype(np.int64)


def _seed_row(pool: Pool, chosen: np.ndarray, free: np.ndarray, seed: int) -> np.ndarray:
    if len(chosen):
        return chosen
    first = np.random.default_rng(seed).choice(np.flatnonzero(free))
    return np.array([first], dtype=np.int64)


LAZY_BATCH = 512  # candidates refreshed together by the lazy greedy


def lazy_greedy(
    features: np.ndarray,
    *,
    k: int,
    chosen: list[int],
    free: np.ndarray,
    aggregate: str,
    batch: int = LAZY_BATCH,
) -> list[int]:
    """Grow ``chosen`` to ``k`` rows, each step adding the free row of least score, where a
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
        raise ValueError(f"aggregate must be 'sum_sq' or 'max', got {aggregate!r}")
    order = list(chosen)
    free = free.copy()
    free[order] = False
    n, dim = features.shape
    rows = np.zeros((max(k, 1), dim), dtype=np.float32)  # the chosen rows, in order
    for j, i in enumerate(order):
        rows[j] = features[i]
    empty = 0.0 if aggregate == "sum_sq" else -np.inf
    bound = np.full(n, empty, dtype=np.float64)
    seen = np.zeros(n, dtype=np.int64)
    while len(order) < k:
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
    features: np.ndarray, *, k: int, chosen: list[int], free: np.ndarray, aggregate: str
) -> list[int]:
    """The reference for ``lazy_greedy``: every free row's score recomputed at every step (one
    matrix–vector pass over the features per chosen row). Tests and benchmarks compare with it."""
    order = list(chosen)
    free = free.copy()
    free[order] = False
    score = np.full(len(features), 0.0 if aggregate == "sum_sq" else -np.inf)

    def absorb(i: int) -> None:
        cosines = _block_dot(features, _row(features, i)).astype(np.float64)
        if aggregate == "sum_sq":
            score[:] += np.square(cosines)
        else:
            np.maximum(score, cosines, out=score)

    for i in order:
        absorb(i)
    while len(order) < k:
        i = int(np.argmin(np.where(free, score, np.inf)))
        order.append(i)
        free[i] = False
        absorb(i)
    return order


def k_center(pool: Pool, *, k: int, seed: int, start: object = None) -> np.ndarray:
    """Greedy farthest-point traversal in cosine distance (1 − cos); the first row is seeded.

    Each step adds the row whose nearest chosen row is farthest: a 2-approximation of the
    k-center objective (the largest distance from any row to its nearest chosen row).
    """
    chosen = _start_rows(pool, start, k)
    free = _available(pool, chosen)
    _check_fit("k_center", k, len(chosen), int(free.sum()))
    first = _seed_row(pool, chosen, free, seed)
    order = lazy_greedy(pool.features, k=k, chosen=first.tolist(), free=free, aggregate="max")
    return np.asarray(order, dtype=np.int64)


def _vendi_1(gram: np.ndarray) -> float:
    values = np.linalg.eigvalsh(gram / np.trace(gram))
    values = values[values > 1e-12]
    return float(np.exp(-np.sum(values * np.log(values))))


def vendi_greedy(
    pool: Pool, *, k: int, seed: int, start: object = None, rescore: int = 0
) -> np.ndarray:
    """Greedy maximisation of the Vendi score; the first row is seeded.

    Order 2 has a closed-form gain: VS₂(S) = |S|² / ‖Σ_{s∈S} u_s u_sᵀ‖²_F, and adding u changes the
    norm by 2·uᵀC_S u + 1 = 2·Σ_s (u·u_s)² + 1, so each step picks the row with the least summed
    squared cosine to the chosen rows (``lazy_greedy``).
    ``rescore`` > 0 re-ranks that many best order-2 candidates by the exact order-1 Vendi score
    (G-Vendi) of the grown set — better for G-Vendi, at an eigendecomposition per candidate.
    """
    if not isinstance(rescore, int) or rescore < 0:
        raise PrismError(f"rescore must be a whole number ≥ 0, got {rescore!r}.")
    features = pool.features
    chosen = _start_rows(pool, start, k)
    free = _available(pool, chosen)
    _check_fit("vendi_greedy", k, len(chosen), int(free.sum()))
    first = _seed_row(pool, chosen, free, seed)
    if not rescore:
        order = lazy_greedy(features, k=k, chosen=first.tolist(), free=free, aggregate="sum_sq")
        return np.asarray(order, dtype=np.int64)
    order = list(first)
    free[order] = False
    load = np.zeros(pool.n, dtype=np.float64)  # Σ_{s chosen} cos(row, s)²
    for i in order:
        load += np.square(_block_dot(features, _row(features, i)), dtype=np.float64)
    chosen_rows = np.asarray(features[np.asarray(order)], dtype=np.float64)
    while len(order) < k:
        top = np.argsort(np.where(free, load, np.inf), kind="stable")[
            : min(rescore, int(free.sum()))
        ]
        gram_s = chosen_rows @ chosen_rows.T
        i, best_value = int(top[0]), -np.inf
        for j in top:
            u = np.asarray(features[int(j)], dtype=np.float64)
            cross = chosen_rows @ u
            gram = np.block([[gram_s, cross[:, None]], [cross[None, :], np.array([[u @ u]])]])
            value = _vendi_1(gram)
            if value > best_value + 1e-12:
                i, best_value = int(j), value
        chosen_rows = np.vstack([chosen_rows, np.asarray(features[i], dtype=np.float64)])
        order.append(i)
        free[i] = False
        load += np.square(_block_dot(features, _row(features, i)), dtype=np.float64)
    return np.asarray(order, dtype=np.int64)


def _subsample(rows: np.ndarray, k: int | None, seed: int) -> np.ndarray:
    if k is None or len(rows) <= k:
        return rows
    keep = np.random.default_rng(seed).choice(len(rows), size=k, replace=False)
    return rows[np.sort(keep)]


def sparse_clusters(pool: Pool, *, k: int | None, seed: int, start: object = None) -> np.ndarray:
    """The synthesis filter: keep rows whose gradient cluster is smaller than the median size.

    With a budget, a seeded random sample of those rows (original order); without, all of them.
    """
    labels = pool.require_labels("sparse_clusters")
    chosen = _start_rows(pool, start, k)
    sizes = np.bincount(labels, minlength=int(labels.max()) + 1)
    keep = sparse_cluster_mask(sizes)[labels] & _available(pool, chosen)
    added = _subsample(np.flatnonzero(keep), None if k is None else k - len(chosen), seed)
    return np.concatenate([chosen, added]).astype(np.int64)


def near_duplicates(
    features: np.ndarray, *, threshold: float = DEDUPE_THRESHOLD, rows: np.ndarray | None = None
) -> np.ndarray:
    """For each of ``rows`` (default all) in order: −1 if kept, else the kept row it duplicates.

    A row is dropped when an earlier kept row has cosine ≥ ``threshold`` with it, so no two kept
    rows are near-duplicates and every dropped row has a kept twin. Exact: each block of rows is
    compared with all rows kept before it and with itself.
    """
    if not 0.0 < threshold <= 1.0:
        raise PrismError(f"threshold must be in (0, 1], got {threshold!r}.")
    order = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=np.int64)
    twin = np.full(len(order), -1, dtype=np.int64)
    kept_rows: list[np.ndarray] = []  # float32 blocks of kept features
    kept_ids: list[np.ndarray] = []
    tolerance = 1e-6  # float32 rounding of a cosine of exactly 1
    for lo in range(0, len(order), BLOCK_ROWS):
        ids = order[lo : lo + BLOCK_ROWS]
        block = np.asarray(features[ids], dtype=np.float32)
        best = np.full(len(ids), -np.inf, dtype=np.float32)
        best_id = np.full(len(ids), -1, dtype=np.int64)
        for kept, kept_id in zip(kept_rows, kept_ids, strict=True):
            sims = block @ kept.T
            j = np.argmax(sims, axis=1)
            value = sims[np.arange(len(ids)), j]
            better = value > best
            best[better], best_id[better] = value[better], kept_id[j[better]]
        dup = best >= threshold - tolerance
        twin[lo : lo + len(ids)][dup] = best_id[dup]
        # Within the block, resolve in order: a row survives unless an earlier survivor is close.
        inside = block @ block.T
        alive = ~dup
        for a in range(len(ids)):
            if not alive[a]:
                continue
            close = np.flatnonzero(alive[a + 1 :] & (inside[a, a + 1 :] >= threshold - tolerance))
            if len(close):
                alive[a + 1 + close] = False
                twin[lo + a + 1 + close] = ids[a]
        if alive.any():
            kept_rows.append(block[alive])
            kept_ids.append(ids[alive])
    return twin


def dedupe(
    pool: Pool,
    *,
    k: int | None,
    seed: int,
    start: object = None,
    threshold: float = DEDUPE_THRESHOLD,
) -> np.ndarray:
    """Drop near-duplicates in gradient space (cosine ≥ ``threshold``), keeping the first of each.

    Rows of ``start`` come first, so they are the ones kept. With a budget, a seeded random sample
    of the kept rows beyond ``start``.
    """
    chosen = _start_rows(pool, start, k)
    order = np.concatenate([chosen, np.flatnonzero(_available(pool, chosen))])
    twin = near_duplicates(pool.features, threshold=float(threshold), rows=order)
    kept = order[twin < 0]
    added = kept[~np.isin(kept, chosen)]
    added = _subsample(added, None if k is None else k - len(chosen), seed)
    return np.concatenate([chosen, added]).astype(np.int64)


Selector = Callable[..., np.ndarray]

SELECTORS: dict[str, Selector] = {
    "random": random_sample,
    "cluster_balanced": cluster_balanced,
    "k_center": k_center,
    "vendi_greedy": vendi_greedy,
    "sparse_clusters": sparse_clusters,
    "dedupe": dedupe,
}
FILTERS = frozenset({"sparse_clusters", "dedupe"})  # selectors whose budget may be omitted
NEEDS_CLUSTERS = frozenset({"cluster_balanced", "sparse_clusters"})
OPTIONS: dict[str, dict[str, type]] = {
    "vendi_greedy": {"rescore": int},
    "dedupe": {"threshold": float},
}
DESCRIPTIONS = {
    "random": "uniform sample — the baseline",
    "cluster_balanced": "equal quota per gradient cluster",
    "k_center": "greedy farthest point (cosine)",
    "vendi_greedy": "greedy maximisation of the Vendi score",
    "sparse_clusters": "rows of clusters smaller than the median",
    "dedupe": "drop near-duplicate gradients",
}


def parse_options(method: str, pairs: Mapping[str, Any]) -> dict[str, Any]:
    """Typed selector options from strings (CLI ``--option name=value``) or values."""
    allowed = OPTIONS.get(method, {})
    options: dict[str, Any] = {}
    for name, raw in pairs.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise PrismError(f"{method} has no option {name!r} (its options: {known}).")
        try:
            options[name] = allowed[name](raw)
        except (TypeError, ValueError):
            raise PrismError(
                f"{method} option {name} must be {allowed[name].__name__}, got {raw!r}."
            ) from None
    return options


def select(
    method: str,
    pool: Pool,
    *,
    k: float | int | None,
    seed: int = 0,
    start: object = None,
    **options: Any,
) -> np.ndarray:
    """Run selector ``method`` with a budget (count or fraction); checks every argument first."""
    if method not in SELECTORS:
        raise PrismError(f"Unknown selector {method!r}; choose one of: {', '.join(SELECTORS)}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PrismError(f"--seed must be a whole number ≥ 0, got {seed!r}.")
    budget = resolve_budget(k, pool.n, allow_none=method in FILTERS)
    if budget is not None and budget > pool.n:
        raise PrismError(
            f"budget (--k) = {budget:,} is more than the {pool.n:,} rows of this workspace; "
            "lower the budget, or give a fraction such as 0.5."
        )
    typed = parse_options(method, options)
    return SELECTORS[method](pool, k=budget, seed=int(seed), start=start, **typed)
