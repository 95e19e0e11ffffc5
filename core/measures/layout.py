"""2-D layout (the map) of unit-length features: UMAP with the cosine metric, seeded.

- ``umap_layout``: features (n×d) → coords (n×2 float32), centred and scaled to unit RMS radius.
- ``warm_up``: pays umap-learn's numba compilation (10–30 s on a first call) on a tiny input.

A fixed ``seed`` makes umap-learn run single-threaded, so the same seed gives the same coords.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from core.errors import PrismError
from core.validate import check_features, check_int, check_seed

# With fewer rows than this, UMAP is not run: a PCA projection is the layout.
_MIN_UMAP_ROWS = 4


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


def umap_layout(
    features: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """UMAP (cosine metric) of features (n×d) → coords (n×2 float32), deterministic for a seed.

    Coords are centred and scaled to unit RMS radius, so plots keep their scale across runs.
    ``n_neighbors`` is clamped to n − 1 for small n; with n < 4 the layout is the data's first two
    principal axes (UMAP's spectral initialisation needs more points).
    """
    seed, n_neighbors, min_dist = _check_params(seed, n_neighbors, min_dist)
    array = check_features(features)
    n = array.shape[0]
    if n == 0:
        raise PrismError("features has no rows; there is nothing to lay out.", param="features")
    array = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise PrismError(
            "features contain NaN or infinite values; they cannot be laid out.", param="features"
        )
    if n < _MIN_UMAP_ROWS:
        return _normalise(_pca_layout(array.astype(np.float64)))

    import umap  # imported here: it pulls in numba, which takes seconds to load

    reducer = umap.UMAP(
        n_components=2,
        metric="cosine",
        n_neighbors=min(n_neighbors, n - 1),
        min_dist=min_dist,
        random_state=seed,
        # A seed forces one thread anyway; saying so silences umap-learn's warning about it.
        n_jobs=1,
    )
    with warnings.catch_warnings():
        # Small inputs make umap-learn warn about its spectral init and n_neighbors; the result
        # is still valid, and the clamping above is documented.
        warnings.simplefilter("ignore", UserWarning)
        coords = reducer.fit_transform(array)
    coords = np.asarray(coords, dtype=np.float64)
    if not np.all(np.isfinite(coords)):
        raise PrismError(
            "UMAP produced non-finite coordinates; check the features for duplicates.",
            param="features",
        )
    return _normalise(coords)


def warm_up() -> None:
    """Compile umap-learn's numba code on a tiny random input, so the first real call is fast.

    Uses the approximate nearest-neighbour path too, which real inputs of 4,096+ rows take.
    """
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
            ).fit_transform(features)
