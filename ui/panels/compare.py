"""Subsets side by side: the comparison table (``core.workspace.compare.compare_subsets``, cached
per version of the workspace's files), with the random size each subset is as diverse as."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.workspace.compare import (
    compare_subsets,
    random_equivalents,
)
from core.workspace.store import Workspace
from ui import cache, explain
from ui.panels import curves
from ui.panels.curves import random_words
from ui.panels.textspace import cached_text_scores, text_scorer
from ui.widgets import empty_state

TEXT_COLUMNS = ("embedding_vendi", "ngram_vendi", "distinct_2")


@st.cache_data(max_entries=16, show_spinner=False)
def _comparison(
    path: str, versions: tuple[float, ...], names: tuple[str, ...], text: bool
) -> pd.DataFrame:
    scorer = cached_text_scores if text and text_scorer() is not None else None
    return compare_subsets(Workspace.open(path), list(names), text_scores=scorer)


def comparison(ws: Workspace, names: list[str], *, text: bool = False) -> pd.DataFrame:
    """``core.workspace.compare.compare_subsets`` of the workspace (cached per version of its files)."""
    versions = (
        cache.features_version(ws)[1],
        cache.samples_version(ws)[1],
        cache.subsets_version(ws),
        cache.manifest_version(ws),
    )
    return _comparison(str(ws.path), versions, tuple(names), text)


def random_curve(ws: Workspace, summary: pd.DataFrame | None) -> pd.DataFrame | None:
    """The random-subset curve to read equivalents from: the budget curves' when computed, else
    the map's baseline (``core.measures.curves.random_baseline``); both have the one curve schema."""
    if summary is not None and (summary["method"] == "random").any():
        return summary
    return cache.curve(ws)


COLUMNS = {
    "subset": st.column_config.TextColumn("Subset", pinned=True),
    "size": st.column_config.NumberColumn("Samples", format="localized"),
    "g_vendi": st.column_config.NumberColumn(
        "G-Vendi",
        format="%.1f",
        help="Vendi score (q = 1) of the gradient features: the effective number of distinct "
        "directions the subset pushes the model in.",
    ),
    "random_at": st.column_config.TextColumn(
        "≈ random at",
        help="The size at which random subsets reach this G-Vendi; “above every random size” when "
        "no random subset does, the whole set included.",
    ),
    "efficiency": st.column_config.TextColumn(
        "Rows saved",
        help="“≈ random at” over the subset's size: how many random rows each of its rows is worth "
        "(“>” when it is above every random size: at least that many).",
    ),
    "vendi_q0.5": st.column_config.NumberColumn(
        "Vendi q=0.5", format="%.1f", help="Weighs rare directions more."
    ),
    "vendi_q2": st.column_config.NumberColumn(
        "Vendi q=2", format="%.1f", help="Weighs common directions more."
    ),
    "vendi_qinf": st.column_config.NumberColumn(
        "Vendi q=∞", format="%.2f", help="One over the share of the commonest direction."
    ),
    "coverage": st.column_config.NumberColumn(
        "Coverage",
        format="%.0f%%",
        help="Share of the whole set's gradient clusters holding at least one of its samples.",
    ),
    "coverage_weighted": st.column_config.NumberColumn(
        "Coverage (weighted)",
        format="%.0f%%",
        help="Share of all samples that live in the clusters it covers.",
    ),
    "cluster_entropy": st.column_config.NumberColumn(
        "Cluster entropy",
        format="%.2f",
        help="Entropy (nats) of its cluster histogram: higher is spread more evenly.",
    ),
    "mean_loss": st.column_config.NumberColumn(
        "Mean loss", format="%.3f", help="Mean proxy-model loss of its samples."
    ),
    "embedding_vendi": st.column_config.NumberColumn(
        "Embedding Vendi", format="%.1f", help="Vendi score of sentence embeddings (text space)."
    ),
    "ngram_vendi": st.column_config.NumberColumn(
        "N-gram Vendi", format="%.1f", help="Vendi score of word n-gram counts (surface text)."
    ),
    "distinct_2": st.column_config.NumberColumn(
        "Distinct-2", format="%.3f", help="Distinct word bigrams over all bigrams."
    ),
    "how": st.column_config.TextColumn("Made by", width="large"),
}


def presented(
    table: pd.DataFrame, curve: pd.DataFrame | None, *, n: int | None = None
) -> pd.DataFrame:
    """The comparison as shown: the random equivalent after G-Vendi, empty text columns dropped;
    ``n`` (default: the largest row, the whole set) is the workspace's size."""
    out = table.copy()
    n = int(n if n is not None else out["size"].max())
    if curve is not None:
        words = [
            random_words(e, int(size), n)
            for e, size in zip(random_equivalents(out, curve, n=n), out["size"], strict=True)
        ]
        out.insert(3, "random_at", [w[0] for w in words])
        out.insert(4, "efficiency", [w[1] for w in words])
    for column in ("coverage", "coverage_weighted"):  # shown as percentages
        out[column] = pd.to_numeric(out[column], errors="coerce") * 100
    for column in TEXT_COLUMNS:
        if column in out and out[column].isna().all():
            out = out.drop(columns=column)
    return out


def comparison_table(table: pd.DataFrame) -> None:
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="compare_table",
        height=min(38 + 35 * len(table), 420),
        column_config={k: v for k, v in COLUMNS.items() if k in table.columns},
    )


def compare_page(ws: Workspace) -> None:
    """Saved subsets side by side with the whole set, then G-Vendi against budget per selector."""
    names = list(ws.subsets())
    st.subheader("Subsets side by side", anchor=False)
    pick, toggle = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick.multiselect(
        "Subsets",
        names,
        default=names,
        placeholder="Choose subsets (the whole set is always shown)",
    )
    scorer = text_scorer()
    text = toggle.toggle(
        "Text-space measures",
        value=scorer is not None and ws.has_embeddings,
        disabled=scorer is None,
        help="Adds n-gram Vendi, distinct-2 and (once `prism embed` has run) embedding Vendi: "
        "the surface measures that G-Vendi is compared with. Scoring texts takes a few seconds "
        "per thousand samples.",
    )
    table_area = st.container()

    st.subheader("G-Vendi against budget", anchor=False)
    settings = curves.curve_settings(ws)
    summary = curves.curve_summary(ws, settings)
    with table_area:
        with st.spinner("Scoring the subsets…"):
            table = comparison(ws, chosen, text=text)
        comparison_table(presented(table, random_curve(ws, summary)))
        st.caption(
            "≈ random at: the size at which random subsets of this data reach the same G-Vendi "
            + (
                "(read off the curves below)."
                if summary is not None
                else "(read off the map's random baseline; the curves below refine it)."
            )
        )
        explain.cluster_caution(ws)
        if not names:
            empty_state(
                "No saved subsets yet",
                "Make subsets with a selector, filters or a lasso; they appear here beside the "
                "whole set. The curves below need none.",
                page="subsets",
                label="Make a subset",
            )
    if summary is None:
        curves.curves_status(ws, settings)
    else:
        curves.budget_section(ws, settings, summary, table)
