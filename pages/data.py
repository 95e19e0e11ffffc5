"""Data: reopen a workspace, or choose a dataset (demo, upload, server path) and map its columns."""

import hashlib
import math

import pandas as pd
import streamlit as st

from core.errors import DataError, PrismError
from ui import cache, dataview, state, widgets
from ui import format as fmt

PAGE_SIZE = 8  # workspaces per page of the list

widgets.page_header(
    "Data",
    "Open a workspace you built before, or bring a dataset: Prism reads CSV, TSV, JSON, JSON "
    "Lines and Parquet, with prompt/response pairs, chats or plain text.",
)


def workspace_card(row: pd.Series) -> None:
    """One workspace: its name, source and folder, its state, and an Open button."""
    damaged = row["status"] == cache.DAMAGED
    with st.container(border=True):
        name, facts, action = st.columns([2.2, 3, 1], vertical_alignment="center")
        source = "" if damaged else f"{widgets.code(row.get('source', ''))}  \n"
        name.markdown(f"**{widgets.plain(row['name'])}**  \n{source}")
        name.caption(widgets.plain(row["path"]))
        if damaged:
            facts.error(widgets.plain(row["problems"]), icon=":material/report:")
        else:
            g = row.get("g_vendi")
            g_text = f" · G-Vendi {fmt.score(float(g))}" if g == g and g is not None else ""
            rows = row.get("rows")
            rows_text = fmt.count(int(rows), "row") if rows == rows and rows is not None else ""
            updated = str(row.get("updated", ""))[:16].replace("T", " ")
            facts.markdown(f"{rows_text} · {row.get('status', '')}{g_text}  \n{updated}")
        is_current = row["path"] == state.workspace_path()
        if action.button(
            "Opened" if is_current else "Open",
            key=f"open_{row['path']}",
            icon=":material/open_in_new:",
            type="secondary" if is_current or damaged else "primary",
            width="stretch",
            disabled=damaged,
            help="Damaged: see the message beside it for how to rebuild it." if damaged else None,
        ):
            state.set_workspace(row["path"])
            ready = row.get("status") in ("ready", "features only")
            st.switch_page(widgets.PAGES["map" if ready else "features"])


def one_page(summaries: pd.DataFrame) -> pd.DataFrame:
    """The part of a long list shown now, with a filter and a page number; says what it shows."""
    total = len(summaries)
    if total <= PAGE_SIZE:
        return summaries
    find, number = st.columns([3, 1], vertical_alignment="bottom")
    needle = (
        find.text_input(
            "Find a workspace",
            key="ws_find",
            placeholder="part of its name, source or folder",
        )
        .strip()
        .lower()
    )
    if needle:
        source = summaries.get("source", pd.Series("", index=summaries.index))
        haystack = (
            summaries["name"].astype(str)
            + " "
            + source.fillna("").astype(str)
            + " "
            + summaries["path"].astype(str)
        ).str.lower()
        summaries = summaries[haystack.str.contains(needle, regex=False)]
    pages = max(1, math.ceil(len(summaries) / PAGE_SIZE))
    page = int(number.number_input("Page", 1, pages, key="ws_page")) if pages > 1 else 1
    page = min(page, pages)
    first = (page - 1) * PAGE_SIZE
    shown = summaries.iloc[first : first + PAGE_SIZE]
    matching = f" matching “{widgets.plain(needle)}”" if needle else ""
    if shown.empty:
        st.caption(f"No workspace{matching} among {total:,}.")
    else:
        st.caption(
            f"Showing {first + 1:,}–{first + len(shown):,} of {len(summaries):,}{matching}"
            + (f" ({total:,} in all)." if needle else ".")
        )
    return shown


