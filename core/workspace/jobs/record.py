"""Background jobs of a workspace: one ``Job`` record for every kind, one start/read/cancel API.

Every long piece of work — feature extraction (``core.workspace.jobs.extraction``, a ``prism resume``
process), clusters and map (``core.workspace.jobs.analysis``, a process), text space
(``core.workspace.jobs.embedding``, a process), and the app's own
threads (budget curves, cluster tables) — records its progress as a ``Job`` in
``jobs/<kind>.json`` inside the workspace: kind, status, done/total, message, pid, started and
updated (plus a step, a rate and an ETA where they mean something). So a page, the CLI and a
test read every job the same way, and a job survives a closed browser tab.

- ``start_job(path, kind, argv, …)`` runs ``python -m <argv…>`` detached (its own session, output
  to ``jobs/<kind>.log``) and records it as running; ``read_job(path, kind)`` reads the record
  (a running job whose process is gone reads as failed); ``cancel_job(path, kind)`` asks it to
  stop (SIGTERM for a process; for a thread of this process, the record says ``cancelled`` and
  the thread sees it through ``cancelled``); ``report_job`` writes a new state of a job.
- ``run_in_thread(work, …, where=, kind=)`` runs ``work`` on the process's one background pool
  (``core.threads``) with one BLAS thread, recorded as job ``kind`` when given one.
- Schema 1 workspaces kept a feature job in ``job.json`` and an analysis in ``analysis.json``;
  ``read_job`` still reads them when no ``jobs/<kind>.json`` exists.

The shorthands ``read_progress`` / ``write_progress`` / ``cancel`` are the feature extraction job
(kind ``features``); ``core.workspace.jobs.extraction.start_background`` starts one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.paths import SOURCE_ROOT
from core.threads import background_pool, one_blas_thread
from core.workspace.files import now, short, write_json
from core.workspace.store import JOBS, Workspace

T = TypeVar("T")
RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
FEATURES, ANALYSIS, EMBEDDING = "features", "analysis", "embedding"
# Where schema 1 workspaces kept a job's progress.
LEGACY_FILES = {FEATURES: "job.json", ANALYSIS: "analysis.json"}
# What a job whose process vanished reads as, per kind.
VANISHED = {
    FEATURES: "the job's process ended without finishing; resume it",
    ANALYSIS: "the map builder stopped; start it again",
    "synthesis": "the synthesis process ended without finishing; resume it",
    EMBEDDING: "the text-space process ended without finishing; start it again",
}


@dataclass(frozen=True)
class Job:
    """A snapshot of a background job, as written to ``jobs/<kind>.json``."""

    status: str  # running | done | failed | cancelled
    done: int = 0
    total: int = 0
    samples_per_s: float = 0.0
    eta_s: float | None = None
    pid: int | None = None
    message: str = ""
    started: str = ""
    updated: str = ""
    kind: str = FEATURES
    step: str = ""  # where a job of several steps is (analysis: clusters, layout)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style read of a field (pages written against the old status dicts)."""
        return getattr(self, key, default)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, kind: str) -> Job:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("kind", kind)
        values.setdefault("status", FAILED)
        return cls(**values)


# The feature job's record had this name before every job shared one.
Progress = Job


def job_path(path: str | os.PathLike[str], kind: str) -> Path:
    return Path(path) / JOBS / f"{kind}.json"


def _root(where: Workspace | str | os.PathLike[str]) -> Path:
    return where.path if isinstance(where, Workspace) else Path(where)


def write_job(where: Workspace | str | os.PathLike[str], job: Job) -> None:
    """Record ``job`` as the current state of its kind in the workspace."""
    write_json(job_path(_root(where), job.kind), job.to_dict())


def read_job(path: str | os.PathLike[str], kind: str) -> Job | None:
    """The last state recorded for the job ``kind`` in workspace ``path``, or None.

    A job recorded as running whose process is no longer alive reads as failed.
    """
    file = job_path(path, kind)
    if not file.is_file() and kind in LEGACY_FILES:
        file = Path(path) / LEGACY_FILES[kind]
    try:
        data = json.loads(file.read_text())
        job = Job.from_dict(data, kind=kind)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if job.running and job.pid and job.pid != os.getpid() and not process_alive(job.pid):
        reason = VANISHED.get(kind, "the job's process ended without finishing")
        job = dataclasses.replace(job, status=FAILED, message=job.message or reason)
    return job


