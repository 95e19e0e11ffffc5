"""Map: the gradient-space map; lasso, box or cluster picks set the selection, scored live."""

import streamlit as st

from ui import analyze, cache, mapview, state, widgets
from ui import format as fmt

widgets.page_header(
    "Map",
    "Each point is a sample, placed by the direction its gradient pushes the proxy model. "
    "Nearby samples teach the model similar things; isolated ones teach something new.",
)
with widgets.guard():
    ws = widgets.workspace_with_features()
    if analyze.needs_analysis(ws):
        mapview.build_map(ws)
        st.stop()

    frame = cache.samples(ws)
    cache.prefetch(ws)  # the random-subset baseline, ready before the first lasso
    drawn = mapview.drawn_rows(ws, len(frame))
    mapview.apply_events(ws, frame, drawn)
    rows = state.selection_rows(ws, len(frame))

    left, right = st.columns([0.62, 0.38], gap="large")
    with left:
        options = mapview.colour_options(frame, cache.column_map(ws).content_columns)
        labels = list(options)
        pick, note = st.columns([1, 2], vertical_alignment="bottom")
        label = pick.selectbox("Colour by", labels, index=0, key=f"{state.COLOR_BY}_{ws.name}")
        note.caption(
            f"**{ws.name}** · {fmt.count(len(frame), 'sample')} · "
            f"G-Vendi {fmt.score(ws.manifest.get('scores', {}).get('g_vendi'))} · "
            "hover a point to read its prompt; drag to lasso, double-click to zoom out"
        )
        colour = mapview.colouring(frame, label, options.get(label))
        mapview.map_chart(ws, frame, colour, rows, drawn)
        if "cluster" in frame.columns:
            mapview.cluster_picker(ws)
    with right:
        if rows is None:
            mapview.whole_set_panel(ws, len(frame))
        else:
            mapview.selection_panel(ws, frame, rows)
        st.divider()
        mapview.subsets_list(ws, frame)
