"""Target sets: small sets of examples of what the model should learn, in the pool's feature space.

A target comes from a dataset file (read like any dataset, ``core.data.dataset``), from a named
subset of the workspace (its rows' features, copied, not recomputed) or from typed text (plain
text rows: the loss runs over every token). Its features are computed with the workspace's own
proxy model, scope, dim and seed through the one extraction path (``FeatureExtractor``), so target
and pool rows are points of one space; a workspace of imported features has no proxy Prism can run,
so only a subset can be its target.

On disk, per target ``T``: ``targets/T.npy`` (m × dim float32 unit rows, ``allow_pickle=False``) and
``targets/T.parquet`` (one row per example: ``id``, ``group``, ``preview``, ``content`` — the text or
the chat as JSON — and ``pool_id`` for a subset's row). The manifest's ``targets`` section
(``TargetsSection``) holds one ``TargetRecord`` per target: its source, groups, and the feature
settings and model fingerprint it was computed with; a target whose settings no longer match the
workspace's (features rebuilt with another model or seed) is stale and refused.

An optional group column (task, subject, language) splits a target into groups; relevance
aggregates per group (``core.measures.relevance``; stored and reported by
``core.workspace.relevance``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.columns import ColumnMap
from core.data.dataset import Dataset
from core.data.text import conversations, preview_text
from core.errors import PrismError, WorkspaceError
from core.workspace.files import now, read_npy, short, write_npy, write_parquet
from core.workspace.manifest import FeatureSection, TargetRecord, TargetsSection
from core.workspace.schema import relevance_column
from core.workspace.store import Workspace
from core.workspace.subsets import rows_of

DIRECTORY = "targets"
KINDS = ("file", "subset", "text")
NO_GROUP = "(all)"  # the one group of a target without a group column
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_IMPORTED = "imported"  # core.workspace.imported.IMPORTED (not imported: it loads that module)


def check_target_name(name: object) -> str:
    """A target name: letters, digits, ``_``, ``-``, ``.``; at most 64, starting with a letter or
    digit (it names files and the ``relevance:<name>`` column)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PrismError(
            f"name must be 1–64 letters, digits, '_', '-' or '.', starting with a letter or "
            f"digit (it names the target's files); got {name!r}.",
            param="name",
        )
    return name


def targets_section(workspace: Workspace) -> TargetsSection:
    """The manifest's targets section (empty when there is none)."""
    return workspace.targets


def list_targets(workspace: Workspace) -> list[TargetRecord]:
    """The workspace's targets, in the order they were added."""
    return list(targets_section(workspace).records().values())


def target_record(workspace: Workspace, name: str) -> TargetRecord:
    """The record of target ``name``; a PrismError listing the targets otherwise."""
    records = targets_section(workspace).records()
    if name not in records:
        known = ", ".join(records) or "none yet"
        raise PrismError(
            f"target {name!r} is not a target of {workspace.path} (its targets: {known}). Add one "
            f"with `prism target add {workspace.path} …`.",
            param="target",
        )
    return records[name]


def _paths(workspace: Workspace, name: str) -> tuple[Path, Path]:
    folder = workspace.path / DIRECTORY
    return folder / f"{name}.npy", folder / f"{name}.parquet"


def _feature_settings(workspace: Workspace) -> FeatureSection:
    section = workspace.feature_section
    if section is None or not workspace.has_features:
        raise WorkspaceError(
            f"{workspace.path} has no finished features; a target lives in the pool's feature "
            f"space. Run `prism resume {workspace.path}` first.",
            param="workspace",
        )
    return section


def stale_reason(workspace: Workspace, record: TargetRecord) -> str | None:
    """Why a target's features are not in the workspace's feature space now, or None."""
    section = workspace.feature_section or FeatureSection()
    if dict(record.settings) != dict(section.settings):
        return "the workspace's features were rebuilt with other settings since it was added"
    if record.model_fingerprint != section.model_fingerprint:
        return "the workspace's proxy model changed since it was added"
    return None


def target_features(workspace: Workspace, name: str) -> np.ndarray:
    """The (m × dim) float32 unit features of target ``name`` (checked against the workspace)."""
    record = target_record(workspace, name)
    reason = stale_reason(workspace, record)
    if reason:
        raise PrismError(
            f"target {name!r} is stale: {reason}. Delete it and add it again "
            f"(`prism target delete {workspace.path} {name}`).",
            param="target",
        )
    path = _paths(workspace, name)[0]
    try:
        features = read_npy(path, mmap=False)
    except (OSError, ValueError, EOFError) as error:
        raise WorkspaceError(
            f"{path} cannot be read ({short(error)}); delete the target and add it again."
        ) from None
    dim = (workspace.feature_section or FeatureSection()).dim
    if features.ndim != 2 or features.shape != (record.n_rows, dim):
        raise WorkspaceError(
            f"{path} holds an array of shape {features.shape}, not {record.n_rows} × {dim}; "
            "delete the target and add it again."
        )
    return np.asarray(features, dtype=np.float32)


