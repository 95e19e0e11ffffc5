"""Diversity: G-Vendi and the order-q family, clusters, and where the dataset saturates."""

import streamlit as st

from core.workspace import analysis_job as analyze
from ui import cache, charts, explain, mapview, widgets
from ui import format as fmt

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

widgets.page_header(
    "Diversity",
    "How many different things this data teaches the proxy model, measured on its per-sample "
    "loss gradients (G-Vendi), and where adding more of the same stops helping.",
)
with widgets.guard():
    ws = widgets.workspace_with_features()

    scores = ws.manifest.get("scores", {})
    vendi = scores.get("vendi", {})
    n, dim = ws.n_samples, int(scores.get("dim") or ws.manifest.get("features", {}).get("dim", 0))
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
    if ws.has_embeddings:
        mapview.text_space_summary(ws, cache.samples(ws))
        explain.measures_help()
    else:
        st.caption(
            "Run `prism embed` on this workspace to see the same data measured as text "
            "(embedding Vendi, n-gram Vendi, distinct-2) beside G-Vendi."
        )

    curve = cache.curve(ws)
    clusters = ws.manifest.get("clusters") or {}
    has_clusters = bool(clusters) and "cluster" in cache.samples(ws).columns
    table, pending = cache.cluster_table(ws, with_vendi=True) if has_clusters else (None, False)
    if curve is None or pending:
        mapview.refresh_when_ready(str(ws.path))  # fills the page in when the results are in
    left, right = st.columns(2, gap="large")
    with left:
        if curve is None:
            st.info(
                "Drawing random subsets of every size… the chart appears in a few seconds.",
                icon=":material/hourglass_top:",
            )
        else:
            marks = []
            index = cache.samples(ws)["id"].astype(str)
            for name, entry in list(ws.subsets().items())[:6]:
                rows = index.index[index.isin([str(i) for i in entry.get("ids", [])])].to_numpy()
                if rows.size:
                    marks.append(
                        (f"subset: {name}", int(rows.size), cache.scorer(ws).g_vendi(rows))
                    )
            st.plotly_chart(
                charts.saturation_figure(
                    curve, whole=(n, float(scores.get("g_vendi", 0))), marks=marks
                ),
                width="stretch",
                config={"displaylogo": False},
            )
            st.caption(
                "Each point is the mean G-Vendi of random subsets of that size; the band spans the "
                "draws. Where the curve flattens, more samples of this kind add little new."
            )
    with right:
        if has_clusters:
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
        elif analyze.needs_analysis(ws):
            widgets.empty_state(
                "No clusters yet",
                "Clusters are built together with the map. Open the **Map** page to build them.",
                page="map",
                label="Open the map",
            )
    if has_clusters:
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
