"""The data page's parts: where a dataset comes from, its column mapping, and its preview."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.data.dataset import (
    DEMO_SOURCES,
    ColumnMap,
    Dataset,
    detect_columns,
    load_dataset,
    read_table,
)
from core.errors import DataError, PrismError
from core.features.proxy import prism_home
from ui import state

UPLOAD_TYPES = ["csv", "tsv", "json", "jsonl", "parquet"]
# Uploads are kept for a day after their last use and 5 GB in all (five of the largest).
UPLOAD_MAX_AGE_S = 24 * 3600
UPLOAD_MAX_TOTAL_MB = 5 * 1024
LOCAL_ADDRESSES = {"127.0.0.1", "localhost", "::1"}  # no address: every interface
DATA_ROOTS_ENV = "PRISM_DATA_ROOTS"
KINDS = {
    "prompt_response": "Prompt and response",
    "messages": "Chat messages",
    "text": "Plain text",
}
# The engine's messages name command-line flags; on this page they are controls.
_CONTROLS = {
    "--prompt-col": "“Prompt column”",
    "--response-col": "“Response column”",
    "--messages-col": "“Messages column”",
    "--text-col": "“Text column”",
    "--id-col": "“Id column”",
}


def for_page(message: str, *, source: str | None = None, label: str | None = None) -> str:
    """An engine message with its command-line flags renamed to this page's controls.

    An uploaded file is kept under a hashed name; the message names it as the user knows it.
    """
    if source and label and source != label:
        message = message.replace(source, label)
    for flag, control in _CONTROLS.items():
        message = message.replace(f"drop {flag}", f"set {control} to “row number”")
        message = message.replace(f"pass {flag}", f"choose a {control}").replace(
            f"Pass {flag}", f"Choose a {control}"
        )
        message = message.replace(flag, control)
    return message


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
    return (
        "This app may use only files under "
        + ", ".join(f"`{r}`" for r in roots)
        + f". To add a folder, list it in {DATA_ROOTS_ENV} (separate several with "
        f"`{os.pathsep}`) and restart the app."
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
        raise DataError("Type the path of a file or folder on the server.")
    path = Path(text.strip()).expanduser()
    roots = data_roots()
    if not roots:
        raise DataError(server_paths_allowed()[1])
    if not within(path, roots):
        raise DataError(
            f"{text.strip()} is outside the folders this app may read. {roots_note(roots)}"
        )
    real = resolved(path)
    if not real.exists():
        raise DataError(f"{text}: no such file or folder on the server.")
    return real


def _mtime(source: str) -> float:
    if source.startswith("demo:"):
        return 0.0
    try:
        return os.stat(source).st_mtime_ns
    except OSError:
        return -1.0


@st.cache_data(max_entries=8, show_spinner="Reading the file…")
def _read(source: str, mtime: float) -> pd.DataFrame:
    return read_table(source)


def read(source: str) -> pd.DataFrame:
    return _read(source, _mtime(source))


@st.cache_resource(max_entries=8, show_spinner="Checking every row…")
def _load(
    source: str, mtime: float, columns: tuple[tuple[str, Any], ...], sample: int | None = None
) -> Dataset:
    return load_dataset(source, columns=ColumnMap(**dict(columns)), sample=sample, sample_seed=0)


def load(source: str, columns: ColumnMap, *, sample: int | None = None) -> Dataset:
    """The dataset (cached), or a seeded random ``sample`` of its rows (seed 0)."""
    return _load(source, _mtime(source), tuple(columns.to_dict().items()), sample)


def detected(frame: pd.DataFrame, source: str) -> tuple[ColumnMap | None, str]:
    try:
        return detect_columns(frame, source=source), ""
    except DataError as error:
        return None, for_page(str(error))


def mapping_form(
    frame: pd.DataFrame, guess: ColumnMap | None, key: str
) -> tuple[ColumnMap | None, str | None]:
    """The column-mapping controls; returns (the map, or the problem with it).

    Only columns the engine detected are pre-filled; the others start empty, and the map is
    (None, None) until every one is chosen (a column picked by position looks valid and is not).
    """
    columns = [str(c) for c in frame.columns]
    kind_default = guess.kind if guess else "prompt_response"
    kind = (
        st.segmented_control(
            "The samples are",
            list(KINDS),
            default=kind_default,
            format_func=KINDS.get,
            key=f"kind_{key}",
            help="Prompt/response pairs: the loss is taken on the response only. Chats: on the last "
            "assistant turn. Plain text: on every token.",
        )
        or kind_default
    )

    def pick(label: str, field: str, help_text: str) -> str | None:
        value = getattr(guess, field, None) if guess and guess.kind == kind else None
        return st.selectbox(
            label,
            columns,
            index=columns.index(value) if value in columns else None,
            placeholder="choose a column",
            key=f"{field}_{kind}_{key}",
            help=help_text,
        )

    chosen: dict[str, str | None] = {}
    if kind == "prompt_response":
        a, b = st.columns(2)
        with a:
            chosen["prompt"] = pick("Prompt column", "prompt", "What the user asks.")
        with b:
            chosen["response"] = pick(
                "Response column", "response", "What the model should answer."
            )
    elif kind == "messages":
        chosen["messages"] = pick(
            "Messages column", "messages", 'A list of {"role", "content"} messages.'
        )
    else:
        chosen["text"] = pick("Text column", "text", "Plain text; the loss covers all of it.")
    id_options = ["(row number)", *columns]
    guess_id = guess.id if guess and guess.id in columns else None
    id_choice = st.selectbox(
        "Id column",
        id_options,
        index=id_options.index(guess_id) if guess_id else 0,
        key=f"id_{key}",
        help="Unique ids travel with every exported subset; without one, rows are numbered from 0.",
    )
    if any(value is None for value in chosen.values()):
        return None, None
    chosen["id"] = None if id_choice == "(row number)" else id_choice
    try:
        return ColumnMap(**chosen), None
    except PrismError as error:
        return None, for_page(str(error))


def demo_choices() -> dict[str, str]:
    return {name: source.description for name, source in DEMO_SOURCES.items()}
