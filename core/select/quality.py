"""Quality beside diversity: two selectors that weigh a per-row quality score against redundancy.

- ``quality_diverse`` (DEITA's score-first filter, Liu et al., 2024): rows in order of their
  quality score, best first; a row is kept only if its gradient cosine to every kept row is below
  ``threshold`` (τ), until the budget is reached. Deterministic: ties in the score go by row
  order, so the seed changes nothing.
- ``quality_blend``: greedy maximisation of log Vendi + β · mean quality. The Vendi term is the
  order-2 Vendi score (closed form, as in ``vendi_greedy``): VS₂(S) = |S|² / ‖Σ u uᵀ‖²_F, so a
  step adds the row maximising −log(F + 2·Σ_s cos²(u, s) + 1) + β · (Q + z_u) / (|S| + 1), with
  F = ‖Σ u uᵀ‖²_F and Q the summed quality of the chosen rows. Quality is standardised over the
  candidate rows (z-scores: mean 0, standard deviation 1), so β is in standard deviations. β = 0
  makes the choices of ``vendi_greedy`` (its seeded first row too); a large β follows quality.
  Eager: one pass over the features per chosen row.

The quality score (option ``score``) is a numeric column of the pool, higher is better; a leading
"-" reverses it. The default, ``-loss``, prefers responses the proxy finds predictable given
their prompt; ``ifd`` (after ``prism quality WS --ifd``) prefers responses the prompt helps least.
Rows without a score are never chosen. With ``outliers="skip"`` (the default) rows flagged by the
loss-outlier rule (``core.measures.quality.OUTLIER_RULE``, computed from the pool's ``loss``) are
left out first: extreme loss is a warning sign, not a quality to reward.

``explain_quality_diverse`` / ``explain_quality_blend`` return the rows and ``LeftOut``: for
every candidate row not kept, why (``REASONS``), the row it was too close to and the cosine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import PrismError
from core.measures.quality import MIN_ROWS, loss_outliers
from core.select.greedy import BLOCK_ROWS, block_dot, row_of
from core.select.pool import Pool, available, check_fit, pool_column, start_rows
from core.validate import check_choice, check_number

DEFAULT_SCORE = "-loss"
# Gradient cosines of distinct GSM8K rows (the demo, embedded proxy): median 0.24, 99th
# percentile 0.46, largest 0.68 — so 0.5 keeps most rows and drops the closest pairs.
QUALITY_THRESHOLD = 0.5
DEFAULT_BETA = 1.0
OUTLIER_CHOICES = ("skip", "keep")
_TOLERANCE = 1e-6  # float32 rounding of a cosine

REASONS = {
    "too_similar": "too similar to a kept row (cosine ≥ threshold)",
    "below_cut": "its quality is below the budget's cut (the budget filled before its turn)",
    "lower_gain": "its gain (log Vendi + β·quality) stayed below the rows chosen",
    "high_loss_outlier": "flagged as a high-loss outlier",
    "low_loss_outlier": "flagged as a low-loss outlier",
    "no_score": "it has no quality score",
}


@dataclass(frozen=True)
class LeftOut:
    """Why each candidate row was not kept: parallel arrays, one entry per row left out.

    ``other`` is the kept row it was too similar to (``too_similar``) or its most similar chosen
    row (the others), −1 when there is none; ``cosine`` the cosine to ``other`` (NaN without).
    """

    rows: np.ndarray  # (m,) int64
    reasons: tuple[str, ...]  # keys of REASONS
    other: np.ndarray  # (m,) int64
    cosine: np.ndarray  # (m,) float32
    score: np.ndarray  # (m,) float64, the row's quality score (NaN: none)

    def describe(self, i: int, ids: np.ndarray | None = None) -> str:
        """Entry ``i`` in words, naming rows by ``ids`` when given."""
        reason, other = self.reasons[i], int(self.other[i])
        name = (lambda r: str(ids[r])) if ids is not None else (lambda r: f"row {r}")
        if reason == "too_similar":
            return f"too similar to {name(other)} (cos {self.cosine[i]:.2f} ≥ threshold)"
        text = REASONS[reason]
        if other >= 0 and reason in ("below_cut", "lower_gain"):
            text += f"; most similar chosen: {name(other)} (cos {self.cosine[i]:.2f})"
        return text


def quality_score(pool: Pool, score: str, method: str) -> np.ndarray:
    """The pool's quality column named by ``score`` (a leading "-" reverses it), higher better."""
    if not isinstance(score, str) or not score.strip("-"):
        raise PrismError(
            f"score must name a numeric column (e.g. -loss or ifd), got {score!r}.",
            param="options",
        )
    name = score.lstrip("-")
    values = pool_column(pool, name, method)
    return -values if score.startswith("-") else values


