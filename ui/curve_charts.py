"""Plotly figures of G-Vendi against subset size: the random-subset saturation curve (Diversity
page) and every selector's budget curve next to random (Compare page).

Built like ``ui.charts`` (plain dicts, no per-property validation); names from the data are
HTML-escaped.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.measures.curves import ABOVE_RANDOM
from ui.charts import (
    G_VENDI_AXIS,
    PALETTE,
    PRIMARY,
    SPARSE,
    base_layout,
    log_size_axis,
    log_ticks,
)


def saturation_figure(
    curve: pd.DataFrame,
    *,
    whole: tuple[int, float] | None = None,
    marks: list[tuple[str, int, float]] | None = None,
) -> go.Figure:
    """G-Vendi of random subsets against their size: mean line, min–max band, log-size axis."""
    sizes = curve["size"].to_numpy()
    ticks = log_ticks(int(sizes.min()), int(max(sizes.max(), whole[0] if whole else 0)))
    band_x = np.concatenate([sizes, sizes[::-1]])
    band_y = np.concatenate([curve["high"].to_numpy(), curve["low"].to_numpy()[::-1]])
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": band_x,
            "y": band_y,
            "fill": "toself",
            "fillcolor": "rgba(91,75,219,0.15)",
            "line": {"width": 0},
            "hoverinfo": "skip",
            "name": "spread of random draws (min–max)",
        },
        {
            "type": "scatter",
            "x": sizes,
            "y": curve["mean"].to_numpy(),
            "mode": "lines+markers",
            "line": {"color": PRIMARY, "width": 2.5},
            "marker": {"size": 6},
            "name": "mean of random subsets",
            "customdata": np.stack([curve["sd"].to_numpy(), curve["n_seeds"].to_numpy()], axis=1),
            "hovertemplate": "%{x:,} samples: G-Vendi %{y:,.1f} ± %{customdata[0]:.1f} "
            "(%{customdata[1]} draws)<extra></extra>",
        },
    ]
    if whole is not None:
        traces.append(
            {
                "type": "scatter",
                "x": [whole[0]],
                "y": [whole[1]],
                "mode": "markers",
                "marker": {"color": "#1F2330", "size": 11, "symbol": "diamond"},
                "name": "whole set",
                "hovertemplate": "whole set: %{x:,} samples, G-Vendi %{y:,.1f}<extra></extra>",
            }
        )
    for i, (name, size, value) in enumerate(marks or []):
        traces.append(
            {
                "type": "scatter",
                "x": [size],
                "y": [value],
                "mode": "markers",
                "marker": {
                    "color": PALETTE[(i + 1) % len(PALETTE)],
                    "size": 10,
                    "symbol": "circle",
                },
                "name": html.escape(name),
                "hovertemplate": f"{html.escape(name)}: %{{x:,}} samples, G-Vendi %{{y:,.1f}}<extra></extra>",
            }
        )
    layout = base_layout(
        "G-Vendi of random subsets by size",
        height=380,
        xaxis=log_size_axis("Subset size (samples, log scale)", ticks),
        yaxis=G_VENDI_AXIS,
        legend={"orientation": "h", "y": -0.25, "x": 0},
        margin={"l": 60, "r": 20, "t": 56, "b": 90},
    )
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


# Selector colours on the budget chart: random is the ink-grey baseline everything is read against.
METHOD_COLOURS = {
    "random": "#495057",
    "vendi_greedy": PRIMARY,
    "k_center": "#F08C00",
    "cluster_balanced": "#1C7ED6",
    "sparse_clusters": SPARSE,
    "dedupe": "#0CA678",
}


MARK_SYMBOLS = ["star", "diamond", "square", "triangle-up", "pentagon", "hexagram", "hourglass"]


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def equivalent_text(size: float, equivalent: float | None, *, n: int) -> str:
    """ "as diverse as random at 1,020 rows (3.1×)" — the sentence the Compare page is for."""
    if equivalent is None or not np.isfinite(equivalent):
        return f"{ABOVE_RANDOM}: more diverse than random subsets of all {n:,} rows"
    return f"as diverse as random at {equivalent:,.0f} rows ({round(equivalent) / size:.1f}×)"


def budget_figure(
    summary: pd.DataFrame,
    *,
    n: int,
    whole: float | None = None,
    marks: list[tuple[str, int, float, float | None]] | None = None,
    highlight: tuple[str, int, float, float | None] | None = None,
    height: int = 500,
) -> go.Figure:
    """G-Vendi against budget: per selector the mean over seeds (line) and min–max (band), random
    first; saved subsets as yellow marks; ``highlight`` (method, size, G-Vendi, random equivalent) draws
    the dotted step from a selector's point across to the random curve.

    ``summary`` has the columns of core.measures.curves.summarise_curves plus ``random_equivalent``.
    """
    methods = ["random", *[m for m in dict.fromkeys(summary["method"]) if m != "random"]]
    traces: list[dict[str, Any]] = []
    for i, method in enumerate(methods):
        part = summary[summary["method"] == method].sort_values("size")
        if part.empty:
            continue
        colour = METHOD_COLOURS.get(method, PALETTE[i % len(PALETTE)])
        sizes = part["size"].to_numpy()
        traces.append(
            {
                "type": "scatter",
                "x": np.concatenate([sizes, sizes[::-1]]),
                "y": np.concatenate([part["high"].to_numpy(), part["low"].to_numpy()[::-1]]),
                "fill": "toself",
                "fillcolor": _rgba(colour, 0.13),
                "line": {"width": 0},
                "hoverinfo": "skip",
                "legendgroup": method,
                "showlegend": False,
                "name": f"{method} spread",
            }
        )
        notes = [
            "the baseline" if method == "random" else equivalent_text(s, e if e == e else None, n=n)
            for s, e in zip(sizes, part["random_equivalent"], strict=True)
        ]
        custom = [
            [float(sd), int(seeds), note]
            for sd, seeds, note in zip(part["sd"], part["n_seeds"], notes, strict=True)
        ]
        traces.append(
            {
                "type": "scatter",
                "x": sizes,
                "y": part["mean"].to_numpy(),
                "mode": "lines+markers",
                "line": {"color": colour, "width": 3 if method == "random" else 2.5},
                "marker": {"size": 6, "color": colour},
                "name": "random (baseline)" if method == "random" else html.escape(method),
                "legendgroup": method,
                "customdata": custom,
                "hovertemplate": f"<b>{html.escape(method)}</b> · %{{x:,}} rows<br>"
                "G-Vendi %{y:,.1f} ± %{customdata[0]:.1f} over %{customdata[1]} seeds<br>"
                "%{customdata[2]}<extra></extra>",
            }
        )
    if whole is not None:
        traces.append(
            {
                "type": "scatter",
                "x": [n],
                "y": [whole],
                "mode": "markers",
                "marker": {"color": "#1F2330", "size": 11, "symbol": "diamond"},
                "name": "whole set",
                "hovertemplate": "whole set: %{x:,} rows, G-Vendi %{y:,.1f}<extra></extra>",
            }
        )
    for i, (name, size, value, equal) in enumerate(marks or []):
        label = html.escape(name if len(name) <= 32 else name[:31] + "…")
        traces.append(
            {
                "type": "scatter",
                "x": [size],
                "y": [value],
                "mode": "markers",
                "marker": {
                    "color": "#FFD43B",
                    "size": 13,
                    "symbol": MARK_SYMBOLS[i % len(MARK_SYMBOLS)],
                    "line": {"color": "#1F2330", "width": 1.2},
                },
                "name": label,
                "legendgroup": "subsets",
                "legendgrouptitle": {"text": "Saved subsets"} if i == 0 else None,
                "customdata": [[equivalent_text(size, equal, n=n)]],
                "hovertemplate": f"subset “{label}”: %{{x:,}} rows, G-Vendi %{{y:,.1f}}<br>"
                "%{customdata[0]}<extra></extra>",
            }
        )
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    if highlight is not None and highlight[3] is not None:
        method, size, value, _ = highlight
        equal = float(highlight[3])
        line = {"color": "#1F2330", "width": 1.2, "dash": "dot"}
        shapes.append(
            {"type": "line", "x0": size, "x1": equal, "y0": value, "y1": value, "line": line}
        )
        shapes.append(
            {"type": "line", "x0": equal, "x1": equal, "y0": 0, "y1": value, "line": line}
        )
        annotations.append(
            {
                "x": math.log10(equal),  # annotations on a log axis take log10 positions
                "y": 0,
                "xanchor": "right",
                "yanchor": "bottom",
                "text": f"random needs {equal:,.0f} rows ",
                "showarrow": False,
                "font": {"size": 11, "color": "#1F2330"},
                "bgcolor": "rgba(255,255,255,0.8)",
            }
        )
    low = int(summary["size"].min()) if len(summary) else 1
    ticks = log_ticks(low, n)
    layout = base_layout(
        "G-Vendi against budget: each selector next to random subsets",
        height=height,
        hovermode="closest",
        xaxis=log_size_axis("Budget (rows, log scale)", ticks),
        yaxis=G_VENDI_AXIS,
        legend={
            "orientation": "v",
            "x": 1.02,
            "y": 1,
            "yanchor": "top",
            "font": {"size": 11},
            "groupclick": "toggleitem",
            "tracegroupgap": 2,
        },
        margin={"l": 60, "r": 10, "t": 56, "b": 56},
        shapes=shapes,
        annotations=annotations,
    )
    return go.Figure({"data": traces, "layout": layout}, _validate=False)