def report_job(
    where: Workspace | str | os.PathLike[str],
    kind: str,
    *,
    status: str = RUNNING,
    done: int = 0,
    total: int = 0,
    message: str = "",
    step: str = "",
    pid: int | None = None,
    samples_per_s: float = 0.0,
    eta_s: float | None = None,
    started: str | None = None,
) -> Job:
    """Write a new state of job ``kind`` (its start time kept from the running record)."""
    root = _root(where)
    if started is None:
        previous = read_job(root, kind)
        started = previous.started if previous is not None and previous.started else now()
    job = Job(
        status=status,
        done=done,
        total=total,
        samples_per_s=samples_per_s,
        eta_s=eta_s,
        pid=os.getpid() if pid is None else pid,
        message=message,
        started=started,
        updated=now(),
        kind=kind,
        step=step,
    )
    write_job(root, job)
    return job


def start_job(
    path: str | os.PathLike[str],
    kind: str,
    argv: Sequence[str],
    *,
    total: int = 0,
    message: str = "starting",
    step: str = "",
) -> Job:
    """Run ``python -m argv…`` in a detached process for job ``kind``; returns its record."""
    root = Path(path)
    (root / JOBS).mkdir(parents=True, exist_ok=True)
    log = open(root / JOBS / f"{kind}.log", "ab")  # noqa: SIM115 — handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=SOURCE_ROOT,
    )
    log.close()
    return report_job(
        root, kind, total=total, message=message, step=step, pid=process.pid, started=now()
    )


def cancel_job(path: str | os.PathLike[str], kind: str) -> bool:
    """Ask a running job to stop; True if one was running. A process gets SIGTERM (its finished
    work is kept); a thread of this process is marked cancelled and stops at its next check."""
    job = read_job(path, kind)
    if job is None or not job.running or not job.pid:
        return False
    if job.pid == os.getpid():
        write_job(path, dataclasses.replace(job, status=CANCELLED, updated=now()))
        return True
    try:
        os.kill(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def cancelled(path: str | os.PathLike[str], kind: str) -> bool:
    """Whether job ``kind`` was cancelled (what a thread running it checks between steps)."""
    job = read_job(path, kind)
    return job is not None and job.status == CANCELLED


def run_in_thread(
    work: Callable[..., T],
    *args: Any,
    where: Workspace | str | os.PathLike[str] | None = None,
    kind: str | None = None,
    total: int = 0,
) -> Future[T]:
    """``work(*args)`` on the process's one background pool, with one BLAS thread.

    Given a workspace ``where`` and a job ``kind``, the work is that job: recorded as running now
    (``work`` may report its progress with ``report_job``), as done when it returns, and as
    failed, with the error's message, when it raises (the future raises it too).
    """
    if where is not None and kind is not None:
        report_job(where, kind, total=total, step="starting", started=now())

    def run() -> T:
        try:
            with one_blas_thread():
                result = work(*args)
        except Exception as error:
            if where is not None and kind is not None:
                job = read_job(_root(where), kind)
                done = job.done if job is not None else 0
                report_job(where, kind, status=FAILED, done=done, total=total, message=short(error))
            raise
        if where is not None and kind is not None:
            report_job(where, kind, status=DONE, done=total, total=total)
        return result

    return background_pool().submit(run)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a finished, unreaped child counts as not running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return True


class Stop(BaseException):  # noqa: N818 — a signal, not an error
    """SIGTERM (the app's Cancel) inside a job. A BaseException, so that no library's
    ``except Exception`` swallows it; the job keeps its finished work and says so."""


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """While inside, SIGTERM raises ``Stop`` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the feature extraction job ---------------------------------------------------------------


def write_progress(workspace: Workspace, progress: Job) -> None:
    write_job(workspace, dataclasses.replace(progress, kind=FEATURES))


def read_progress(path: str | os.PathLike[str]) -> Job | None:
    """The last progress written by a feature job in workspace ``path``, if any."""
    return read_job(path, FEATURES)


def cancel(path: str | os.PathLike[str]) -> bool:
    """Ask a running feature job to stop (finished shards are kept). True if one was running."""
    return cancel_job(path, FEATURES)
