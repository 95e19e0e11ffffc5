"""Selectors run on a workspace: the pool they choose from, a run stored as a named subset, and
an exported subset rebuilt from its manifest.

``selector_pool`` builds the ``core.select.selectors.Pool`` (features, clusters, the candidate
rows of ``within`` less ``exclude``, a target's relevance, the quality columns); ``run_selector``
runs one selector and stores its rows with everything needed to run it again (``how``);
``reproduce_subset`` does that from an export's manifest (``prism select --from-manifest``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import PrismError
from core.select.selectors import SELECTORS, Pool, parse_options, select
from core.select.selectors import explain as explain_rows
from core.workspace.records import ExportManifest, SubsetRebuilt
from core.workspace.relevance import target_relevance
from core.workspace.store import Workspace, now
from core.workspace.subsets import (
    check_name,
    rows_of,
    save_subset,
    stale_reason,
    subset_record,
)
from core.workspace.targets import target_record

# Per-row numbers every pool carries when the workspace has them (the quality selectors' scores).
POOL_COLUMNS = ("loss", "grad_norm", "ifd", "loss_alone")


def selector_pool(
    workspace: Workspace,
    *,
    within: str | None = None,
    exclude: str | None = None,
    target: Mapping[str, Any] | None = None,
    score: str | None = None,
) -> Any:
    """The ``core.select.selectors.Pool`` of a workspace: its features, its clusters if it has them,
    the rows of subset ``within`` less those of subset ``exclude`` as the only candidates, with
    ``target`` (the selector's ``TARGET_OPTIONS``: target, agg, whiten) each row's relevance to that
    target's groups, and its numeric quality columns (``POOL_COLUMNS`` and the column a selector's
    ``score`` option names, when present)."""

    present = workspace.sample_columns()
    has_labels = "cluster" in present
    labels = workspace.samples(columns=["cluster"])["cluster"].to_numpy() if has_labels else None
    candidates = rows_of(workspace, within) if within else None
    if exclude:
        pool = np.arange(workspace.n_samples) if candidates is None else candidates
        candidates = pool[~np.isin(pool, rows_of(workspace, exclude))]
        if candidates.size == 0:
            raise PrismError(
                f"Excluding “{exclude}” leaves no rows to choose from.", param="exclude"
            )
    relevance = None
    if target and target.get("target"):
        relevance = target_relevance(
            workspace,
            str(target["target"]),
            agg=str(target.get("agg", "mean-max")),
            whiten=bool(target.get("whiten", False)),
        )
    wanted = [*POOL_COLUMNS, *([score.lstrip("-")] if isinstance(score, str) else [])]
    names = [c for c in dict.fromkeys(wanted) if c in present]
    frame = workspace.samples(columns=names).apply(pd.to_numeric, errors="coerce")
    columns = {c: frame[c].to_numpy(dtype=np.float64) for c in names if frame[c].notna().any()}
    return Pool(
        workspace.features(),
        labels=labels,
        candidates=candidates,
        relevance=relevance,
        columns=columns,
    )


def run_selector(
    workspace: Workspace,
    method: str,
    *,
    name: str,
    k: float | int | None,
    seed: int = 0,
    within: str | None = None,
    exclude: str | None = None,
    start: str | None = None,
    options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    reuse: bool = True,
    explain: list[Any] | None = None,
) -> tuple[str, np.ndarray]:
    """Run a selector on the workspace and store its result as subset ``name``; returns (the name
    stored, rows). With ``reuse``, when the same run (method, budget, seed, options, ``within``,
    ``start``) with the same result is stored already, nothing new is stored and that subset's
    name is returned.

    The subset's ``how`` records method, budget, seed, options, ``within``, ``exclude`` and
    ``start`` and the clustering it used, which is everything ``reproduce_subset`` needs. Given a
    list ``explain``, the selector's ``LeftOut`` (why each candidate row was left out,
    ``core.select.quality``) is appended to it.
    """
    text = check_name(name)
    if text in workspace.subsets() and not overwrite:
        raise PrismError(
            f"A subset named “{text}” already exists; choose another name.", param="name"
        )
    typed = parse_options(method, dict(options or {}))
    pool = selector_pool(
        workspace, within=within, exclude=exclude, target=typed, score=typed.get("score")
    )
    start_rows = rows_of(workspace, start) if start else None
    if explain is not None:
        rows, left_out = explain_rows(method, pool, budget=k, seed=seed, start=start_rows, **typed)
        explain.append(left_out)
    else:
        rows = select(method, pool, budget=k, seed=seed, start=start_rows, **typed)
    if len(rows) == 0:
        raise PrismError(f"{method} kept no rows; nothing to save.")
    ids = workspace.samples(columns=["id"])["id"].astype(str).to_numpy()[rows]
    how: dict[str, Any] = {"method": method, "k": k, "seed": int(seed), "options": typed}
    how.update({k: v for k, v in (("within", within), ("exclude", exclude)) if v})
    if start:
        how["start"] = start
    if SELECTORS[method].needs_target and typed.get("target"):
        record = target_record(workspace, str(typed["target"]))
        how["target"] = {"name": record.name, "kind": record.kind, "source": record.source}
    if SELECTORS[method].needs_clusters:
        clusters = workspace.clusters
        how["clusters"] = {
            "n_clusters": clusters.n_clusters if clusters else None,
            "seed": clusters.seed if clusters else None,
        }
    same = identical_subset(workspace, ids.tolist(), how=how) if reuse and not overwrite else None
    if same is not None:  # this run is stored already: reuse it rather than store a copy
        return same, rows
    save_subset(workspace, text, ids.tolist(), how=how, overwrite=overwrite)
    return text, rows


def identical_subset(
    workspace: Workspace, ids: Iterable[object], *, how: Mapping[str, Any]
) -> str | None:
    """The name of a stored subset made the same way (``how``) with the same ids in the same
    order, or None; ``run_selector`` returns it instead of storing a second copy."""
    wanted = [str(i) for i in ids]
    for name, record in workspace.subsets().items():
        if stale_reason(record):
            continue
        if record.how == dict(how) and list(record.ids) == wanted:
            return name
    return None


def reproduce_subset(
    workspace: Workspace,
    manifest: ExportManifest,
    *,
    name: str,
    overwrite: bool = False,
    source: str | os.PathLike[str] | None = None,
) -> tuple[str, bool]:
    """Rebuild an exported subset from its manifest; returns (name, ids identical to the export).

    A selector subset is re-run with its recorded method, budget, seed and options (its
    ``within``/``start`` subsets must exist here too); any other subset is restored from its ids.
    The subset's record says it was rebuilt, from which manifest file (``source``), of which
    subset and export date, when, and whether its ids matched (``rebuilt_note``).
    """
    fingerprint = manifest.fingerprint
    mine = workspace.dataset.fingerprint
    if fingerprint and mine and fingerprint != mine:
        raise PrismError(
            f"The manifest was exported from other data (fingerprint {fingerprint}, this "
            f"workspace {mine}); open the workspace it came from.",
            param="manifest",
        )
    subset = manifest.subset
    how = dict(subset.get("how") or {})
    wanted = sorted(str(i) for i in subset["ids"])
    if how.get("method") in SELECTORS:
        text, _ = run_selector(
            workspace,
            how["method"],
            name=name,
            k=how.get("k"),
            seed=int(how.get("seed", 0)),
            within=how.get("within"),
            exclude=how.get("exclude"),
            start=how.get("start"),
            options=how.get("options"),
            overwrite=overwrite,
            reuse=False,
        )
        got = sorted(subset_record(workspace, text).ids)
        identical = got == wanted
    else:
        text = save_subset(
            workspace,
            name,
            subset["ids"],
            how={**how, "restored_from": "manifest"},
            overwrite=overwrite,
        )
        identical = True
    rebuilt = SubsetRebuilt(
        source=str(Path(source).absolute()) if source is not None else None,
        exported=manifest.exported,
        subset=subset.get("name"),
        identical=identical,
        when=now(),
    )
    with workspace.lock():
        subsets = workspace.subsets()
        subsets[text] = subsets[text].replace(rebuilt=rebuilt)
        workspace.write_subsets(subsets)
    return text, identical
