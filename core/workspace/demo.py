"""The demo workspace: GSM8K test (1,319 rows) through the embedded SmolLM2-135M-Instruct proxy.

Computing its features takes tens of minutes on a laptop CPU, so the repository ships a finished
workspace in ``demo/gsm8k`` — built by ``prism features demo:gsm8k`` with the default settings,
then ``prism cluster`` and ``prism map`` — and ``ensure_demo_workspace`` copies it into
``$PRISM_HOME/workspaces/demo-gsm8k`` on first use (an older copy without embeddings is
replaced, its subsets kept). ``prism features demo:gsm8k --workspace WS`` followed by
``prism cluster``, ``prism map`` and ``prism embed`` recomputes it from scratch (the shipped copy
also holds the Compare page's budget curves for the default settings, ``curves.parquet``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.errors import WorkspaceError
from core.features.proxy import prism_home
from core.paths import SOURCE_ROOT
from core.workspace.compare import CURVES
from core.workspace.derived import DERIVED
from core.workspace.store import (
    EMBEDDINGS,
    FEATURES,
    MANIFEST,
    SAMPLES,
    SUBSETS,
    Workspace,
)

DEMO_SOURCE = "demo:gsm8k"
DEMO_NAME = "demo-gsm8k"
SHIPPED = SOURCE_ROOT / "demo" / "gsm8k"


def demo_workspace_path() -> Path:
    return prism_home() / "workspaces" / DEMO_NAME


def _older_shipped_copy(workspace: Workspace) -> bool:
    """True for a copy of the same shipped features that lacks the shipped embeddings (a demo
    copied by an older Prism); a workspace the user rebuilt or changed is never replaced."""
    if workspace.has_embeddings or not (SHIPPED / EMBEDDINGS).is_file():
        return False
    try:
        shipped = Workspace.open(SHIPPED).feature_section
    except WorkspaceError:
        return False
    mine = workspace.feature_section
    completed = shipped.completed if shipped is not None else None
    return completed is not None and mine is not None and mine.completed == completed


def ensure_demo_workspace() -> Workspace:
    """The demo workspace, copied from the shipped build when missing or incomplete."""
    target = demo_workspace_path()
    kept_subsets = None
    if Workspace.exists(target):
        workspace = Workspace.open(target)
        if workspace.has_features and not _older_shipped_copy(workspace):
            return workspace
        # An incomplete copy, or the shipped build of an older Prism (no embeddings yet):
        # replace it with the shipped build, keeping its subsets.
        if (target / SUBSETS).is_file():
            kept_subsets = (target / SUBSETS).read_bytes()
    if not (SHIPPED / MANIFEST).is_file():
        raise WorkspaceError(
            f"The shipped demo workspace is missing ({SHIPPED}). Build it with "
            f"`prism features {DEMO_SOURCE} --workspace {target}` (tens of minutes on a CPU)."
        )
    staging = target.with_name(f".{DEMO_NAME}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (MANIFEST, SAMPLES, FEATURES, EMBEDDINGS, CURVES, SUBSETS):
        if (SHIPPED / name).is_file():
            shutil.copy2(SHIPPED / name, staging / name)
    if (SHIPPED / DERIVED).is_dir():
        shutil.copytree(SHIPPED / DERIVED, staging / DERIVED)
    if kept_subsets is not None:
        (staging / SUBSETS).write_bytes(kept_subsets)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return Workspace.open(target)
