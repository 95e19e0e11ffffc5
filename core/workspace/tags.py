"""Tags of a workspace: keep / drop / flag and a free-text note per row, with undo.

``tags.json`` (read and written by the store) holds the current tag of every tagged row by its
string id, and the history of changes, newest last:

    {"tags": {"12": {"tag": "drop", "note": "garbled", "at": "…"}},
     "history": [{"at": "…", "what": "drop 1 row", "before": {"12": null}}]}

Every change reads the file, applies itself and writes it back under the workspace lock, so
concurrent writers (the CLI, the app, several processes) lose nothing; ``undo_tags`` puts back
what the newest change replaced. ``clear`` removes rows' tags. Ids are the workspace's sample
ids, so tags survive re-running analyses. The rule for each reader: ``tag_column`` (per row, for
colouring and the record view), ``tagged_rows`` (a tag's rows, what ``tag:NAME`` selects) and
``tag_table`` (a listing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import PrismError
from core.validate import check_choice, check_indices
from core.workspace.store import Workspace, now

TAGS = ("keep", "drop", "flag")
CLEAR = "clear"  # removes the tag (and note) of rows
TAG_PREFIX = "tag:"  # ``tag:keep`` names the rows tagged keep wherever a subset is named
MAX_NOTE = 2000
HISTORY = 50  # changes that can be undone, newest last


@dataclass(frozen=True)
class TagChange:
    """One change of tags: what it did (``what``), to how many rows, and when."""

    what: str
    n_rows: int
    at: str


def check_tag(tag: object, *, allow_clear: bool = True) -> str:
    choices = (*TAGS, CLEAR) if allow_clear else TAGS
    return check_choice(tag, choices, param="tag")


def _ids(workspace: Workspace) -> np.ndarray:
    return workspace.samples(columns=["id"])["id"].astype(str).to_numpy()


def tag_rows(workspace: Workspace, rows: object, tag: str, *, note: str | None = None) -> TagChange:
    """Tag the rows at positions ``rows`` (a lasso, a subset's rows, a find result) as ``tag``
    ("keep", "drop", "flag", or "clear" to remove their tags), with an optional ``note``."""
    tag = check_tag(tag)
    if note is not None and not isinstance(note, str):
        raise PrismError(f"note must be text; got {note!r}.", param="note")
    note = " ".join(note.split()) if note else None
    if note and len(note) > MAX_NOTE:
        raise PrismError(
            f"note can be at most {MAX_NOTE:,} characters; this one has {len(note):,}.",
            param="note",
        )
    if note and tag == CLEAR:
        raise PrismError("clear removes tags and notes; give no note with it.", param="note")
    ids = _ids(workspace)
    positions = check_indices(rows, len(ids), param="rows")
    chosen = list(dict.fromkeys(ids[positions].tolist()))
    at = now()
    record = None if tag == CLEAR else {"tag": tag, **({"note": note} if note else {}), "at": at}
    what = f"{'clear the tags of' if tag == CLEAR else tag} {len(chosen):,} row" + (
        "s" if len(chosen) != 1 else ""
    )
    with workspace.lock():
        data = workspace.tag_file()
        tags: dict[str, Any] = dict(data.get("tags", {}))
        before = {i: tags.get(i) for i in chosen}
        for i in chosen:
            if record is None:
                tags.pop(i, None)
            else:
                tags[i] = record
        history = [*data.get("history", []), {"at": at, "what": what, "before": before}]
        workspace.write_tags({"tags": tags, "history": history[-HISTORY:]})
    return TagChange(what=what, n_rows=len(chosen), at=at)


def undo_tags(workspace: Workspace) -> TagChange:
    """Undo the newest change of tags (by anyone): its rows get back what they had before."""
    with workspace.lock():
        data = workspace.tag_file()
        history = list(data.get("history", []))
        if not history:
            raise PrismError("There is no change of tags to undo.")
        last = history.pop()
        tags = dict(data.get("tags", {}))
        for i, previous in dict(last.get("before", {})).items():
            if previous is None:
                tags.pop(i, None)
            else:
                tags[i] = previous
        workspace.write_tags({"tags": tags, "history": history})
    before = last.get("before", {})
    return TagChange(what=f"undid “{last.get('what', '')}”", n_rows=len(before), at=now())


def tags_by_id(workspace: Workspace) -> Mapping[str, Mapping[str, Any]]:
    """id → {"tag", "note"?, "at"} of every tagged row."""
    return dict(workspace.tag_file().get("tags", {}))


def tag_column(workspace: Workspace) -> pd.Series:
    """Per row, in row order, its tag ("keep", "drop", "flag") or None: a colour-by column."""
    tags = tags_by_id(workspace)
    ids = _ids(workspace)
    values = [tags[i]["tag"] if i in tags else None for i in ids]
    return pd.Series(values, name="tag", dtype=object)


def tagged_rows(workspace: Workspace, tag: str) -> np.ndarray:
    """Row positions (int64, in row order) of the rows tagged ``tag``."""
    tag = check_tag(tag, allow_clear=False)
    return np.flatnonzero(tag_column(workspace).to_numpy() == tag).astype(np.int64)


def tag_table(workspace: Workspace) -> pd.DataFrame:
    """Every tagged row: row, id, tag, note, at (in row order)."""
    tags = tags_by_id(workspace)
    ids = _ids(workspace)
    rows = [r for r, i in enumerate(ids) if i in tags]
    columns = {
        "id": [ids[r] for r in rows],
        "tag": [tags[ids[r]]["tag"] for r in rows],
        "note": [tags[ids[r]].get("note") for r in rows],  # None (not NaN) where there is none
        "at": [tags[ids[r]].get("at") for r in rows],
    }
    return pd.DataFrame(
        {
            "row": np.asarray(rows, dtype=np.int64),
            **{name: pd.Series(values, dtype=object) for name, values in columns.items()},
        }
    )


def tag_counts(workspace: Workspace) -> dict[str, int]:
    """Rows per tag (every tag, zero included)."""
    column = tag_column(workspace)
    return {tag: int((column == tag).sum()) for tag in TAGS}


def without_tagged(workspace: Workspace, rows: np.ndarray, tag: str) -> np.ndarray:
    """``rows`` less those tagged ``tag`` (order kept): what an export with ``drop_tagged`` keeps."""
    return rows[~np.isin(rows, tagged_rows(workspace, tag))]
