"""How an export reaches its path safely: what ``force`` may replace, and the data + manifest pair.

Nothing is destroyed. ``force`` replaces only a previous export or a file of the same kind: a
file with the format's suffix (or whose manifest says it is an export of this format), and for
``hf`` only a ``save_to_disk`` folder whose manifest beside it says ``hf`` and that holds nothing
but the dataset's files. Never another folder, never a symbolic link, never a Prism workspace or
anything inside one (a folder holding ``manifest.json`` and ``samples.parquet``, at any level
above ``out``).

The data and its manifest are one pair. Both are written to temporary names beside ``out``
(``.<name>.XXXXXXXX.tmp``), then published: the data renamed into place first, the manifest
last. The manifest records the sha256 of the data (of an ``hf`` folder: of its files' names and
bytes), so a manifest that does not describe the data beside it is detected: ``read_manifest``
(and so ``prism select --from-manifest``) refuses it. The whole export holds an exclusive lock
on ``.<name>.lock`` beside ``out`` (an empty file, removed again when the export ends, refused
or not: ``core.workspace.files.lock_file`` with ``remove``); a second export to the same path
fails at once instead of waiting. Because every writer holds that lock, temporaries found by the next export under it
belong to a process that died; it repairs what they left before writing: a finished temporary
manifest that matches the published data is published (the kill came between the two renames),
an ``hf`` folder that was moved aside and matches the current manifest is moved back (the kill
came before the new folder was in), and every other temporary is removed. So after a kill at
any moment, the next export to the path starts from the old pair or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import PrismError, WorkspaceError
from core.workspace.files import lock_file
from core.workspace.store import MANIFEST, SAMPLES

# Files ``force`` may replace without a manifest saying they are an export of the format.
KIND_SUFFIXES = {"jsonl": (".jsonl", ".ndjson"), "csv": (".csv",), "parquet": (".parquet", ".pq")}
# What a ``save_to_disk`` folder holds; an ``hf`` export folder holding anything else is not ours.
HF_FILES = ("dataset_info.json", "state.json")
# Test hook, read here only: PRISM_EXPORT_PAUSE=<step> ("write", "publish", "aside" or
# "manifest") makes an export say so on stderr and wait at that step for a line on stdin, so that
# a test can kill it exactly there, or hold it there while another export tries the same path.
PAUSE_ENV = "PRISM_EXPORT_PAUSE"


def manifest_path_for(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def lock_path_for(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def pause(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        print(f"prism export: paused at {step}", file=sys.stderr, flush=True)
        sys.stdin.readline()


def content_digest(path: Path) -> str:
    """sha256 of an export: of the file, or of an ``hf`` folder's files (names and bytes)."""
    if not path.is_dir():
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(content_digest(file).encode("ascii") + b"\n")
    return digest.hexdigest()


def temporary(target: Path, *, folder: bool = False) -> Path:
    """A new temporary file (or folder) beside ``target``, named ``.<name>.XXXXXXXX.tmp``."""
    prefix, suffix = f".{target.name}.", ".tmp"
    if folder:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def _temporaries(target: Path) -> list[Path]:
    """The temporaries ``temporary(target)`` names (``tempfile``'s 8 random characters)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
    return sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _recorded(manifest: Path) -> dict[str, Any] | None:
    """An export manifest as a dict, or None when it is missing, unfinished or not JSON."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _digest_of(manifest: Path) -> str | None:
    digest = (_recorded(manifest) or {}).get("sha256")
    return digest if isinstance(digest, str) else None


def repair(target: Path, manifest_target: Path) -> None:
    """Finish or undo what a killed export to ``target`` left, then remove its temporaries.

    Runs under the export lock, so no live process owns a temporary found here.
    """
    data_temps, manifest_temps = _temporaries(target), _temporaries(manifest_target)
    if not data_temps and not manifest_temps:
        return
    current = _digest_of(manifest_target)
    if current and not target.exists():
        # A folder moved aside to make room for a new one that never came in: move it back.
        for temp in data_temps:
            if temp.is_dir() and content_digest(temp) == current:
                os.rename(temp, target)
                break
    if target.exists():
        published: str | None = None
        for temp in manifest_temps:
            recorded = _digest_of(temp)
            if recorded is None or recorded == current:
                continue
            published = published or content_digest(target)
            if recorded == published:  # the data was renamed in, its manifest not yet
                os.replace(temp, manifest_target)
                break
    for temp in _temporaries(target) + _temporaries(manifest_target):
        remove(temp)


