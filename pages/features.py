"""Features: choose the proxy model and sketch, then run (and follow) the extraction job."""

import streamlit as st

from ui import format as fmt
from ui import state, widgets
from ui.panels import features, jobs

widgets.page_header(
    "Features",
    "Every sample becomes the gradient of a small proxy model's loss on it, sketched to about a "
    "thousand numbers. The job runs in the background and resumes where it stopped.",
)
with widgets.guard():
    pending = st.session_state.get(state.PENDING)
    ws = state.current_workspace()
    if pending:
        st.markdown(
            f"#### New features for **{widgets.plain(pending['label'])}**  \n"
            f"{fmt.count(int(pending['n_samples']), 'sample')} · columns "
            + ", ".join(f"{k} = {widgets.code(v)}" for k, v in pending["columns"].items() if v)
        )
        features.settings_form(pending)
        if st.button("Choose other data", icon=":material/arrow_back:"):
            st.session_state.pop(state.PENDING, None)
            st.switch_page(widgets.PAGES["data"])
    elif ws is None:
        widgets.no_workspace()
    elif ws.has_features:
        jobs.finished(ws)
        widgets.empty_state(
            "Measure another dataset",
            "Choose a file on the **Data** page; its features get a workspace of their own.",
            page="data",
            label="Choose data",
        )
    else:
        st.markdown(f"#### {widgets.plain(ws.name)}")
        jobs.job_view(ws)
    jobs.other_jobs(ws)
