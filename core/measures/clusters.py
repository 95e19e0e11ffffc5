"""Clusters of unit-length features: spherical k-means, cluster sizes, sparse clusters, coverage.

- ``spherical_kmeans``: cosine k-means (k-means++ init, seeded, best of ``n_init``), labels renumbered
  by decreasing cluster size, so label 0 is the largest cluster. Below ``FAISS_MIN_SAMPLES`` rows
  it runs the exact Lloyd loop (``core.measures.kmeans``); from there on torch on a GPU (``core.measures.kmeans_torch``),
  else faiss (``core.measures.kmeans_faiss``), or from ``TWO_LEVEL_MIN_CLUSTERS`` clusters on
  the CPU the two-level loop (``core.measures.kmeans_twolevel``).
- ``default_n_clusters``: k ≈ N/10, the published choice.
- ``cluster_sizes`` / ``sparse_clusters``: a cluster is *sparse* when its size is strictly below
  the median cluster size (the published definition).
- ``few_rows_note``: when those figures (and coverage) are noise: too few rows or clusters, or
  clusters too small, by one stated rule.
- ``coverage``: how much of a reference clustering a subset touches (fraction of clusters, weighted
  by size, entropy of the subset's cluster histogram).
- ``nearest_cluster``: the closest centroid (by cosine) of new candidate samples.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np

from core.devices import resolve_device
from core.errors import PrismError
from core.measures.kmeans import Clustering, assign, kmeans_plusplus, lloyd
from core.measures.kmeans_faiss import faiss_kmeans
from core.measures.kmeans_torch import torch_kmeans
from core.measures.kmeans_twolevel import two_level_kmeans
from core.validate import check_features, check_int, check_seed

# From this many rows "auto" clusters with faiss; below it the exact Lloyd loop (so small sets,
# the demo included, keep exactly the clusters they always had).
FAISS_MIN_SAMPLES = 20_000
# From this many clusters "auto" on a CPU takes the two-level loop (one exact pass costs N·k·d).
TWO_LEVEL_MIN_CLUSTERS = 4096
KMEANS_METHODS = ("auto", "exact", "faiss", "two-level", "torch")


def default_n_clusters(n_samples: int) -> int:
    """round(N/10) as published, at least 2 (1 when N == 1), at most N."""
    n = check_int(n_samples, param="n_samples", minimum=1)
    return min(n, max(2, round(n / 10)))


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 copy with unit rows (a zero row stays zero); the input is never changed."""
    rows = np.array(matrix, dtype=np.float32, copy=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
    return rows


# A row counts as unit when its norm is within this of 1 (float32 rounding of a unit row is ~1e-7).
UNIT_NORM_TOL = 1e-4


def unit_rows_or_self(matrix: np.ndarray, *, step: int = 65536) -> np.ndarray:
    """``matrix`` itself when it is float32 and every row is unit (or zero), else ``unit_rows``.

    Prism's features are unit rows already, and a unit copy of them costs 4 GB at 10⁶ × 1,024; the
    check reads the rows block by block, so a memory map stays on disk.
    """
    if matrix.dtype != np.float32:
        return unit_rows(matrix)
    for start in range(0, matrix.shape[0], step):
        norms = np.linalg.norm(np.asarray(matrix[start : start + step]), axis=1)
        if not np.all((np.abs(norms - 1) <= UNIT_NORM_TOL) | (norms == 0)):
            return unit_rows(matrix)
    return matrix


def _sort_by_size(labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.bincount(labels, minlength=centroids.shape[0])
    order = np.argsort(-sizes, kind="stable")  # ties keep their previous order
    new_label = np.empty_like(order)
    new_label[order] = np.arange(order.size)
    return new_label[labels].astype(np.int32), np.ascontiguousarray(centroids[order])


def spherical_kmeans(
    features: np.ndarray,
    *,
    n_clusters: int,
    seed: int = 0,
    max_iter: int = 100,
    n_init: int = 3,
    tol: float = 1e-6,
    method: str = "auto",
) -> Clustering:
    """Cosine k-means on unit rows (N×d); deterministic for a seed; label 0 = largest cluster.

    Each of ``n_init`` runs starts from k-means++ (D² = 2 − 2 cos on unit rows) and alternates
    argmax-cosine assignment with normalised-mean centroids until no label changes or the objective improves by less than ``tol`` (relative). The run with the highest
    objective (mean cosine to own centroid) is kept.

    ``method``: "exact" is that loop in numpy; "faiss" runs the same iterations in faiss
    (``core.measures.kmeans_faiss``); "two-level" clusters coarse cells, then each cell, then
    refines with each row searching its nearest cells (``core.measures.kmeans_twolevel``, one
    start); "torch" runs exact-assignment iterations with torch (``core.measures.kmeans_torch``,
    on a GPU when there is one); "auto" takes "exact" below ``FAISS_MIN_SAMPLES`` rows and from
    there on "torch" on a CUDA device, else "faiss" below ``TWO_LEVEL_MIN_CLUSTERS`` clusters
    and "two-level" from there.
    """
    array = check_features(features)
    n = array.shape[0]
    if n == 0:
        raise PrismError("features has no rows; there is nothing to cluster.", param="features")
    n_clusters = check_int(n_clusters, param="n_clusters", minimum=1, maximum=n)
    seed = check_seed(seed)
    max_iter = check_int(max_iter, param="max_iter", minimum=1)
    n_init = check_int(n_init, param="n_init", minimum=1)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise PrismError(f"tol must be a number ≥ 0; got {tol!r}.", param="tol")

    if method not in KMEANS_METHODS:
        raise PrismError(
            f"method must be one of {', '.join(KMEANS_METHODS)}; got {method!r}.", param="method"
        )
    if method == "auto" and n >= FAISS_MIN_SAMPLES:
        if _cuda():
            method = "torch"
        else:
            method = "faiss" if n_clusters < TWO_LEVEL_MIN_CLUSTERS else "two-level"
    if method == "torch":
        result = torch_kmeans(
            unit_rows(array),
            n_clusters=n_clusters,
            seed=seed,
            max_iter=max_iter,
            device=str(resolve_device("auto")),
        )
        labels, centroids = _sort_by_size(result.labels, result.centroids)
        return dataclasses.replace(result, labels=labels, centroids=centroids)
    if method in ("faiss", "two-level"):
        unit = unit_rows(array) if method == "faiss" else unit_rows_or_self(array)
        if method == "faiss":
            result = faiss_kmeans(
                unit, n_clusters=n_clusters, seed=seed, max_iter=max_iter, n_init=n_init
            )
        else:
            result = two_level_kmeans(
                unit, n_clusters=n_clusters, seed=seed, max_iter=min(max_iter, 10)
            )
        labels, centroids = _sort_by_size(result.labels, result.centroids)
        return dataclasses.replace(result, labels=labels, centroids=centroids)

    unit = unit_rows(array)
    init_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=n_init)
    runs = []
    for init_seed in init_seeds:
        init = kmeans_plusplus(unit, n_clusters, seed=int(init_seed))
        runs.append(lloyd(unit, init, max_iter=max_iter, tol=float(tol)))
    # max keeps the first of equal objectives, so the choice is deterministic too
    labels, centroids, n_iter, objective = max(runs, key=lambda run: run[3])
    labels, centroids = _sort_by_size(labels, centroids)
    return Clustering(
        labels=labels, centroids=centroids, n_iter=n_iter, objective=objective, seed=seed
    )


def _cuda() -> bool:
    # heavy: torch, only to ask for CUDA
    import torch

    return bool(torch.cuda.is_available())


def _check_labels(labels: object, *, n_clusters: int, name: str = "labels") -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise PrismError(
            f"{name} must be a 1-D integer array; got dtype {array.dtype} and shape {array.shape}.",
            param=name,
        )
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n_clusters):
        raise PrismError(
            f"{name} must lie in [0, {n_clusters - 1}] for n_clusters={n_clusters}; got values "
            f"from {array.min()} to {array.max()}.",
            param=name,
        )
    return array


