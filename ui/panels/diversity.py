"""The Diversity page's parts: G-Vendi and the order-q family of the whole set, and where the
dataset saturates (G-Vendi of random subsets by size, with saved subsets marked)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.workspace.jobs import analysis as analyze
from core.workspace.manifest import FeatureSection, Scores
from core.workspace.store import Workspace
from ui import cache, curve_charts, explain
from ui import format as fmt
from ui.panels import clusters
from ui.panels.jobs import refresh_when_ready
from ui.panels.subsets import positions
from ui.panels.textspace import text_space_job, text_space_summary
from ui.widgets import empty_state

# What each order of the Vendi score weighs, in one line for a curator.
ORDERS = [
    (
        "0.5",
        "Vendi q = 0.5",
        "Leans on rare directions: grows with the long tail of unusual samples.",
    ),
    (
        "1",
        "G-Vendi (q = 1)",
        "The effective number of distinct gradient directions — the headline.",
    ),
    ("2", "Vendi q = 2", "Leans on common directions: how many large modes dominate the data."),
    (
        "inf",
        "Vendi q = ∞",
        "One over the largest share: how much the single commonest direction takes.",
    ),
]
MAX_MARKS = 6  # saved subsets marked on the saturation chart


def vendi_orders(ws: Workspace) -> None:
    """The Vendi score of every order, each with what it weighs."""
    scores = ws.scores or Scores()
    vendi = scores.vendi
    n, dim = ws.n_samples, int(scores.dim or (ws.feature_section or FeatureSection()).dim or 0)
    st.markdown(f"#### {ws.name}")
    st.caption(
        f"{fmt.count(n, 'sample')} · features of dimension {dim:,} · Vendi scores lie between 1 "
        f"(all samples push the model the same way) and {min(n, dim):,} (every sample a new direction)."
    )
    columns = st.columns(4)
    for column, (key, title, meaning) in zip(columns, ORDERS, strict=True):
        with column, st.container(border=True, height=180):
            st.metric(title, fmt.score(vendi.get(key)))
            st.caption(meaning)


def text_space(ws: Workspace) -> None:
    """The same data measured as text, or how to get it."""
    if ws.has_embeddings:
        text_space_summary(ws, cache.samples(ws))
        explain.measures_help()
    else:
        st.caption(
            "Compute the text space to see the same data measured as text (embedding Vendi, "
            "n-gram Vendi, distinct-2) beside G-Vendi (`prism embed` on the command line)."
        )
        text_space_job(ws, key="diversity")


def saturation(ws: Workspace, curve: pd.DataFrame | None) -> None:
    """G-Vendi of random subsets by size, the whole set and a few saved subsets marked."""
    if curve is None:
        st.info(
            "Drawing random subsets of every size… the chart appears in a few seconds.",
            icon=":material/hourglass_top:",
        )
        return
    marks = []
    for name, rows in list(positions(ws).items())[:MAX_MARKS]:
        if rows.size:
            marks.append(
                (f"subset: {name}", int(rows.size), cache.scorer(ws).g_vendi(np.sort(rows)))
            )
    whole = (ws.n_samples, float(ws.g_vendi or 0))
    st.plotly_chart(
        curve_charts.saturation_figure(curve, whole=whole, marks=marks),
        width="stretch",
        config={"displaylogo": False},
    )
    st.caption(
        "Each point is the mean G-Vendi of random subsets of that size; the band spans the "
        "draws. Where the curve flattens, more samples of this kind add little new."
    )


def diversity(ws: Workspace) -> None:
    """The whole Diversity page for a workspace with features."""
    vendi_orders(ws)
    text_space(ws)
    curve = cache.curve(ws)
    has_clusters = ws.clusters is not None and "cluster" in cache.samples(ws).columns
    table, pending = cache.cluster_table(ws, with_vendi=True) if has_clusters else (None, False)
    if curve is None or pending:
        refresh_when_ready(str(ws.path))  # fills the page in when the results are in
    left, right = st.columns(2, gap="large")
    with left:
        saturation(ws, curve)
    with right:
        if table is not None:
            clusters.cluster_sizes(ws, table)
        elif analyze.needs_analysis(ws):
            empty_state(
                "No clusters yet",
                "Clusters are built together with the map. Open the **Map** page to build them.",
                page="map",
                label="Open the map",
            )
    if table is not None:
        clusters.cluster_details(table)
