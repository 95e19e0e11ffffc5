"""Clusters: the table under the map (click rows to select clusters), and the Diversity page's
cluster sizes and per-cluster table (size, sparse, within-cluster Vendi, top words)."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
import streamlit as st

from core.workspace.manifest import ClustersSection
from core.workspace.store import Workspace
from ui import cache, charts, explain, state
from ui import format as fmt
from ui.panels.jobs import refresh_when_ready

TABLE_MAX_ROWS = 2_000  # a table of 10⁵ clusters would send megabytes on every rerun
_NAMES = {
    "cluster": "Cluster",
    "size": "Samples",
    "sparse": "Sparse",
    "vendi": "Within-cluster Vendi",
    "words": "Top words",
}


def cluster_table_view(
    table: pd.DataFrame,
    *,
    order: str,
    height: int,
    key: str | None = None,
    selection_mode: Literal["single-row", "multi-row"] = "multi-row",
) -> None:
    """The cluster table (``core.workspace.tables.cluster_table`` rows, in the caller's ``order``,
    described in words for the caption when rows are left out): at most ``TABLE_MAX_ROWS`` rows.
    With a ``key`` a click selects rows (their positions in ``table``)."""
    shown = table.head(TABLE_MAX_ROWS)
    if len(shown) < len(table):
        st.caption(f"Showing the first {len(shown):,} of {len(table):,} clusters ({order}).")
    selection: dict[str, Any] = (
        {"key": key, "on_select": "rerun", "selection_mode": selection_mode} if key else {}
    )
    st.dataframe(
        shown.rename(columns=_NAMES),
        hide_index=True,
        height=height,
        width="stretch",
        column_config={
            "Cluster": st.column_config.NumberColumn("Cluster", format="%d"),
            "Samples": st.column_config.ProgressColumn(
                "Samples", format="%d", min_value=0, max_value=int(table["size"].max() or 1)
            ),
            "Sparse": st.column_config.CheckboxColumn("Sparse"),
            "Within-cluster Vendi": st.column_config.NumberColumn(format="%.1f"),
            "Top words": st.column_config.TextColumn("Top words", width="large"),
        },
        **selection,
    )


def cluster_picker(ws: Workspace) -> None:
    table, pending = cache.cluster_table(ws)
    st.markdown("#### Clusters")
    st.caption(
        "Click rows to select their clusters on the map (several at once with Ctrl/⌘). "
        "Sparse clusters are smaller than the median — their samples push the model in rarer directions."
    )
    # Rows are in cluster order (0 = largest), which the map reads a click's positions as.
    cluster_table_view(
        table, order="the largest", height=320, key=state.table_key(state.CLUSTER_TABLE)
    )
    if pending:
        st.caption("Reading the clusters' top words…")
        refresh_when_ready(str(ws.path))


def cluster_sizes(ws: Workspace, table: pd.DataFrame) -> None:
    """A bar per cluster, sparse ones marked, with the median size."""
    clusters = ws.clusters or ClustersSection()
    st.plotly_chart(
        charts.cluster_sizes_figure(table, median=float(clusters.median_size or 0)),
        width="stretch",
        config={"displaylogo": False},
    )
    st.caption(
        f"{fmt.count(int(clusters.n_clusters), 'cluster')} (spherical k-means, k ≈ N/10); "
        f"{fmt.count(int(clusters.n_sparse or 0), 'sparse cluster')} hold "
        f"{fmt.count(int(clusters.n_in_sparse or 0), 'sample')}."
        + (
            f" Bars at {charts.SIZE_BARS_MAX:,} evenly spaced ranks."
            if len(table) > charts.SIZE_BARS_MAX
            else ""
        )
    )
    explain.cluster_caution(ws)


def cluster_details(table: pd.DataFrame) -> None:
    """Every cluster: size, sparse, within-cluster Vendi, top words."""
    st.markdown("#### Clusters")
    st.caption(
        "Within-cluster Vendi: how varied a cluster is inside. Sparse: smaller than the median "
        "cluster — new samples landing there are the ones worth adding."
    )
    cluster_table_view(table, order="the largest", height=380)
