"""Subset selectors: budget in, row positions out, deterministically for a seed.

    SELECTORS = {"random", "cluster_balanced", "k_center", "vendi_greedy", "sparse_clusters", "dedupe",
                 "targeted", "targeted_diverse", "quality_diverse", "quality_blend"}

``SELECTORS`` maps each name to a ``SelectorSpec``: its function, a one-line description, its typed
options, and whether it is a filter, prefix-stable, or needs clusters. The CLI, the app and the
budget curves read these specs; nothing else lists selectors.

The quality selectors (``core.select.quality``) read a per-row score from ``Pool.columns`` and can
say why each row was left out (``SelectorSpec.explain``).

Every selector function has the signature ``fn(pool, *, budget, seed, start, **options) -> rows``:

- ``pool`` holds the unit features (n × d), and the cluster labels where the selector needs them
  (``core.select.pool``);
- ``budget`` is the size of the result (``start`` counts towards it); filters take
  ``budget=None`` to keep everything that passes;
- ``start`` are rows already chosen (kept in the result, first); ``candidates`` in ``Pool`` limits
  which rows may be added;
- the result is an int64 array of distinct row positions in the order they were chosen, so for a
  prefix-stable selector every prefix is its answer for a smaller budget (the budget curves
  score one run prefix by prefix).

The targeted selectors (``needs_target``, ``core.select.targeted``) rank by ``pool.relevance``, each row's relevance to the
groups of a target set; ``TARGET_OPTIONS`` (target, agg, whiten) say which relevance, and whoever
builds the pool computes it from them (``core.workspace.selector_runs.selector_pool``), so ``select``
records them but does not pass them on.

Cosine is the inner product of unit rows, so the greedy selectors' distances are matrix products
over the memory-mapped features, computed lazily for the rows near the frontier only
(``core.select.greedy``); they make the same choices as one full pass per chosen row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import PrismError
from core.measures.clusters import sparse_clusters as sparse_cluster_mask
from core.measures.vendi import vendi_from_covariance
from core.select.dedupe_index import indexed_near_duplicates
from core.select.greedy import BLOCK_ROWS, block_dot, greedy, row_of
from core.select.pool import Pool, available, check_fit, start_rows
from core.select.quality import (
    explain_quality_blend,
    explain_quality_diverse,
    quality_blend,
    quality_diverse,
)
from core.select.targeted import boolean, relevance_agg, targeted, targeted_diverse
from core.validate import check_budget, check_seed

__all__ = ["SELECTORS", "Pool", "SelectorSpec", "explain", "parse_options", "select"]

DEDUPE_THRESHOLD = 0.95
# From this many rows dedupe compares rows in matrix products over all pairs (from 50,000 rows:
# within faiss inverted lists, ``core.select.dedupe_index``).
DEDUPE_INDEX_MIN_ROWS = 20_000


# -- selectors --------------------------------------------------------------------------------


def random_sample(pool: Pool, *, budget: int, seed: int, start: object = None) -> np.ndarray:
    """Uniform sample without replacement: the baseline every other selector is compared with."""
    chosen = start_rows(pool, start, budget)
    free = np.flatnonzero(available(pool, chosen))
    check_fit("random", budget, len(chosen), len(free))
    order = np.random.default_rng(seed).permutation(free)
    return np.concatenate([chosen, order[: budget - len(chosen)]]).astype(np.int64)


def quotas(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Per-cluster counts summing to min(budget, Σ sizes): the largest equal quota q every cluster
    can fill up to its size (water-filling), then one more for each of the largest clusters that
    still have room until the budget is spent."""
    sizes = np.asarray(sizes, dtype=np.int64)
    budget = min(int(budget), int(sizes.sum()))
    lo, hi = 0, int(sizes.max(initial=0))
    while lo < hi:  # largest q with Σ min(size, q) ≤ budget
        mid = (lo + hi + 1) // 2
        if np.minimum(sizes, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    counts = np.minimum(sizes, lo)
    remainder = budget - int(counts.sum())
    room = np.flatnonzero(sizes > counts)
    by_size = room[np.argsort(-sizes[room], kind="stable")]
    counts[by_size[:remainder]] += 1
    return counts


def cluster_balanced(pool: Pool, *, budget: int, seed: int, start: object = None) -> np.ndarray:
    """Equal quota per gradient cluster, the remainder over the largest clusters; random within.

    Rows in ``start`` count towards their cluster's quota.
    """
    labels = pool.require_labels("cluster_balanced")
    chosen = start_rows(pool, start, budget)
    free = available(pool, chosen)
    check_fit("cluster_balanced", budget, len(chosen), int(free.sum()))
    n_clusters = int(labels.max()) + 1
    have = np.bincount(labels[chosen], minlength=n_clusters)
    room = np.bincount(labels[free], minlength=n_clusters)
    # Quotas over "what the cluster already has + what it could still take", minus what it has.
    target = quotas(have + room, budget)
    extra = np.maximum(target - have, 0)
    # Clusters already above their quota (from start) free budget: spread it over the largest.
    short = (budget - len(chosen)) - int(extra.sum())
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


def k_center(pool: Pool, *, budget: int, seed: int, start: object = None) -> np.ndarray:
    """Greedy farthest-point traversal in cosine distance (1 − cos); the first row is seeded.

    Each step adds the row whose nearest chosen row is farthest: a 2-approximation of the
    k-center objective (the largest distance from any row to its nearest chosen row).
    """
    chosen = start_rows(pool, start, budget)
    free = available(pool, chosen)
    check_fit("k_center", budget, len(chosen), int(free.sum()))
    first = _seed_row(pool, chosen, free, seed)
    order = greedy(pool.features, budget=budget, chosen=first.tolist(), free=free, aggregate="max")
    return np.asarray(order, dtype=np.int64)


def vendi_greedy(
    pool: Pool, *, budget: int, seed: int, start: object = None, rescore: int = 0
) -> np.ndarray:
    """Greedy maximisation of the Vendi score; the first row is seeded.

    Order 2 has a closed-form gain: VS₂(S) = |S|² / ‖Σ_{s∈S} u_s u_sᵀ‖²_F, and adding u changes the
    norm by 2·uᵀC_S u + 1 = 2·Σ_s (u·u_s)² + 1, so each step picks the row with the least summed
    squared cosine to the chosen rows (``greedy``).
    ``rescore`` > 0 re-ranks that many best order-2 candidates by the exact order-1 Vendi score
    (G-Vendi) of the grown set — better for G-Vendi, at an eigendecomposition per candidate.
    """
    if not isinstance(rescore, int) or rescore < 0:
        raise PrismError(f"rescore must be a whole number ≥ 0, got {rescore!r}.", param="rescore")
    features = pool.features
    chosen = start_rows(pool, start, budget)
    free = available(pool, chosen)
    check_fit("vendi_greedy", budget, len(chosen), int(free.sum()))
    first = _seed_row(pool, chosen, free, seed)
    if not rescore:
        order = greedy(
            features, budget=budget, chosen=first.tolist(), free=free, aggregate="sum_sq"
        )
        return np.asarray(order, dtype=np.int64)
    order = list(first)
    free[order] = False
    load = np.zeros(pool.n, dtype=np.float64)  # Σ_{s chosen} cos(row, s)²
    for i in order:
        load += np.square(block_dot(features, row_of(features, i)), dtype=np.float64)
    chosen_rows = np.asarray(features[np.asarray(order)], dtype=np.float64)
    while len(order) < budget:
        top = np.argsort(np.where(free, load, np.inf), kind="stable")[
            : min(rescore, int(free.sum()))
        ]
        gram_s = chosen_rows @ chosen_rows.T
        i, best_value = int(top[0]), -np.inf
        for j in top:
            u = np.asarray(features[int(j)], dtype=np.float64)
            cross = chosen_rows @ u
            gram = np.block([[gram_s, cross[:, None]], [cross[None, :], np.array([[u @ u]])]])
            value = vendi_from_covariance(gram, qs=(1.0,))[1.0]
            if value > best_value + 1e-12:
                i, best_value = int(j), value
        chosen_rows = np.vstack([chosen_rows, np.asarray(features[i], dtype=np.float64)])
        order.append(i)
        free[i] = False
        load += np.square(block_dot(features, row_of(features, i)), dtype=np.float64)
    return np.asarray(order, dtype=np.int64)


def _subsample(rows: np.ndarray, budget: int | None, seed: int) -> np.ndarray:
    if budget is None or len(rows) <= budget:
        return rows
    keep = np.random.default_rng(seed).choice(len(rows), size=budget, replace=False)
    return rows[np.sort(keep)]


def sparse_clusters(
    pool: Pool, *, budget: int | None, seed: int, start: object = None
) -> np.ndarray:
    """The synthesis filter: keep rows whose gradient cluster is smaller than the median size.

    With a budget, a seeded random sample of those rows (original order); without, all of them.
    """
    labels = pool.require_labels("sparse_clusters")
    chosen = start_rows(pool, start, budget)
    sizes = np.bincount(labels, minlength=int(labels.max()) + 1)
    keep = sparse_cluster_mask(sizes)[labels] & available(pool, chosen)
    added = _subsample(np.flatnonzero(keep), None if budget is None else budget - len(chosen), seed)
    return np.concatenate([chosen, added]).astype(np.int64)


def near_duplicates(
    features: np.ndarray,
    *,
    threshold: float = DEDUPE_THRESHOLD,
    rows: np.ndarray | None = None,
    method: str = "auto",
) -> np.ndarray:
    """For each of ``rows`` (default all) in order: −1 if kept, else the kept row it duplicates.

    A row is dropped when an earlier kept row has cosine ≥ ``threshold`` with it, so no two kept
    rows are near-duplicates and every dropped row has a kept twin. "exact": each block of rows is
    compared with all rows kept before it and with itself; "index": pairs found in matrix products
    within faiss inverted lists (``core.select.dedupe_index``); "auto" takes "index" from
    ``DEDUPE_INDEX_MIN_ROWS`` rows.
    """
    if not 0.0 < threshold <= 1.0:
        raise PrismError(f"threshold must be in (0, 1], got {threshold!r}.", param="threshold")
    if method not in ("auto", "exact", "index"):
        raise PrismError(f"method must be auto, exact or index; got {method!r}.", param="method")
    order = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=np.int64)
    if method == "index" or (method == "auto" and len(order) >= DEDUPE_INDEX_MIN_ROWS):
        return indexed_near_duplicates(features, threshold=threshold, rows=order)
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
    budget: int | None,
    seed: int,
    start: object = None,
    threshold: float = DEDUPE_THRESHOLD,
) -> np.ndarray:
    """Drop near-duplicates in gradient space (cosine ≥ ``threshold``), keeping the first of each.

    Rows of ``start`` come first, so they are the ones kept. With a budget, a seeded random sample
    of the kept rows beyond ``start``.
    """
    chosen = start_rows(pool, start, budget)
    order = np.concatenate([chosen, np.flatnonzero(available(pool, chosen))])
    twin = near_duplicates(pool.features, threshold=float(threshold), rows=order)
    kept = order[twin < 0]
    added = kept[~np.isin(kept, chosen)]
    added = _subsample(added, None if budget is None else budget - len(chosen), seed)
    return np.concatenate([chosen, added]).astype(np.int64)


