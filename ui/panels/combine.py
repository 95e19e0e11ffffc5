"""Set operations on saved subsets: union, intersection, difference or complement, previewed
before the result is saved as a subset."""

from __future__ import annotations

import streamlit as st

from core.errors import PrismError
from core.workspace.store import Workspace
from core.workspace.subsets import MAX_NAME, SET_OPERATIONS, combine_ids, combine_subsets
from ui import cache
from ui import format as fmt
from ui.panels.subsets import positions_of, saved, unique_name
from ui.widgets import error_message, plain

OPERATION_HELP = {
    "union": "Samples in any of the chosen subsets.",
    "intersection": "Samples in every chosen subset.",
    "difference": "Samples of the first subset that are in none of the others.",
    "complement": "Every sample of the workspace that is not in the subset.",
}


OPERATION_SIGN = {"union": " ∪ ", "intersection": " ∩ ", "difference": " − "}


def combine_form(ws: Workspace) -> None:
    """Union, intersection, difference or complement of saved subsets, previewed before saving."""
    subsets = ws.subsets()
    names = list(subsets)
    if not names:
        st.info("Set operations work on saved subsets; make one first.", icon=":material/info:")
        return
    operation = (
        st.segmented_control(
            "Operation",
            SET_OPERATIONS,
            default="union",
            key="combine_operation",
            format_func=str.capitalize,
        )
        or "union"
    )
    st.caption(OPERATION_HELP[operation])
    if operation == "complement":
        chosen = [st.selectbox("Everything not in", names, key="combine_one")]
    elif operation == "difference":
        first = st.selectbox("Start from", names, key="combine_first")
        rest = st.multiselect(
            "Take away the samples of", [n for n in names if n != first], key="combine_rest"
        )
        chosen = [first, *rest]
    else:
        chosen = st.multiselect(
            "Subsets", names, default=names[: min(2, len(names))], key=f"combine_{operation}"
        )
    members = [list(subsets[n].ids) for n in chosen]
    all_ids = None
    if operation == "complement":
        all_ids = cache.samples(ws)["id"].astype(str).tolist()
    try:
        ids = combine_ids(operation, members, all_ids=all_ids)
    except PrismError as error:
        st.caption(plain(str(error)))
        return
    st.markdown(f"Result: **{fmt.count(len(ids), 'sample')}**")
    if operation == "complement":
        auto = f"not {chosen[0]}"
    else:
        auto = OPERATION_SIGN[operation].join(chosen)
    auto = unique_name(auto, subsets)
    with st.form("combine_save", clear_on_submit=True, border=False):
        name = st.text_input("Subset name", placeholder=auto, max_chars=MAX_NAME)
        submitted = st.form_submit_button(
            f"Save the {operation}", icon=":material/join:", type="primary", disabled=not ids
        )
    if submitted:
        try:
            stored = combine_subsets(ws, operation, chosen, name=name.strip() or auto)
        except PrismError as error:
            error_message(str(error))
            return
        saved(ws, stored, positions_of(ws, stored))
