"""The spherical k-means kernel every backend shares: assignment, the Lloyd loop, k-means++.

- ``Clustering``: what every k-means backend returns.
- ``assign``: each unit row's most similar centroid (argmax cosine), batched over rows.
- ``cluster_sums`` / ``normalise``: the rows' sum per cluster, and the unit centroids it gives.
- ``reseed_empty``: an emptied cluster takes one of the rows farthest from its centroid.
- ``lloyd``: the exact loop (assign, re-seed, recompute) from given centres.
- ``kmeans_plusplus``: seeded k-means++ centres by D² sampling (D² = 2 − 2 cos on unit rows).

``core.measures.clusters.spherical_kmeans`` runs these itself below ``FAISS_MIN_SAMPLES`` rows and
picks a backend above (``kmeans_faiss``, ``kmeans_torch``, ``kmeans_twolevel``), each built from
the same pieces, so a cluster means the same thing whichever ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse

# Row chunks keep the (chunk × k) similarity block near this many bytes.
_SIM_BLOCK_BYTES = 64 * 2**20
# Above this many clusters k-means++ draws its centres in _INIT_ROUNDS batched rounds: fewer,
# wider matrix products (measured ~4× faster per row than 128 rounds of 16 columns).
_GREEDY_MAX_CLUSTERS = 128
_INIT_ROUNDS = 32
_INIT_MIN_SAMPLE = 10_000
_INIT_ROWS_PER_CLUSTER = 50


@dataclass(frozen=True)
class Clustering:
    """Result of ``core.measures.clusters.spherical_kmeans`` and of every backend it runs.

    labels: (n,) int32, 0 = largest cluster; centroids: (k×d) float32 unit rows; objective: mean
    cosine of each row to its own centroid; seed: the seed the run was given; method: "exact"
    (``lloyd``), "faiss", "two-level" (approximate centroid assignment) or "torch".
    """

    labels: np.ndarray
    centroids: np.ndarray
    n_iter: int
    objective: float
    seed: int
    method: str = "exact"

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])


def chunk_rows(n_clusters: int) -> int:
    """Rows per block so that a (rows × n_clusters) float32 similarity block stays near 64 MB."""
    return int(min(16384, max(256, _SIM_BLOCK_BYTES // (4 * max(n_clusters, 1)))))


def assign(features: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax cosine of each row over the centroids, batched over rows: (labels int32, cosines)."""
    n = features.shape[0]
    labels = np.empty(n, dtype=np.int32)
    cosines = np.empty(n, dtype=np.float32)
    step = chunk_rows(centroids.shape[0])
    centroids_t = np.ascontiguousarray(centroids.T, dtype=np.float32)
    for start in range(0, n, step):
        chunk = np.asarray(features[start : start + step], dtype=np.float32)
        sims = chunk @ centroids_t
        best = sims.argmax(axis=1)
        labels[start : start + step] = best
        cosines[start : start + step] = sims[np.arange(best.size), best]
    return labels, cosines