def target_table(workspace: Workspace, name: str) -> pd.DataFrame:
    """The examples of target ``name``: ``id``, ``group``, ``preview``, ``content``, ``pool_id``."""
    target_record(workspace, name)
    path = _paths(workspace, name)[1]
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise WorkspaceError(
            f"{path} cannot be read ({short(error)}); delete the target and add it again."
        ) from None


def group_codes(workspace: Workspace, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """(group number of each example (m,), group names in first-seen order) of target ``name``."""
    groups = target_table(workspace, name)["group"].astype(str).to_numpy()
    names = tuple(dict.fromkeys(groups.tolist()))
    lookup = {g: i for i, g in enumerate(names)}
    return np.array([lookup[g] for g in groups], dtype=np.int64), names


# -- adding -----------------------------------------------------------------------------------


def _group_values(frame: pd.DataFrame, column: str | None, where: str) -> list[str]:
    if column is None:
        return [NO_GROUP] * len(frame)
    if column not in frame.columns:
        raise PrismError(
            f"group_column {column!r} is not a column of {where} (its columns: "
            f"{', '.join(map(str, frame.columns))}).",
            param="group_column",
        )
    return ["(blank)" if pd.isna(v) or str(v).strip() == "" else str(v) for v in frame[column]]


def _contents(frame: pd.DataFrame, columns: ColumnMap) -> tuple[list[str], list[str]]:
    """(content as stored: text, or the chat as JSON; one-line previews) of each row."""
    chats = conversations(frame, columns)
    content = [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c in chats]
    return content, preview_text(frame, columns)


def _compute(
    workspace: Workspace, frame: pd.DataFrame, columns: ColumnMap, *, device: str | None
) -> tuple[np.ndarray, int, str | None]:
    """(unit features, rows truncated, model fingerprint) of ``frame``'s rows, with the
    workspace's own proxy, scope, dim and seed."""
    # heavy: torch (the proxy), only when features are computed
    from core.features.extract import FeatureExtractor
    from core.features.proxy import load_proxy
    from core.workspace.jobs.extraction import config_from_workspace

    section = _feature_settings(workspace)
    if section.settings.get("model") == _IMPORTED:
        raise PrismError(
            f"{workspace.path} holds imported features: Prism cannot compute new rows in that "
            "feature space, so its targets can only be subsets of its rows. Compute the "
            "target's features where the pool's were, or build the workspace with "
            "`prism features`.",
            param="source",
        )
    config = config_from_workspace(workspace, device=device)
    proxy = load_proxy(
        config.model,
        dtype=config.dtype,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
    )
    if section.model_fingerprint and proxy.fingerprint != section.model_fingerprint:
        raise PrismError(
            f"The proxy model {config.model!r} loads as {proxy.fingerprint!r}, but the workspace's "
            f"features were computed with {section.model_fingerprint!r}; target features would "
            "not be comparable. Rebuild the workspace with the model as it is now.",
            param="model",
        )
    extractor = FeatureExtractor(proxy, config)
    batch = extractor.compute(extractor.encode(conversations(frame, columns)))
    return batch.features, int(batch.truncated.sum()), proxy.fingerprint


def _store(
    workspace: Workspace,
    record: TargetRecord,
    features: np.ndarray,
    table: pd.DataFrame,
    *,
    overwrite: bool,
) -> TargetRecord:
    """Write the target's files, then its manifest record, under the workspace lock."""
    npy, parquet = _paths(workspace, record.name)
    with workspace.lock():
        workspace.reload()
        if record.name in targets_section(workspace).targets and not overwrite:
            raise PrismError(
                f"A target named {record.name!r} exists already; choose another name or delete "
                "it first.",
                param="name",
            )
        write_npy(npy, np.ascontiguousarray(features, dtype=np.float32))
        write_parquet(parquet, table)
        workspace.set_section(targets_section(workspace).with_record(record))
        if relevance_column(record.name) in workspace.sample_columns():
            workspace.drop_columns([relevance_column(record.name)])  # it was for the old rows
    return record


def _record(workspace: Workspace, **values: Any) -> TargetRecord:
    section = _feature_settings(workspace)
    return TargetRecord(
        settings=dict(section.settings),
        dim=section.dim,
        created=now(),
        **values,
    )


def _groups(values: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def _check_free(workspace: Workspace, name: str, overwrite: bool) -> str:
    check_target_name(name)
    _feature_settings(workspace)
    if name in targets_section(workspace).targets and not overwrite:
        raise PrismError(
            f"A target named {name!r} exists already; choose another name or delete it first.",
            param="name",
        )
    return name


def add_target_from_dataset(
    workspace: Workspace,
    dataset: Dataset,
    *,
    name: str,
    group_column: str | None = None,
    device: str | None = None,
    overwrite: bool = False,
) -> TargetRecord:
    """Target ``name`` from a loaded dataset (``core.data.dataset.load_dataset``): its rows'
    features computed in the workspace's feature space."""
    _check_free(workspace, name, overwrite)
    frame = dataset.samples
    stored_group = dataset.renamed.get(group_column, group_column) if group_column else None
    groups = _group_values(frame, stored_group, dataset.source)
    content, preview = _contents(frame, dataset.columns)
    features, n_truncated, fingerprint = _compute(workspace, frame, dataset.columns, device=device)
    table = pd.DataFrame(
        {
            "id": frame["id"].astype(str).to_numpy(),
            "group": groups,
            "preview": preview,
            "content": content,
            "pool_id": [None] * len(frame),
        }
    )
    record = _record(
        workspace,
        name=name,
        kind="file",
        source=dataset.source,
        n_rows=len(frame),
        groups=_groups(groups),
        group_column=group_column,
        model_fingerprint=fingerprint,
        columns=dataset.columns.to_dict(),
        fingerprint=dataset.fingerprint,
        n_truncated=n_truncated,
    )
    return _store(workspace, record, features, table, overwrite=overwrite)


def add_target_from_texts(
    workspace: Workspace,
    texts: Sequence[str],
    *,
    name: str,
    groups: Sequence[str] | None = None,
    device: str | None = None,
    overwrite: bool = False,
) -> TargetRecord:
    """Target ``name`` from typed texts, each a plain-text row (loss over all its tokens)."""
    _check_free(workspace, name, overwrite)
    rows = [t for t in texts if isinstance(t, str) and t.strip()]
    if not rows or len(rows) != len(texts):
        raise PrismError(
            "texts must be one or more non-empty texts; got "
            f"{sum(1 for t in texts if not (isinstance(t, str) and t.strip()))} empty of "
            f"{len(texts)}.",
            param="texts",
        )
    if groups is not None and len(groups) != len(rows):
        raise PrismError(
            f"groups must give one group per text ({len(rows)}); got {len(groups)}.",
            param="groups",
        )
    frame = pd.DataFrame({"id": [f"text-{i}" for i in range(len(rows))], "text": rows})
    columns = ColumnMap(text="text")
    labels = [str(g) for g in groups] if groups is not None else [NO_GROUP] * len(rows)
    content, preview = _contents(frame, columns)
    features, n_truncated, fingerprint = _compute(workspace, frame, columns, device=device)
    table = pd.DataFrame(
        {
            "id": frame["id"],
            "group": labels,
            "preview": preview,
            "content": content,
            "pool_id": [None] * len(rows),
        }
    )
    record = _record(
        workspace,
        name=name,
        kind="text",
        source="typed text",
        n_rows=len(rows),
        groups=_groups(labels),
        model_fingerprint=fingerprint,
        columns=columns.to_dict(),
        n_truncated=n_truncated,
    )
    return _store(workspace, record, features, table, overwrite=overwrite)


def add_target_from_subset(
    workspace: Workspace,
    subset: str,
    *,
    name: str,
    group_column: str | None = None,
    overwrite: bool = False,
) -> TargetRecord:
    """Target ``name`` from the rows of a named subset: their features as stored (no recompute)."""

    _check_free(workspace, name, overwrite)
    rows = rows_of(workspace, subset)
    if len(rows) == 0:
        raise PrismError(f"subset {subset!r} has no rows.", param="subset")
    columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
    wanted = ["id", *columns.content_columns]
    if group_column is not None and group_column not in wanted:
        wanted.append(group_column)
    available = workspace.sample_columns()
    frame = workspace.samples(columns=[c for c in wanted if c in available]).iloc[rows]
    frame = frame.reset_index(drop=True)
    groups = _group_values(frame, group_column, "the workspace's samples")
    content, preview = _contents(frame, columns)
    features = np.asarray(workspace.features()[np.sort(rows)], dtype=np.float32)
    features = features[np.argsort(np.argsort(rows))]  # back in the subset's order
    section = workspace.feature_section or FeatureSection()
    table = pd.DataFrame(
        {
            "id": frame["id"].astype(str).to_numpy(),
            "group": groups,
            "preview": preview,
            "content": content,
            "pool_id": frame["id"].astype(str).to_numpy(),
        }
    )
    record = _record(
        workspace,
        name=name,
        kind="subset",
        source=subset,
        n_rows=len(rows),
        groups=_groups(groups),
        group_column=group_column,
        model_fingerprint=section.model_fingerprint,
        columns=columns.to_dict(),
    )
    return _store(workspace, record, features, table, overwrite=overwrite)


def delete_target(workspace: Workspace, name: str) -> None:
    """Remove target ``name``: its files, its record and its relevance column."""
    target_record(workspace, name)
    with workspace.lock():
        workspace.reload()
        workspace.set_section(targets_section(workspace).without(name))
        for path in _paths(workspace, name):
            path.unlink(missing_ok=True)
        column = relevance_column(name)
        if column in workspace.sample_columns():
            workspace.drop_columns([column])


def describe_target(workspace: Workspace, record: TargetRecord) -> dict[str, Any]:
    """A target as a plain record (``prism target list`` as JSON, the app)."""
    return {
        "name": record.name,
        "kind": record.kind,
        "source": record.source,
        "rows": record.n_rows,
        "groups": dict(record.groups),
        "group_column": record.group_column,
        "truncated": record.n_truncated,
        "created": record.created,
        "stale": stale_reason(workspace, record),
        "relevance_column": relevance_column(record.name),
        "relevance": dict(record.relevance),
    }
