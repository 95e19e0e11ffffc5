"""An inner-product index over unit features: the nearest rows of a query in gradient space.

- ``build_index``: a faiss inverted-file index (``IndexIVFFlat``, inner product) over
  (n_samples × d) unit features: ``n_lists_for(n)`` ≈ 4·√n lists from a seeded spherical k-means
  of a sample of at most ``TRAIN_ROWS_PER_LIST`` rows per list, every row then added in blocks
  (the features may be memory-mapped). Built once per workspace and feature version, stored and
  read back memory-mapped (``write_index``, ``read_index``).
- ``search_index``: the k rows of largest cosine to each query, scanning the ``n_probe`` lists
  nearest the query (default ``n_probe_for``: 1/16 of the lists, at least ``MIN_PROBE``). The
  cosines of the rows it returns are exact; a true neighbour in a list not scanned is missed
  (recall against exact search: ``bench/curation_loop.py`` and the tests).

Below ``EXACT_MAX_ROWS`` rows no index is needed: ``core.measures.neighbours.nearest_in_pool``
compares the query with every row (exact) fast enough.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from core.validate import check_int, check_seed

EXACT_MAX_ROWS = 100_000
TRAIN_ROWS_PER_LIST = 64
MIN_PROBE = 8
_ADD_ROWS = 65_536


def n_lists_for(n: int) -> int:
    """About 4·√n lists (faiss's advice: 4·√n to 16·√n), each with at least ~39 rows."""
    return max(1, min(n // 39, round(4 * math.sqrt(n))))


def n_probe_for(n_lists: int) -> int:
    """Lists a search scans: 1/16 of them, at least ``MIN_PROBE`` (all when there are fewer)."""
    return min(n_lists, max(MIN_PROBE, n_lists // 16))


def build_index(features: np.ndarray, *, seed: int = 0, n_lists: int | None = None) -> Any:
    """A trained and filled ``faiss.IndexIVFFlat`` (inner product) over unit ``features``."""
    # heavy: faiss, only when an index is built or searched
    import faiss

    n, dim = features.shape
    seed = check_seed(seed)
    lists = n_lists_for(n) if n_lists is None else check_int(n_lists, param="n_lists", minimum=1)
    lists = min(lists, n)
    rng = np.random.default_rng(seed)
    n_train = min(n, lists * TRAIN_ROWS_PER_LIST)
    train = np.sort(rng.choice(n, size=n_train, replace=False))
    sample = np.ascontiguousarray(features[train], dtype=np.float32)
    kmeans = faiss.Kmeans(
        dim, lists, niter=10, seed=seed % 2**31, spherical=True, min_points_per_centroid=1
    )
    kmeans.train(sample)
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.asarray(kmeans.centroids, dtype=np.float32))
    # faiss's Python wrapper keeps the quantizer alive as long as the index.
    index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    for start in range(0, n, _ADD_ROWS):
        index.add(np.ascontiguousarray(features[start : start + _ADD_ROWS], dtype=np.float32))
    return index


def search_index(
    index: Any, queries: np.ndarray, k: int, *, n_probe: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows (m×k) int64, cosines (m×k) float32) of the ``k`` best rows per query, best first;
    fewer columns when the scanned lists hold fewer rows (missing ones are dropped)."""
    # heavy: faiss, only when an index is built or searched
    import faiss

    probe = n_probe_for(index.nlist) if n_probe is None else n_probe
    params = faiss.SearchParametersIVF()
    params.nprobe = min(int(probe), index.nlist)
    query = np.ascontiguousarray(queries, dtype=np.float32)
    cosines, rows = index.search(query, int(min(k, index.ntotal)), params=params)
    keep = (rows >= 0).all(axis=0)
    return rows[:, keep].astype(np.int64), cosines[:, keep].astype(np.float32)


def write_index(index: Any, path: Path) -> None:
    # heavy: faiss, only when an index is built or searched
    import faiss

    faiss.write_index(index, str(path))


def read_index(path: Path) -> Any:
    """The index stored at ``path``, its inverted lists memory-mapped (not read into memory)."""
    # heavy: faiss, only when an index is built or searched
    import faiss

    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
