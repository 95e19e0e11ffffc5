"""Data: reopen a workspace, or choose a dataset (demo, upload, server path) and map its columns."""

import streamlit as st

from ui import widgets
from ui.panels import data, workspaces

widgets.page_header(
    "Data",
    "Open a workspace you built before, or bring a dataset: Prism reads CSV, TSV, JSON, JSON "
    "Lines and Parquet, with prompt/response pairs, chats or plain text.",
)
with widgets.guard():
    st.subheader("Your workspaces", anchor=False)
    workspaces.workspace_list()
    st.subheader("Add a dataset", anchor=False)
    data.add_dataset()
