"""Spherical k-means for many clusters on a CPU: two levels, then Lloyd rounds over probed cells.

At k ≈ N/10 and N = 10⁶ one exact assignment pass costs N·k·d ≈ 10¹⁴ flops, about ten minutes
on two cores, so the exact loop cannot run there. ``two_level_kmeans`` does what faiss's
``contrib.clustering.two_level_clustering`` does, then fixes what that leaves at cell borders:

1. **Coarse cells**: k₁ = √k centroids, fitted by the exact loop on a seeded sample of 256·k₁
   rows, and every row assigned to its nearest one.
2. **Local clusters**: each cell gets a share of the k clusters proportional to its rows
   (at least one, at most its rows), fitted by the exact loop (k-means++ start) on its own rows.
3. **Probed Lloyd rounds**: every row compares its own centroid with the clusters of its nearest
   coarse cells (a cluster belongs to the cell nearest its centroid), as an inverted-file index
   searches: ``WIDE_FRACTION`` of the cells in the first ``WIDE_ROUNDS`` rounds, ``PROBES``
   after; centroids are recomputed; an emptied cluster takes a row far from its centroid. From
   the second round on a row skips a cell when a bound proves no cluster there beats its own (its
   best cosine there last round plus how far the cell's clusters moved; ``_probed_round``), so
   the labels are those of the full comparison at a fraction of the products. Rounds stop when no
   row moves, or after the wide rounds when the objective gains less than ``STALL_TOL``
   (relative).

Step 3 is what brings the objective back: a cluster split by a coarse border is joined again by
rows that see both halves. On features without coarse structure (random cluster directions, the
worst case) the share of cells searched decides how many such clusters are joined: at 10⁶ × 128,
8 of 316 cells reach an objective of 0.834, 24 of them 0.872. On synthetic clustered features (k = N/10, N = 10⁵, d = 128 and 1,024)
it ends within 1% of the exact loop's objective, at a fraction of its time (``bench/scale.py``);
10⁶ × 1,024 at k = 10⁵ takes 447 s on two cores (``bench/results/scale_clusters_1e6_quiet.json``).
Each step is a matrix product per cell; a seed gives the same clusters on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from core.measures.kmeans import (
    Clustering,
    assign,
    cluster_sums,
    kmeans_plusplus,
    lloyd,
    normalise,
    reseed_empty,
)

PROBES = 8  # coarse cells each row searches in the probed rounds
# The first rounds, which join most clusters cut by cell borders, search this share of the cells.
WIDE_ROUNDS = 2
WIDE_FRACTION = 0.08
ROWS_PER_COARSE_CENTROID = 256  # the coarse fit's sample, as faiss trains
LOCAL_ITER = 20
STALL_TOL = 1e-4
# A probed round measures again this share of each cell's clusters (those that moved most); the
# rest are bounded by how far they moved. BOUND_EPS covers float32 rounding of the cosines.
DIRTY_SHARE = 1 / 8
BOUND_EPS = 1e-5
_ROW_STEP = 65536


def _coarse_centroids(unit: np.ndarray, n_cells: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = unit.shape[0]
    size = min(n, ROWS_PER_COARSE_CENTROID * n_cells)
    sample = np.asarray(unit[np.sort(rng.choice(n, size, replace=False))] if size < n else unit)
    init = kmeans_plusplus(sample, n_cells, seed=seed)
    return lloyd(sample, init, max_iter=LOCAL_ITER, tol=STALL_TOL)[1]


def share_clusters(sizes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Clusters per cell ∝ its rows (largest remainder), 1 ≤ share ≤ rows for every non-empty cell.

    Needs ``n_clusters`` between the number of non-empty cells and the number of rows.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = sizes * (n_clusters / sizes.sum())
    share = np.clip(np.floor(exact).astype(np.int64), np.minimum(sizes, 1), sizes)
    remainder = exact - share
    while (missing := n_clusters - int(share.sum())) != 0:
        if missing > 0:  # the largest remainders among cells with rows to spare get one more
            room = np.flatnonzero(share < sizes)
            take = room[np.argsort(-remainder[room], kind="stable")[:missing]]
            share[take] += 1
        else:  # the smallest remainders among cells with more than one give one back
            spare = np.flatnonzero(share > 1)
            take = spare[np.argsort(remainder[spare], kind="stable")[:-missing]]
            share[take] -= 1
        remainder = exact - share
    return share


def _local_clusters(
    unit: np.ndarray, cells: np.ndarray, share: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centroids): each cell's rows clustered into its share by the exact loop."""
    labels = np.empty(unit.shape[0], dtype=np.int32)
    centroids = np.empty((int(share.sum()), unit.shape[1]), dtype=np.float32)
    order = np.argsort(cells, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(cells, minlength=share.size))])
    first = 0
    for cell, k in enumerate(share.tolist()):
        rows = order[bounds[cell] : bounds[cell + 1]]
        if k == 0:
            continue
        block = np.asarray(unit[rows], dtype=np.float32)
        init = kmeans_plusplus(block, k, seed=seed + cell)
        local, centres = lloyd(block, init, max_iter=LOCAL_ITER, tol=STALL_TOL)[:2]
        labels[rows] = local + first
        centroids[first : first + k] = centres
        first += k
    return labels, centroids


