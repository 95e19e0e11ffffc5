"""Text space beside gradient space: the text-space measures (embedding Vendi, n-gram Vendi,
distinct-2) of the whole set and of a selection, how far the two spaces' neighbourhoods agree,
and, where a workspace has no text space yet, the button that computes it in the background
(``core.workspace.jobs.embedding``), followed live with a Cancel."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.workspace.analyses import TextScores, text_scores
from core.workspace.jobs import embedding
from core.workspace.jobs.record import CANCELLED, FAILED
from core.workspace.manifest import EmbeddingSection, LexicalSection
from core.workspace.store import EMBEDDINGS, Workspace
from ui import cache, explain
from ui import format as fmt
from ui.widgets import error_message, plain

TEXT_SCORE_LIMIT = 5_000  # selections scored in text space live (n-gram Vendi is exact below 2,048)


def text_scorer() -> Callable[[Workspace, np.ndarray], TextScores] | None:
    """``text_scores(workspace, rows)``: the text-space measures of rows of a workspace."""
    return text_scores


@st.cache_data(max_entries=256, show_spinner=False)
def _text_scores(path: str, versions: tuple[float, float], rows: np.ndarray) -> TextScores:
    scorer = text_scorer()
    return scorer(Workspace.open(path), rows) if scorer else TextScores()


def cached_text_scores(workspace: Workspace, rows: np.ndarray) -> TextScores:
    versions = (cache.samples_version(workspace)[1], cache.mtime(workspace.path / EMBEDDINGS))
    return _text_scores(str(workspace.path), versions, np.asarray(rows, dtype=np.int64))


def selection_text_scores(ws: Workspace, rows: np.ndarray) -> None:
    """The text-space measures of the selection, beside its G-Vendi."""
    if len(rows) > TEXT_SCORE_LIMIT:
        st.caption(
            f"Text-space measures are shown for selections of up to {TEXT_SCORE_LIMIT:,} samples "
            "here; save the selection and open Compare for larger ones."
        )
        return
    scores = cached_text_scores(ws, np.asarray(rows, dtype=np.int64))
    distinct = scores.distinct_2
    st.markdown(
        f"**Text space** · embedding Vendi {fmt.score(scores.embedding_vendi)} · "
        f"n-gram Vendi {fmt.score(scores.ngram_vendi)} · distinct-2 "
        f"{'–' if distinct is None else f'{distinct:.3f}'}",
        help=" \n\n".join(
            f"**{name}**: {explain.MEASURES[name]}"
            for name in ("Embedding Vendi", "n-gram Vendi", "distinct-2")
        ),
    )


def text_space_summary(ws: Workspace, frame: pd.DataFrame) -> None:
    """Whole-set numbers of the two spaces and how far their neighbourhoods agree."""
    section = ws.embedding or EmbeddingSection()
    lexical = ws.lexical or LexicalSection()
    near = section.neighbours or {}
    st.markdown("#### Gradient space beside text space")
    a, b, c, d = st.columns(4)
    a.metric(
        "G-Vendi",
        fmt.score(ws.g_vendi),
        help=explain.MEASURES["G-Vendi"],
    )
    b.metric(
        "Embedding Vendi",
        fmt.score(section.embedding_vendi),
        help=explain.MEASURES["Embedding Vendi"],
    )
    c.metric("n-gram Vendi", fmt.score(lexical.ngram_vendi), help=explain.MEASURES["n-gram Vendi"])
    distinct = lexical.distinct_2
    d.metric(
        "distinct-2",
        "–" if distinct is None else f"{distinct:.3f}",
        help=explain.MEASURES["distinct-2"],
    )
    if near:
        ratio = near["mean_agreement"] / near["chance"] if near.get("chance") else float("nan")
        st.caption(
            f"Of each sample's {near['k']} nearest neighbours, on average "
            f"{fmt.percent(near['mean_agreement'], digits=1)} are the same in both spaces "
            f"({ratio:.1f}× the {fmt.percent(near['chance'], digits=2)} of chance); the rank "
            f"correlation of pairwise similarities is ρ = {near['rank_correlation']:.2f}. "
            "Colour by *Neighbourhood agreement* to find samples that read alike but teach the "
            "model different things."
        )


def text_space_job(ws: Workspace, *, key: str, place: DeltaGenerator | None = None) -> None:
    """No text space yet: a button that computes it (``place``: where the button goes; the
    running job's progress and Cancel are drawn here, full width)."""
    job = embedding.read_status(ws.path)
    if job is not None and job.running:
        _running(str(ws.path))
        return
    where = place or st.container()
    if job is not None and job.status == FAILED:
        with where:
            error_message(f"Computing the text space failed: {job.message}")
    clicked = where.button(
        "Compute text space",
        icon=":material/text_fields:",
        key=f"embed_start_{key}",
        help="Embeds every sample with the packaged sentence encoder (all-MiniLM-L6-v2, offline) "
        "and measures the same data as text: embedding Vendi, n-gram Vendi, distinct-2, a text "
        "map beside the gradient map. Runs in the background, as `prism embed` does.",
    )
    if job is not None and job.status == CANCELLED:
        where.caption(plain(job.message))
    if clicked:
        embedding.start(ws.path)
        st.rerun()


@st.fragment(run_every=1.0)
def _running(path: str) -> None:
    job = embedding.read_status(path)
    if job is None or not job.running:
        st.rerun(scope="app")
        return
    with st.container(border=True):
        head, stop = st.columns([4, 1], vertical_alignment="center")
        head.markdown("#### Computing text space")
        if stop.button("Cancel", icon=":material/stop:", width="stretch", key="embed_cancel"):
            embedding.cancel(path)
            st.rerun(scope="app")
        st.progress(
            job.fraction,
            text=f"{job.done:,} of {fmt.count(job.total, 'text')} embedded · {plain(job.message)}",
        )
        st.caption(
            "The job runs in its own process: refresh or close this tab and it keeps going. "
            "The text map and its measures appear here when it finishes."
        )
