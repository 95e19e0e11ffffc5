"""Quality signals from the proxy's losses: the loss-outlier rule and the IFD ratio.

- ``loss_outliers``: flags rows whose response loss is extreme, by the rule ``OUTLIER_RULE``
  says in words: Tukey's far-out fences (3 × the interquartile range) on the log loss, plus an
  absolute floor for near-zero losses. Extreme loss is a warning sign, not a score to maximise:
  a very high loss is most often a broken, mislabelled or foreign row; a near-zero loss a trivial
  or memorised one.
- ``ifd_ratio``: the Instruction-Following Difficulty of Cherry LLM (Li et al., 2024), the loss of
  the response given its prompt over the loss of the response alone. Near 1 the prompt does not
  help the proxy predict the response; above 1 it hurts (Cherry LLM drops those rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import PrismError

HIGH_FENCE_IQR = 3.0  # far out: Q3 + 3·IQR of log loss
LOW_FENCE_IQR = 3.0  # far out below: Q1 − 3·IQR of log loss
LOW_LOSS_FLOOR = 0.05  # nats per response token: mean token probability above ~0.95
MIN_ROWS = 10  # quartiles of fewer rows say nothing
OUTLIER_RULE = (
    "high-loss outlier: log(loss) above Q3 + 3·IQR of log(loss) over the rows with a loss "
    "(likely broken, mislabelled or foreign rows); low-loss outlier: log(loss) below "
    "Q1 − 3·IQR, or loss below 0.05 nats per response token (trivial or memorised rows)"
)


@dataclass(frozen=True)
class LossOutliers:
    """The flags of ``loss_outliers`` and the cuts they came from (losses, not logs)."""

    high: np.ndarray  # (n,) bool
    low: np.ndarray  # (n,) bool
    high_cut: float  # a loss above this is a high-loss outlier
    low_cut: float  # a loss below this is a low-loss outlier
    n_rows: int  # rows with a finite, positive loss (the others are never flagged)


def loss_outliers(loss: np.ndarray) -> LossOutliers:
    """Flag extreme response losses by ``OUTLIER_RULE``; rows without a finite loss > 0 are not
    flagged and do not count towards the quartiles."""
    values = np.asarray(loss, dtype=np.float64)
    usable = np.isfinite(values) & (values > 0)
    if int(usable.sum()) < MIN_ROWS:
        raise PrismError(
            f"The outlier rule needs at least {MIN_ROWS} rows with a response loss; this set has "
            f"{int(usable.sum())}. Compute features (they store the loss) on more rows.",
            param="loss",
        )
    logs = np.log(values[usable])
    q1, q3 = np.percentile(logs, [25, 75])
    spread = q3 - q1
    high_cut = float(np.exp(q3 + HIGH_FENCE_IQR * spread))
    low_cut = float(max(np.exp(q1 - LOW_FENCE_IQR * spread), LOW_LOSS_FLOOR))
    high = usable & (np.where(usable, values, 0.0) > high_cut)
    low = usable & (np.where(usable, values, np.inf) < low_cut)
    return LossOutliers(high, low, high_cut, low_cut, int(usable.sum()))


def ifd_ratio(loss: np.ndarray, loss_alone: np.ndarray) -> np.ndarray:
    """IFD per row: ``loss / loss_alone`` (NaN where either is missing or the denominator is 0)."""
    given = np.asarray(loss, dtype=np.float64)
    alone = np.asarray(loss_alone, dtype=np.float64)
    ok = np.isfinite(given) & np.isfinite(alone) & (alone > 0)
    out = np.full(given.shape, np.nan)
    np.divide(given, alone, out=out, where=ok)
    return out.astype(np.float32)
