"""The data page's parts: where a dataset comes from, its column mapping, and its preview."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.data import DEMO_SOURCES, ColumnMap, Dataset, detect_columns, load_dataset, read_table
from core.errors import DataError, PrismError
from core.proxy import prism_home
from ui import state

UPLOAD_TYPES = ["csv", "tsv", "json", "jsonl", "parquet"]
LOCAL_ADDRESSES = {"127.0.0.1", "localhost", "::1", ""}
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


def save_upload(uploaded: Any) -> Path:
    """Keep an uploaded file under $PRISM_HOME/uploads/<content hash>/ (the engine reads paths)."""
    saved: dict[str, str] = st.session_state.setdefault(state.UPLOADS, {})
    if uploaded.file_id in saved and Path(saved[uploaded.file_id]).is_file():
        return Path(saved[uploaded.file_id])
    data = uploaded.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(uploaded.name).name).strip("._") or "data"
    target = prism_home() / "uploads" / digest / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    saved[uploaded.file_id] = str(target)
    return target


def data_roots() -> list[Path]:
    raw = os.environ.get(DATA_ROOTS_ENV, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def server_paths_allowed() -> tuple[bool, str]:
    """Reading server paths is open on a local app; an exposed one needs configured data roots."""
    roots = data_roots()
    if roots:
        return True, "Paths under " + ", ".join(
            f"`{r}`" for r in roots
        ) + f" (set by {DATA_ROOTS_ENV})."
    address = str(st.get_option("server.address") or "")
    if address in LOCAL_ADDRESSES:
        return True, "Any file or `save_to_disk` folder this machine can read."
    return False, (
        f"The app is reachable from other machines ({address}), so reading server paths is off. "
        f"Set {DATA_ROOTS_ENV} to the folders it may read from, and restart."
    )


def check_server_path(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise DataError("Type the path of a file or folder on the server.")
    resolved = path.resolve()
    roots = data_roots()
    if roots and not any(resolved == r or r in resolved.parents for r in roots):
        raise DataError(
            f"{text} is outside the folders this app may read ({', '.join(map(str, roots))})."
        )
    if not resolved.exists():
        raise DataError(f"{text}: no such file or folder on the server.")
    return resolved


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
def _load(source: str, mtime: float, columns: tuple[tuple[str, Any], ...]) -> Dataset:
    return load_dataset(source, columns=ColumnMap(**dict(columns)))


def load(source: str, columns: ColumnMap) -> Dataset:
    return _load(source, _mtime(source), tuple(columns.to_dict().items()))


def detected(frame: pd.DataFrame, source: str) -> tuple[ColumnMap | None, str]:
    try:
        return detect_columns(frame, source=source), ""
    except DataError as error:
        return None, for_page(str(error))


def mapping_form(
    frame: pd.DataFrame, guess: ColumnMap | None, key: str
) -> tuple[ColumnMap | None, str | None]:
    """The column-mapping controls, pre-filled; returns (the map, or the problem with it)."""
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

    def pick(label: str, field: str, fallback: int, help_text: str) -> str:
        value = getattr(guess, field, None) if guess and guess.kind == kind else None
        index = columns.index(value) if value in columns else min(fallback, len(columns) - 1)
        return st.selectbox(
            label, columns, index=index, key=f"{field}_{kind}_{key}", help=help_text
        )

    chosen: dict[str, str | None] = {}
    if kind == "prompt_response":
        a, b = st.columns(2)
        with a:
            chosen["prompt"] = pick("Prompt column", "prompt", 0, "What the user asks.")
        with b:
            chosen["response"] = pick(
                "Response column", "response", 1, "What the model should answer."
            )
    elif kind == "messages":
        chosen["messages"] = pick(
            "Messages column", "messages", 0, 'A list of {"role", "content"} messages.'
        )
    else:
        chosen["text"] = pick("Text column", "text", 0, "Plain text; the loss covers all of it.")
    id_options = ["(row number)", *columns]
    guess_id = guess.id if guess and guess.id in columns else None
    id_choice = st.selectbox(
        "Id column",
        id_options,
        index=id_options.index(guess_id) if guess_id else 0,
        key=f"id_{key}",
        help="Unique ids travel with every exported subset; without one, rows are numbered from 0.",
    )
    chosen["id"] = None if id_choice == "(row number)" else id_choice
    try:
        return ColumnMap(**chosen), None
    except PrismError as error:
        return None, for_page(str(error))


def demo_choices() -> dict[str, str]:
    return {name: source.description for name, source in DEMO_SOURCES.items()}
