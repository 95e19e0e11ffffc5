"""Subsets: the saved subsets, new ones from selectors, filters, set operations or the map, and
each one's records and export."""

import streamlit as st

from ui import cache, records, subsetview, widgets
from ui import format as fmt

MODES = {
    "Selector": ":material/auto_awesome:",
    "Filters": ":material/filter_alt:",
    "Set operation": ":material/join:",
    "Map selection": ":material/gesture_select:",
}

widgets.page_header(
    "Subsets",
    "Turn what you see into subsets you can train on: pick them with a selector, filter any "
    "column, combine saved ones, then export them with a manifest that rebuilds them.",
)
with widgets.guard():
    ws = widgets.workspace_with_features()
    subsetview.undo_notice(ws)

    st.subheader("Make a subset", anchor=False)
    subsetview.show_notice()
    mode = (
        st.segmented_control(
            "Make it from",
            list(MODES),
            default="Selector",
            format_func=lambda m: f"{MODES[m]} {m}",
            key="subset_mode",
        )
        or "Selector"
    )
    with st.container(border=True):
        {
            "Selector": subsetview.selector_form,
            "Filters": subsetview.filter_form,
            "Set operation": subsetview.combine_form,
            "Map selection": subsetview.selection_form,
        }[mode](ws)

    st.subheader("Saved subsets", anchor=False)
    name = subsetview.pick_subset(ws)
    if name is None:
        st.caption(
            f"None yet in **{widgets.plain(ws.name)}** "
            f"({fmt.count(ws.n_samples, 'sample')}). Make one above, or save a lasso on the map."
        )
        st.stop()
    subsetview.subset_table(ws)
    left, right = st.columns([1, 1.25], gap="large")
    with left:
        st.markdown(f"#### “{widgets.plain(name)}”")
        subsetview.actions(ws, name)
        rows = subsetview.positions(ws).get(name)
        if rows is not None and rows.size:
            records.records(ws, cache.samples(ws), rows, title="Its records")
    with right:
        st.markdown("#### Export")
        subsetview.export_panel(ws, name)
