"""Clusters: the table under the map (click rows to select clusters), and the Diversity page's
cluster sizes and per-cluster table (size, sparse, within-cluster Vendi, top words)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.workspace.store import Workspace
from ui import cache, charts, state
from ui import format as fmt
from ui.panels.jobs import refresh_when_ready


def cluster_picker(ws: Workspace) -> None:
    table, pending = cache.cluster_table(ws)
    table = table.rename(
        columns={"cluster": "Cluster", "size": "Samples", "sparse": "Sparse", "words": "Top words"}
    )
    st.markdown("#### Clusters")
    st.caption(
        "Click rows to select their clusters on the map (several at once with Ctrl/⌘). "
        "Sparse clusters are smaller than the median — their samples push the model in rarer directions."
    )
    st.dataframe(
        table,
        key=state.table_key(state.CLUSTER_TABLE),
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        height=320,
        width="stretch",
        column_config={
            "Samples": st.column_config.ProgressColumn(
                "Samples", format="%d", min_value=0, max_value=int(table["Samples"].max() or 1)
            ),
            "Sparse": st.column_config.CheckboxColumn("Sparse"),
            "Top words": st.column_config.TextColumn("Top words", width="large"),
        },
    )
    if pending:
        st.caption("Reading the clusters' top words…")
        refresh_when_ready(str(ws.path))


def cluster_sizes(ws: Workspace, table: pd.DataFrame) -> None:
    """A bar per cluster, sparse ones marked, with the median size."""
    clusters = ws.manifest.get("clusters") or {}
    st.plotly_chart(
        charts.cluster_sizes_figure(table, median=float(clusters.get("median_size", 0))),
        width="stretch",
        config={"displaylogo": False},
    )
    st.caption(
        f"{fmt.count(int(clusters['n_clusters']), 'cluster')} (spherical k-means, k ≈ N/10); "
        f"{fmt.count(int(clusters['n_sparse']), 'sparse cluster')} hold "
        f"{fmt.count(int(clusters['n_in_sparse']), 'sample')}."
    )


def cluster_details(table: pd.DataFrame) -> None:
    """Every cluster: size, sparse, within-cluster Vendi, top words."""
    st.markdown("#### Clusters")
    st.caption(
        "Within-cluster Vendi: how varied a cluster is inside. Sparse: smaller than the median "
        "cluster — new samples landing there are the ones worth adding."
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=380,
        column_config={
            "cluster": st.column_config.NumberColumn("Cluster", format="%d"),
            "size": st.column_config.ProgressColumn(
                "Samples", format="%d", min_value=0, max_value=int(table["size"].max() or 1)
            ),
            "sparse": st.column_config.CheckboxColumn("Sparse"),
            "vendi": st.column_config.NumberColumn("Within-cluster Vendi", format="%.1f"),
            "words": st.column_config.TextColumn("Top words", width="large"),
        },
    )
