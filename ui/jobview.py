"""The features page's parts: the settings form and the live view of a background job."""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from core.errors import PrismError
from core.features.extract import FeatureConfig
from core.features.proxy import DEFAULT_MODEL, prism_home
from core.workspace.estimate import estimate_run
from core.workspace.jobs import Progress, cancel, prepare_workspace, read_progress, start_background
from core.workspace.store import Workspace, default_workspace_path, list_workspaces
from ui import dataview, state
from ui import format as fmt
from ui.widgets import PAGES, code, error_message, plain

GOTO_MAP = "prism_goto_map"  # set when this session started a job: move on to the map when done
ESTIMATE = "prism_run_estimate"  # (source, sentence) of the last "Estimate the run time"
DIMS = [256, 512, 1024, 2048, 4096]


def settings_form(pending: dict[str, Any]) -> None:
    """Every feature setting, then Start: prepares the workspace and starts the job."""
    with st.form("feature_settings", border=True):
        st.markdown("##### Proxy model")
        model_kind = st.radio(
            "Proxy model",
            ["embedded", "other"],
            format_func={
                "embedded": "SmolLM2-135M-Instruct, shipped with Prism (the default)",
                "other": "A Hugging Face model name or a local folder",
            }.get,
            label_visibility="collapsed",
        )
        model_name = st.text_input(
            "Model name or path",
            placeholder="Qwen/Qwen2.5-0.5B-Instruct  or  /models/my-lm",
            help="Any causal language model. The published reference uses Qwen2.5-0.5B-Instruct. "
            "Without a network it must already be on this machine.",
        )
        st.markdown("##### Gradient sketch")
        a, b, c = st.columns(3)
        scope_kind = a.selectbox(
            "Parameters",
            ["all", "last"],
            format_func={
                "all": "All Linear weights (incl. output head)",
                "last": "Last K blocks only",
            }.get,
            help="Which weights the gradient is taken with respect to. All is the published choice.",
        )
        last_k = b.number_input(
            "K (blocks)", min_value=1, max_value=200, value=2, help="Used with “Last K blocks”."
        )
        dim = c.selectbox(
            "Dimension d",
            DIMS,
            index=DIMS.index(1024),
            help="Numbers kept per sample. 1,024 is the default.",
        )
        d, e, f = st.columns(3)
        seed = d.number_input(
            "Seed",
            min_value=0,
            value=0,
            step=1,
            help="The random sketch; the same seed gives the same features on any machine.",
        )
        batch = e.number_input(
            "Batch size",
            min_value=0,
            max_value=256,
            value=0,
            help="Samples per pass; does not change the features. 0 picks for the device: 8 on "
            "a CPU, 128 on a GPU (long samples go in fewer at a time).",
        )
        max_length = f.number_input(
            "Max length (tokens)",
            min_value=0,
            value=0,
            step=64,
            help="0 keeps every token; otherwise long samples are cut (and counted).",
        )
        g, h = st.columns([1, 2])
        dtype = g.selectbox(
            "Precision", ["float32", "bfloat16"], help="bfloat16 halves memory on a GPU."
        )
        name = h.text_input(
            "Workspace name",
            value=pending.get("workspace_name", ""),
            placeholder="default: the file name and a fingerprint",
            help="A folder under $PRISM_HOME/workspaces.",
        )
        n_rows = int(pending.get("n_samples") or 0)
        sample = st.number_input(
            "Random sample of rows (0 = every row)",
            min_value=0,
            max_value=n_rows or None,
            value=0,
            step=100,
            help="A seeded random sample of the rows (seed 0), kept in their original order: "
            "unlike the first N rows, it is not biased by how the file is sorted.",
        )
        rebuild = st.checkbox(
            "Replace the features if this workspace was built with other settings (subsets are kept)"
        )
        left, right = st.columns([1, 4], vertical_alignment="center")
        start = left.form_submit_button("Start", type="primary", icon=":material/play_arrow:")
        probe = right.form_submit_button("Estimate the run time", icon=":material/timer:")
    said = st.session_state.get(ESTIMATE)
    if said and said[0] == pending.get("source"):
        st.info(f"Estimated: {said[1]}", icon=":material/timer:")
    if not (start or probe):
        return
    model = DEFAULT_MODEL if model_kind == "embedded" else model_name.strip()
    if model_kind == "other" and not model:
        error_message("Type a model name or a local folder, or choose the embedded model.")
        return
    try:
        config = FeatureConfig(
            model=model,
            scope="all" if scope_kind == "all" else f"last:{int(last_k)}",
            dim=int(dim),
            seed=int(seed),
            batch_size=int(batch) or None,
            max_length=int(max_length) or None,
            dtype=dtype,
        )
        columns = dataview.ColumnMap.from_dict(pending["columns"])
        dataset = dataview.load(pending["source"], columns, sample=int(sample) or None)
        if probe:
            with st.spinner("Timing a few rows with the proxy model…", show_time=True):
                estimate = estimate_run(dataset, config)
            st.session_state[ESTIMATE] = (pending.get("source"), estimate.sentence())
            st.rerun()
        path = workspace_path(name, pending["source"], dataset.fingerprint)
        workspace = prepare_workspace(path, dataset, config, force=rebuild)
    except PrismError as error:  # shown under the form, in the form's words
        error_message(
            str(error)
            .replace("pass --force", "tick “Replace the features”")
            .replace("Choose another --workspace", "Choose another workspace name")
        )
        return
    st.session_state.pop(ESTIMATE, None)
    if workspace.notes:
        state.flash(" ".join(workspace.notes), icon="⚠️")
    if not workspace.has_features:
        start_background(workspace.path, batch_size=int(batch) or None)
        st.session_state[GOTO_MAP] = str(workspace.path)
    st.session_state.pop(state.PENDING, None)
    state.set_workspace(workspace.path)
    st.rerun()