def open_folder() -> None:
    """A workspace folder typed by the user (built with `prism features … --workspace FOLDER`)."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        text = st.text_input(
            "Open a workspace folder",
            key="open_folder",
            placeholder="ws/my_dataset",
            help="A folder written by `prism features DATA --workspace FOLDER`; a relative path "
            "starts from the folder the app was started in.",
        )
        clicked = st.button("Open folder", key="open_folder_button", icon=":material/folder_open:")
    if not (clicked and text.strip()):
        return
    try:
        path = state.open_workspace_folder(text)
    except PrismError as error:
        widgets.error_message(str(error))
        return
    state.set_workspace(path)
    summary = cache.workspace_summaries([path]).iloc[0]
    ready = summary.get("status") in ("ready", "features only")
    st.switch_page(widgets.PAGES["map" if ready else "features"])


with widgets.guard():
    st.subheader("Your workspaces", anchor=False)
    summaries = cache.workspace_summaries(state.known_workspaces())
    if summaries.empty:
        st.caption("None yet: the first one is made when you compute features below.")
    else:
        st.caption(
            f"{fmt.count(len(summaries), 'workspace')}: those under $PRISM_HOME/workspaces and "
            f"./{state.PROJECT_FOLDER}, and the folders opened here before."
        )
    for _, row in one_page(summaries).iterrows():
        workspace_card(row)
    open_folder()

    st.subheader("Add a dataset", anchor=False)
    origin = (
        st.segmented_control(
            "Where is it?",
            ["Upload a file", "Path on the server", "Demo data"],
            default="Upload a file",
            key="data_origin",
        )
        or "Upload a file"
    )
    source = label = None
    if origin == "Upload a file":
        limit = dataview.upload_limit_mb()
        uploaded = st.file_uploader(
            "Dataset file",
            type=dataview.UPLOAD_TYPES,
            help=f"CSV, TSV, JSON, JSON Lines or Parquet, up to {limit:,} MB.",
        )
        st.caption(
            f"Up to **{limit:,} MB** per file. Larger datasets: give their path on the server instead."
        )
        if uploaded is not None:
            source, label = str(dataview.save_upload(uploaded)), uploaded.name
    elif origin == "Path on the server":
        allowed, note = dataview.server_paths_allowed()
        text = st.text_input(
            "Path on the server",
            key="server_path",
            placeholder="/data/my_dataset.jsonl",
            disabled=not allowed,
            help="A file, or a folder written by datasets' save_to_disk.",
        )
        st.caption(note)
        if allowed and text.strip():
            try:
                source, label = str(dataview.check_server_path(text)), text.strip()
            except DataError as error:
                widgets.error_message(str(error))
    else:
        choices = dataview.demo_choices()
        source = st.radio(
            "Demo dataset", list(choices), format_func=lambda s: f"{s} — {choices[s]}"
        )
        label = source
        st.caption(
            "Its features are pre-computed with the embedded model: open it from the list above."
        )

    if source is None:
        st.stop()
    try:
        frame = dataview.read(source)
    except DataError as error:
        widgets.error_message(dataview.for_page(str(error), source=source, label=label))
        st.stop()

    st.subheader("Columns", anchor=False)
    guess, note = dataview.detected(frame, label)
    if guess is None:
        st.info(f"Pick the columns below: {note}", icon=":material/help:")
    key = hashlib.sha1(source.encode()).hexdigest()[:10]
    columns, problem = dataview.mapping_form(frame, guess, key)
    if problem:
        widgets.error_message(problem)
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
        dataset = dataview.load(source, columns)
    except DataError as error:
        widgets.error_message(dataview.for_page(str(error), source=source, label=label))
        st.stop()

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
    preview = dataset.samples[shown + [c for c in dataset.samples.columns if c not in shown]]
    st.dataframe(preview.head(200), hide_index=True, width="stretch", height=300)
    st.caption(f"The first {min(200, dataset.n_samples):,} rows as the model will see them.")
    if st.button("Continue: compute features", type="primary", icon=":material/arrow_forward:"):
        st.session_state[state.PENDING] = {
            "source": source,
            "columns": columns.to_dict(),
            "label": label,
            "n_samples": dataset.n_samples,
        }
        st.switch_page(widgets.PAGES["features"])
