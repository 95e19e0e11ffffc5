"""Named subsets of a workspace: ``subsets.json`` maps a name to its ids and how it was made.

    {"hard cases": {"ids": ["12", "907"], "how": {"method": "lasso", ...}, "created": "…"}}

Each is read as a ``SubsetRecord`` (``core.workspace.records``), which is what every caller gets.
Ids are the workspace's string sample ids, so a subset survives re-running analyses. Names are
what the user typed, trimmed; an existing name is never overwritten unless asked.

When a workspace is rebuilt on other data (``prism features --force``), a subset whose ids now
name other rows (row-number ids of a changed file, or rows whose content changed) is marked
``stale`` by ``mark_stale``, and ``rows_of`` refuses it with a message; it can only be
deleted. Subsets whose rows are unchanged (stable ids) stay valid.
Every change to ``subsets.json`` holds the workspace lock, so concurrent commands keep each
other's subsets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.columns import ColumnMap
from core.data.text import conversations
from core.errors import PrismError
from core.workspace.records import SubsetRecord, SubsetStale
from core.workspace.store import Workspace, now
from core.workspace.tags import TAG_PREFIX, tagged_rows

MAX_NAME = 80


def check_name(name: object) -> str:
    """The trimmed subset name, or a PrismError saying what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise PrismError(
            "Give the subset a name (for example “sparse maths questions”).", param="name"
        )
    text = " ".join(name.split())
    if len(text) > MAX_NAME:
        raise PrismError(
            f"A subset name can be at most {MAX_NAME} characters; this one has {len(text)}.",
            param="name",
        )
    return text


