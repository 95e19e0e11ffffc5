"""The demo workspace: GSM8K test (1,319 rows) through the embedded SmolLM2-135M-Instruct proxy.

Computing its features takes tens of minutes on a laptop CPU, so the repository ships a finished
workspace in ``demo/gsm8k`` — built by ``prism features demo:gsm8k`` with the default settings,
then ``prism cluster`` and ``prism map`` — and ``ensure_demo_workspace`` copies it into
``$PRISM_HOME/workspaces/demo-gsm8k`` on first use. ``prism demo --rebuild`` recomputes it from
scratch with the real model to check the shipped copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.errors import WorkspaceError
from core.proxy import prism_home
from core.workspace import FEATURES, MANIFEST, SAMPLES, SUBSETS, Workspace

DEMO_SOURCE = "demo:gsm8k"
DEMO_NAME = "demo-gsm8k"
SHIPPED = Path(__file__).resolve().parent.parent / "demo" / "gsm8k"


def demo_workspace_path() -> Path:
    return prism_home() / "workspaces" / DEMO_NAME


def ensure_demo_workspace() -> Workspace:
    """The demo workspace, copied from the shipped build when missing or incomplete."""
    target = demo_workspace_path()
    if Workspace.exists(target):
        workspace = Workspace.open(target)
        if workspace.has_features:
            return workspace
    if not (SHIPPED / MANIFEST).is_file():
        raise WorkspaceError(
            f"The shipped demo workspace is missing ({SHIPPED}). Build it with "
            f"`prism features {DEMO_SOURCE} --workspace {target}` (tens of minutes on a CPU)."
        )
    staging = target.with_name(f".{DEMO_NAME}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (MANIFEST, SAMPLES, FEATURES, SUBSETS):
        if (SHIPPED / name).is_file():
            shutil.copy2(SHIPPED / name, staging / name)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return Workspace.open(target)
