"""Subsets side by side: one row of diversity numbers per subset, and G-Vendi against budget.

- ``subset_report``: size, G-Vendi, Vendi at q ∈ {0.5, 2, ∞}, coverage of the whole set's
  clusters (plain and size-weighted), entropy of the cluster histogram, mean loss.
- ``compare_subsets``: those rows for named subsets of a workspace (and the whole set).
- ``budget_curves``: G-Vendi of each selector's subsets per budget and seed; selectors whose
  prefixes are their smaller answers (random, k_center, vendi_greedy) are run once per seed at
  the largest budget and scored prefix by prefix, incrementally.
- ``random_equivalent``: the size at which random subsets reach a given G-Vendi, read off the
  random curve from one row (G-Vendi 1) up (so "vendi_greedy at 300 rows is as diverse as random
  at N rows"); None, said as ``ABOVE_RANDOM``, above the whole set's own score.
- ``curve_settings`` / ``workspace_curves``: the curves of a workspace, computed and stored under
  one set of settings by the CLI and the app alike (``load_curves`` finds them again).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.errors import PrismError
from core.measures.clusters import coverage
from core.measures.vendi import vendi_from_eigenvalues, vendi_scores
from core.select.selectors import FILTERS, NEEDS_CLUSTERS, SELECTORS, Pool, select
from core.workspace.store import Workspace
from core.workspace.subsets import subset_record, subset_rows

REPORT_QS = (1.0, 0.5, 2.0, math.inf)
PREFIX_METHODS = frozenset({"random", "k_center", "vendi_greedy"})
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
        "g_vendi": scores[1.0],
        "vendi_q0.5": scores[0.5],
        "vendi_q2": scores[2.0],
        "vendi_qinf": scores[math.inf],
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
    columns = set(workspace.samples().columns)
    wanted = [c for c in ("cluster", "loss") if c in columns]
    frame = workspace.samples(columns=wanted) if wanted else pd.DataFrame()
    labels = frame["cluster"].to_numpy() if "cluster" in frame else None
    sizes = workspace.manifest.get("clusters", {}).get("sizes")
    cluster_sizes = np.asarray(sizes) if labels is not None and sizes else None
    loss = frame["loss"].to_numpy() if "loss" in frame else None
    return labels, cluster_sizes, loss


TextScorer = Callable[[Workspace, np.ndarray], dict[str, Any]]


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
        entries.append((name, subset_rows(workspace, name), describe_how(record.get("how") or {})))
    rows = []
    for name, positions, how in entries:
        report = subset_report(
            features, positions, labels=labels, cluster_sizes=cluster_sizes, loss=loss
        )
        if text_scores is not None:
            report.update(text_scores(workspace, positions))
        rows.append({"subset": name, **report, "how": how})
    return pd.DataFrame(rows)


def describe_how(how: dict[str, Any]) -> str:
    """A short human description of a subset's ``how`` record."""
    method = how.get("method", "hand")
    if method in SELECTORS:
        parts = [
            f"k={how['k']}" if how.get("k") is not None else None,
            f"seed={how.get('seed', 0)}",
        ]
        parts += [f"{k}={v}" for k, v in (how.get("options") or {}).items()]
        for key in ("within", "start"):
            if how.get(key):
                parts.append(f"{key}={how[key]}")
        return f"{method} ({', '.join(p for p in parts if p)})"
    if method in ("union", "intersection", "difference", "complement"):
        return f"{method} of {', '.join(how.get('of', []))}"
    edits = f", edited {how['edits']}×" if how.get("edits") else ""
    return f"{method}{edits}"


# -- budget curves ----------------------------------------------------------------------------


def _vendi_of_psd(matrix: np.ndarray) -> float:
    trace = float(np.trace(matrix))
    return vendi_from_eigenvalues(np.linalg.eigvalsh(matrix / trace), q=1.0)


def prefix_vendi(features: np.ndarray, order: np.ndarray, sizes: Iterable[int]) -> list[float]:
    """G-Vendi of ``features[order[:s]]`` for each s in ``sizes`` (ascending), incrementally:
    the s × s kernel while s ≤ d, then a running d × d covariance."""
    order = np.asarray(order, dtype=np.int64)
    dim = features.shape[1]
    out: list[float] = []
    cov = np.zeros((dim, dim), dtype=np.float64)
    filled = 0
    for size in sizes:
        if size > len(order):
            raise PrismError(f"prefix size {size} exceeds the {len(order)} ordered rows.")
        if size <= dim:
            block = np.asarray(features[np.sort(order[:size])], dtype=np.float64)
            out.append(_vendi_of_psd(block @ block.T))
            continue
        block = np.asarray(features[np.sort(order[filled:size])], dtype=np.float64)
        cov += block.T @ block
        filled = size
        out.append(_vendi_of_psd(cov))
    return out


