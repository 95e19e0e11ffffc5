"""Clusters and the 2-D map of a workspace, built in a background process for the app.

``start`` launches ``python -m core.workspace.analysis_job WORKSPACE``, which runs ``core.workspace.analyses`` (spherical
k-means, then UMAP) on a workspace whose features are complete and records its progress in
``analysis.json`` inside the workspace; ``read_status`` reads it back. Like a feature job it
survives a closed tab. No streamlit here; this belongs beside ``core.workspace.jobs`` once the engine
takes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from core.paths import SOURCE_ROOT
from core.workspace.jobs import process_alive
from core.workspace.store import Workspace, now, write_json

STATUS = "analysis.json"


def needs_analysis(workspace: Workspace) -> list[str]:
    """The analyses the map still lacks: a subset of ["clusters", "layout"]."""
    missing = []
    if "clusters" not in workspace.manifest:
        missing.append("clusters")
    if "layout" not in workspace.manifest:
        missing.append("layout")
    return missing


def read_status(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """{"status": running|done|failed, "step", "message", "pid", "updated"} or None."""
    file = Path(path) / STATUS
    try:
        status = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    if (
        status.get("status") == "running"
        and status.get("pid")
        and not process_alive(int(status["pid"]))
    ):
        status = {
            **status,
            "status": "failed",
            "message": "the map builder stopped; start it again",
        }
    return status


def start(path: str | os.PathLike[str]) -> int:
    """Start building clusters and map in a detached process; returns its pid."""
    root = Path(path)
    log = open(root / "analysis.log", "ab")  # noqa: SIM115 — handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "core.workspace.analysis_job", str(root)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=SOURCE_ROOT,
    )
    log.close()
    write_json(
        root / STATUS,
        {
            "status": "running",
            "step": "starting",
            "message": "",
            "pid": process.pid,
            "updated": now(),
        },
    )
    return process.pid


def run(path: str | os.PathLike[str]) -> None:
    from core.workspace.analyses import cluster_workspace, layout_workspace

    root = Path(path)

    def report(status: str, step: str, message: str = "") -> None:
        write_json(
            root / STATUS,
            {
                "status": status,
                "step": step,
                "message": message,
                "pid": os.getpid(),
                "updated": now(),
            },
        )

    step = "clusters"
    try:
        workspace = Workspace.open(root)
        if "clusters" in needs_analysis(workspace):
            report("running", "clusters", "grouping the samples (spherical k-means)")
            cluster_workspace(workspace)
        step = "layout"
        if "layout" in needs_analysis(Workspace.open(root)):
            report(
                "running", "layout", "laying out the map (UMAP; the first run compiles for ~30 s)"
            )
            layout_workspace(Workspace.open(root))
        report("done", "done", "clusters and map are ready")
    except Exception as error:  # recorded for the page to show; the process ends here
        traceback.print_exc()
        report("failed", step, str(error) or type(error).__name__)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run(sys.argv[1])