def cluster_sizes(labels: np.ndarray, *, n_clusters: int) -> np.ndarray:
    """Number of rows per cluster (n_clusters,) int64, zeros for empty clusters."""
    n_clusters = check_int(n_clusters, param="n_clusters", minimum=1)
    return np.bincount(_check_labels(labels, n_clusters=n_clusters), minlength=n_clusters)


def sparse_clusters(sizes: np.ndarray) -> np.ndarray:
    """Boolean mask of clusters whose size is strictly below the median cluster size."""
    array = np.asarray(sizes)
    if array.ndim != 1:
        raise PrismError(
            f"sizes must be a 1-D array of cluster sizes; got shape {array.shape}.", param="sizes"
        )
    if array.size == 0:
        return np.zeros(0, dtype=bool)
    return array < np.median(array)


# Below these, a cluster's size, its sparse/dense label and a subset's coverage move with a few
# rows (24 rows in k = 4 clusters: coverage in steps of 25 %, a cluster of 6 sparse or not by one
# row), so they are shown with this warning. k ≈ N/10 gives a median of about 10 rows.
FEW_ROWS = 100
FEW_CLUSTERS = 10
SMALL_MEDIAN_SIZE = 5
FEW_ROWS_RULE = (
    f"fewer than {FEW_ROWS} rows, fewer than {FEW_CLUSTERS} clusters, or a median cluster "
    f"below {SMALL_MEDIAN_SIZE} rows"
)


