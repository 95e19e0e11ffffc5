"""Prism's app: page configuration and navigation only; each task is a file in pages/."""

import streamlit as st

from ui.widgets import LOGO, PAGES, sidebar

st.set_page_config(
    page_title="Prism · gradient-space diversity",
    page_icon=":material/change_history:",
    layout="wide",
    initial_sidebar_state="expanded",
)
st.logo(str(LOGO), size="large")
navigation = st.navigation(
    [
        st.Page(PAGES["data"], title="Data", icon=":material/table_view:"),
        st.Page(PAGES["features"], title="Features", icon=":material/memory:"),
        st.Page(PAGES["map"], title="Map", icon=":material/scatter_plot:", default=True),
        st.Page(PAGES["diversity"], title="Diversity", icon=":material/insights:"),
        st.Page(PAGES["subsets"], title="Subsets", icon=":material/bookmarks:"),
        st.Page(PAGES["compare"], title="Compare", icon=":material/compare_arrows:"),
    ]
)
sidebar()
navigation.run()
