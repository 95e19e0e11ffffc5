"""Where new samples should land: the target cluster of each request and its few-shot examples.

The published default aims every request at a random cluster among the smallest 10% of the
current clustering and shows the generator a few (5) of that cluster's members. ``random`` aims
at any non-empty cluster (the published ablation), ``cluster:ID`` at one cluster, and
``subset:NAME`` draws the examples from a named subset's rows instead of a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import PrismError
from core.validate import check_int, check_seed

TARGET_KINDS = ("sparse", "random", "cluster", "subset")
SMALLEST_FRACTION = 0.1  # the published "smallest 10% of clusters"
TARGET_HELP = "sparse (default), random, cluster:ID or subset:NAME"


@dataclass(frozen=True)
class Target:
    """What the requests aim at: ``kind`` in TARGET_KINDS, with ``cluster`` or ``subset``."""

    kind: str = "sparse"
    cluster: int | None = None
    subset: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise PrismError(f"target must be {TARGET_HELP}; got {self.kind!r}.", param="target")
        if (self.kind == "cluster") != (self.cluster is not None):
            raise PrismError("target cluster:ID needs a cluster number.", param="target")
        if (self.kind == "subset") != bool(self.subset):
            raise PrismError("target subset:NAME needs a subset name.", param="target")

    @property
    def label(self) -> str:
        if self.kind == "cluster":
            return f"cluster:{self.cluster}"
        if self.kind == "subset":
            return f"subset:{self.subset}"
        return self.kind


def parse_target(text: object) -> Target:
    """``"sparse"``, ``"random"``, ``"cluster:12"`` or ``"subset:hard maths"`` → a Target."""
    if not isinstance(text, str) or not text.strip():
        raise PrismError(f"target must be {TARGET_HELP}; got {text!r}.", param="target")
    kind, _, rest = text.strip().partition(":")
    if kind == "cluster":
        try:
            cluster = int(rest)
        except ValueError:
            raise PrismError(
                f"target cluster:ID needs a whole cluster number; got {text!r}.", param="target"
            ) from None
        return Target("cluster", cluster=check_int(cluster, param="target", minimum=0))
    if kind == "subset":
        return Target("subset", subset=rest.strip() or None)
    if rest:
        raise PrismError(f"target must be {TARGET_HELP}; got {text!r}.", param="target")
    return Target(kind)


def smallest_clusters(sizes: np.ndarray, *, fraction: float = SMALLEST_FRACTION) -> np.ndarray:
    """Ids of the smallest ``fraction`` of the non-empty clusters (at least one), smallest first.

    Ties are broken by cluster id, so the choice is deterministic.
    """
    sizes = np.asarray(sizes)
    if not 0 < fraction <= 1:
        raise PrismError(f"fraction must be in (0, 1]; got {fraction!r}.", param="fraction")
    present = np.flatnonzero(sizes > 0)
    if present.size == 0:
        raise PrismError("The clustering has no non-empty cluster to aim at.", param="target")
    order = present[np.lexsort((present, sizes[present]))]
    return order[: max(1, math.ceil(fraction * present.size))]


@dataclass(frozen=True)
class Request:
    """One generation request: the cluster it aims at (None for a subset) and example rows."""

    target_cluster: int | None
    example_rows: tuple[int, ...]


def plan_requests(
    labels: np.ndarray,
    *,
    n_clusters: int,
    target: Target,
    n_requests: int,
    few_shot: int,
    seed: int,
    subset_rows: np.ndarray | None = None,
) -> list[Request]:
    """``n_requests`` seeded requests, each with up to ``few_shot`` distinct example rows.

    ``labels`` (N,) are the pool's cluster labels; a cluster with fewer members than ``few_shot``
    gives all of them. For ``subset`` targets ``subset_rows`` are the rows to draw from.
    """
    n_requests = check_int(n_requests, param="per_round", minimum=1)
    few_shot = check_int(few_shot, param="few_shot", minimum=1, maximum=50)
    rng = np.random.default_rng(check_seed(seed))
    labels = np.asarray(labels, dtype=np.int64)
    if target.kind == "subset":
        rows = np.unique(np.asarray(subset_rows if subset_rows is not None else [], dtype=np.int64))
        if rows.size == 0:
            raise PrismError(
                f"subset {target.subset!r} has no rows to draw examples from.", param="target"
            )
        return [
            Request(
                None,
                tuple(int(r) for r in rng.choice(rows, min(few_shot, rows.size), replace=False)),
            )
            for _ in range(n_requests)
        ]
    sizes = np.bincount(labels, minlength=n_clusters)
    if target.kind == "cluster":
        cluster = int(target.cluster or 0)
        if cluster not in range(n_clusters) or sizes[cluster] == 0:
            raise PrismError(
                f"cluster {target.cluster} is not a non-empty cluster of the current clustering "
                f"(clusters 0–{n_clusters - 1}); pick one from `prism score WS --per-cluster`.",
                param="target",
            )
        choices = np.array([target.cluster])
    elif target.kind == "sparse":
        choices = smallest_clusters(sizes)
    else:
        choices = np.flatnonzero(sizes > 0)
    members = {int(c): np.flatnonzero(labels == c) for c in np.unique(choices)}
    requests = []
    for _ in range(n_requests):
        cluster = int(rng.choice(choices))
        pool = members[cluster]
        picked = rng.choice(pool, min(few_shot, pool.size), replace=False)
        requests.append(Request(cluster, tuple(int(r) for r in picked)))
    return requests
