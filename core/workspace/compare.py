"""Subsets side by side: one row of diversity numbers per subset, and G-Vendi against budget.

- ``subset_report``: size, G-Vendi, Vendi at q ∈ {0.5, 2, ∞}, coverage of the whole set's
  clusters (plain and size-weighted), entropy of the cluster histogram, mean loss.
- ``compare_subsets``: those rows for named subsets of a workspace (and the whole set).
- ``budget_curves``: G-Vendi of each selector's subsets per budget and seed, in the raw curve
  schema of ``core.measures.curves``; prefix-stable selectors (``SelectorSpec.prefix_stable``)
  are run once per seed at the largest budget and scored prefix by prefix, incrementally.
- ``random_equivalents``: ``core.measures.curves.random_equivalent`` of each row of a table.
- ``curve_settings`` / ``curve_budgets`` / ``workspace_curves``: the curves of a workspace, at
  budgets spanning it, computed and stored under one set of settings by the CLI and the app alike
  (``load_curves`` finds them again for the same settings; ``stored_curves`` gives the stored ones
  whatever their settings, with when and how they were made).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.errors import PrismError
from core.measures.clusters import coverage
from core.measures.curves import (
    RAW_COLUMNS,
    budget_sizes,
    prefix_vendi,
    random_budget_sizes,
    random_equivalent,
    summarise_curves,
)
from core.measures.vendi import vendi_column, vendi_scores
from core.select.selectors import SELECTORS, Pool, select
from core.validate import check_int
from core.workspace.analyses import TextScores
from core.workspace.files import now
from core.workspace.manifest import CurvesSection
from core.workspace.selector_runs import selector_pool
from core.workspace.store import Workspace, write_parquet
from core.workspace.subsets import rows_of, subset_record

REPORT_QS = (1.0, 0.5, 2.0, math.inf)
WHOLE_SET = "(whole set)"


def subset_report(
    features: np.ndarray,
    rows: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    cluster_sizes: np.ndarray | None = None,
    loss: np.ndarray | None = None,
) -> dict[str, Any]:
    """The diversity numbers of ``features[rows]`` (one row of the Compare table)."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        raise PrismError("This subset is empty; there is nothing to score.")
    scores = vendi_scores(np.asarray(features[rows]), qs=REPORT_QS)
    report: dict[str, Any] = {
        "size": int(rows.size),
        **{vendi_column(q): scores[q] for q in REPORT_QS},  # g_vendi, vendi_q0.5, _q2, _qinf
        "coverage": None,
        "coverage_weighted": None,
        "cluster_entropy": None,
        "mean_loss": None,
    }
    if labels is not None and cluster_sizes is not None:
        cover = coverage(np.asarray(labels)[rows], reference_sizes=np.asarray(cluster_sizes))
        report.update(
            coverage=cover.fraction, coverage_weighted=cover.weighted, cluster_entropy=cover.entropy
        )
    if loss is not None:
        values = np.asarray(loss, dtype=np.float64)[rows]
        values = values[np.isfinite(values)]
        report["mean_loss"] = float(values.mean()) if values.size else None
    return report