def publish_pair(data: Path, manifest: Path, target: Path, manifest_target: Path) -> None:
    """Rename the finished data, then its manifest, into place (see the module docstring)."""
    pause("publish")
    aside = None
    if target.is_dir() and not target.is_symlink():
        aside = temporary(target, folder=True)
        os.rename(target, aside)  # onto the empty folder mkdtemp made
        pause("aside")
    os.replace(data, target)
    pause("manifest")
    os.replace(manifest, manifest_target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# -- what --force may replace -----------------------------------------------------------------


def _workspace_holding(path: Path) -> Path | None:
    """The Prism workspace ``path`` is or lies in (at any level), or None."""
    for candidate in {path.absolute(), path.resolve()}:
        for folder in (candidate, *candidate.parents):
            if (folder / MANIFEST).is_file() and (folder / SAMPLES).is_file():
                return folder
    return None


def refuse_workspace(paths: list[Path]) -> None:
    """Refuse when any of ``paths`` is a Prism workspace or lies inside one."""
    for path in paths:
        workspace = _workspace_holding(path)
        if workspace is not None:
            where = "is" if path.resolve() == workspace.resolve() else "is inside"
            raise PrismError(
                f"{path} {where} the Prism workspace {workspace}; an export never replaces "
                "anything in a workspace. Choose another `out`.",
                param="out",
            )


def check_replace(target: Path, manifest_target: Path, fmt: str, *, force: bool) -> None:
    """Refuse to write where an export would destroy something (see the module docstring)."""
    existing = [p for p in (target, manifest_target) if p.exists() or p.is_symlink()]
    if not existing:
        return
    refuse_workspace(existing)
    if not force:
        raise PrismError(
            f"{existing[0]} already exists; choose another `out`, or set `force` to replace it.",
            param="out",
        )
    refuse = (
        "; `force` replaces only a previous export or a file of the same kind. "
        "Choose another `out`."
    )
    for path in existing:
        if path.is_symlink():
            raise PrismError(f"{path} is a symbolic link{refuse}", param="out")
    previous = _recorded(manifest_target) if manifest_target.exists() else None
    if manifest_target.exists() and (
        not manifest_target.is_file() or previous is None or "subset" not in previous
    ):
        raise PrismError(f"{manifest_target} is not a Prism export manifest{refuse}", param="out")
    previous_format = (previous or {}).get("format")
    if not target.exists():
        return
    if target.is_dir():
        if fmt != "hf":
            raise PrismError(
                f"{target} is a folder, and a {fmt} export is one file{refuse}", param="out"
            )
        if previous_format != "hf":
            raise PrismError(
                f"{target} is a folder but not a previous hf export (no {manifest_target.name} "
                f"saying so beside it){refuse}",
                param="out",
            )
        others = [
            p.name
            for p in target.iterdir()
            if not (
                p.is_file() and not p.is_symlink() and (p.suffix == ".arrow" or p.name in HF_FILES)
            )
        ]
        if others:
            raise PrismError(
                f"{target} holds more than an hf export ({', '.join(sorted(others)[:3])}){refuse}",
                param="out",
            )
        return
    if not target.is_file():
        raise PrismError(f"{target} is not a regular file{refuse}", param="out")
    if fmt == "hf":
        raise PrismError(f"{target} is a file, and an hf export is a folder{refuse}", param="out")
    if previous_format != fmt and target.suffix.lower() not in KIND_SUFFIXES[fmt]:
        raise PrismError(
            f"{target} is neither a previous {fmt} export nor a "
            f"{' / '.join(KIND_SUFFIXES[fmt])} file{refuse}",
            param="out",
        )


@contextlib.contextmanager
def export_lock(target: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``target`` for a whole export, and remove it after; fail at
    once if it is held."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(lock_file(lock_path_for(target), timeout_s=0.0, remove=True))
        except WorkspaceError:
            raise PrismError(
                f"Another export is writing {target}; wait for it to finish, or choose another "
                "`out`.",
                param="out",
            ) from None
        yield