def _flags(pool: Pool, outliers: str) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) loss-outlier masks when ``outliers`` is "skip" and the pool has a loss."""
    check_choice(outliers, OUTLIER_CHOICES, param="outliers")
    none = np.zeros(pool.n, dtype=bool)
    if outliers == "keep" or "loss" not in pool.columns:
        return none, none
    loss = np.asarray(pool.columns["loss"], dtype=np.float64)
    if int((np.isfinite(loss) & (loss > 0)).sum()) < MIN_ROWS:
        return none, none
    found = loss_outliers(loss)
    return found.high, found.low


def _unscored_reasons(
    free: np.ndarray, quality: np.ndarray, high: np.ndarray, low: np.ndarray
) -> dict[int, str]:
    """Reasons of the free rows left out before any choosing (flags, no score)."""
    out: dict[int, str] = {}
    for rows, reason in (
        (np.flatnonzero(free & high), "high_loss_outlier"),
        (np.flatnonzero(free & low), "low_loss_outlier"),
        (np.flatnonzero(free & ~high & ~low & ~np.isfinite(quality)), "no_score"),
    ):
        out.update(dict.fromkeys(rows.tolist(), reason))
    return out


def _left_out(
    pool: Pool,
    kept: np.ndarray,
    early: dict[int, str],
    decided: dict[int, tuple[str, int, float]],
    rest_reason: str,
    quality: np.ndarray,
) -> LeftOut:
    """Every candidate not in ``kept``: its early reason, its decided one, else ``rest_reason``
    with its most similar kept row."""
    candidates = np.flatnonzero(pool.candidate_mask())
    left = candidates[~np.isin(candidates, kept)]
    rest = np.array([r for r in left.tolist() if r not in early and r not in decided], dtype=int)
    nearest = np.full(pool.n, -1, dtype=np.int64)
    best = np.full(pool.n, np.nan, dtype=np.float32)
    if len(rest) and len(kept):
        chosen = np.asarray(pool.features[np.sort(kept)], dtype=np.float32)
        order = np.sort(kept)
        for lo in range(0, len(rest), BLOCK_ROWS):
            ids = rest[lo : lo + BLOCK_ROWS]
            sims = np.asarray(pool.features[ids], dtype=np.float32) @ chosen.T
            j = np.argmax(sims, axis=1)
            nearest[ids] = order[j]
            best[ids] = sims[np.arange(len(ids)), j]
    reasons, other, cosine = [], [], []
    for r in left.tolist():
        if r in early:
            reasons.append(early[r])
            other.append(-1)
            cosine.append(np.nan)
        elif r in decided:
            reason, twin, value = decided[r]
            reasons.append(reason)
            other.append(twin)
            cosine.append(value)
        else:
            reasons.append(rest_reason)
            other.append(int(nearest[r]))
            cosine.append(float(best[r]))
    return LeftOut(
        rows=left.astype(np.int64),
        reasons=tuple(reasons),
        other=np.asarray(other, dtype=np.int64),
        cosine=np.asarray(cosine, dtype=np.float32),
        score=quality[left].astype(np.float64),
    )


def explain_quality_diverse(
    pool: Pool,
    *,
    budget: int | None,
    seed: int = 0,
    start: object = None,
    score: str = DEFAULT_SCORE,
    threshold: float = QUALITY_THRESHOLD,
    outliers: str = "skip",
) -> tuple[np.ndarray, LeftOut]:
    """``quality_diverse``'s rows and why every other candidate row was left out."""
    threshold = check_number(threshold, param="threshold", above=0, maximum=1)
    quality = quality_score(pool, score, "quality_diverse")
    chosen = start_rows(pool, start, budget)
    free = available(pool, chosen)
    high, low = _flags(pool, outliers)
    early = _unscored_reasons(free, quality, high, low)
    ok = free & ~high & ~low & np.isfinite(quality)
    rows = np.flatnonzero(ok)
    order = rows[np.argsort(-quality[rows], kind="stable")]  # best first, ties by row
    kept = list(chosen.tolist())
    kept_features = np.asarray(pool.features[chosen], dtype=np.float32).reshape(
        len(chosen), pool.features.shape[1]
    )
    decided: dict[int, tuple[str, int, float]] = {}
    cut = budget if budget is not None else len(chosen) + len(order)
    for lo in range(0, len(order), BLOCK_ROWS):
        if len(kept) >= cut:
            break
        ids = order[lo : lo + BLOCK_ROWS]
        block = np.asarray(pool.features[ids], dtype=np.float32)
        best = np.full(len(ids), -np.inf, dtype=np.float32)
        best_id = np.full(len(ids), -1, dtype=np.int64)
        if len(kept_features):
            sims = block @ kept_features.T
            j = np.argmax(sims, axis=1)
            best, best_id = sims[np.arange(len(ids)), j], np.asarray(kept, dtype=np.int64)[j]
        inside = block @ block.T
        local: list[int] = []
        for a in range(len(ids)):
            if len(kept) >= cut:
                break
            value, twin = float(best[a]), int(best_id[a])
            if local:
                b = int(np.argmax(inside[a, local]))
                if inside[a, local[b]] > value:
                    value, twin = float(inside[a, local[b]]), int(ids[local[b]])
            if value >= threshold - _TOLERANCE:
                decided[int(ids[a])] = ("too_similar", twin, value)
                continue
            local.append(a)
            kept.append(int(ids[a]))
        if local:
            kept_features = np.vstack([kept_features, block[local]])
    result = np.asarray(kept, dtype=np.int64)
    return result, _left_out(pool, result, early, decided, "below_cut", quality)