def budget_sizes(
    n: int, *, largest: int | None = None, points: int = 10, smallest: int = 20
) -> list[int]:
    """Log-spaced budgets from ``smallest`` to ``largest`` (default n)."""
    top = min(n, largest or n)
    low = min(smallest, top)
    return sorted({int(s) for s in np.round(np.geomspace(low, top, points))})


def budget_curves(
    pool: Pool,
    *,
    methods: Sequence[str],
    sizes: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    random_sizes: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """G-Vendi per (method, seed, size): columns method, seed, size, g_vendi.

    ``random`` is always included and may run to larger ``random_sizes`` (up to n), so that a
    selector's small subsets can be matched against random ones of any size. Filters
    (sparse_clusters, dedupe) are scored at the budgets their kept rows allow, and once at
    everything they keep.
    """
    unknown = [m for m in methods if m not in SELECTORS]
    if unknown:
        raise PrismError(f"Unknown selector(s) {unknown}; choose from {', '.join(SELECTORS)}.")
    if pool.labels is None:
        methods = [m for m in methods if m not in NEEDS_CLUSTERS]
    grid = sorted(set(int(s) for s in sizes))
    records: list[dict[str, Any]] = []
    plan = ["random", *[m for m in methods if m != "random"]]
    for method in plan:
        method_sizes = sorted(set(random_sizes or grid) | set(grid)) if method == "random" else grid
        for seed in seeds:
            if progress is not None:
                progress(f"{method}, seed {seed}")
            if method in PREFIX_METHODS:
                top = max(method_sizes)
                order = select(method, pool, k=top, seed=seed)
                values = prefix_vendi(pool.features, order, method_sizes)
                records += [
                    {"method": method, "seed": seed, "size": s, "g_vendi": v}
                    for s, v in zip(method_sizes, values, strict=True)
                ]
                continue
            for size in method_sizes:
                rows = select(method, pool, k=size, seed=seed)
                value = prefix_vendi(pool.features, rows, [len(rows)])[0]
                records.append(
                    {"method": method, "seed": seed, "size": len(rows), "g_vendi": value}
                )
                if method in FILTERS and len(rows) < size:
                    break  # the filter keeps fewer rows than this budget: its last point
    return pd.DataFrame(records, columns=["method", "seed", "size", "g_vendi"])


def summarise_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, min and max over seeds per (method, size)."""
    grouped = curves.groupby(["method", "size"], sort=False)["g_vendi"]
    out = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out.rename(columns={"std": "sd", "min": "low", "max": "high", "count": "n_seeds"})


ABOVE_RANDOM = "above every random size"  # what a G-Vendi above the whole random curve reads as
SMALL_RANDOM_SIZES = (1, 2, 3, 5, 10)  # random subsets scored below the selectors' smallest budget


def random_budget_sizes(n: int) -> list[int]:
    """The sizes random subsets are scored at: a few small ones (a subset of one row has G-Vendi
    exactly 1), then ``budget_sizes`` up to all ``n`` rows, so that small subsets are matched
    against measured random ones rather than clamped to the smallest budget."""
    return sorted({s for s in SMALL_RANDOM_SIZES if s <= n} | set(budget_sizes(n)))


def _random_curve(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(log size, log mean G-Vendi) of the random curve, from (1, 1) on and non-decreasing.

    One row has G-Vendi exactly 1, so the curve starts at (1, 1) whatever sizes were measured;
    between measured sizes it is read as a power law (linear in log–log), which is exact for
    near-orthogonal rows (G-Vendi ≈ size) and follows the curve where it saturates.
    """
    curve = summary[summary["method"] == "random"].sort_values("size")
    curve = curve[curve["size"] > 1]
    if curve.empty:
        return None
    sizes = np.concatenate([[1.0], curve["size"].to_numpy(dtype=float)])
    means = np.concatenate([[1.0], np.maximum(curve["mean"].to_numpy(dtype=float), 1.0)])
    return np.log(sizes), np.log(np.maximum.accumulate(means))


def random_equivalent(summary: pd.DataFrame, value: float) -> float | None:
    """The subset size at which random subsets reach G-Vendi ``value`` (log–log interpolation of
    the mean random curve, from one row at G-Vendi 1); None if ``value`` is above the random
    curve's largest point (``ABOVE_RANDOM``)."""
    curve = _random_curve(summary)
    if curve is None:
        return None
    log_sizes, log_means = curve
    if value > math.exp(log_means[-1]) * (1 + 1e-9):  # the whole set's own score reads as it
        return None
    log_value = math.log(min(max(value, 1.0), math.exp(log_means[-1])))
    # np.interp needs strictly increasing x: plateaus read as their smallest size.
    keep = np.concatenate([[True], np.diff(log_means) > 0])
    return float(np.exp(np.interp(log_value, log_means[keep], log_sizes[keep])))


def random_mean_at(summary: pd.DataFrame, size: int) -> float | None:
    """Mean G-Vendi of random subsets of ``size`` rows (log–log interpolation of the curve)."""
    curve = _random_curve(summary)
    if curve is None:
        return None
    log_sizes, log_means = curve
    return float(np.exp(np.interp(math.log(max(size, 1)), log_sizes, log_means)))


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
        raise PrismError(f"Unknown selector(s) {unknown}; choose from {', '.join(SELECTORS)}.")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise PrismError(f"seeds must be a whole number ≥ 1, got {seeds!r}.")
    if isinstance(largest, bool) or not isinstance(largest, int) or largest < 1:
        raise PrismError(f"largest must be a whole number of rows ≥ 1, got {largest!r}.")
    wanted = set(SELECTORS if methods is None else methods)
    clustered = "cluster" in workspace.samples().columns
    chosen = [
        m
        for m in SELECTORS
        if m != "random" and m in wanted and (clustered or m not in NEEDS_CLUSTERS)
    ]
    return {
        "methods": ["random", *chosen],
        "seeds": seeds,
        "largest": min(largest, workspace.n_samples or largest),
    }


def workspace_curves(
    workspace: Workspace,
    settings: dict[str, Any],
    *,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Budget curves of a workspace for ``curve_settings``: the ``summarise_curves`` columns plus
    ``random_equivalent`` (NaN above every random size), stored with ``save_curves``."""
    from core.workspace.subsets import selector_pool

    pool = selector_pool(workspace)
    raw = budget_curves(
        pool,
        methods=list(settings["methods"]),
        sizes=budget_sizes(pool.n, largest=int(settings["largest"])),
        seeds=range(int(settings["seeds"])),
        random_sizes=random_budget_sizes(pool.n),
        progress=progress,
    )
    summary = summarise_curves(raw)
    summary["random_equivalent"] = [
        math.nan if (e := random_equivalent(summary, v)) is None else e for v in summary["mean"]
    ]
    save_curves(workspace, summary, settings)
    return summary


# -- stored curves ----------------------------------------------------------------------------

CURVES = "curves.parquet"


def _curve_basis(workspace: Workspace) -> dict[str, Any]:
    """What the curves were computed from: the finished features and the clustering."""
    clusters = workspace.manifest.get("clusters", {})
    return {
        "features": workspace.manifest.get("features", {}).get("completed"),
        "clusters": [clusters.get(k) for k in ("n_clusters", "seed", "objective")],
    }


def save_curves(workspace: Workspace, summary: pd.DataFrame, settings: dict[str, Any]) -> None:
    """Keep computed budget curves in the workspace (``curves.parquet`` + a manifest section),
    so that they survive a restart; ``load_curves`` gives them back for the same settings."""
    from core.workspace.store import write_parquet

    write_parquet(workspace.path / CURVES, summary.reset_index(drop=True))
    workspace.update("curves", {"settings": dict(settings), "basis": _curve_basis(workspace)})


def load_curves(workspace: Workspace, settings: dict[str, Any]) -> pd.DataFrame | None:
    """Stored curves computed with ``settings`` from the current features and clusters, or None."""
    section = workspace.manifest.get("curves") or {}
    path = workspace.path / CURVES
    if not path.is_file() or section.get("basis") != _curve_basis(workspace):
        return None
    if section.get("settings") != json_like(settings):
        return None
    return pd.read_parquet(path)


def json_like(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    import json

    return json.loads(json.dumps(value))
