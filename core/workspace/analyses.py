"""Analyses of a whole workspace, stored back into it under the one result schema.

Per-sample results become columns of ``samples.parquet`` (``cluster``, ``umap_x``, ``umap_y``);
global results become a manifest section (``clusters``, ``layout``). The CLI and the app both call
these, so a map built in one is the map seen in the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import PrismError
from core.measures.clusters import (
    cluster_sizes,
    default_n_clusters,
    sparse_clusters,
    spherical_kmeans,
)
from core.measures.layout import umap_layout
from core.workspace.store import Workspace


def cluster_workspace(
    workspace: Workspace, *, n_clusters: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Spherical k-means of the features; stores ``cluster`` and the manifest ``clusters`` section."""
    features = workspace.features(mmap=False)
    n = len(features)
    k = default_n_clusters(n) if n_clusters is None else n_clusters
    if not 1 <= k <= n:
        raise PrismError(f"--k must be between 1 and the number of samples ({n:,}); got {k}.")
    result = spherical_kmeans(features, n_clusters=k, seed=seed)
    sizes = cluster_sizes(result.labels, n_clusters=k)
    sparse = sparse_clusters(sizes)
    summary = {
        "n_clusters": int(k),
        "seed": int(seed),
        "sizes": [int(s) for s in sizes],
        "median_size": float(np.median(sizes)),
        "sparse": [int(c) for c in np.flatnonzero(sparse)],
        "n_sparse": int(sparse.sum()),
        "n_in_sparse": int(sizes[sparse].sum()),
        "objective": float(result.objective),
        "method": "spherical k-means (cosine), k-means++ init",
    }
    with workspace.lock():  # labels and their section are written together
        workspace.add_columns({"cluster": result.labels.astype(np.int32)})
        workspace.update("clusters", summary)
    return summary


def layout_workspace(
    workspace: Workspace, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """UMAP (cosine) 2-D coordinates; stores ``umap_x``/``umap_y`` and the ``layout`` section."""
    coords = umap_layout(
        workspace.features(mmap=False), seed=seed, n_neighbors=n_neighbors, min_dist=min_dist
    )
    with workspace.lock():  # coordinates and their section are written together
        workspace.add_columns({"umap_x": coords[:, 0], "umap_y": coords[:, 1]})
        workspace.update(
            "layout",
            {
                "method": "umap",
                "metric": "cosine",
                "seed": int(seed),
                "n_neighbors": int(n_neighbors),
                "min_dist": float(min_dist),
            },
        )
    return coords
