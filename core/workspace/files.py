"""Safe file primitives of a workspace: the lock, atomic writes, JSON / ``.npy`` / Parquet I/O.

``lock_file`` holds an exclusive ``fcntl.flock`` (reentrant within a process, so nested
read-modify-writes of one workspace share it). ``atomic_path`` yields a temporary name beside
the target and renames it over the target only on success, so a killed process never leaves a
half-written file. Arrays are written with ``allow_pickle=False``; nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import WorkspaceError

LOCK_TIMEOUT_S = 120.0


class _HeldLock:
    """One process-wide holder per workspace lock file: reentrant across nested ``with`` blocks."""

    def __init__(self) -> None:
        self.guard = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_locks: dict[str, _HeldLock] = {}
_locks_guard = threading.Lock()


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not unlinked, not replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def lock_file(
    path: Path, *, timeout_s: float = LOCK_TIMEOUT_S, what: str = "", remove: bool = False
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (reentrant in this process; waits ``timeout_s``).

    ``remove`` deletes the lock file on release, so that nothing is left behind. That is safe
    because the holder unlinks it before unlocking, and whoever then gets the lock of the
    unlinked file sees that ``path`` no longer names it and locks ``path`` afresh: two holders
    never lock two different files at once.
    """
    key = os.path.abspath(path)
    with _locks_guard:
        held = _locks.setdefault(key, _HeldLock())
    with held.guard:
        if held.depth == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + timeout_s
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    if time.monotonic() > deadline:
                        raise WorkspaceError(
                            f"{what or path.parent} is being written by another Prism command "
                            f"and stayed locked for {timeout_s:.0f} s; wait for it to finish and "
                            "run this again."
                        ) from None
                    time.sleep(0.02)
                    continue
                if not remove or _same_file(fd, path):
                    break
                os.close(fd)  # its holder removed it on release: lock the file at path now
            held.fd = fd
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                if remove:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                fcntl.flock(held.fd, fcntl.LOCK_UN)
                os.close(held.fd)
                held.fd = None


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(target: Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_npy(target: Path, array: np.ndarray) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def write_parquet(target: Path, frame: pd.DataFrame) -> None:
    # Row groups of 65,536 rows: readers that stream the file (exports, iter_batches) then hold
    # one group at a time, not the whole table (pyarrow's default group is 1,048,576 rows).
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False, row_group_size=65_536)


NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: Path, *, mmap: bool = True) -> np.ndarray:
    """The array in a ``.npy`` file, never unpickled. A file that is not ``.npy`` at all (damaged
    or overwritten) or that holds Python objects raises ValueError saying so, instead of numpy's
    advice to load it unsafely."""
    with open(path, "rb") as handle:
        if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise ValueError(
                "it is not a .npy file (it lacks the .npy header): damaged or overwritten"
            )
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as error:
        if any(word in str(error) for word in ("pickle", "Object arrays", "Python objects")):
            raise ValueError(
                "it holds Python objects (a pickled array), which Prism never loads: pickles can "
                "run code"
            ) from None
        raise


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def short(error: BaseException, max_chars: int = 160) -> str:
    """An error's text on one line, cut to ``max_chars``."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
