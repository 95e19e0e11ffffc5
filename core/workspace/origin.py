"""Where a workspace's features came from, and the command that makes them again.

A workspace is Prism's own (``prism features``: a proxy model, resumable from its samples) or
imported (``prism import-features``: an array from elsewhere, which Prism cannot recompute).
Messages about a damaged or missing file end with the command that fixes it for that origin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.workspace.store import Workspace

IMPORTED = "imported"


def imported_source(workspace: Workspace) -> str | None:
    """The source file of a workspace made by ``import_features``; None for Prism's own."""
    section = workspace.feature_section
    settings = dict(section.settings) if section is not None else {}
    if settings.get("model") != IMPORTED:
        return None
    return str(settings.get("source") or "another program")


def rebuild_hint(workspace: Workspace) -> str:
    """The command that makes a workspace again from its origin: `prism features … --force`
    (subsets kept), or for imported features a new `prism import-features` (into a new workspace:
    import-features never writes over one)."""
    data = workspace.dataset.source or "DATA"
    source = imported_source(workspace)
    if source is None:
        return (
            f"Rebuild the workspace with `prism features {data} --workspace {workspace.path} "
            "--force` (subsets are kept)."
        )
    return (
        f"Its features were imported, so import them again into a new workspace: `prism "
        f"import-features {data} {source} --workspace NEW` (copy subsets.json from here to "
        "keep the subsets)."
    )


def missing_features_hint(workspace: Workspace) -> str:
    """What computes a deleted ``features.npy`` again: `prism resume` (every row, from the
    samples), or for imported features a new import."""
    if imported_source(workspace) is not None:
        return rebuild_hint(workspace)
    return f"`prism resume {workspace.path}` computes them again from the samples (every row)."
