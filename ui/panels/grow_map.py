"""The Grow page's map: the workspace's samples (sparse clusters tinted) with every scored
synthesis candidate drawn over them, one marker per verdict, and a lasso or click on the samples
that picks the target cluster.

Candidates sit where joined rows are placed (``core.workspace.synthesis.loop.candidate_coords``);
malformed ones have no features, so no place, and are only counted in the legend.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.workspace.store import Workspace
from core.workspace.synthesis.candidates import UNJOINED
from core.workspace.synthesis.grow import SYNTHETIC, origin_rows
from ui import cache, state
from ui import format as fmt
from ui.charts import MUTED, SPARSE, Colouring, map_figure
from ui.events import event_signature, rows_from_event
from ui.panels.map import GRADIENT, drawn_rows, point_index

# verdict → (legend label, marker symbol, colour, size); drawn in this order (last on top)
VERDICTS: dict[str, tuple[str, str, str, int]] = {
    "unjoined": ("joined, then taken out", "circle-x-open", "#868E96", 10),
    "low quality": ("low quality", "triangle-down-open", "#E8590C", 10),
    "dense": ("landed in a dense cluster", "x-thin-open", "#495057", 9),
    "duplicate": ("duplicate of a sample", "diamond-open", "#862E9C", 10),
    "dropped": ("dropped by hand", "x", "#C92A2A", 10),
    "kept": ("kept, waiting to join", "star-open", "#2F9E44", 14),
    "joined": ("kept and joined", "star", "#2F9E44", 14),
}
MALFORMED = "malformed"


def verdicts(candidates: pd.DataFrame) -> pd.Series:
    """Each candidate's verdict as drawn: joined, kept (waiting), dropped (by hand), unjoined,
    low quality, dense, duplicate or malformed."""
    reason = candidates["reason"].astype(str)
    decision = candidates["decision"].fillna("").astype(str)
    joined = candidates["joined"].astype(bool)
    out = reason.where(reason != "kept", "kept")
    out = out.where(decision != "keep", "kept")
    out = out.where(~((decision == "drop") & (reason != MALFORMED)), "dropped")
    out = out.where(decision != UNJOINED, "unjoined")
    return out.where(~joined, "joined")


def _candidate_hover(candidates: pd.DataFrame, verdict: pd.Series) -> list[str]:
    out = []
    for (_, row), kind in zip(candidates.iterrows(), verdict, strict=True):
        sample = row["text"] if isinstance(row["text"], str) else row["prompt"]
        head = f"<b>{html.escape(str(row['candidate_id']))}</b> · round {int(row['round'])}"
        label = VERDICTS.get(kind, (kind, "", "", 0))[0]
        nearest = int(row["nearest_cluster"])
        out.append(
            f"{head}<br>{html.escape(label)} · nearest cluster {nearest}"
            f"<br>{html.escape(fmt.shorten(sample or '', 80))}"
        )
    return out


def candidate_figure(
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    hover: np.ndarray,
    in_sparse: np.ndarray,
    candidates: pd.DataFrame,
    coords: np.ndarray,
    *,
    title: str,
    height: int = 560,
) -> go.Figure:
    """The map of ``ui.charts.map_figure`` (samples: one WebGL trace, ``customdata`` = row
    number), samples of sparse clusters tinted, and one trace per candidate verdict over it
    (``customdata`` = -1, so a lasso picks samples only)."""
    tint = Colouring(
        "categorical",
        "",
        np.asarray(in_sparse, dtype=np.int64),
        ("other sample", "sample in a sparse cluster"),
    )
    figure = map_figure(x, y, rows, hover, tint, title=title, height=height)
    # Quieter samples than on the Map page, so that the candidates stand out.
    figure.data[0].marker.colorscale = [[0, MUTED], [0.5, MUTED], [0.5, SPARSE], [1, SPARSE]]
    figure.data[0].marker.opacity = 0.5
    figure.data[1].marker.color, figure.data[2].marker.color = MUTED, SPARSE
    verdict = verdicts(candidates) if len(candidates) else pd.Series([], dtype=str)
    hover_c = np.asarray(_candidate_hover(candidates, verdict), dtype=object)
    placed = np.isfinite(coords).all(axis=1) if len(coords) else np.zeros(0, dtype=bool)
    traces: list[dict[str, Any]] = []
    for kind, (label, symbol, colour, size) in VERDICTS.items():
        count = int((verdict == kind).sum())
        mask = (verdict == kind).to_numpy() & placed
        if count:
            traces.append(
                {
                    "type": "scatter",
                    "x": coords[mask, 0],
                    "y": coords[mask, 1],
                    "mode": "markers",
                    "name": f"{label} ({count:,})",
                    "customdata": np.full(int(mask.sum()), -1, dtype=np.int32),
                    "text": hover_c[mask],
                    "hovertemplate": "%{text}<extra></extra>",
                    "marker": {
                        "symbol": symbol,
                        "size": size,
                        "color": colour,
                        "line": {"width": 1.5, "color": colour},
                    },
                }
            )
    malformed = int((verdict == MALFORMED).sum())
    if malformed:
        traces.append(
            {
                "type": "scatter",
                "x": [None],
                "y": [None],
                "mode": "markers",
                "name": f"malformed, not placed ({malformed:,})",
                "marker": {"symbol": "circle-open", "color": "#ADB5BD", "size": 9},
                "hoverinfo": "skip",
            }
        )
    figure.add_traces(traces)
    figure.update_layout(legend_title_text="")
    return figure


def all_candidate_coords(ws: Workspace, candidates: pd.DataFrame) -> np.ndarray:
    """Map coordinates of every candidate, round by round (NaN where not placed)."""
    coords = np.full((len(candidates), 2), np.nan)
    if not len(candidates):
        return coords
    rounds = candidates["round"].to_numpy()
    for round_no in np.unique(rounds):
        placed = cache.candidate_coords(ws, int(round_no))
        if placed is not None:
            coords[rounds == round_no] = placed
    return coords


def picked_cluster(ws: Workspace, frame: pd.DataFrame) -> None:
    """Turn a new lasso or click on the Grow map into the picked target cluster: the cluster
    holding most of the picked samples (stored under ``state.GROW_TARGET``)."""
    event = st.session_state.get(state.GROW_MAP)
    signature = event_signature(event)
    if not signature or signature == st.session_state.get(state.GROW_MAP_EVENT):
        return
    st.session_state[state.GROW_MAP_EVENT] = signature
    drawn = drawn_rows(ws, len(frame))
    points = point_index(ws, GRADIENT) if drawn is not None else None
    rows = rows_from_event(event, len(frame), coords=points, sampled=drawn is not None)
    if rows is None or "cluster" not in frame.columns:
        return
    labels = frame["cluster"].to_numpy()[rows]
    counts = Counter(int(c) for c in labels)
    cluster = max(sorted(counts), key=lambda c: counts[c])
    pick_cluster(ws, cluster, {"method": "map", "rows": len(rows), "clusters": len(counts)})


def pick_cluster(ws: Workspace, cluster: int, how: dict[str, Any]) -> None:
    st.session_state[state.GROW_TARGET] = {
        "workspace": str(ws.path),
        "cluster": int(cluster),
        "how": how,
    }


def grow_map(ws: Workspace, frame: pd.DataFrame, candidates: pd.DataFrame) -> None:
    """The map of samples and candidates; a lasso or click picks the target cluster."""
    drawn = drawn_rows(ws, len(frame))
    shown = np.arange(len(frame)) if drawn is None else drawn
    synthetic = origin_rows(frame, SYNTHETIC)
    if synthetic.size:  # joined rows are drawn as candidates
        shown = shown[~np.isin(shown, synthetic)]
    in_sparse = np.zeros(len(shown), dtype=bool)
    section = ws.clusters
    if section is not None and "cluster" in frame.columns:
        sparse = np.isin(frame["cluster"].to_numpy()[shown], list(section.sparse))
        in_sparse = sparse
    coords = all_candidate_coords(ws, candidates)
    n_cand = len(candidates)
    title = (
        f"{fmt.count(len(frame) - synthetic.size, 'sample')} and "
        f"{fmt.count(n_cand, 'candidate')} in gradient space"
    )
    figure = candidate_figure(
        frame[GRADIENT.x].to_numpy()[shown],
        frame[GRADIENT.y].to_numpy()[shown],
        shown,
        cache.hover_texts(ws)[shown],
        in_sparse,
        candidates,
        coords,
        title=title,
    )
    st.plotly_chart(
        figure,
        key=state.GROW_MAP,
        on_select="rerun",
        selection_mode=("points", "lasso", "box"),
        config={"displaylogo": False, "scrollZoom": True},
        width="stretch",
    )
    st.caption(
        "Orange: samples in sparse clusters (smaller than the median), where new samples are "
        "worth most. Stars are candidates that landed in a sparse cluster; crosses and diamonds "
        "were rejected. Click or lasso samples to aim the next run at their cluster."
    )