Selector = Callable[..., np.ndarray]
# The options of every targeted selector that say which relevance it ranks by (the pool's).
TARGET_OPTIONS: Mapping[str, Callable[[Any], Any]] = {
    "target": str,
    "agg": relevance_agg,
    "whiten": boolean,
}


@dataclass(frozen=True)
class SelectorSpec:
    """One selector: what it runs, what it says, what it takes.

    ``options``: option name → type (CLI ``--option name=value`` strings are converted with it);
    ``is_filter``: keeps every row that passes a test, so its budget may be omitted;
    ``prefix_stable``: every prefix of its answer is its answer for a smaller budget;
    ``needs_clusters``: runs only on a clustered pool;
    ``needs_target``: ranks by relevance to a target set (``TARGET_OPTIONS`` are its options too);
    ``seeded``: its result depends on the seed (False: ties go by row order);
    ``curves``: drawn on the default budget curves (G-Vendi against budget);
    ``explain``: the same call returning (rows, ``core.select.quality.LeftOut``), where the
    selector can say why each row it left out was left out.
    """

    function: Selector
    description: str
    options: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    is_filter: bool = False
    prefix_stable: bool = False
    needs_clusters: bool = False
    needs_target: bool = False
    seeded: bool = True
    curves: bool = True
    explain: Callable[..., tuple[np.ndarray, Any]] | None = None

    @property
    def all_options(self) -> Mapping[str, Callable[[Any], Any]]:
        """Its own options, and ``TARGET_OPTIONS`` for a targeted selector."""
        return {**TARGET_OPTIONS, **self.options} if self.needs_target else dict(self.options)


