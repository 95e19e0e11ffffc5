"""The Data page's dataset part: where a dataset comes from (upload, server path, demo), its
column mapping, and the rows as the model will read them.

An engine error names the parameter it is about; it is shown under that control (``ui.errors``).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pandas as pd
import streamlit as st

from core.data.columns import ColumnMap, detect_columns
from core.data.dataset import Dataset, load_dataset
from core.data.read import DEMO_SOURCES, read_head
from core.errors import DataError, PrismError
from ui import format as fmt
from ui import paths, state
from ui.errors import Slots
from ui.widgets import PAGES, plain

KINDS = {
    "prompt_response": "Prompt and response",
    "messages": "Chat messages",
    "text": "Plain text",
}


def _mtime(source: str) -> float:
    if source.startswith("demo:"):
        return 0.0
    try:
        return os.stat(source).st_mtime_ns
    except OSError:
        return -1.0


@st.cache_data(max_entries=8, show_spinner="Reading the first rows…")
def _read(source: str, mtime: float, encoding: str | None) -> pd.DataFrame:
    return read_head(source, encoding=encoding)


def read(source: str, encoding: str | None = None) -> pd.DataFrame:
    """The source's first rows, to detect and choose its columns (the dataset is read by `load`)."""
    return _read(source, _mtime(source), encoding)


@st.cache_resource(max_entries=8, show_spinner="Checking every row…")
def _load(
    source: str,
    mtime: float,
    columns: tuple[tuple[str, Any], ...],
    sample: int | None = None,
    encoding: str | None = None,
) -> Dataset:
    return load_dataset(
        source,
        columns=ColumnMap(**dict(columns)),
        sample=sample,
        sample_seed=0,
        encoding=encoding,
    )


def load(
    source: str, columns: ColumnMap, *, sample: int | None = None, encoding: str | None = None
) -> Dataset:
    """The dataset (cached), or a seeded random ``sample`` of its rows (seed 0)."""
    return _load(source, _mtime(source), tuple(columns.to_dict().items()), sample, encoding)


def detected(frame: pd.DataFrame, source: str) -> tuple[ColumnMap | None, str]:
    """The engine's guess of the columns, or (None, why it could not guess)."""
    try:
        return detect_columns(frame, source=source), ""
    except DataError as error:
        return None, str(error)


def mapping_form(
    frame: pd.DataFrame, guess: ColumnMap | None, key: str, slots: Slots
) -> ColumnMap | None:
    """The column-mapping controls; returns the map, or None until every column is chosen.

    Only columns the engine detected are pre-filled; the others start empty (a column picked by
    position looks valid and is not). A map the engine refuses raises its PrismError.
    """
    columns = [str(c) for c in frame.columns]
    kind_default = guess.kind if guess else "prompt_response"
    kind = (
        st.segmented_control(
            "The samples are",
            list(KINDS),
            default=kind_default,
            format_func=lambda k: KINDS[k],
            key=f"kind_{key}",
            help="Prompt/response pairs: the loss is taken on the response only. Chats: on the last "
            "assistant turn. Plain text: on every token.",
        )
        or kind_default
    )
    slots.under("kind")

    def pick(label: str, field: str, help_text: str) -> str | None:
        value = getattr(guess, field, None) if guess and guess.kind == kind else None
        picked = st.selectbox(
            label,
            columns,
            index=columns.index(value) if value in columns else None,
            placeholder="choose a column",
            key=f"{field}_{kind}_{key}",
            help=help_text,
        )
        slots.under(field)
        return picked

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
    slots.under("id")
    if any(value is None for value in chosen.values()):
        return None
    chosen["id"] = None if id_choice == "(row number)" else id_choice
    return ColumnMap(**chosen)


def demo_choices() -> dict[str, str]:
    return {name: source.description for name, source in DEMO_SOURCES.items()}


def as_uploaded(error: PrismError, source: str, label: str | None) -> PrismError:
    """The error naming an uploaded file as the user knows it (it is kept under a hashed name)."""
    if not label or source == label:
        return error
    return PrismError(str(error).replace(source, label), param=error.param)


