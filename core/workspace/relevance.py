"""Relevance of a workspace's rows to its target sets, and the target's coverage by the pool.

- ``target_relevance``: each row's relevance to each group of a target (n × G), what the
  targeted selectors rank by (``core.workspace.selector_runs.selector_pool``).
- ``store_relevance``: the best group's relevance as the derived column ``relevance:<target>``,
  its settings (agg, whiten, ridge) in the target's record.
- ``coverage``: per target group, close pool rows, best matches (ids, previews), under-served.

The numbers come from ``core.measures.relevance``; the targets from ``core.workspace.targets``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.data.columns import ColumnMap
from core.data.text import preview_text
from core.measures.relevance import (
    CLOSE_COSINE,
    MIN_CLOSE,
    WHITEN_RIDGE,
    group_relevance,
    target_coverage,
)
from core.workspace.files import now
from core.workspace.schema import relevance_column
from core.workspace.store import Workspace
from core.workspace.targets import (
    group_codes,
    target_features,
    target_record,
    targets_section,
)


def target_relevance(
    workspace: Workspace,
    name: str,
    *,
    agg: str = "mean-max",
    whiten: bool = False,
    ridge: float = WHITEN_RIDGE,
) -> np.ndarray:
    """Relevance of every pool row to each group of target ``name``: (n × G) float32, the groups
    in ``group_codes`` order (``core.measures.relevance.group_relevance``)."""
    features = target_features(workspace, name)
    codes, _ = group_codes(workspace, name)
    return group_relevance(
        workspace.features(), features, groups=codes, agg=agg, whiten=whiten, ridge=ridge
    )


def store_relevance(
    workspace: Workspace,
    name: str,
    *,
    agg: str = "mean-max",
    whiten: bool = False,
    ridge: float = WHITEN_RIDGE,
) -> np.ndarray:
    """Compute each row's relevance to target ``name`` (the best group) and store it as the
    derived column ``relevance:<name>``, its settings in the target's record; returns it (n,)."""
    values = target_relevance(workspace, name, agg=agg, whiten=whiten, ridge=ridge).max(axis=1)
    settings = {"agg": agg, "whiten": bool(whiten), "ridge": float(ridge), "computed": now()}
    with workspace.lock():
        workspace.reload()
        record = target_record(workspace, name)
        workspace.add_columns({relevance_column(name): values})
        workspace.set_section(
            targets_section(workspace).with_record(record.replace(relevance=settings))
        )
    return values


def coverage(
    workspace: Workspace,
    name: str,
    *,
    threshold: float = CLOSE_COSINE,
    min_close: int = MIN_CLOSE,
    top: int = 3,
) -> dict[str, Any]:
    """Coverage of target ``name`` by the pool, per group (``target_coverage``), with the best
    matches' ids and previews: a plain record (``prism target coverage`` as JSON, the app)."""
    features = target_features(workspace, name)
    codes, names = group_codes(workspace, name)
    found = target_coverage(
        workspace.features(),
        features,
        groups=codes,
        threshold=threshold,
        min_close=min_close,
        top=top,
    )
    wanted = sorted({r for g in found for r in g.best_rows})
    columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
    available = workspace.sample_columns()
    frame = workspace.samples(
        columns=[c for c in ["id", *columns.content_columns] if c in available]
    )
    chosen = frame.iloc[wanted].reset_index(drop=True)
    lookup = dict(
        zip(
            wanted,
            zip(chosen["id"].astype(str), preview_text(chosen, columns), strict=True),
            strict=True,
        )
    )
    groups = []
    for g in found:
        groups.append(
            {
                "group": names[g.group],
                "examples": g.n_examples,
                "close_rows": g.n_close,
                "nearest_median": g.nearest_median,
                "under_served": g.under_served,
                "best": [
                    {"id": lookup[r][0], "cosine": c, "preview": lookup[r][1]}
                    for r, c in zip(g.best_rows, g.best_cosines, strict=True)
                ],
            }
        )
    return {
        "target": name,
        "threshold": float(threshold),
        "min_close": int(min_close),
        "pool_rows": workspace.n_samples,
        "groups": groups,
        "under_served": [row["group"] for row in groups if row["under_served"]],
    }