SELECTORS: dict[str, SelectorSpec] = {
    "random": SelectorSpec(random_sample, "uniform sample — the baseline", prefix_stable=True),
    "cluster_balanced": SelectorSpec(
        cluster_balanced, "equal quota per gradient cluster", needs_clusters=True
    ),
    "k_center": SelectorSpec(k_center, "greedy farthest point (cosine)", prefix_stable=True),
    "vendi_greedy": SelectorSpec(
        vendi_greedy,
        "greedy maximisation of the Vendi score",
        options={"rescore": int},
        prefix_stable=True,
    ),
    "sparse_clusters": SelectorSpec(
        sparse_clusters,
        "rows of clusters smaller than the median",
        is_filter=True,
        needs_clusters=True,
    ),
    "dedupe": SelectorSpec(
        dedupe, "drop near-duplicate gradients", options={"threshold": float}, is_filter=True
    ),
    "targeted": SelectorSpec(
        targeted,
        "top rows by relevance to a target set (LESS)",
        options={"round_robin": boolean},
        prefix_stable=True,
        needs_target=True,
        seeded=False,
        curves=False,
    ),
    "targeted_diverse": SelectorSpec(
        targeted_diverse,
        "greedy Vendi within the most relevant rows to a target set",
        options={"shortlist": int},
        needs_target=True,
        seeded=False,
        curves=False,
    ),
    "quality_diverse": SelectorSpec(
        quality_diverse,
        "best quality first, each below a cosine threshold to every kept row",
        options={"score": str, "threshold": float, "outliers": str},
        is_filter=True,
        prefix_stable=True,
        seeded=False,
        curves=False,
        explain=explain_quality_diverse,
    ),
    "quality_blend": SelectorSpec(
        quality_blend,
        "greedy log Vendi + beta × mean quality",
        options={"score": str, "beta": float, "outliers": str},
        prefix_stable=True,
        seeded=False,  # the seed draws the first row at beta = 0 only
        curves=False,
        explain=explain_quality_blend,
    ),
}