def _nearest_cells(unit: np.ndarray, coarse: np.ndarray, probes: int) -> np.ndarray:
    """(n × probes) int32: each row's ``probes`` nearest coarse cells, nearest first (so the first
    p columns are its p nearest, for any p ≤ probes)."""
    n = unit.shape[0]
    nearest = np.empty((n, probes), dtype=np.int32)
    coarse_t = np.ascontiguousarray(coarse.T)
    for start in range(0, n, _ROW_STEP):
        sims = np.asarray(unit[start : start + _ROW_STEP], dtype=np.float32) @ coarse_t
        top = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        nearest[start : start + _ROW_STEP] = np.take_along_axis(top, order, axis=1)
    return nearest


def _probed_cells(nearest: np.ndarray, n_cells: int) -> list[np.ndarray]:
    """For each coarse cell, the flat positions in ``nearest`` (row · probes + column) of the rows
    that probe it, by row."""
    flat = nearest.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=n_cells))])
    return [order[bounds[cell] : bounds[cell + 1]] for cell in range(n_cells)]


def _own_cosines(unit: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each row's cosine to its own centroid."""
    out = np.empty(unit.shape[0], dtype=np.float32)
    for start in range(0, unit.shape[0], _ROW_STEP):
        rows = np.asarray(unit[start : start + _ROW_STEP], dtype=np.float32)
        own = centroids[labels[start : start + _ROW_STEP]]
        out[start : start + _ROW_STEP] = np.einsum("ij,ij->i", rows, own)
    return out


@dataclass
class _Bounds:
    """What the last round knew: per (row, probed cell) an upper bound on the row's cosine to
    every cluster of that cell (``upper``, aligned with ``nearest``), the centroids it measured
    against and which cell owned each of them."""

    upper: np.ndarray
    centroids: np.ndarray
    owner: np.ndarray


def _dirty(drift: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, float]:
    """(dirty mask, τ) for one cell's clusters: the ones that moved most (``DIRTY_SHARE`` of them)
    and the newcomers are measured again; every other one moved at most τ."""
    clean = drift[~new]
    if clean.size == 0:
        return new, 0.0
    tau = float(np.quantile(clean, 1.0 - DIRTY_SHARE, method="lower"))
    dirty = new | (drift > tau)
    return dirty, float(drift[~dirty].max(initial=0.0))


def _probed_round(
    unit: np.ndarray,
    probed: list[np.ndarray],
    n_probes: int,
    coarse: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    bounds: _Bounds | None,
) -> tuple[np.ndarray, np.ndarray, _Bounds, float]:
    """(labels, cosines, bounds, share searched): each row's best centroid among its own and
    those of the cells it probes (its own kept on ties, so no row's cosine falls: the objective
    never drops).

    A centroid that moved by δ since the last round is within δ of the cosine it had to any unit
    row, so a row whose bound for a cell (plus the cell's largest move) is below its own cosine
    cannot find a better cluster there and is not compared with that cell's clusters; with
    ``DIRTY_SHARE`` of a cell's clusters (the ones that moved most) measured again, the others'
    move bounds the rest. The labels are those of comparing every row with every probed cluster.
    """
    n_cells = coarse.shape[0]
    owner = assign(centroids, coarse)[0]
    by_owner = np.argsort(owner, kind="stable")
    cuts = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n_cells))])
    best = _own_cosines(unit, labels, centroids)
    labels = labels.copy()
    if bounds is None:
        upper = np.full((unit.shape[0], n_probes), np.inf, dtype=np.float32)
        drift = np.zeros(centroids.shape[0])
        moved_in = np.zeros(centroids.shape[0], dtype=bool)
    else:
        upper = bounds.upper
        drift = np.linalg.norm(centroids.astype(np.float64) - bounds.centroids, axis=1)
        moved_in = owner != bounds.owner
    upper_flat = upper.reshape(-1)
    searched = possible = 0
    for cell, positions in enumerate(probed):
        members = by_owner[cuts[cell] : cuts[cell + 1]]
        if members.size == 0 or positions.size == 0:
            continue
        possible += positions.size * members.size
        dirty, tau = _dirty(drift[members], moved_in[members])
        rows = positions // n_probes
        bound = upper_flat[positions] + tau
        full = ~(bound + BOUND_EPS < best[rows])  # an unknown (inf) bound is searched too
        upper_flat[positions] = bound
        for subset, among, whole in ((full, members, True), (~full, members[dirty], False)):
            if among.size == 0 or not subset.any():
                continue
            at, who = positions[subset], rows[subset]
            sims = np.asarray(unit[who], dtype=np.float32) @ centroids[among].T
            searched += sims.size
            top = sims.argmax(axis=1)
            cosine = sims[np.arange(top.size), top]
            upper_flat[at] = cosine if whole else np.maximum(upper_flat[at], cosine)
            better = cosine > best[who]
            best[who[better]] = cosine[better]
            labels[who[better]] = among[top[better]]
    return labels, best, _Bounds(upper, centroids.copy(), owner), searched / max(1, possible)


