"""Plain-words explanations of the diversity measures, shown beside the numbers."""

from __future__ import annotations

import streamlit as st

from core.measures.clusters import few_rows_note
from core.workspace.store import Workspace

MEASURES = {
    "G-Vendi": "How many genuinely different lessons the data holds for the model: samples count "
    "as different when training on them would push the model's weights in different directions. "
    "It runs from 1 (every sample teaches the same thing) to the number of samples.",
    "Embedding Vendi": "The same count, but with samples compared by meaning, as a sentence-"
    "embedding model reads them: two paraphrases count once, two topics count twice.",
    "n-gram Vendi": "The same count again, with samples compared only by the words and word pairs "
    "they share: it sees wording, not meaning or what the model learns.",
    "distinct-2": "The share of word pairs in the data that are not repeats: a quick measure of "
    "how varied the wording is (0 = one phrase over and over, 1 = no phrase repeated).",
    "Neighbourhood agreement": "For each sample, the share of its 10 nearest neighbours that are "
    "the same in gradient space and in text space. Low values mark samples that read like their "
    "neighbours but teach the model something else, or read differently but teach the same.",
}


def measures_help(*, expanded: bool = False) -> None:
    """An expander with two or three sentences per measure."""
    with st.expander("What the measures mean", icon=":material/help:", expanded=expanded):
        for name, text in MEASURES.items():
            st.markdown(f"**{name}** — {text}")


def cluster_caution(ws: Workspace) -> None:
    """Beside cluster sizes, sparse clusters or coverage: a warning when, at this workspace's size,
    they are noise (``core.measures.clusters.few_rows_note``); nothing otherwise."""
    clusters = ws.clusters
    note = few_rows_note(ws.n_samples, clusters.sizes) if clusters is not None else None
    if note is not None:
        st.warning(f"Few rows: {note}", icon=":material/warning:")