def selector_spec(method: str) -> SelectorSpec:
    """The spec of ``method``; a PrismError listing the selectors otherwise."""
    if method not in SELECTORS:
        raise PrismError(
            f"Unknown selector {method!r}; choose one of: {', '.join(SELECTORS)}.", param="method"
        )
    return SELECTORS[method]


def parse_options(method: str, pairs: Mapping[str, Any]) -> dict[str, Any]:
    """Typed selector options from strings (CLI ``--option name=value``) or values."""
    allowed = selector_spec(method).all_options
    options: dict[str, Any] = {}
    for name, raw in pairs.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise PrismError(
                f"{method} has no option {name!r} (its options: {known}).", param="options"
            )
        try:
            options[name] = allowed[name](raw)
        except (TypeError, ValueError):
            raise PrismError(
                f"{method} option {name} must be {_kind(allowed[name])}, got {raw!r}.",
                param="options",
            ) from None
    return options


def _kind(parse: Callable[[Any], Any]) -> str:
    if parse is boolean:
        return "true or false"
    if parse is relevance_agg:
        return "mean-max or max"
    return getattr(parse, "__name__", "valid")


def _checked(
    method: str, pool: Pool, budget: float | int | None, seed: int, options: Mapping[str, Any]
) -> tuple[SelectorSpec, int | None, int, dict[str, Any]]:
    spec = selector_spec(method)
    seed = check_seed(seed)
    rows = check_budget(budget, pool.n, allow_none=spec.is_filter)
    if rows is not None and rows > pool.n:
        raise PrismError(
            f"budget = {rows:,} is more than the {pool.n:,} rows of this workspace; "
            "lower the budget, or give a fraction such as 0.5.",
            param="budget",
        )
    typed = parse_options(method, options)
    if spec.needs_target:  # they chose pool.relevance; the function ranks by it
        typed = {k: v for k, v in typed.items() if k not in TARGET_OPTIONS}
    return spec, rows, seed, typed


def select(
    method: str,
    pool: Pool,
    *,
    budget: float | int | None,
    seed: int = 0,
    start: object = None,
    **options: Any,
) -> np.ndarray:
    """Run selector ``method`` with a budget (count or fraction); checks every argument first."""
    spec, rows, seed, typed = _checked(method, pool, budget, seed, options)
    return spec.function(pool, budget=rows, seed=seed, start=start, **typed)


def explain(
    method: str,
    pool: Pool,
    *,
    budget: float | int | None,
    seed: int = 0,
    start: object = None,
    **options: Any,
) -> tuple[np.ndarray, Any]:
    """``select``, and why every candidate row left out was left out (``LeftOut``), for the
    selectors that can say (``SelectorSpec.explain``)."""
    spec, rows, seed, typed = _checked(method, pool, budget, seed, options)
    if spec.explain is None:
        able = ", ".join(m for m, s in SELECTORS.items() if s.explain is not None)
        raise PrismError(
            f"{method} cannot say why it left rows out; the selectors that can: {able}.",
            param="explain",
        )
    return spec.explain(pool, budget=rows, seed=seed, start=start, **typed)
