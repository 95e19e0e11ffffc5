"""Clusters and the 2-D map of a workspace, built in a background process for the app.

``start`` launches ``python -m core.workspace.jobs.analysis WORKSPACE``, which runs
``core.workspace.analyses`` (spherical k-means, then UMAP) on a workspace whose features are
complete and records its progress as the ``analysis`` job (``core.workspace.jobs.record``:
``jobs/analysis.json``, step ``clusters`` then ``layout``); ``read_status`` reads it back. Like a
feature job it survives a closed tab.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from core.workspace.analyses import cluster_workspace, layout_workspace
from core.workspace.jobs.record import (
    ANALYSIS,
    DONE,
    FAILED,
    RUNNING,
    Job,
    read_job,
    report_job,
    start_job,
)
from core.workspace.store import JOBS, Workspace

STATUS = f"{JOBS}/{ANALYSIS}.json"
STEPS = ("clusters", "layout")


def needs_analysis(workspace: Workspace) -> list[str]:
    """The analyses the map still lacks: a subset of ["clusters", "layout"]."""
    present = {"clusters": workspace.clusters, "layout": workspace.layout}
    return [step for step in STEPS if present[step] is None]


def read_status(path: str | os.PathLike[str]) -> Job | None:
    """The map builder's job record (status running|done|failed, step, message, pid), or None."""
    return read_job(path, ANALYSIS)


def start(path: str | os.PathLike[str]) -> int:
    """Start building clusters and map in a detached process; returns its pid."""
    job = start_job(
        path, ANALYSIS, ["core.workspace.jobs.analysis", str(path)], total=len(STEPS), message=""
    )
    return int(job.pid or 0)


def run(path: str | os.PathLike[str]) -> None:
    root = Path(path)

    def report(status: str, step: str, message: str = "") -> None:
        done = len(STEPS) if status == DONE else STEPS.index(step) if step in STEPS else 0
        report_job(
            root, ANALYSIS, status=status, step=step, message=message, done=done, total=len(STEPS)
        )

    step = "clusters"
    try:
        workspace = Workspace.open(root)
        if "clusters" in needs_analysis(workspace):
            report(RUNNING, "clusters", "grouping the samples (spherical k-means)")
            cluster_workspace(workspace)
        step = "layout"
        if "layout" in needs_analysis(Workspace.open(root)):
            report(RUNNING, "layout", "laying out the map (UMAP; the first run compiles for ~30 s)")
            layout_workspace(Workspace.open(root))
        report(DONE, "done", "clusters and map are ready")
    except Exception as error:  # recorded for the page to show; the process ends here
        traceback.print_exc()
        report(FAILED, step, str(error) or type(error).__name__)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run(sys.argv[1])
