"""Spherical k-means with torch, for a GPU: exact argmax-cosine Lloyd iterations in chunked
matrix products on the device.

``torch_kmeans`` is what ``core.measures.clusters.spherical_kmeans`` runs for ``method="torch"``,
and for ``"auto"`` from ``FAISS_MIN_SAMPLES`` rows when a CUDA device is present. It starts from
the exact loop's seeded k-means++ centres when they are cheap (N·k ≤ ``PLUSPLUS_MAX_WORK``), else
from ``n_clusters`` seeded distinct rows (k-means++ at k = N/10 would cost as much as the run),
assigns every row to its most similar centroid (on a GPU in TF32, so a row within rounding of two
centroids may take either), re-seeds empty clusters with the rows farthest from their centroids
as the exact loop does, and stops when no label changes or the objective (mean cosine to the own
centroid) gains less than ``tol`` (relative). Every row is assigned every iteration: nothing is
approximate but the rounding.
"""

from __future__ import annotations

import math

import numpy as np

from core.measures.kmeans import Clustering, kmeans_plusplus, reseed_empty

_SIM_BLOCK_ELEMENTS = 2**30  # (rows × k) similarity block per matrix product: 4 GiB in float32
_SUM_ROWS = 65_536
PLUSPLUS_MAX_WORK = 10**9  # N·k up to which the start is k-means++ (on the CPU)


def torch_kmeans(
    unit: np.ndarray,
    *,
    n_clusters: int,
    seed: int,
    max_iter: int = 50,
    tol: float = 1e-5,
    device: str = "cpu",
    init: str = "auto",
) -> Clustering:
    """Spherical k-means of unit rows (N×d) on ``device``; labels not yet sorted by size."""
    # heavy: torch, only for k-means on a device
    import torch

    n, d = unit.shape
    rows = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32)).to(device)
    if init == "kmeans++" or (init == "auto" and n * n_clusters <= PLUSPLUS_MAX_WORK):
        plusplus = kmeans_plusplus(unit, n_clusters, seed=seed)
        centroids = torch.from_numpy(np.ascontiguousarray(plusplus, np.float32)).to(device)
    else:
        start = np.sort(np.random.default_rng(seed).choice(n, size=n_clusters, replace=False))
        centroids = rows[torch.from_numpy(start).to(device)].clone()
    step = max(1, min(n, _SIM_BLOCK_ELEMENTS // max(n_clusters, 1)))
    labels = np.full(n, -1, dtype=np.int64)
    previous, objective, n_iter = -math.inf, 0.0, 0
    precision = torch.get_float32_matmul_precision()
    if torch.device(device).type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the assignment products
    try:
        while n_iter < max_iter:
            n_iter += 1
            best = torch.empty(n, dtype=torch.int64, device=device)
            cosine = torch.empty(n, dtype=torch.float32, device=device)
            for lo in range(0, n, step):
                sims = rows[lo : lo + step] @ centroids.T
                cosine[lo : lo + step], best[lo : lo + step] = sims.max(dim=1)
            assigned = best.cpu().numpy()
            new_labels = reseed_empty(assigned, cosine.cpu().numpy(), n_clusters)
            reseeded = new_labels is not assigned
            changed = not np.array_equal(new_labels, labels)
            labels = np.asarray(new_labels, dtype=np.int64)
            index = torch.from_numpy(labels).to(device)
            sums = torch.zeros((n_clusters, d), dtype=torch.float64, device=device)
            for lo in range(0, n, _SUM_ROWS):
                sums.index_add_(0, index[lo : lo + _SUM_ROWS], rows[lo : lo + _SUM_ROWS].double())
            norms = sums.norm(dim=1)
            centroids = (sums / norms.clamp_min(1e-30)[:, None]).float()
            objective = float(norms.sum().item() / n)
            stalled = objective - previous <= tol * abs(objective) and not reseeded
            if not changed or stalled:
                break
            previous = objective
    finally:
        torch.set_float32_matmul_precision(precision)
    return Clustering(
        labels=labels.astype(np.int32),
        centroids=centroids.cpu().numpy().astype(np.float32),
        n_iter=n_iter,
        objective=objective,
        seed=seed,
        method="torch",
    )
