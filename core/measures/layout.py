"""2-D layout (the map) of unit-length features: UMAP with the cosine metric, seeded.

- ``umap_layout``: features (n×d) → coords (n×2 float32), centred and scaled to unit RMS radius.
  Above ``FIT_SAMPLE`` rows UMAP is fit on a seeded sample of that many rows and every other row
  is placed at the mean of its ``PLACE_NEIGHBOURS`` nearest sampled rows' coordinates (a faiss
  inner-product search), weighted by exp((cos − cos of the nearest) / ``PLACE_TEMPERATURE``),
  ``TRANSFORM_BATCH`` rows at a time (bounded memory; a memory-mapped input is read block by
  block). When an exact search would cost more than ``PLACE_EXACT_MAX_WORK`` (rows × sampled
  rows × d), the sampled rows go in inverted lists (√sample lists from a seeded faiss spherical
  k-means, ``PLACE_PROBES`` searched per row), each list searched as one matrix product with the
  rows that probe it: 10⁶ × 1,024 rows are placed and laid out in 193 s on two cores (``bench/
  results/scale_map_1e6_quiet.json``), where faiss's own index, scanning each list row by row,
  took 710 s. Measured on ``bench/scale.py``'s 10⁴ × 128 clustered set fit on 2,000 rows: k = 10
  neighbourhood preservation 0.60, against 0.30 for UMAP's own ``transform`` and 0.79 for UMAP
  on all rows.
- ``fit_rows``: how many rows ``umap_layout`` fits UMAP on for n rows (recorded in the manifest).
- ``neighbourhood_preservation``: share of each row's k nearest neighbours in feature space that
  are among its k nearest on the map (1 = every neighbourhood kept).
- ``warm_up``: pays umap-learn's numba compilation (10–30 s on a first call) on a tiny input.

A fixed ``seed`` makes umap-learn run single-threaded, so the same seed gives the same coords.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import PrismError
from core.measures.neighbours import nearest_in_pool
from core.validate import check_features, check_int, check_seed

# With fewer rows than this, UMAP is not run: a PCA projection is the layout.
_MIN_UMAP_ROWS = 4
# Above this many rows UMAP is fit on a seeded sample of this size; the rest are placed by it.
FIT_SAMPLE = 50_000
# Rows placed per search on the sampled path (bounds its memory).
TRANSFORM_BATCH = 10_000
PLACE_NEIGHBOURS = 10
PLACE_TEMPERATURE = 0.02
# From this much work (rows placed × sampled rows × d) the placement search goes through an IVF.
PLACE_EXACT_MAX_WORK = 10**12
PLACE_PROBES = 16
SAMPLED_METHOD = "umap, fit on a seeded sample + nearest sampled rows"


def _check_params(seed: object, n_neighbors: object, min_dist: object) -> tuple[int, int, float]:
    seed = check_seed(seed)
    n_neighbors = check_int(n_neighbors, param="n_neighbors", minimum=2)
    if (
        isinstance(min_dist, bool)
        or not isinstance(min_dist, numbers.Real)
        or math.isnan(float(min_dist))
        or not 0.0 <= float(min_dist) <= 1.0
    ):
        raise PrismError(
            f"min_dist must be a number from 0 to 1 (UMAP's spread); got {min_dist!r}.",
            param="min_dist",
        )
    return seed, n_neighbors, float(min_dist)


def _pca_layout(features: np.ndarray) -> np.ndarray:
    """First two principal axes (n×2), signs fixed so the largest loading is positive."""
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    signs = np.sign(axes[np.arange(axes.shape[0]), np.abs(axes).argmax(axis=1)])
    signs[signs == 0] = 1.0
    coords = np.zeros((features.shape[0], 2), dtype=np.float64)
    coords[:, : axes.shape[0]] = centred @ (axes * signs[:, None]).T
    return coords


def _normalise(coords: np.ndarray) -> np.ndarray:
    """Zero mean, unit RMS distance from the origin (all-zero coords stay zero)."""
    coords = coords - coords.mean(axis=0)
    radius = math.sqrt(float((coords**2).sum(axis=1).mean()))
    if radius > 0:
        coords = coords / radius
    return coords.astype(np.float32)


def _check_fit_sample(fit_sample: object) -> int | None:
    if fit_sample is None:
        return None
    return check_int(fit_sample, param="fit_sample", minimum=_MIN_UMAP_ROWS)


def fit_rows(n: int, fit_sample: int | None = FIT_SAMPLE) -> int:
    """Rows ``umap_layout`` fits UMAP on for n rows: n, or ``fit_sample`` when n exceeds it."""
    fit_sample = _check_fit_sample(fit_sample)
    return n if fit_sample is None or n <= fit_sample else fit_sample


def _reducer(n_fit: int, seed: int, n_neighbors: int, min_dist: float) -> Any:
    import umap  # heavy: umap pulls in numba, which takes seconds to load

    return umap.UMAP(
        n_components=2,
        metric="cosine",
        n_neighbors=min(n_neighbors, n_fit - 1),
        min_dist=min_dist,
        random_state=seed,
        # A seed forces one thread anyway; saying so silences umap-learn's warning about it.
        n_jobs=1,
    )


def _finite_block(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if not np.all(np.isfinite(block)):
        raise PrismError(
            "features contain NaN or infinite values; they cannot be laid out.", param="features"
        )
    return block


def _sampled_layout(
    array: np.ndarray, fit_sample: int, seed: int, n_neighbors: int, min_dist: float
) -> np.ndarray:
    """Fit on ``fit_sample`` seeded rows, place the rest block by block (n×2 float64)."""
    n = array.shape[0]
    in_sample = np.zeros(n, dtype=bool)
    in_sample[np.random.default_rng(seed).choice(n, size=fit_sample, replace=False)] = True
    sample = np.flatnonzero(in_sample)
    reducer = _reducer(fit_sample, seed, n_neighbors, min_dist)
    coords = np.empty((n, 2), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fitted = _finite_block(array[sample])
        reducer.fit(fitted)
    embedding = np.asarray(reducer.embedding_, dtype=np.float64)
    coords[sample] = embedding
    lists = _anchor_lists(np.ascontiguousarray(fitted), n - fit_sample, seed)
    n_near = min(PLACE_NEIGHBOURS, fit_sample)
    for start in range(0, n, TRANSFORM_BATCH):
        rows = start + np.flatnonzero(~in_sample[start : start + TRANSFORM_BATCH])
        if rows.size:
            block = _finite_block(array[start : start + TRANSFORM_BATCH][rows - start])
            sims, near = _search(lists, np.ascontiguousarray(block), n_near)
            coords[rows] = placed(sims, near, embedding)
    return coords


@dataclass(frozen=True)
class _AnchorLists:
    """The sampled rows in inverted lists: ``anchors`` (m×d) reordered list by list, ``ids`` their
    positions among the sampled rows, list j = rows ``cuts[j]:cuts[j + 1]``, ``centres`` (L×d);
    or, for an exact search, ``flat``: a faiss flat inner-product index over them."""

    anchors: np.ndarray
    ids: np.ndarray
    cuts: np.ndarray
    centres: np.ndarray
    flat: Any = None


def _anchor_lists(anchors: np.ndarray, n_queries: int, seed: int) -> _AnchorLists:
    """One list holding every sampled row while an exact search of ``n_queries`` rows costs at
    most ``PLACE_EXACT_MAX_WORK``, else √m lists from a seeded spherical k-means (faiss)."""
    # heavy: faiss, only when a sampled map places the other rows
    import faiss

    m, dim = anchors.shape
    if n_queries * m * dim <= PLACE_EXACT_MAX_WORK:
        flat = faiss.IndexFlatIP(dim)
        flat.add(anchors)
        return _AnchorLists(anchors, np.arange(m), np.array([0, m]), anchors[:0], flat)
    n_lists = max(1, round(math.sqrt(m)))
    kmeans = faiss.Kmeans(dim, n_lists, niter=10, seed=seed, spherical=True)
    kmeans.train(anchors)
    labels = kmeans.index.search(anchors, 1)[1].ravel()
    ids = np.argsort(labels, kind="stable")
    cuts = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=n_lists))])
    centres = np.asarray(kmeans.centroids, dtype=np.float32)
    return _AnchorLists(np.ascontiguousarray(anchors[ids]), ids, cuts, centres)


def _search(lists: _AnchorLists, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, sampled-row positions) of each row's ``k`` nearest sampled rows, best first,
    among the ``PLACE_PROBES`` lists whose centres are nearest it.

    Rows are grouped by the lists they probe, so each list is one matrix product with the rows
    that probe it (an inverted-file search done in BLAS). A row whose probed lists hold fewer than
    ``k`` sampled rows is searched exactly."""
    if lists.flat is not None:
        return lists.flat.search(block, k)
    n_lists = lists.cuts.size - 1
    n_probes = min(PLACE_PROBES, n_lists)
    to_centres = block @ lists.centres.T
    probed = np.argpartition(-to_centres, n_probes - 1, axis=1)[:, :n_probes]
    best = np.full((block.shape[0], k), -np.inf, dtype=np.float32)
    near = np.full((block.shape[0], k), -1, dtype=np.int64)
    flat = probed.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=n_lists))])
    for j in range(n_lists):
        rows = order[bounds[j] : bounds[j + 1]] // probed.shape[1]
        lo, hi = int(lists.cuts[j]), int(lists.cuts[j + 1])
        if rows.size == 0 or hi == lo:
            continue
        sims = block[rows] @ lists.anchors[lo:hi].T
        take = min(k, hi - lo)
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        both = np.concatenate([best[rows], np.take_along_axis(sims, top, axis=1)], axis=1)
        ids = np.concatenate([near[rows], top + lo], axis=1)
        keep = np.argpartition(-both, k - 1, axis=1)[:, :k]
        best[rows] = np.take_along_axis(both, keep, axis=1)
        near[rows] = np.take_along_axis(ids, keep, axis=1)
    short = (near < 0).any(axis=1)
    if short.any():
        best[short], near[short] = _search(_anchor_lists(lists.anchors, 0, 0), block[short], k)
    order = np.argsort(-best, axis=1, kind="stable")
    near = np.take_along_axis(near, order, axis=1)
    return np.take_along_axis(best, order, axis=1), np.where(near < 0, -1, lists.ids[near])


