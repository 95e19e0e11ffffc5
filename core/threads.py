"""Threads of this process: the one pool background work runs on, and one BLAS thread meanwhile.

- ``background_pool()``: the process's one thread pool for background work (the app's budget
  curves, cluster tables, map tiles); ``core.workspace.jobs.record.run_in_thread`` submits to it.
- ``one_blas_thread()``: one BLAS thread while background computations run.

A server runs a page and a background computation at once on a small machine, and BLAS threads
that outnumber free cores spin instead of working (a 0.6 s selection score was measured at 3-7 s
that way on 2 busy cores). OpenBLAS's setting is process-wide: the first computation to start
sets it, the last one to end restores what was there.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

# Two workers: a long job (budget curves) never holds up the map's short ones behind it.
POOL_WORKERS = 2

_BLAS_LOCK = threading.Lock()
_BLAS: dict[str, Any] = {"users": 0, "limit": None}  # background computations running now


@functools.cache
def background_pool() -> ThreadPoolExecutor:
    """The process's one pool of background threads (created on first use)."""
    return ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="prism-background")


def _limit_blas() -> Any:
    try:  # optional: threadpoolctl ships with scikit-learn
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=1, user_api="blas")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread while any block of this kind runs (in any thread of the process)."""
    with _BLAS_LOCK:
        if _BLAS["users"] == 0:
            _BLAS["limit"] = _limit_blas()
        _BLAS["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0 and _BLAS["limit"] is not None:
                _BLAS["limit"].restore_original_limits()
                _BLAS["limit"] = None
