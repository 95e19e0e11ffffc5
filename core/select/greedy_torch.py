"""The eager greedy on a torch device: every free row's score updated at every pick.

On a GPU one pass over 10⁶ × 1,024 float32 features is about a millisecond of memory traffic, so
the eager loop (one matrix–vector product per chosen row, as ``core.select.greedy.eager_greedy``)
is faster there than any bookkeeping that avoids passes. Scores are float64 sums of float32
cosines, as on the CPU: the choices equal the CPU loops' except where two rows' scores are within
rounding of each other (the order of a dot product's additions differs between devices).
"""

from __future__ import annotations

import numpy as np

# Rows copied to the device at a time (64k × 1,024 float32 = 256 MB).
TRANSFER_ROWS = 65_536


def device_greedy(
    features: np.ndarray,
    *,
    budget: int,
    chosen: list[int],
    free: np.ndarray,
    aggregate: str,
    device: str,
) -> list[int]:
    """Grow ``chosen`` to ``budget`` rows on ``device``; each step adds the free row of least score
    (Σ cos² for ``aggregate="sum_sq"``, max cos for "max"), the first of equal scores."""
    # heavy: torch, only for the loop on a device
    import torch

    n, dim = features.shape
    rows = torch.empty((n, dim), dtype=torch.float32, device=device)
    for lo in range(0, n, TRANSFER_ROWS):
        block = np.array(features[lo : lo + TRANSFER_ROWS], dtype=np.float32)  # writable
        rows[lo : lo + len(block)] = torch.from_numpy(block).to(device)
    start = 0.0 if aggregate == "sum_sq" else -torch.inf
    score = torch.full((n,), start, dtype=torch.float64, device=device)
    # A row that may not be picked (taken, or not free) scores +inf, which every update keeps.
    score[torch.from_numpy(~free).to(device)] = torch.inf
    order = list(chosen)

    def absorb(i: int) -> None:
        cosines = (rows @ rows[i]).double()
        if aggregate == "sum_sq":
            score.add_(cosines.square_())
        else:
            torch.maximum(score, cosines, out=score)
        score[i] = torch.inf

    for i in order:
        absorb(i)
    while len(order) < budget:
        i = int(score.argmin().item())
        if not bool(torch.isfinite(score[i])):
            break  # no free row left
        order.append(i)
        absorb(i)
    return order