def placed(cosines: np.ndarray, near: np.ndarray, anchor_coords: np.ndarray) -> np.ndarray:
    """Coordinates (m×2) of rows placed among anchors: the mean of their nearest anchors'
    coordinates (``near`` m×k, best first, with ``cosines``), weighted by a softmax of cosine
    (temperature ``PLACE_TEMPERATURE``), so the closest anchors dominate."""
    weights = np.exp((cosines - cosines[:, :1]).astype(np.float64) / PLACE_TEMPERATURE)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("rk,rkc->rc", weights, np.asarray(anchor_coords, dtype=np.float64)[near])


def _checked(coords: np.ndarray) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if not np.all(np.isfinite(coords)):
        raise PrismError(
            "UMAP produced non-finite coordinates; check the features for duplicates.",
            param="features",
        )
    return _normalise(coords)


def umap_layout(
    features: np.ndarray,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    fit_sample: int | None = FIT_SAMPLE,
) -> np.ndarray:
    """UMAP (cosine metric) of features (n×d) → coords (n×2 float32), deterministic for a seed.

    Coords are centred and scaled to unit RMS radius, so plots keep their scale across runs.
    ``n_neighbors`` is clamped to n − 1 for small n; with n < 4 the layout is the data's first two
    principal axes (UMAP's spectral initialisation needs more points). With more than
    ``fit_sample`` rows (None: never) UMAP is fit on a seeded sample of ``fit_sample`` rows and
    the others are placed among their nearest sampled rows (see the module docstring).
    """
    seed, n_neighbors, min_dist = _check_params(seed, n_neighbors, min_dist)
    fit_sample = _check_fit_sample(fit_sample)
    array = check_features(features)
    n = array.shape[0]
    if n == 0:
        raise PrismError("features has no rows; there is nothing to lay out.", param="features")
    if fit_sample is not None and n > fit_sample:
        return _checked(_sampled_layout(array, fit_sample, seed, n_neighbors, min_dist))
    array = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise PrismError(
            "features contain NaN or infinite values; they cannot be laid out.", param="features"
        )
    if n < _MIN_UMAP_ROWS:
        return _normalise(_pca_layout(array.astype(np.float64)))

    reducer = _reducer(n, seed, n_neighbors, min_dist)
    with warnings.catch_warnings():
        # Small inputs make umap-learn warn about its spectral init and n_neighbors; the result
        # is still valid, and the clamping above is documented.
        warnings.simplefilter("ignore", UserWarning)
        coords = reducer.fit_transform(array)
    return _checked(coords)


