"""Named subsets of a workspace: ``subsets.json`` maps a name to its ids and how it was made.

    {"hard cases": {"ids": ["12", "907"], "how": {"method": "lasso", ...}, "created": "…"}}

Ids are the workspace's string sample ids, so a subset survives re-running analyses. Names are
what the user typed, trimmed; an existing name is never overwritten unless asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.errors import PrismError
from core.workspace import Workspace, now

MAX_NAME = 80


def check_name(name: object) -> str:
    """The trimmed subset name, or a PrismError saying what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise PrismError("Give the subset a name (for example “sparse maths questions”).")
    text = " ".join(name.split())
    if len(text) > MAX_NAME:
        raise PrismError(
            f"A subset name can be at most {MAX_NAME} characters; this one has {len(text)}."
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
            f"{len(unknown):,} of the ids are not samples of this workspace (e.g. {unknown[:3]})."
        )
    subsets = workspace.subsets()
    if text in subsets and not overwrite:
        raise PrismError(f"A subset named “{text}” already exists; choose another name.")
    subsets[text] = {"ids": id_list, "how": dict(how or {}), "created": now()}
    workspace.write_subsets(subsets)
    return text


def delete_subset(workspace: Workspace, name: str) -> None:
    subsets = workspace.subsets()
    if name not in subsets:
        raise PrismError(f"There is no subset named “{name}”.")
    del subsets[name]
    workspace.write_subsets(subsets)