def quality_diverse(
    pool: Pool,
    *,
    budget: int | None,
    seed: int,
    start: object = None,
    score: str = DEFAULT_SCORE,
    threshold: float = QUALITY_THRESHOLD,
    outliers: str = "skip",
) -> np.ndarray:
    """Best quality first, each row kept only if its cosine to every kept row is below
    ``threshold``, up to the budget (all that pass without one)."""
    rows, _ = explain_quality_diverse(
        pool,
        budget=budget,
        seed=seed,
        start=start,
        score=score,
        threshold=threshold,
        outliers=outliers,
    )
    return rows


def explain_quality_blend(
    pool: Pool,
    *,
    budget: int,
    seed: int,
    start: object = None,
    score: str = DEFAULT_SCORE,
    beta: float = DEFAULT_BETA,
    outliers: str = "skip",
) -> tuple[np.ndarray, LeftOut]:
    """``quality_blend``'s rows and why every other candidate row was left out."""
    beta = check_number(beta, param="beta", minimum=0)
    quality = quality_score(pool, score, "quality_blend")
    chosen = start_rows(pool, start, budget)
    free = available(pool, chosen)
    high, low = _flags(pool, outliers)
    early = _unscored_reasons(free, quality, high, low)
    free &= ~high & ~low & np.isfinite(quality)
    check_fit("quality_blend", budget, len(chosen), int(free.sum()))
    scored = np.isfinite(quality) & (pool.candidate_mask() | np.isin(np.arange(pool.n), chosen))
    spread = float(np.std(quality[scored])) if scored.any() else 0.0
    z = np.where(scored, (quality - np.nanmean(np.where(scored, quality, np.nan))), 0.0)
    z = z / spread if spread > 0 else np.zeros(pool.n)
    features = pool.features
    load = np.zeros(pool.n, dtype=np.float64)  # Σ_{s chosen} cos(row, s)²
    order = [int(i) for i in chosen]
    for i in order:
        load += np.square(block_dot(features, row_of(features, i)), dtype=np.float64)
    frob = float(load[order].sum()) if order else 0.0  # ‖Σ_s u_s u_sᵀ‖²_F
    total = float(z[order].sum()) if order else 0.0
    free[order] = False
    if not order and budget > 0:
        if beta == 0:  # vendi_greedy's seeded first row
            first = int(np.random.default_rng(seed).choice(np.flatnonzero(free)))
        else:
            first = int(np.argmax(np.where(free, z, -np.inf)))
        order.append(first)
        free[first] = False
        frob, total = 1.0, float(z[first])  # one unit row: ‖u uᵀ‖²_F = 1
        load += np.square(block_dot(features, row_of(features, first)), dtype=np.float64)
    while len(order) < budget:
        m = len(order)
        gain = -np.log(frob + 2.0 * load + 1.0) + beta * (total + z) / (m + 1)
        i = int(np.argmax(np.where(free, gain, -np.inf)))
        order.append(i)
        free[i] = False
        frob += 2.0 * load[i] + 1.0
        total += float(z[i])
        load += np.square(block_dot(features, row_of(features, i)), dtype=np.float64)
    result = np.asarray(order, dtype=np.int64)
    return result, _left_out(pool, result, early, {}, "lower_gain", quality)


def quality_blend(
    pool: Pool,
    *,
    budget: int,
    seed: int,
    start: object = None,
    score: str = DEFAULT_SCORE,
    beta: float = DEFAULT_BETA,
    outliers: str = "skip",
) -> np.ndarray:
    """Greedy log Vendi (order 2) + β · mean standardised quality."""
    rows, _ = explain_quality_blend(
        pool, budget=budget, seed=seed, start=start, score=score, beta=beta, outliers=outliers
    )
    return rows
