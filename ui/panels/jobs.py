"""Background work, followed live: the feature extraction job (progress, cancel, resume, other
workspaces' jobs), the build of clusters and map, and a page refresh once the cached background
results of a workspace are in.

Each polls from an ``st.fragment(run_every=…)``: the work runs in its own process (or thread), so
a refresh or a closed tab does not stop it.
"""

from __future__ import annotations

import streamlit as st

from core.workspace.jobs import analysis as analyze
from core.workspace.jobs.extraction import start_background
from core.workspace.jobs.record import DONE, FAILED, Job, cancel, read_progress
from core.workspace.manifest import FeatureSection
from core.workspace.store import Workspace, list_workspaces
from ui import cache, state
from ui import format as fmt
from ui.widgets import PAGES, code, empty_state, error_message, plain

GOTO_MAP = "prism_goto_map"  # set when this session started a job: move on to the map when done


# -- feature extraction ---------------------------------------------------------------------------


def _progress_text(progress: Job) -> str:
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
        st.caption(
            "Finished shards are kept: Resume continues from them, and computes again only the "
            "rows that were in progress (at most one shard)."
        )
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
    features = ws.feature_section or FeatureSection()
    settings = features.settings
    if st.session_state.pop(GOTO_MAP, None) == str(ws.path):
        st.switch_page(PAGES["map"])
    with st.container(border=True):
        st.markdown(f"#### Features of **{plain(ws.name)}** are ready")
        st.markdown(
            f"{fmt.count(int(features.n_samples or ws.n_samples), 'sample')} × "
            f"{int(features.dim or 0):,} numbers · model {code(settings.get('model', ''))} · "
            f"scope {code(settings.get('scope', ''))} · seed {settings.get('seed', 0)} · "
            f"{fmt.count(int(features.n_truncated or 0), 'sample')} truncated"
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


# -- clusters and map ------------------------------------------------------------------------------


def build_map(ws: Workspace) -> None:
    """Start (once) and follow the background build of clusters and map."""
    job = analyze.read_status(ws.path)
    if job is None or job.status == DONE:  # "done" is stale when it gets here
        analyze.start(ws.path)
        job = analyze.read_status(ws.path)
    if job is not None and job.status == FAILED:
        empty_state("The map could not be built", plain(job.message))
        if st.button("Try again", icon=":material/refresh:", type="primary"):
            analyze.start(ws.path)
            st.rerun()
        return
    _follow_build(str(ws.path))


@st.fragment(run_every=1.0)
def _follow_build(path: str) -> None:
    ws = Workspace.open(path)
    if not analyze.needs_analysis(ws):
        st.rerun(scope="app")
    job = analyze.read_status(path)
    if job is not None and job.status == FAILED:
        st.rerun(scope="app")
    with st.container(border=True):
        st.markdown("#### Building the map")
        st.markdown(
            f"Grouping {fmt.count(ws.n_samples, 'sample')} into clusters and laying them out in 2-D. "
            "This runs in the background and takes under a minute for a few thousand samples."
        )
        steps = analyze.STEPS
        step = job.step if job is not None else ""
        done = steps.index(step) if step in steps else 0
        message = job.message if job is not None else ""
        st.progress(done / len(steps), text=message or "starting…")


# -- cached background results ---------------------------------------------------------------------


@st.fragment(run_every=1.5)
def refresh_when_ready(path: str) -> None:
    """Rerun the page once the background results of this workspace are in."""
    if cache.background_ready(Workspace.open(path)):
        st.rerun(scope="app")
