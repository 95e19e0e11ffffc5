"""Map: gradient space (and text space beside it); lasso, box or cluster picks set the selection."""

import streamlit as st

from core.workspace import analysis_job as analyze
from ui import cache, explain, mapview, state, widgets
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
    views = mapview.map_views(frame)
    view = views[0]
    options = mapview.colour_options(frame, cache.column_map(ws).content_columns)
    labels = list(options)
    pick, space_pick, note = st.columns([1, 1.25, 1.35], vertical_alignment="bottom")
    label = pick.selectbox("Colour by", labels, index=0, key=f"{state.COLOR_BY}_{ws.name}")
    if len(views) > 1:
        view = (
            space_pick.segmented_control(
                "Space",
                views,
                default=views[0],
                key=f"prism_map_view_{ws.name}",
                help="Gradient space places samples by what they teach the model; text space by "
                "what they say (sentence embeddings). Side by side, a selection on one map is "
                "highlighted on the other.",
            )
            or views[0]
        )
    else:
        space_pick.caption("Text space: run `prism embed` on this workspace to compare.")
    note.caption(
        f"**{ws.name}** · {fmt.count(len(frame), 'sample')} · "
        f"G-Vendi {fmt.score(ws.manifest.get('scores', {}).get('g_vendi'))} · "
        "hover a point to read its prompt; drag to lasso, double-click to zoom out"
    )
    spaces = mapview.view_spaces(view)
    mapview.apply_events(ws, frame, drawn, spaces)
    rows = state.selection_rows(ws, len(frame))
    colour = mapview.colouring(frame, label, options.get(label))

    if len(spaces) == 1:
        left, right = st.columns([0.62, 0.38], gap="large")
        with left:
            mapview.map_chart(ws, frame, colour, rows, drawn, spaces[0])
            if "cluster" in frame.columns:
                mapview.cluster_picker(ws)
    else:
        for column, space in zip(st.columns(2, gap="medium"), spaces, strict=True):
            with column:
                mapview.map_chart(ws, frame, colour, rows, drawn, space, height=520)
        left, right = st.columns([0.62, 0.38], gap="large")
        with left:
            mapview.text_space_summary(ws, frame)
            if "cluster" in frame.columns:
                mapview.cluster_picker(ws)
    with right:
        if rows is None:
            mapview.whole_set_panel(ws, len(frame))
        else:
            mapview.selection_panel(ws, frame, rows)
        st.divider()
        mapview.subsets_list(ws, frame)
    if len(views) > 1:
        explain.measures_help()