def _workspace_context(
    workspace: Workspace,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    columns = set(workspace.sample_columns())
    wanted = [c for c in ("cluster", "loss") if c in columns]
    frame = workspace.samples(columns=wanted) if wanted else pd.DataFrame()
    labels = frame["cluster"].to_numpy() if "cluster" in frame else None
    sizes = workspace.clusters.sizes if workspace.clusters is not None else ()
    cluster_sizes = np.asarray(sizes) if labels is not None and sizes else None
    loss = frame["loss"].to_numpy() if "loss" in frame else None
    return labels, cluster_sizes, loss


TextScorer = Callable[[Workspace, np.ndarray], TextScores]


def compare_subsets(
    workspace: Workspace,
    names: Sequence[str],
    *,
    whole: bool = True,
    text_scores: TextScorer | None = None,
) -> pd.DataFrame:
    """One row per named subset (and the whole set first): the ``subset_report`` columns, plus
    ``how`` (how the subset was made) and, with ``text_scores``, text-space measures."""
    features = workspace.features()
    labels, cluster_sizes, loss = _workspace_context(workspace)
    entries: list[tuple[str, np.ndarray, str]] = []
    if whole:
        entries.append((WHOLE_SET, np.arange(len(features)), "all rows"))
    for name in names:
        record = subset_record(workspace, name)
        entries.append((name, rows_of(workspace, name), describe_how(record.how)))
    rows = []
    for name, positions, how in entries:
        report = subset_report(
            features, positions, labels=labels, cluster_sizes=cluster_sizes, loss=loss
        )
        if text_scores is not None:
            report.update(text_scores(workspace, positions).to_dict())
        rows.append({"subset": name, **report, "how": how})
    return pd.DataFrame(rows)


def describe_how(how: Mapping[str, Any]) -> str:
    """A short human description of a subset's ``how`` record."""
    method = how.get("method", "hand")
    if method in SELECTORS:
        parts = [
            f"k={how['k']}" if how.get("k") is not None else None,
            f"seed={how.get('seed', 0)}",
        ]
        parts += [f"{k}={v}" for k, v in (how.get("options") or {}).items()]
        for key in ("within", "exclude", "start"):
            if how.get(key):
                parts.append(f"{key}={how[key]}")
        return f"{method} ({', '.join(p for p in parts if p)})"
    if method in ("union", "intersection", "difference", "complement"):
        return f"{method} of {', '.join(how.get('of', []))}"
    if method == "find":  # core.workspace.find: the text, pattern or condition that found it
        key = next((k for k in ("where", "regex", "text") if how.get(k)), "where")
        return f"find {key} {how.get(key)!r}"
    edits = f", edited {how['edits']}×" if how.get("edits") else ""
    return f"{method}{edits}"


# -- budget curves ----------------------------------------------------------------------------


def budget_curves(
    pool: Pool,
    *,
    methods: Sequence[str],
    sizes: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    random_sizes: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """G-Vendi per (method, seed, size): the raw curves of ``core.measures.curves``.

    ``random`` is always included and may run to larger ``random_sizes`` (up to n), so that a
    selector's small subsets can be matched against random ones of any size. Prefix-stable
    selectors run once per seed at the largest budget and are scored prefix by prefix; filters
    are scored at the budgets their kept rows allow, and once at everything they keep.
    """
    unknown = [m for m in methods if m not in SELECTORS]
    if unknown:
        raise PrismError(
            f"Unknown selector(s) {unknown}; choose from {', '.join(SELECTORS)}.", param="methods"
        )
    if pool.labels is None:
        methods = [m for m in methods if not SELECTORS[m].needs_clusters]
    if pool.relevance is None:  # a targeted selector's curve needs its target's relevance
        methods = [m for m in methods if not SELECTORS[m].needs_target]
    grid = sorted(set(int(s) for s in sizes))
    records: list[dict[str, Any]] = []
    plan = ["random", *[m for m in methods if m != "random"]]
    for method in plan:
        spec = SELECTORS[method]
        method_sizes = sorted(set(random_sizes or grid) | set(grid)) if method == "random" else grid
        for seed in seeds:
            if progress is not None:
                progress(f"{method}, seed {seed}")
            if spec.prefix_stable:
                order = select(method, pool, budget=max(method_sizes), seed=seed)
                values = prefix_vendi(pool.features, order, method_sizes)
                records += [
                    {"method": method, "seed": seed, "size": s, "g_vendi": v}
                    for s, v in zip(method_sizes, values, strict=True)
                ]
                continue
            for size in method_sizes:
                rows = select(method, pool, budget=size, seed=seed)
                value = prefix_vendi(pool.features, rows, [len(rows)])[0]
                records.append(
                    {"method": method, "seed": seed, "size": len(rows), "g_vendi": value}
                )
                if spec.is_filter and len(rows) < size:
                    break  # the filter keeps fewer rows than this budget: its last point
    return pd.DataFrame(records, columns=list(RAW_COLUMNS))


def random_equivalents(table: pd.DataFrame, summary: pd.DataFrame, *, n: int) -> list[float | None]:
    """``random_equivalent`` of each row of a ``compare_subsets`` table; the whole set reads as
    its own size (random subsets of all rows are the whole set)."""
    return [
        float(n) if name == WHOLE_SET else random_equivalent(summary, float(value))
        for name, value in zip(table["subset"], table["g_vendi"], strict=True)
    ]


def curve_settings(
    workspace: Workspace,
    *,
    methods: Sequence[str] | None = None,
    seeds: int = 5,
    largest: int = 2000,
) -> dict[str, Any]:
    """The settings budget curves are computed, stored and found again under, the same from the
    CLI and the app: random first, then the asked-for selectors in ``SELECTORS`` order (those that
    need clusters only when the workspace has them), ``seeds`` seeds, selectors' largest budget at
    most the workspace's rows."""
    unknown = [m for m in methods or () if m not in SELECTORS]
    if unknown:
        raise PrismError(
            f"Unknown selector(s) {unknown}; choose from {', '.join(SELECTORS)}.", param="methods"
        )
    seeds = check_int(seeds, param="seeds", minimum=1)
    largest = check_int(largest, param="largest", minimum=1)
    wanted = set(
        [m for m, spec in SELECTORS.items() if spec.curves] if methods is None else methods
    )
    clustered = "cluster" in workspace.sample_columns()
    chosen = [
        m
        for m in SELECTORS
        if m != "random"
        and m in wanted
        and (clustered or not SELECTORS[m].needs_clusters)
        and not SELECTORS[m].needs_target
    ]
    return {
        "methods": ["random", *chosen],
        "seeds": seeds,
        "largest": min(largest, workspace.n_samples or largest),
    }


def curve_budgets(workspace: Workspace, settings: dict[str, Any]) -> list[int]:
    """The selectors' budgets on a workspace's curves, the same for the CLI and the app:
    log-spaced from a few rows to the largest budget (``budget_sizes``), and the sizes of the
    workspace's subsets up to it."""
    sizes = [record.size for record in workspace.subsets().values()]
    return budget_sizes(workspace.n_samples, largest=int(settings["largest"]), extra=sizes)


def workspace_curves(
    workspace: Workspace,
    settings: dict[str, Any],
    *,
    by: str,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Budget curves of a workspace for ``curve_settings``: the ``summarise_curves`` columns plus
    ``random_equivalent`` (NaN above every random size), stored with ``save_curves``; ``by`` says
    what computed them (``prism compare --curves``, the app)."""

    started = time.monotonic()
    pool = selector_pool(workspace)
    raw = budget_curves(
        pool,
        methods=list(settings["methods"]),
        sizes=curve_budgets(workspace, settings),
        seeds=range(int(settings["seeds"])),
        random_sizes=random_budget_sizes(pool.n),
        progress=progress,
    )
    summary = summarise_curves(raw)
    summary["random_equivalent"] = [
        math.nan if (e := random_equivalent(summary, v)) is None else e for v in summary["mean"]
    ]
    save_curves(workspace, summary, settings, by=by, seconds=time.monotonic() - started)
    return summary


# -- stored curves ----------------------------------------------------------------------------

CURVES = "curves.parquet"


def _curve_basis(workspace: Workspace) -> dict[str, Any]:
    """What the curves were computed from: the finished features and the clustering."""
    clusters = workspace.clusters
    features = workspace.feature_section
    return {
        "features": features.completed if features is not None else None,
        "clusters": [clusters.n_clusters, clusters.seed, clusters.objective]
        if clusters is not None
        else [None, None, None],
    }


def save_curves(
    workspace: Workspace,
    summary: pd.DataFrame,
    settings: dict[str, Any],
    *,
    by: str | None = None,
    seconds: float | None = None,
) -> None:
    """Keep computed budget curves in the workspace (``curves.parquet`` + a manifest section
    with their settings, basis, date, maker and seconds), so that they survive a restart."""

    write_parquet(workspace.path / CURVES, summary.reset_index(drop=True))
    section = CurvesSection(
        settings=dict(settings),
        basis=_curve_basis(workspace),
        computed=now(),
        by=by,
        seconds=None if seconds is None else round(float(seconds), 3),
    )
    workspace.set_section(section)


def stored_curves(workspace: Workspace) -> tuple[pd.DataFrame, CurvesSection] | None:
    """The stored curves, whatever their settings, with their section (settings, when, by what),
    while they were computed from the current features and clusters; else None."""
    section = workspace.curves or CurvesSection()
    path = workspace.path / CURVES
    if not path.is_file() or dict(section.basis) != _curve_basis(workspace):
        return None
    return pd.read_parquet(path), section


def load_curves(workspace: Workspace, settings: dict[str, Any]) -> pd.DataFrame | None:
    """Stored curves computed with ``settings`` from the current features and clusters, or None."""
    found = stored_curves(workspace)
    if found is None or dict(found[1].settings) != json_like(settings):
        return None
    return found[0]


def json_like(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))
