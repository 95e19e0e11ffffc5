"""Which files on the server the app may read and write: its data roots, the uploads it keeps,
and the targets an export may be written to.

A local app (listening on 127.0.0.1) may use files under the working directory, $PRISM_HOME and
PRISM_DATA_ROOTS; an app reachable from other machines only those under PRISM_DATA_ROOTS.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import DataError, PrismError
from core.features.proxy import prism_home
from ui import state

# "gz": gzip-compressed CSV, TSV, JSON and JSON Lines (data.csv.gz, data.jsonl.gz, …).
UPLOAD_TYPES = ["csv", "tsv", "json", "jsonl", "parquet", "gz"]


# Uploads are kept for a day after their last use and 5 GB in all (five of the largest).
UPLOAD_MAX_AGE_S = 24 * 3600


UPLOAD_MAX_TOTAL_MB = 5 * 1024


LOCAL_ADDRESSES = {"127.0.0.1", "localhost", "::1"}  # no address: every interface


DATA_ROOTS_ENV = "PRISM_DATA_ROOTS"


# -- uploads -------------------------------------------------------------------------------------


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def uploads_folder() -> Path:
    return prism_home() / "uploads"


def save_upload(uploaded: Any) -> Path:
    """Keep an uploaded file under $PRISM_HOME/uploads/<content hash>/ (the engine reads paths).

    Saving a new upload prunes the others (``prune_uploads``); a kept one is touched on reuse, so
    the age counts from its last use.
    """
    saved: dict[str, str] = st.session_state.setdefault(state.UPLOADS, {})
    if uploaded.file_id in saved and Path(saved[uploaded.file_id]).is_file():
        target = Path(saved[uploaded.file_id])
        os.utime(target)
        return target
    data = uploaded.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(uploaded.name).name).strip("._") or "data"
    target = uploads_folder() / digest / name
    if target.is_file():
        os.utime(target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    saved[uploaded.file_id] = str(target)
    prune_uploads(keep=target.parent)
    return target


def prune_uploads(*, keep: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove uploads unused for UPLOAD_MAX_AGE_S, then the least recently used ones until all
    together fit in UPLOAD_MAX_TOTAL_MB; never ``keep`` (the folder of the upload just saved).

    Workspaces do not need their upload once made (they hold their samples). Returns the
    removed folders.
    """
    now = time.time() if now is None else now
    folders = []
    for folder in uploads_folder().glob("*"):
        try:  # another app process may be pruning the same folder
            files = [f for f in folder.rglob("*") if f.is_file()] if folder.is_dir() else []
            stats = [f.stat() for f in files]
            used = max((s.st_mtime for s in stats), default=folder.lstat().st_mtime)
        except OSError:
            continue
        folders.append((used, sum(s.st_size for s in stats), folder))
    removed = []
    total = sum(size for _, size, _ in folders)
    for used, size, folder in sorted(folders, key=lambda f: f[0]):
        if keep is not None and folder == keep:
            continue
        if now - used > UPLOAD_MAX_AGE_S or total > UPLOAD_MAX_TOTAL_MB * 2**20:
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                folder.unlink(missing_ok=True)
            total -= size
            removed.append(folder)
    return removed


# -- what may be read ----------------------------------------------------------------------------


def exposed() -> bool:
    """Whether the server listens beyond this machine (no address set means every interface)."""
    return str(st.get_option("server.address") or "") not in LOCAL_ADDRESSES


def data_roots() -> list[Path]:
    """The folders server paths may name (resolved): PRISM_DATA_ROOTS, and on a local app also
    the working directory and $PRISM_HOME. An exposed app uses the configured roots only."""
    raw = os.environ.get(DATA_ROOTS_ENV, "")
    roots = [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]
    if not exposed():
        roots += [Path.cwd().resolve(), prism_home().expanduser().resolve()]
    return list(dict.fromkeys(roots))


def resolved(path: Path) -> Path:
    """``path`` with every symlink followed; a symlink loop is a message, not a traceback."""
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop (Python < 3.13)
        raise DataError(f"{path} cannot be followed to a file ({error}).") from None


def within(path: Path, roots: list[Path]) -> bool:
    """Whether ``path``, symlinks followed, is one of ``roots`` or inside one."""
    return any(resolved(path).is_relative_to(root) for root in roots)


def roots_note(roots: list[Path]) -> str:
    """Which folders are open and how to open another, for the page and its messages."""
    # Plain text: it is shown in captions and in error messages, which show text as it is.
    return (
        "This app may use only files under "
        + ", ".join(str(r) for r in roots)
        + f". To add a folder, list it in {DATA_ROOTS_ENV} (separate several with "
        f"“{os.pathsep}”) and restart the app."
    )


def server_paths_allowed() -> tuple[bool, str]:
    """Server paths are read under the data roots; an exposed app needs configured roots."""
    roots = data_roots()
    if roots:
        return True, roots_note(roots)
    address = str(st.get_option("server.address") or "every interface")
    return False, (
        f"The app is reachable from other machines ({address}), so reading server paths is off. "
        f"Set {DATA_ROOTS_ENV} to the folders it may read from, and restart."
    )


def check_server_path(text: str) -> Path:
    """The resolved path of a file or folder to read, refused outside the data roots."""
    if not text.strip():
        raise DataError("Type the path of a file or folder on the server.", param="path")
    path = Path(text.strip()).expanduser()
    roots = data_roots()
    if not roots:
        raise DataError(server_paths_allowed()[1], param="path")
    if not within(path, roots):
        raise DataError(
            f"{text.strip()} is outside the folders this app may read. {roots_note(roots)}",
            param="path",
        )
    real = resolved(path)
    if not real.exists():
        where = "" if str(real) == text.strip() else f" ({real})"
        raise DataError(f"{text}: no such file or folder on the server{where}.", param="path")
    return real


# -- what may be written -------------------------------------------------------------------------


def exports_folder() -> Path:
    return prism_home() / "exports"


def check_target(text: str) -> Path:
    """Where a write may go: an absolute path under the exports folder or a data root."""
    if not text.strip():
        raise PrismError("Type the path of the file to write.", param="out")
    target = Path(text.strip()).expanduser()
    if not target.is_absolute():
        raise PrismError(
            f"{text.strip()} is not an absolute path; start it with / (or ~).", param="out"
        )
    inside = list(dict.fromkeys([exports_folder().resolve(), *data_roots()]))
    if not within(target, inside):
        raise PrismError(
            f"{target} is outside the folders this app may write to. " + roots_note(inside),
            param="out",
        )
    if resolved(target).parent == exports_folder().resolve():
        exports_folder().mkdir(parents=True, exist_ok=True)
    return target
