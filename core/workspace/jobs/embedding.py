"""Text space of a workspace, computed in a background process for the app.

``start`` launches ``python -m core.workspace.jobs.embedding WORKSPACE``, which runs
``core.workspace.analyses.embed_workspace`` with the default settings (the packaged sentence
encoder, as ``prism embed`` runs it) and records its progress as the ``embedding`` job
(``core.workspace.jobs.record``: ``jobs/embedding.json``; done/total counts the texts embedded,
then the step names the analysis under way: clusters, map, neighbours). Like the other jobs it
survives a closed tab; ``cancel`` (SIGTERM) stops it; the text space counts as there only once
all of it is stored (``Workspace.has_embeddings``).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from core.workspace.analyses import embed_workspace
from core.workspace.jobs.record import (
    CANCELLED,
    DONE,
    EMBEDDING,
    FAILED,
    RUNNING,
    Job,
    Stop,
    cancel_job,
    read_job,
    report_job,
    sigterm_stops,
    start_job,
)
from core.workspace.store import Workspace

# What each step after the embedding does, for the progress line.
STEPS = {
    "embedding": "embedding the texts (sentence encoder)",
    "clusters": "grouping the embeddings (spherical k-means)",
    "map": "laying out the text map (UMAP; the first run compiles for ~30 s)",
    "neighbours": "comparing neighbourhoods with gradient space",
    "lexical": "counting n-grams (n-gram Vendi, distinct-2)",
}


def read_status(path: str | os.PathLike[str]) -> Job | None:
    """The text-space job's record (status, done/total texts, step, message), or None."""
    return read_job(path, EMBEDDING)


def start(path: str | os.PathLike[str]) -> int:
    """Start computing the text space in a detached process; returns its pid."""
    total = Workspace.open(path).n_samples
    job = start_job(
        path,
        EMBEDDING,
        ["core.workspace.jobs.embedding", str(path)],
        total=total,
        message="starting",
    )
    return int(job.pid or 0)


def cancel(path: str | os.PathLike[str]) -> bool:
    """Ask a running text-space job to stop; True if one was running."""
    return cancel_job(path, EMBEDDING)


def run(path: str | os.PathLike[str]) -> None:
    """The job itself: embed, then the text-space analyses, reporting each step."""

    root = Path(path)
    total = Workspace.open(root).n_samples
    state: dict[str, Any] = {"done": 0, "step": "loading"}

    def report(status: str, message: str) -> None:
        step = state["step"]
        report_job(
            root, EMBEDDING, status=status, done=int(state["done"]), total=total, step=str(step),
            message=message,
        )  # fmt: skip

    def progress(done: int, n: int, stage: str) -> None:
        """``stage`` is under way ("embedding", ``done`` of ``n`` texts) or, any other, finished."""
        order = list(STEPS)
        if stage == "embedding":
            state["done"] = done
            stage = "embedding" if done < n else "clusters"
        elif stage in order[:-1]:
            stage = order[order.index(stage) + 1]
        state["step"] = stage
        report(RUNNING, STEPS.get(stage, stage))

    with sigterm_stops():
        try:
            report(RUNNING, "loading the sentence encoder")
            embed_workspace(Workspace.open(root), progress=progress)
            state["done"] = total
            report(DONE, "text space is ready")
        except Stop:
            report(CANCELLED, "stopped before the text space was stored; start it again")
            raise SystemExit(143) from None
        except Exception as error:  # recorded for the page to show; the process ends here
            traceback.print_exc()
            report(FAILED, str(error) or type(error).__name__)
            raise SystemExit(1) from None


if __name__ == "__main__":
    run(sys.argv[1])