def few_rows_note(n_rows: int, sizes: np.ndarray | list[int] | tuple[int, ...]) -> str | None:
    """Why cluster sizes, sparse clusters and coverage are noise for this clustering (``sizes``,
    rows per cluster, of ``n_rows`` rows), or None when none of ``FEW_ROWS_RULE`` holds."""
    array = np.asarray(sizes)
    if array.size == 0:
        return None
    median = float(np.median(array))
    if n_rows >= FEW_ROWS and array.size >= FEW_CLUSTERS and median >= SMALL_MEDIAN_SIZE:
        return None
    return (
        f"{n_rows:,} rows in {array.size:,} clusters (median size {median:g}): cluster sizes, "
        "sparse clusters and coverage change with a few rows here, so read them as rough, not "
        f"as findings (the rule: {FEW_ROWS_RULE})."
    )


@dataclass(frozen=True)
class Coverage:
    """How much of a reference clustering a subset touches.

    fraction: covered clusters / all clusters; weighted: rows of the covered clusters / all rows;
    entropy: Shannon entropy (nats) of the subset's cluster histogram.
    """

    fraction: float
    weighted: float
    entropy: float
    n_covered: int
    n_clusters: int


def coverage(subset_labels: np.ndarray, *, reference_sizes: np.ndarray) -> Coverage:
    """Coverage of a subset (its rows' reference cluster labels) against reference cluster sizes."""
    sizes = np.asarray(reference_sizes)
    if sizes.ndim != 1 or sizes.size == 0:
        raise PrismError(
            f"reference_sizes must be a non-empty 1-D array of cluster sizes; got shape {sizes.shape}.",
            param="reference_sizes",
        )
    if np.any(sizes < 0):
        raise PrismError("reference_sizes must not be negative.", param="reference_sizes")
    n_clusters = int(sizes.size)
    labels = _check_labels(subset_labels, n_clusters=n_clusters, name="subset_labels")
    histogram = np.bincount(labels, minlength=n_clusters)
    covered = histogram > 0
    n_covered = int(covered.sum())
    total = float(sizes.sum())
    weighted = float(sizes[covered].sum()) / total if total > 0 else 0.0
    if labels.size:
        p = histogram[covered] / labels.size
        entropy = float(-(p * np.log(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0
    else:
        entropy = 0.0
    return Coverage(
        fraction=n_covered / n_clusters,
        weighted=weighted,
        entropy=entropy,
        n_covered=n_covered,
        n_clusters=n_clusters,
    )


def nearest_cluster(features: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest centroid by cosine for each row: (labels (n,) int32, cosines (n,) float32)."""
    array = check_features(features)
    centres = check_features(centroids, param="centroids")
    if centres.shape[0] == 0:
        raise PrismError("centroids is empty; there is no cluster to assign to.", param="centroids")
    if array.shape[1] != centres.shape[1]:
        raise PrismError(
            f"features have d={array.shape[1]} but centroids have d={centres.shape[1]}; they must "
            "come from the same sketch.",
            param="centroids",
        )
    # Rows and centroids are normalised here so the returned numbers are true cosines.
    return assign(unit_rows(array), unit_rows(centres))