def choose_source(slots: Slots) -> tuple[str | None, str | None]:
    """Where the dataset comes from: (source the engine reads, name the user knows), or Nones."""
    origin = (
        st.segmented_control(
            "Where is it?",
            ["Upload a file", "Path on the server", "Demo data"],
            default="Upload a file",
            key="data_origin",
        )
        or "Upload a file"
    )
    if origin == "Upload a file":
        limit = paths.upload_limit_mb()
        uploaded = st.file_uploader(
            "Dataset file",
            type=paths.UPLOAD_TYPES,
            help=f"CSV, TSV, JSON, JSON Lines (also gzip-compressed: .csv.gz, .jsonl.gz) or Parquet, up to {limit:,} MB.",
        )
        slots.under("source")
        st.caption(
            f"Up to **{limit:,} MB** per file. Larger datasets: give their path on the server instead."
        )
        if uploaded is None:
            return None, None
        return str(paths.save_upload(uploaded)), uploaded.name
    if origin == "Path on the server":
        allowed, note = paths.server_paths_allowed()
        text = st.text_input(
            "Path on the server",
            key="server_path",
            placeholder="/data/my_dataset.jsonl",
            disabled=not allowed,
            help="A file, or a folder written by datasets' save_to_disk.",
        )
        slots.under("source")
        try:
            path = paths.check_server_path(text) if allowed and text.strip() else None
        except DataError as error:
            slots.show(error)  # a refusal names the open folders itself: no caption repeats it
            return None, None
        st.caption(plain(note))
        return (str(path), text.strip()) if path is not None else (None, None)
    choices = demo_choices()
    source = st.radio("Demo dataset", list(choices), format_func=lambda s: f"{s} — {choices[s]}")
    slots.under("source")
    st.caption(
        "Its features are pre-computed with the embedded model: open it from the list above."
    )
    return source, source


def add_dataset() -> None:
    """Choose a dataset, map its columns, see its rows; Continue takes them to the Features page."""
    slots = Slots()
    source, label = choose_source(slots)
    if source is None:
        st.stop()
    encoding = (
        st.text_input(
            "Text encoding",
            value="utf-8",
            key="data_encoding",
            help="Of a CSV, TSV, JSON or JSON Lines file, e.g. cp1252, latin-1, utf-16. A file "
            "that is not UTF-8 is reported with the encoding it looks like.",
        ).strip()
        or None
    )
    slots.under("encoding")
    try:
        frame = read(source, encoding)
    except DataError as error:
        slots.show(as_uploaded(error, source, label))
        st.stop()

    st.subheader("Columns", anchor=False)
    guess, note = detected(frame, label or source)
    if guess is None:
        st.info(f"Pick the columns below: {note}", icon=":material/help:")
    key = hashlib.sha1(source.encode()).hexdigest()[:10]
    try:
        columns = mapping_form(frame, guess, key, slots)
    except PrismError as error:
        slots.show(error)
        st.stop()
    if columns is None:
        st.button(
            "Continue: compute features",
            type="primary",
            icon=":material/arrow_forward:",
            disabled=True,
            help="Choose the columns above first.",
        )
        st.caption("Choose the columns above to see the rows as the model will read them.")
        st.stop()
    try:
        dataset = load(source, columns, encoding=encoding)
    except DataError as error:
        slots.show(as_uploaded(error, source, label))
        st.stop()
    preview(dataset, columns)
    if st.button("Continue: compute features", type="primary", icon=":material/arrow_forward:"):
        st.session_state[state.PENDING] = {
            "source": source,
            "columns": columns.to_dict(),
            "label": label,
            "n_samples": dataset.n_samples,
            "encoding": encoding,
        }
        st.switch_page(PAGES["features"])


def preview(dataset: Dataset, columns: ColumnMap) -> None:
    """How many rows are usable, and the first ones as the model will see them."""
    skipped = (
        f" · {fmt.count(dataset.n_skipped, 'row')} skipped (empty in the mapped columns)"
        if dataset.n_skipped
        else ""
    )
    st.success(
        f"**{fmt.count(dataset.n_samples, 'usable row')}** of {dataset.n_total:,} in the file{skipped}.",
        icon=":material/check_circle:",
    )
    shown = ["id", *columns.content_columns]
    rows = dataset.samples[shown + [c for c in dataset.samples.columns if c not in shown]]
    st.dataframe(rows.head(200), hide_index=True, width="stretch", height=300)
    st.caption(f"The first {min(200, dataset.n_samples):,} rows as the model will see them.")
