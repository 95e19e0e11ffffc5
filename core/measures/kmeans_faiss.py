"""Spherical k-means at scale with faiss: the same clusters' meaning as the exact Lloyd loop.

``faiss_kmeans`` is what ``core.measures.clusters.spherical_kmeans`` runs from
``FAISS_MIN_SAMPLES`` rows (or when asked for ``method="faiss"``):

- up to ``APPROX_MIN_CLUSTERS`` clusters: ``faiss.Kmeans(spherical=True)`` with exact
  argmax-cosine assignment (a flat inner-product index);
- from there on (k ≈ N/10 at large N): the same Lloyd iterations, with each row's centroid found
  through an HNSW graph over the centroids (approximate: a row may land on its second-best centroid
  now and then).

Both start from the exact loop's seeded k-means++ centres (best of ``n_init`` starts) and train
on at most ``MAX_POINTS_PER_CENTROID`` rows per centroid (a seeded sample), for ``N_ITER``
iterations at most.

Either way every row is assigned at the end and the centroids are the normalised means of their
rows, so ``objective`` is the mean cosine to the own centroid, as in the exact loop. The HNSW graph
is built on one thread, so a seed gives the same clusters on every run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from core.measures.clusters import (
    Clustering,
    _cluster_sums,
    _kmeans_plusplus,
    _normalise,
    _reseed_empty,
)

# From this many clusters the centroid assignment goes through an HNSW graph (exact below).
APPROX_MIN_CLUSTERS = 4096
MAX_POINTS_PER_CENTROID = 256  # faiss's own default training sample per centroid
N_ITER = 25
STALL_TOL = 1e-4  # relative objective gain below which the HNSW iterations stop
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 64


@contextlib.contextmanager
def faiss_threads(n_threads: int) -> Iterator[None]:
    """Run faiss on ``n_threads`` OpenMP threads inside the block, then restore the setting."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _hnsw(centroids: np.ndarray) -> object:
    """An inner-product HNSW graph over the centroids, built on one thread (deterministic)."""
    import faiss

    index = faiss.IndexHNSWFlat(centroids.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    with faiss_threads(1):
        index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def _search(index: object, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels int32, cosines float32) of each row's nearest centroid in ``index``, by chunks."""
    n = rows.shape[0]
    labels = np.empty(n, dtype=np.int32)
    cosines = np.empty(n, dtype=np.float32)
    step = 65536
    for start in range(0, n, step):
        chunk = np.ascontiguousarray(rows[start : start + step], dtype=np.float32)
        sims, found = index.search(chunk, 1)  # type: ignore[attr-defined]
        labels[start : start + step] = found[:, 0]
        cosines[start : start + step] = sims[:, 0]
    return labels, cosines


def _train_rows(unit: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    limit = MAX_POINTS_PER_CENTROID * n_clusters
    if unit.shape[0] <= limit:
        return unit
    return unit[np.sort(rng.choice(unit.shape[0], limit, replace=False))]


def _lloyd_hnsw(train: np.ndarray, init: np.ndarray, *, max_iter: int) -> np.ndarray:
    """Lloyd iterations with HNSW assignment; returns the final centroids (k×d, unit rows)."""
    n_clusters = init.shape[0]
    centroids = np.ascontiguousarray(init, dtype=np.float32)
    labels = np.full(train.shape[0], -1, dtype=np.int32)
    previous = -np.inf
    for _ in range(max_iter):
        assigned, cosines = _search(_hnsw(centroids), train)
        assigned = _reseed_empty(assigned, cosines, n_clusters)
        changed = not np.array_equal(assigned, labels)
        labels = assigned
        centroids, norms = _normalise(_cluster_sums(train, labels, n_clusters))
        # Approximate assignment can move a few rows back and forth for ever: stop on the objective.
        objective = float(norms.sum() / train.shape[0])
        if not changed or objective - previous <= STALL_TOL * abs(objective):
            break
        previous = objective
    return centroids


def _run(
    unit: np.ndarray, train: np.ndarray, init: np.ndarray, *, n_iter: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """One start: (labels of every row, centroids, objective) after training on ``train``."""
    import faiss

    n_clusters, d = init.shape
    if n_clusters >= APPROX_MIN_CLUSTERS:
        index = _hnsw(_lloyd_hnsw(train, init, max_iter=n_iter))
    else:
        kmeans = faiss.Kmeans(
            d,
            n_clusters,
            niter=n_iter,
            spherical=True,
            seed=seed,
            max_points_per_centroid=MAX_POINTS_PER_CENTROID,
            min_points_per_centroid=1,
            verbose=False,
        )
        kmeans.train(np.ascontiguousarray(train, dtype=np.float32), init_centroids=init)
        index = faiss.IndexFlatIP(d)
        index.add(np.ascontiguousarray(kmeans.centroids, dtype=np.float32))
    labels, cosines = _search(index, unit)
    labels = _reseed_empty(labels, cosines, n_clusters)
    centroids, norms = _normalise(_cluster_sums(unit, labels, n_clusters))
    return labels, centroids, float(norms.sum() / unit.shape[0])


def faiss_kmeans(
    unit: np.ndarray, *, n_clusters: int, seed: int, max_iter: int = N_ITER, n_init: int = 3
) -> Clustering:
    """Spherical k-means of unit rows (N×d) with faiss; labels not yet sorted by size.

    Like the exact loop: ``n_init`` k-means++ starts drawn with the same seeds, the best objective
    kept (so on a set where the exact loop converges, both usually reach the same clusters).
    """
    init_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=n_init)
    train = _train_rows(unit, n_clusters, np.random.default_rng(seed))
    n_iter = min(int(max_iter), N_ITER)
    runs = []
    for init_seed in init_seeds:
        init = _kmeans_plusplus(train, n_clusters, seed=int(init_seed))
        runs.append(_run(unit, train, init, n_iter=n_iter, seed=int(init_seed)))
    labels, centroids, objective = max(runs, key=lambda run: run[2])
    return Clustering(
        labels=labels,
        centroids=centroids,
        n_iter=n_iter,
        objective=objective,
        seed=seed,
        method="faiss-hnsw" if n_clusters >= APPROX_MIN_CLUSTERS else "faiss",
    )