def two_level_kmeans(
    unit: np.ndarray,
    *,
    n_clusters: int,
    seed: int,
    max_iter: int = 10,
    probes: int = PROBES,
    wide_rounds: int = WIDE_ROUNDS,
) -> Clustering:
    """Spherical k-means of unit rows (N×d) in two levels and probed rounds; labels not yet sorted.

    ``max_iter`` bounds the probed rounds; the first ``wide_rounds`` of them probe
    ``WIDE_FRACTION`` of the cells (at least ``probes``), the others ``probes`` cells. Every row
    ends with the best centroid among its own and those it probed, and the centroids are the
    normalised means of their rows, so ``objective`` is the mean cosine to the own centroid, as in
    the exact loop.
    """
    n = unit.shape[0]
    n_cells = max(1, min(round(math.sqrt(n_clusters)), n_clusters))
    coarse = _coarse_centroids(unit, n_cells, seed)
    cells = assign(unit, coarse)[0]
    share = share_clusters(np.bincount(cells, minlength=n_cells), n_clusters)
    labels = _local_clusters(unit, cells, share, seed)[0]
    probes = min(probes, n_cells)
    wide = min(n_cells, max(probes, math.ceil(WIDE_FRACTION * n_cells)))
    nearest = _nearest_cells(unit, coarse, wide if wide_rounds else probes)
    probed = _probed_cells(nearest, n_cells)
    bounds: _Bounds | None = None
    # The local clusters' centroids and objective, on the same footing as every round's.
    centroids, norms = normalise(cluster_sums(unit, labels, n_clusters))
    previous = objective = float(norms.sum() / n)
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        if n_iter == wide_rounds + 1 and nearest.shape[1] > probes:
            nearest = np.ascontiguousarray(nearest[:, :probes])  # the nearest cells come first
            probed = _probed_cells(nearest, n_cells)
            if bounds is not None:
                bounds = replace(bounds, upper=np.ascontiguousarray(bounds.upper[:, :probes]))
        assigned, cosines, bounds, _ = _probed_round(
            unit, probed, nearest.shape[1], coarse, centroids, labels, bounds
        )
        new_labels = reseed_empty(assigned, cosines, n_clusters)
        if np.array_equal(new_labels, labels):  # no row moved: the centroids stay as they are
            break
        labels = new_labels
        centroids, norms = normalise(cluster_sums(unit, labels, n_clusters))
        objective = float(norms.sum() / n)
        if n_iter > wide_rounds and objective - previous <= STALL_TOL * abs(objective):
            break
        previous = objective
    return Clustering(
        labels=labels,
        centroids=centroids,
        n_iter=n_iter,
        objective=objective,
        seed=seed,
        method="two-level",
    )