def cluster_sums(features: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Σ of the rows of each cluster (k×d, float64), as a sparse one-hot product per chunk."""
    n, d = features.shape
    sums = np.zeros((n_clusters, d), dtype=np.float64)
    step = 65536
    for start in range(0, n, step):
        chunk = np.asarray(features[start : start + step], dtype=np.float32)
        part = labels[start : start + step]
        one_hot = scipy.sparse.csr_matrix(
            (np.ones(part.size, dtype=np.float32), (part, np.arange(part.size))),
            shape=(n_clusters, part.size),
        )
        sums += one_hot @ chunk
    return sums


def reseed_empty(labels: np.ndarray, cosines: np.ndarray, n_clusters: int) -> np.ndarray:
    """Give every empty cluster one of the rows farthest from its centroid (returns new labels)."""
    counts = np.bincount(labels, minlength=n_clusters)
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return labels
    labels = labels.copy()
    # Farthest first; a row is only taken from a cluster that keeps at least one member.
    candidates = iter(np.argsort(cosines, kind="stable"))
    for cluster in empty:
        for row in candidates:
            donor = labels[row]
            if counts[donor] > 1:
                counts[donor] -= 1
                labels[row] = cluster
                counts[cluster] = 1
                break
    return labels


def normalise(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(sums, axis=1)
    centroids = np.zeros_like(sums)
    np.divide(sums, norms[:, None], out=centroids, where=norms[:, None] > 0)
    return centroids.astype(np.float32), norms


def lloyd(
    features: np.ndarray,
    init: np.ndarray,
    *,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    n = features.shape[0]
    n_clusters = init.shape[0]
    centroids = init
    labels = np.full(n, -1, dtype=np.int32)
    previous = -math.inf
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        assigned, cosines = assign(features, centroids)
        new_labels = reseed_empty(assigned, cosines, n_clusters)
        reseeded = new_labels is not assigned
        changed = not np.array_equal(new_labels, labels)
        labels = new_labels
        centroids, norms = normalise(cluster_sums(features, labels, n_clusters))
        # Σ_k ⟨S_k, S_k/‖S_k‖⟩ / N = Σ_k ‖S_k‖ / N: the mean cosine to the updated centroids.
        objective = float(norms.sum() / n)
        # A re-seed may lower the objective for one step; that alone is not convergence.
        stalled = objective - previous <= tol * abs(objective) and not reseeded
        if not changed or stalled:
            break
        previous = objective
    return labels, centroids, n_iter, objective


def squared_distances(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """‖u − c‖² = 2 − 2 cos for unit rows (n × m, float32), batched over rows."""
    n = features.shape[0]
    out = np.empty((n, centres.shape[0]), dtype=np.float32)
    step = chunk_rows(centres.shape[0])
    centres_t = np.ascontiguousarray(centres.T)
    for start in range(0, n, step):
        block = features[start : start + step] @ centres_t
        np.multiply(block, -2.0, out=block)
        block += 2.0
        np.maximum(block, 0.0, out=out[start : start + step])
    return out


def kmeans_plusplus(features: np.ndarray, n_clusters: int, *, seed: int) -> np.ndarray:
    """k-means++ centres (rows of ``features``) for unit rows, by D² sampling (D² = 2 − 2 cos).

    Up to ``_GREEDY_MAX_CLUSTERS`` centres this is greedy k-means++ (2 + ⌊ln k⌋ candidates per
    step, the best kept, as in scikit-learn). Each step is a full pass over the rows, so for larger
    k the centres are drawn in ``_INIT_ROUNDS`` rounds of D² samples taken together (as in
    k-means||): few passes, each a matrix product the BLAS runs at full speed.
    Centres are drawn from a seeded sample of at most max(10,000, 50·k) rows (like faiss, which
    trains on 256 rows per centroid): Lloyd's iterations refine them on all rows anyway.
    """
    rng = np.random.default_rng(seed)
    sample_size = max(_INIT_MIN_SAMPLE, _INIT_ROWS_PER_CLUSTER * n_clusters)
    if features.shape[0] > sample_size:
        features = features[np.sort(rng.choice(features.shape[0], sample_size, replace=False))]
    n = features.shape[0]
    chosen = [int(rng.integers(n))]
    closest = squared_distances(features, features[chosen]).ravel().astype(np.float64)
    if n_clusters > _GREEDY_MAX_CLUSTERS:
        rounds = np.array_split(np.arange(1, n_clusters), _INIT_ROUNDS)
        for batch in rounds:
            if batch.size == 0:
                continue
            total = closest.sum()
            if total > 0:
                k = min(batch.size, int(np.count_nonzero(closest)))
                picks = rng.choice(n, size=k, replace=False, p=closest / total)
            else:
                picks = np.empty(0, dtype=np.int64)
            if picks.size < batch.size:  # fewer distinct rows than centres: reuse rows
                picks = np.append(picks, rng.choice(n, size=batch.size - picks.size))
            chosen.extend(int(row) for row in picks)
            distances = squared_distances(features, features[picks])
            np.minimum(closest, distances.min(axis=1), out=closest)
        return features[chosen]
    n_trials = 2 + int(math.log(n_clusters))
    for _ in range(1, n_clusters):
        cumulative = np.cumsum(closest)
        targets = rng.uniform(size=n_trials) * cumulative[-1]
        candidates = np.minimum(np.searchsorted(cumulative, targets), n - 1)
        distances = squared_distances(features, features[candidates]).astype(np.float64)
        np.minimum(distances, closest[:, None], out=distances)
        best = int(np.argmin(distances.sum(axis=0)))
        chosen.append(int(candidates[best]))
        closest = distances[:, best]
    return features[chosen]