def workspace_path(name: str, source: str, fingerprint: str):
    if not name.strip():
        return default_workspace_path(source, fingerprint)
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip(".-")
    if not clean:
        raise PrismError("A workspace name needs letters or digits (it becomes a folder name).")
    return prism_home() / "workspaces" / clean


def _progress_text(progress: Progress) -> str:
    message = plain(progress.message or progress.status)
    return f"{progress.done:,} of {fmt.count(progress.total, 'sample')} · {message}"


def job_view(ws: Workspace) -> None:
    """Where the job of ``ws`` stands, live while it runs."""
    progress = read_progress(ws.path)
    if progress is None:
        st.info(
            "This workspace is prepared but its job has not started.", icon=":material/schedule:"
        )
        if st.button("Start", type="primary", icon=":material/play_arrow:"):
            start_background(ws.path)
            st.session_state[GOTO_MAP] = str(ws.path)
            st.rerun()
        return
    if progress.status == "running":
        _running(str(ws.path))
        return
    word = "stopped" if progress.status == "cancelled" else "stopped with an error"
    with st.container(border=True):
        st.markdown(f"#### Feature extraction {word}")
        st.progress(progress.fraction, text=_progress_text(progress))
        if progress.status == "failed":
            error_message(progress.message or "The job ended without finishing.")
        st.caption("Finished shards are kept: resuming continues from the last one.")
        if st.button("Resume", type="primary", icon=":material/play_arrow:"):
            start_background(ws.path)
            st.session_state[GOTO_MAP] = str(ws.path)
            st.rerun()


@st.fragment(run_every=1.0)
def _running(path: str) -> None:
    progress = read_progress(path)
    if progress is None or progress.status != "running":
        st.rerun(scope="app")
    with st.container(border=True):
        head, stop = st.columns([4, 1], vertical_alignment="center")
        head.markdown("#### Computing gradient features")
        if stop.button("Cancel", icon=":material/stop:", width="stretch"):
            cancel(path)
            st.rerun(scope="app")
        st.progress(progress.fraction, text=_progress_text(progress))
        a, b, c = st.columns(3)
        a.metric("Done", f"{progress.done:,} / {progress.total:,}")
        b.metric("Speed", fmt.rate(progress.samples_per_s))
        c.metric("Time left", fmt.duration(progress.eta_s))
        st.caption(
            "The job runs in its own process: you can close this tab or refresh the page; it "
            "keeps going and this page picks it up again."
        )


def finished(ws: Workspace) -> None:
    features = ws.manifest.get("features", {})
    settings = features.get("settings", {})
    if st.session_state.pop(GOTO_MAP, None) == str(ws.path):
        st.switch_page(PAGES["map"])
    with st.container(border=True):
        st.markdown(f"#### Features of **{plain(ws.name)}** are ready")
        st.markdown(
            f"{fmt.count(int(features.get('n_samples', ws.n_samples)), 'sample')} × "
            f"{int(features.get('dim', 0)):,} numbers · model {code(settings.get('model', ''))} · "
            f"scope {code(settings.get('scope', ''))} · seed {settings.get('seed', 0)} · "
            f"{fmt.count(int(features.get('n_truncated', 0)), 'sample')} truncated"
        )
        st.page_link(PAGES["map"], label="Open the map", icon=":material/scatter_plot:")


def other_jobs(current: Workspace | None) -> None:
    """Feature jobs running in other workspaces, one click away."""
    running = []
    for path in list_workspaces():
        if current is not None and path == current.path:
            continue
        progress = read_progress(path)
        if progress is not None and progress.status == "running":
            running.append((path, progress))
    if not running:
        return
    st.markdown("##### Also running")
    for path, progress in running:
        text, action = st.columns([4, 1], vertical_alignment="center")
        text.markdown(f"**{plain(path.name)}** · {_progress_text(progress)}")
        if action.button("Follow", key=f"follow_{path}", width="stretch"):
            state.set_workspace(path)
            st.rerun()