def _others(rows: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` of each row's neighbours that are not the query row itself."""
    other = rows != queries[:, None]
    order = np.argsort(~other, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(rows, order, axis=1)


def neighbourhood_preservation(
    features: np.ndarray,
    coords: np.ndarray,
    *,
    k: int = 10,
    n_queries: int | None = None,
    seed: int = 0,
) -> float:
    """Mean share of a row's k nearest neighbours by cosine (unit features) kept among its k
    nearest on the map (Euclidean), over all rows or ``n_queries`` seeded rows; exact, blockwise
    (the features are read a block at a time, so they may be memory-mapped).
    """
    array = check_features(features, finite=True)
    points = check_features(coords, param="coords", finite=True)
    n = array.shape[0]
    if points.shape[0] != n:
        raise PrismError(f"coords has {points.shape[0]} rows, features {n}.", param="coords")
    k = check_int(k, param="k", minimum=1, maximum=max(1, n - 1))
    queries = np.arange(n)
    if n_queries is not None and check_int(n_queries, param="n_queries", minimum=1) < n:
        queries = np.sort(np.random.default_rng(check_seed(seed)).choice(n, n_queries, False))
    kept = 0
    for start in range(0, queries.size, 32):  # (32 × n) map distances: 256 MB at n = 10⁶
        q = queries[start : start + 32]
        top_f = _others(nearest_in_pool(array, np.asarray(array[q]), k + 1)[0], q, k)
        gap = points[q, None, :].astype(np.float64) - points[None, :, :]
        near_m = (gap**2).sum(axis=-1)
        near_m[np.arange(q.size), q] = np.inf
        top_m = np.argpartition(near_m, k - 1, axis=1)[:, :k]
        kept += sum(np.intersect1d(a, b).size for a, b in zip(top_f, top_m, strict=True))
    return kept / (queries.size * k)


def warm_up() -> None:
    """Compile umap-learn's numba code on a tiny random input, so the first real call is fast.

    Uses the approximate nearest-neighbour path too, which real inputs of 4,096+ rows take.
    """
    # heavy: umap pulls in numba, only when warming up
    import umap

    rng = np.random.default_rng(0)
    features = rng.standard_normal((64, 8)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for force_approximation in (False, True):
            umap.UMAP(
                n_components=2,
                metric="cosine",
                n_neighbors=5,
                random_state=0,
                n_jobs=1,
                n_epochs=5,
                force_approximation_algorithm=force_approximation,
            ).fit(features)