def save_subset(
    workspace: Workspace,
    name: str,
    ids: Iterable[object],
    *,
    how: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Store the ids under ``name``; returns the name as stored."""
    text = check_name(name)
    id_list = list(dict.fromkeys(str(i) for i in ids))
    if not id_list:
        raise PrismError("The selection is empty; select some samples before saving a subset.")
    known = set(workspace.samples(columns=["id"])["id"].astype(str))
    unknown = [i for i in id_list if i not in known]
    if unknown:
        raise PrismError(
            f"{len(unknown):,} of the ids are not samples of this workspace (e.g. {unknown[:3]}).",
            param="ids",
        )
    with workspace.lock():
        subsets = workspace.subsets()
        if text in subsets and not overwrite:
            raise PrismError(
                f"A subset named “{text}” already exists; choose another name.", param="name"
            )
        subsets[text] = SubsetRecord(ids=tuple(id_list), how=dict(how or {}), created=now())
        workspace.write_subsets(subsets)
    return text


def stale_reason(record: SubsetRecord) -> str | None:
    """Why a subset's ids no longer name the rows it was made of, or None when they do."""
    stale = record.stale
    if stale is None:
        return None
    changed = "some" if stale.changed is None else stale.changed
    return (
        f"the workspace was rebuilt on other data and {changed} of its ids now name other rows "
        "or none"
    )


def _row_digests(samples: pd.DataFrame, columns: ColumnMap) -> dict[str, str]:
    """id → digest of what the model sees in that row."""
    ids = samples["id"].astype(str).tolist()
    texts = conversations(samples, columns)
    return {
        i: hashlib.sha256(json.dumps(t, ensure_ascii=False).encode()).hexdigest()[:16]
        for i, t in zip(ids, texts, strict=True)
    }


def mark_stale(
    workspace: Workspace, *, before: pd.DataFrame, before_columns: ColumnMap
) -> list[str]:
    """After a rebuild on other data, mark the subsets whose rows changed; returns their names.

    ``before`` are the samples the workspace held before (with ``before_columns``). A subset
    stays valid when every one of its ids still names a row with the same content (rows kept
    under stable ids); otherwise its ids would select other rows, so it is marked ``stale``.
    """
    with workspace.lock():
        subsets = workspace.subsets()
        live = {n: r for n, r in subsets.items() if r.stale is None}
        if not live:
            return []
        old = _row_digests(before, before_columns)
        new = _row_digests(
            workspace.samples(), ColumnMap.from_dict(dict(workspace.dataset.columns))
        )
        marked = []
        for name, record in live.items():
            changed = sum(1 for i in record.ids if old.get(i) != new.get(i))
            if changed:
                subsets[name] = record.replace(stale=SubsetStale(changed=changed, marked=now()))
                marked.append(name)
        if marked:
            workspace.write_subsets(subsets)
    return marked


def delete_subset(workspace: Workspace, name: str) -> None:
    with workspace.lock():
        subsets = workspace.subsets()
        if name not in subsets:
            raise PrismError(f"There is no subset named “{name}”.")
        del subsets[name]
        workspace.write_subsets(subsets)


def subset_record(workspace: Workspace, name: str) -> SubsetRecord:
    subsets = workspace.subsets()
    if name not in subsets:
        known = ", ".join(f"“{n}”" for n in subsets) or "none yet"
        raise PrismError(f"There is no subset named “{name}” (subsets: {known}).")
    return subsets[name]


def restore_subset(workspace: Workspace, name: str, record: SubsetRecord) -> str:
    """Put back a deleted subset exactly as it was (the app's undo)."""
    with workspace.lock():
        subsets = workspace.subsets()
        if name in subsets:
            raise PrismError(
                f"A subset named “{name}” exists again; rename it before undoing.", param="name"
            )
        subsets[name] = record
        workspace.write_subsets(subsets)
    return name


def rename_subset(workspace: Workspace, old: str, new: str) -> str:
    text = check_name(new)
    with workspace.lock():
        record = subset_record(workspace, old)
        if text == old:
            return text
        subsets = workspace.subsets()
        if text in subsets:
            raise PrismError(
                f"A subset named “{text}” already exists; choose another name.", param="name"
            )
        # Keep the order of subsets.json: the renamed subset stays where it was.
        workspace.write_subsets(
            {(text if n == old else n): (record if n == old else r) for n, r in subsets.items()}
        )
    return text


def edit_subset(
    workspace: Workspace,
    name: str,
    *,
    add: Iterable[object] = (),
    remove: Iterable[object] = (),
) -> int:
    """Add and remove single records by id; returns the new size (an empty result is refused)."""
    with workspace.lock():
        record = subset_record(workspace, name)
        reason = stale_reason(record)
        if reason:
            raise PrismError(f"Subset “{name}” cannot be edited: {reason}. Delete it.")
        ids = list(record.ids)
        gone = {str(i) for i in remove}
        ids = [i for i in ids if i not in gone]
        ids.extend(i for i in dict.fromkeys(str(i) for i in add) if i not in set(ids))
        if not ids:
            raise PrismError(
                f"That would leave “{name}” empty; delete the subset instead of removing its "
                "last record."
            )
        how = dict(record.how)
        edits = how.get("edits", 0) + 1
        save_subset(workspace, name, ids, how={**how, "edits": edits}, overwrite=True)
    return len(ids)


SET_OPERATIONS = ("union", "intersection", "difference", "complement")


def combine_ids(
    operation: str, members: list[list[str]], *, all_ids: list[str] | None = None
) -> list[str]:
    """The ids of a set operation over subsets, in the order of their first appearance.

    ``difference`` is the first minus all the others; ``complement`` takes one subset and
    ``all_ids`` (every sample id, in row order).
    """
    if operation not in SET_OPERATIONS:
        raise PrismError(
            f"Unknown set operation {operation!r}; use one of {', '.join(SET_OPERATIONS)}.",
            param="operation",
        )
    if operation == "complement":
        if len(members) != 1 or all_ids is None:
            raise PrismError("complement takes exactly one subset.")
        inside = set(members[0])
        return [i for i in all_ids if i not in inside]
    if len(members) < 2:
        raise PrismError(f"{operation} needs at least two subsets.")
    if operation == "union":
        return list(dict.fromkeys(i for ids in members for i in ids))
    others = [set(ids) for ids in members[1:]]
    if operation == "intersection":
        return [i for i in members[0] if all(i in s for s in others)]
    return [i for i in members[0] if not any(i in s for s in others)]


def combine_subsets(
    workspace: Workspace, operation: str, names: list[str], *, name: str, overwrite: bool = False
) -> str:
    """Store the union / intersection / difference / complement of named subsets as ``name``."""
    samples_ids = workspace.samples(columns=["id"])["id"].astype(str).to_numpy()
    members = [samples_ids[rows_of(workspace, n)].tolist() for n in names]
    all_ids = None
    if operation == "complement":
        all_ids = workspace.samples(columns=["id"])["id"].astype(str).tolist()
    ids = combine_ids(operation, members, all_ids=all_ids)
    if not ids:
        raise PrismError(f"The {operation} of {', '.join(names)} is empty; nothing to save.")
    how = {"method": operation, "of": list(names)}
    return save_subset(workspace, name, ids, how=how, overwrite=overwrite)


def named_subset(workspace: Workspace, name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(row positions, how it was made) of a named subset: what an export of it needs."""
    return rows_of(workspace, name), dict(subset_record(workspace, name).how)


def id_index(workspace: Workspace) -> pd.Index:
    """The sample ids (strings) in row order: id → row position via ``get_indexer``."""
    return pd.Index(workspace.samples(columns=["id"])["id"].astype(str))


def rows_of(
    workspace: Workspace,
    name: str,
    *,
    ids: list[str] | None = None,
    lenient: bool = False,
    index: pd.Index | None = None,
) -> np.ndarray:
    """Row positions (int64, in the subset's order) of the named subset, or of ``ids``.

    The one "subset → rows"; ``tag:keep`` (no subset of that name) names the rows tagged keep
    (``core.workspace.tags``). Strict (the default, for scores and exports): a stale subset, or
    ids that are not samples of the workspace, raise a PrismError saying what to do. ``lenient``
    (for listings that show every subset): a stale subset selects no rows and unknown ids are
    left out. ``index`` (from ``id_index``) saves re-reading the ids for many subsets.
    """
    if ids is None and name.startswith(TAG_PREFIX) and name not in workspace.subsets():
        return tagged_rows(workspace, name[len(TAG_PREFIX) :])
    if ids is None:
        record = subset_record(workspace, name)
        reason = stale_reason(record)
        if reason and lenient:
            return np.zeros(0, dtype=np.int64)
        if reason:
            raise PrismError(
                f"Subset “{name}” is stale: {reason}. Delete it "
                f"(`prism subset delete {workspace.path} '{name}'`) and select again."
            )
        wanted = list(record.ids)
    else:
        wanted = [str(i) for i in ids]
    positions = (id_index(workspace) if index is None else index).get_indexer(wanted)
    found = positions >= 0
    if not found.all() and not lenient:
        missing = [i for i, ok in zip(wanted, found, strict=True) if not ok]
        if ids is not None:
            raise PrismError(
                f"{len(missing):,} ids are not in the workspace, e.g. {missing[:5]}.", param="ids"
            )
        raise PrismError(
            f"Subset “{name}” names {len(missing):,} ids that are not samples of this workspace "
            f"(e.g. {missing[:3]}); was it made on other data?"
        )
    return positions[found].astype(np.int64)


def rows_of_all(workspace: Workspace) -> dict[str, np.ndarray]:
    """Every subset's rows (``rows_of`` with ``lenient``): name → row positions."""
    index = id_index(workspace)
    return {
        name: rows_of(workspace, name, lenient=True, index=index) for name in workspace.subsets()
    }


def rebuilt_note(record: SubsetRecord, *, full: bool = True) -> str | None:
    """How a subset was rebuilt from an export's manifest, or None when it was not: the manifest,
    when, and whether the ids matched; ``full=False`` (a table cell): the manifest's file name
    and the match only."""
    rebuilt = record.rebuilt
    if rebuilt is None:
        return None
    manifest = str(rebuilt.source or "an export manifest")
    identical = rebuilt.identical
    same = "same ids" if identical is True else "ids differ" if identical is False else ""
    if not full:
        return f"rebuilt from {Path(manifest).name}" + (f" ({same})" if same else "")
    when = str(rebuilt.when or "")[:16].replace("T", " ")
    match = f" ({same} {'as' if identical else 'from'} the export)" if same else ""
    return f"rebuilt from {manifest}" + (f" on {when}" if when else "") + match
