"""Spherical k-means with faiss: the same clusters' meaning as the exact Lloyd loop.

``faiss_kmeans`` is what ``core.measures.clusters.spherical_kmeans`` runs from
``FAISS_MIN_SAMPLES`` rows on a CPU while k is below ``TWO_LEVEL_MIN_CLUSTERS`` (or when asked
for ``method="faiss"``): ``faiss.Kmeans(spherical=True)`` with exact argmax-cosine assignment (a
flat inner-product index). It starts from the exact loop's seeded k-means++ centres (best of
``n_init`` starts) and trains on at most ``MAX_POINTS_PER_CENTROID`` rows per centroid (a seeded
sample), for ``N_ITER`` iterations at most. For more clusters see ``core.measures.kmeans_twolevel``.

Every row is assigned at the end and the centroids are the normalised means of their rows, so
``objective`` is the mean cosine to the own centroid, as in the exact loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.measures.kmeans import (
    Clustering,
    cluster_sums,
    kmeans_plusplus,
    normalise,
    reseed_empty,
)

MAX_POINTS_PER_CENTROID = 256  # faiss's own default training sample per centroid
N_ITER = 25


def centroid_index(
    train: np.ndarray,
    n_clusters: int,
    *,
    n_iter: int,
    seed: int,
    max_points_per_centroid: int,
    init: np.ndarray | None = None,
) -> Any:
    """A flat inner-product faiss index over the centroids of a seeded spherical k-means of
    ``train`` (unit rows), started from ``init`` when given (else faiss's own random start)."""
    import faiss  # heavy: faiss, only the large-N paths need it

    d = train.shape[1]
    kmeans = faiss.Kmeans(
        d,
        n_clusters,
        niter=n_iter,
        spherical=True,
        seed=seed,
        max_points_per_centroid=max_points_per_centroid,
        min_points_per_centroid=1,
        verbose=False,
    )
    kmeans.train(np.ascontiguousarray(train, dtype=np.float32), init_centroids=init)
    index = faiss.IndexFlatIP(d)
    index.add(np.ascontiguousarray(kmeans.centroids, dtype=np.float32))
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


def _run(
    unit: np.ndarray, train: np.ndarray, init: np.ndarray, *, n_iter: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """One start: (labels of every row, centroids, objective) after training on ``train``."""
    n_clusters = init.shape[0]
    index = centroid_index(
        train,
        n_clusters,
        n_iter=n_iter,
        seed=seed,
        max_points_per_centroid=MAX_POINTS_PER_CENTROID,
        init=init,
    )
    labels, cosines = _search(index, unit)
    labels = reseed_empty(labels, cosines, n_clusters)
    centroids, norms = normalise(cluster_sums(unit, labels, n_clusters))
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
        init = kmeans_plusplus(train, n_clusters, seed=int(init_seed))
        runs.append(_run(unit, train, init, n_iter=n_iter, seed=int(init_seed)))
    labels, centroids, objective = max(runs, key=lambda run: run[2])
    return Clustering(
        labels=labels,
        centroids=centroids,
        n_iter=n_iter,
        objective=objective,
        seed=seed,
        method="faiss",
    )
