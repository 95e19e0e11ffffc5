"""The side panel of the map: the whole set before anything is selected, then the selection's
size, G-Vendi against the whole set and random subsets of its size, cluster coverage, text-space
measures, a form to save it, and its records.

Every number is over all selected samples, drawn on the map or not; G-Vendi of a selection too
large to score exactly in about half a second is an estimate, shown with its bound and said so."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.measures.selection import LEVEL, VERSUS_RANDOM_RULE, SelectionStats, selection_stats
from core.workspace.store import Workspace
from ui import cache, explain, state
from ui import format as fmt
from ui.panels.records import records
from ui.panels.subsets import save_rows_form
from ui.panels.textspace import selection_text_scores


def whole_set_panel(ws: Workspace, n: int) -> None:
    clusters = ws.clusters
    st.markdown("#### Selection")
    st.info(
        "Draw a **lasso** or a **box** on the map, or pick clusters in the table below the map, "
        "to select samples. Their diversity is compared here with the whole set and with random "
        "subsets of the same size.",
        icon=":material/gesture_select:",
    )
    a, b = st.columns(2)
    a.metric("Samples", f"{n:,}")
    b.metric("G-Vendi (whole set)", fmt.score(ws.g_vendi))
    if clusters is not None:
        c, d = st.columns(2)
        c.metric("Clusters", f"{clusters.n_clusters:,}")
        d.metric(
            "Sparse clusters",
            f"{clusters.n_sparse or 0:,}",
            help="Smaller than the median cluster size.",
        )
        explain.cluster_caution(ws)


def badge(stats: SelectionStats) -> tuple[str | None, dict[str, Any]]:
    """The live badge under the selection's G-Vendi: (text, st.metric's delta look). Above or
    below random in green or red; level with random (``core.measures.selection.versus_random``)
    neutral, without an arrow, as "≈ random"."""
    verdict = stats.versus_random
    if verdict is None or stats.random_mean is None:
        return None, {}
    if verdict == LEVEL:
        return "≈ random", {"delta_color": "off", "delta_arrow": "off"}
    return f"{stats.g_vendi - stats.random_mean:+,.1f} vs random", {}


def selection_panel(ws: Workspace, frame: pd.DataFrame, rows: np.ndarray) -> None:
    n = len(frame)
    section = ws.clusters
    labels = frame["cluster"].to_numpy() if "cluster" in frame.columns else None
    stats = selection_stats(
        cache.scorer(ws),
        rows,
        whole_g_vendi=float("nan") if ws.g_vendi is None else ws.g_vendi,
        curve=cache.curve(ws),
        labels=labels,
        cluster_sizes=None if section is None else section.sizes,
    )
    how = state.selection_how(ws)
    head, button = st.columns([1.4, 1], vertical_alignment="center")
    head.markdown("#### Selection")
    if button.button("Clear", icon=":material/close:", help="Clear the selection", width="content"):
        state.clear_selection()
        state.reset_table(state.CLUSTER_TABLE)
        st.rerun()
    a, b = st.columns(2)
    a.metric(
        "Selected samples",
        f"{stats.n_selected:,}",
        help=f"Selected by {how.get('method', 'hand')}.",
    )
    a.caption(f"{fmt.percent(stats.n_selected / n, digits=1)} of {fmt.count(n, 'sample')}")
    delta, delta_look = badge(stats)
    meaning = (
        "Effective number of distinct gradient directions among the selected samples. Against "
        f"random: {VERSUS_RANDOM_RULE}."
    )
    if stats.estimated:
        b.metric(
            "G-Vendi of the selection (estimate)",
            f"{fmt.score(stats.g_vendi)} ± {stats.g_vendi_bound:,.1f}",
            delta=delta,
            **delta_look,
            help=f"{meaning} Estimated from {stats.g_vendi_rows:,} seeded rows of the "
            f"{stats.n_selected:,} selected (scoring them all would take more than a second): "
            "the sample's score, corrected for its size by comparing its two halves; the exact "
            "value lies within the ± bound.",
        )
    else:
        b.metric(
            "G-Vendi of the selection",
            fmt.score(stats.g_vendi),
            delta=delta,
            **delta_look,
            help=meaning,
        )
    c, d = st.columns(2)
    c.metric("Whole set", fmt.score(stats.whole_g_vendi), help="G-Vendi of every sample.")
    if stats.random_mean is None:
        d.metric("Random, same size", "…", help="The random-subset baseline is being computed.")
    else:
        d.metric(
            "Random, same size",
            fmt.score(stats.random_mean),
            help=f"Mean G-Vendi of random subsets of {stats.n_selected:,} samples "
            f"(± {stats.random_sd:,.1f} standard deviation).",
        )
    if stats.coverage is not None:
        cov = stats.coverage
        st.markdown(
            f"**Cluster coverage** {cov.n_covered:,} of {cov.n_clusters:,} clusters "
            f"({fmt.percent(cov.fraction)}) · {fmt.percent(cov.weighted)} of samples live in the "
            f"covered clusters · entropy {cov.entropy:.2f} nats"
        )
        st.progress(min(max(cov.fraction, 0.0), 1.0))
        explain.cluster_caution(ws)
    st.caption(
        f"G-Vendi estimated from {stats.g_vendi_rows:,} seeded rows of the selection, exact "
        f"within ± {stats.g_vendi_bound:,.1f}; the count and coverage are exact, over every row."
        if stats.estimated
        else "Exact, over every row of the selection (drawn on the map or not)."
    )
    if ws.has_embeddings:
        selection_text_scores(ws, rows)
    save_rows_form(ws, rows, how, key="save_subset")
    records(ws, frame, rows, in_dialog=True)
