"""Subsets: the saved subsets, new ones from selectors, filters, set operations or the map, and
each one's records and export."""

import streamlit as st

from ui import cache, widgets
from ui.panels import combine, export, filters, records, selectors, subsets

MODES = {
    "Selector": (":material/auto_awesome:", selectors.selector_form),
    "Filters": (":material/filter_alt:", filters.filter_form),
    "Set operation": (":material/join:", combine.combine_form),
    "Map selection": (":material/gesture_select:", subsets.selection_form),
}

widgets.page_header(
    "Subsets",
    "Turn what you see into subsets you can train on: pick them with a selector, filter any "
    "column, combine saved ones, then export them with a manifest that rebuilds them.",
)
with widgets.guard():
    ws = widgets.workspace_with_features()
    subsets.undo_notice(ws)

    st.subheader("Make a subset", anchor=False)
    subsets.show_notice()
    mode = (
        st.segmented_control(
            "Make it from",
            list(MODES),
            default="Selector",
            format_func=lambda m: f"{MODES[m][0]} {m}",
            key="subset_mode",
        )
        or "Selector"
    )
    with st.container(border=True):
        MODES[mode][1](ws)

    st.subheader("Saved subsets", anchor=False)
    name = subsets.saved_subset(ws)
    if name is None:
        st.stop()
    left, right = st.columns([1, 1.25], gap="large")
    with left:
        st.markdown(f"#### “{widgets.plain(name)}”")
        subsets.recipe(ws, name)
        subsets.actions(ws, name)
        rows = subsets.positions(ws).get(name)
        if rows is not None and rows.size:
            records.records(ws, cache.samples(ws), rows, title="Its records")
    with right:
        st.markdown("#### Export")
        export.export_panel(ws, name)
