"""Plotly figures of the app: the map and cluster sizes, and the style every figure shares
(colours, fonts, layout, log size axes; ``ui.curve_charts`` draws the G-Vendi curves).

Figures are built from plain dicts without plotly's per-property validation (a 50,000-point map
builds in milliseconds). Every text that comes from the data is HTML-escaped before it reaches
a figure, since Plotly renders a little HTML in labels.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PRIMARY = "#5B4BDB"
MUTED = "#9AA0B4"
SPARSE = "#E8590C"
GRID = "#ECEEF4"
FONT = dict(
    family="Inter, system-ui, -apple-system, Segoe UI, sans-serif", color="#1F2330", size=13
)
# 20 distinct colours that read on white (Tableau-like, darkened where too pale).
PALETTE = [
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#59A14F",
    "#B07AA1",
    "#EDC948",
    "#76B7B2",
    "#FF9DA7",
    "#9C755F",
    "#5B4BDB",
    "#2F9E44",
    "#D6336C",
    "#1C7ED6",
    "#F08C00",
    "#7048E8",
    "#0CA678",
    "#C92A2A",
    "#5C940D",
    "#862E9C",
    "#495057",
]
MAX_LEGEND = 12


@dataclass(frozen=True)
class Colouring:
    """How to colour the map: kind is "none", "categorical" or "numeric"."""

    kind: str
    label: str = ""
    values: np.ndarray | None = None  # codes (categorical) or numbers (numeric), one per point
    categories: tuple[str, ...] = ()  # names of the codes, for a legend


def _discrete_scale(n: int) -> list[list[Any]]:
    scale: list[list[Any]] = []
    for i in range(n):
        colour = PALETTE[i % len(PALETTE)]
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return scale


def base_layout(title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 16}},
        "font": FONT,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "#FFFFFF",
        "margin": {"l": 60, "r": 20, "t": 56, "b": 56},
        "hoverlabel": {
            "bgcolor": "#FFFFFF",
            "bordercolor": "#CED4E0",
            "font": {"size": 12},
            "align": "left",
        },
    }
    layout.update(extra)
    return layout


G_VENDI_AXIS = {"title": {"text": "G-Vendi"}, "gridcolor": GRID, "rangemode": "tozero"}


def log_size_axis(title: str, ticks: list[int]) -> dict[str, Any]:
    """A log x axis of subset sizes, ticks written as plain counts."""
    return {
        "title": {"text": title},
        "type": "log",
        "gridcolor": GRID,
        "tickvals": ticks,
        "ticktext": [f"{t:,}" for t in ticks],
    }


def marker_size(n: int) -> float:
    if n <= 2_000:
        return 7
    if n <= 20_000:
        return 5
    return 3.5


def map_figure(
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    hover: np.ndarray,
    colouring: Colouring,
    *,
    selected: np.ndarray | None = None,
    title: str = "Gradient-space map",
    height: int = 600,
    revision: int = 0,
) -> go.Figure:
    """One WebGL scatter; ``customdata`` is each point's global row number.

    ``selected`` holds positions (into x/y) of selected points; the others stay visible, dimmed.
    """
    n = len(x)
    marker: dict[str, Any] = {"size": marker_size(n), "opacity": 0.85, "line": {"width": 0}}
    traces: list[dict[str, Any]] = []
    if colouring.kind == "categorical" and colouring.values is not None:
        n_colours = min(max(len(colouring.categories), 1), len(PALETTE))
        marker.update(
            color=(np.asarray(colouring.values) % n_colours).astype(np.int16),
            colorscale=_discrete_scale(n_colours),
            cmin=0,
            cmax=n_colours,
            showscale=False,
        )
        if 0 < len(colouring.categories) <= MAX_LEGEND:
            for i, name in enumerate(colouring.categories):
                traces.append(
                    {
                        "type": "scattergl",
                        "x": [None],
                        "y": [None],
                        "mode": "markers",
                        "name": html.escape(str(name)),
                        "marker": {"color": PALETTE[i % len(PALETTE)], "size": 9},
                        "hoverinfo": "skip",
                        "showlegend": True,
                    }
                )
    elif colouring.kind == "numeric" and colouring.values is not None:
        values = np.asarray(colouring.values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        marker.update(
            color=np.where(np.isfinite(values), values, low).astype(np.float32),
            colorscale="Viridis",
            cmin=float(low),
            cmax=float(high if high > low else low + 1),
            showscale=True,
            colorbar={
                "title": {"text": html.escape(colouring.label), "side": "right"},
                "thickness": 12,
                "len": 0.8,
            },
        )
    else:
        marker["color"] = PRIMARY
    main: dict[str, Any] = {
        "type": "scattergl",
        "x": np.asarray(x, dtype=np.float32),
        "y": np.asarray(y, dtype=np.float32),
        "mode": "markers",
        "customdata": np.asarray(rows, dtype=np.int32),
        "text": hover,
        "hovertemplate": "%{text}<extra></extra>",
        "marker": marker,
        "showlegend": False,
        "name": "samples",
        "selected": {"marker": {"opacity": 1.0}},
        "unselected": {"marker": {"opacity": 0.1}},
    }
    if selected is not None:
        main["selectedpoints"] = np.asarray(selected, dtype=np.int32)
    axis = {
        "showticklabels": False,
        "showgrid": True,
        "gridcolor": GRID,
        "zeroline": False,
        "showline": True,
        "linecolor": "#DDE1EA",
        "mirror": True,
    }
    layout = base_layout(
        title,
        height=height,
        dragmode="lasso",
        hovermode="closest",
        meta={"revision": revision},  # a new revision redraws the map from scratch
        modebar={"orientation": "v", "bgcolor": "rgba(255,255,255,0.7)", "color": "#6B7080"},
        xaxis={**axis, "title": {"text": "UMAP 1"}},
        yaxis={**axis, "title": {"text": "UMAP 2"}},
        legend={
            "title": {"text": html.escape(colouring.label) + " "},
            "orientation": "h",
            "x": 0,
            "y": -0.08,
            "yanchor": "top",
            "itemclick": False,
            "itemdoubleclick": False,
        },
        margin={"l": 40, "r": 36, "t": 56, "b": 40 if not traces else 80},
    )
    return go.Figure({"data": [main, *traces], "layout": layout}, _validate=False)


SIZE_BARS_MAX = 2_000  # more clusters are drawn at evenly spaced ranks (the curve's shape)


def cluster_sizes_figure(table: pd.DataFrame, *, median: float) -> go.Figure:
    """Bars of cluster sizes, largest first; sparse clusters (below the median) stand out.

    Above ``SIZE_BARS_MAX`` clusters, bars at that many evenly spaced ranks (first and last
    included) draw the same curve in a figure of bounded size."""
    order = table.sort_values("size", ascending=False, kind="stable").reset_index(drop=True)
    ranks = np.arange(1, len(order) + 1)
    if len(order) > SIZE_BARS_MAX:
        ranks = np.unique(np.linspace(1, len(order), SIZE_BARS_MAX).round().astype(np.int64))
        order = order.iloc[ranks - 1].reset_index(drop=True)
    colours = np.where(order["sparse"].to_numpy(), SPARSE, PRIMARY)
    hover = [
        f"cluster {c} · {s:,} samples"
        + (" · sparse" if sp else "")
        + (f"<br>{html.escape(w)}" if w else "")
        for c, s, sp, w in zip(
            order["cluster"],
            order["size"],
            order["sparse"],
            order.get("words", [""] * len(order)),
            strict=False,
        )
    ]
    bar = {
        "type": "bar",
        "x": ranks,
        "y": order["size"].to_numpy(),
        "marker": {"color": colours, "line": {"width": 0}},
        "hovertext": hover,
        "hovertemplate": "%{hovertext}<extra></extra>",
        "textposition": "none",
        "showlegend": False,
    }
    legend = [
        {"type": "bar", "x": [None], "y": [None], "name": name, "marker": {"color": colour}}
        for name, colour in (
            ("clusters at or above the median size", PRIMARY),
            ("sparse (below the median)", SPARSE),
        )
    ]
    layout = base_layout(
        "Cluster sizes",
        height=360,
        bargap=0.15 if len(order) < 80 else 0,
        xaxis={
            "title": {"text": "Cluster rank (largest first)"},
            "gridcolor": GRID,
            "zeroline": False,
        },
        yaxis={"title": {"text": "Samples"}, "gridcolor": GRID, "zeroline": False},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        shapes=[
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": median,
                "y1": median,
                "line": {"color": "#1F2330", "width": 1, "dash": "dot"},
            }
        ],
        annotations=[
            {
                "xref": "paper",
                "x": 1,
                "y": median,
                "xanchor": "right",
                "yanchor": "bottom",
                "text": f"median {median:g}",
                "showarrow": False,
                "font": {"size": 11, "color": "#495057"},
            }
        ],
    )
    return go.Figure({"data": [bar, *legend], "layout": layout}, _validate=False)


def log_ticks(low: int, high: int) -> list[int]:
    """1-2-5 ticks from low to high (10, 20, 50, 100, …), spaced out when there are many."""
    ticks = []
    decade = 1
    while decade <= max(high, 1):
        ticks += [m * decade for m in (1, 2, 5) if low <= m * decade <= high]
        decade *= 10
    return ticks if len(ticks) <= 9 else [t for t in ticks if str(t)[0] in "15"]
