"""Data: reopen a workspace, or choose a dataset (demo, upload, server path) and map its columns."""

import hashlib

import streamlit as st

from core.errors import DataError
from core.workspace import list_workspaces
from ui import cache, dataview, state, widgets
from ui import format as fmt

widgets.page_header(
    "Data",
    "Open a workspace you built before, or bring a dataset: Prism reads CSV, TSV, JSON, JSON "
    "Lines and Parquet, with prompt/response pairs, chats or plain text.",
)
with widgets.guard():
    st.subheader("Your workspaces", anchor=False)
    summaries = cache.workspace_summaries(list_workspaces())
    if summaries.empty:
        st.caption("None yet: the first one is made when you compute features below.")
    for _, row in summaries.head(12).iterrows():
        with st.container(border=True):
            name, facts, action = st.columns([2.2, 3, 1], vertical_alignment="center")
            name.markdown(
                f"**{widgets.plain(row['name'])}**  \n{widgets.code(row.get('source', ''))}"
            )
            g = row.get("g_vendi")
            g_text = f" · G-Vendi {fmt.score(float(g))}" if g == g and g is not None else ""
            rows = row.get("rows")
            rows_text = fmt.count(int(rows), "row") if rows == rows and rows is not None else ""
            facts.markdown(
                f"{rows_text} · {row.get('status', '')}{g_text}  \n{str(row.get('updated', ''))[:16].replace('T', ' ')}"
            )
            is_current = row["path"] == state.workspace_path()
            if action.button(
                "Open" if not is_current else "Opened",
                key=f"open_{row['path']}",
                icon=":material/open_in_new:",
                type="primary" if not is_current else "secondary",
                width="stretch",
            ):
                state.set_workspace(row["path"])
                ready = row.get("status") in ("ready", "features only")
                st.switch_page(widgets.PAGES["map" if ready else "features"])

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
