"""Compare: saved subsets side by side, and what each selector buys against random subsets."""

import streamlit as st

from ui import compareview, explain, widgets

widgets.page_header(
    "Compare",
    "Subsets side by side in gradient space, and G-Vendi against budget for every selector next "
    "to random subsets — how many random rows each selected row is worth.",
)
with widgets.guard():
    ws = widgets.workspace_with_features()
    names = list(ws.subsets())

    st.subheader("Subsets side by side", anchor=False)
    pick, toggle = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick.multiselect(
        "Subsets",
        names,
        default=names,
        placeholder="Choose subsets (the whole set is always shown)",
    )
    scorer = compareview.text_scorer()
    text = toggle.toggle(
        "Text-space measures",
        value=scorer is not None and ws.has_embeddings,
        disabled=scorer is None,
        help="Adds n-gram Vendi, distinct-2 and (once `prism embed` has run) embedding Vendi: "
        "the surface measures that G-Vendi is compared with. Scoring texts takes a few seconds "
        "per thousand samples.",
    )
    table_area = st.container()

    st.subheader("G-Vendi against budget", anchor=False)
    settings = compareview.curve_settings(ws)
    summary = compareview.curve_summary(ws, settings)
    with table_area:
        with st.spinner("Scoring the subsets…"):
            table = compareview.comparison(ws, chosen, text=text)
        compareview.comparison_table(
            compareview.presented(table, compareview.random_curve(ws, summary))
        )
        st.caption(
            "≈ random at: the size at which random subsets of this data reach the same G-Vendi "
            + (
                "(read off the curves below)."
                if summary is not None
                else "(read off the map's random baseline; the curves below refine it)."
            )
        )
        if not names:
            widgets.empty_state(
                "No saved subsets yet",
                "Make subsets with a selector, filters or a lasso; they appear here beside the "
                "whole set. The curves below need none.",
                page="subsets",
                label="Make a subset",
            )
    if summary is None:
        compareview.curves_status(ws, settings)
    else:
        compareview.budget_section(ws, settings, summary, table)
    explain.measures_help()
