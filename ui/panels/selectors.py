"""The selector form: a selector (random, vendi_greedy, k_center, …), its budget, seed and
options, where it chooses within and what it starts from; what it picks is saved as a subset."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import PrismError
from core.select.quality import QUALITY_THRESHOLD
from core.select.selectors import DEDUPE_THRESHOLD, SELECTORS
from core.workspace.selector_runs import run_selector
from core.workspace.store import Workspace
from core.workspace.subsets import MAX_NAME
from ui import cache, state
from ui import format as fmt
from ui.errors import Slots
from ui.panels.subsets import notice, saved, unique_name
from ui.widgets import plain


def _budget(ws: Workspace, method: str, slots: Slots) -> float | int | None:
    n = ws.n_samples
    is_filter = SELECTORS[method].is_filter
    modes = ["Rows", "Fraction"] + (["All that pass"] if is_filter else [])
    left, right = st.columns([1.2, 1], vertical_alignment="bottom")
    slots.under("budget")
    with left:
        mode = (
            st.segmented_control(
                "Budget",
                modes,
                default="All that pass" if is_filter else "Rows",
                key=f"budget_mode_{is_filter}",
                help="How many samples to keep: a number of rows or a fraction of the set. "
                "Filters can also keep everything that passes.",
            )
            or modes[0]
        )
    with right:
        if mode == "Rows":
            return int(
                st.number_input(
                    "Rows",
                    min_value=1,  # no max: a budget above the data is refused with a message
                    value=min(200, max(1, n // 5)),
                    step=10,
                    key="budget_rows",
                )
            )
        if mode == "Fraction":
            return float(
                st.number_input(
                    "Fraction of the set",
                    min_value=0.01,
                    max_value=0.99,
                    value=0.10,
                    step=0.01,
                    format="%.2f",
                    key="budget_fraction",
                )
            )
        st.caption("Keeps every sample that passes the filter.")
        return None


def selector_form(ws: Workspace) -> None:
    """Run a selector (method, budget, seed, options, within/start) and save what it picks."""
    slots = Slots()
    has_clusters = "cluster" in cache.samples(ws).columns
    methods = [
        m
        for m, spec in SELECTORS.items()
        if (has_clusters or not spec.needs_clusters) and not spec.needs_target
    ]
    subsets = list(ws.subsets())
    method = st.selectbox(
        "Selector",
        methods,
        index=methods.index("vendi_greedy") if "vendi_greedy" in methods else 0,
        format_func=lambda m: f"{m} — {SELECTORS[m].description}",
        key="selector_method",
        help="random is the baseline; the others aim for diversity in gradient space. Every "
        "selector is deterministic for a seed.",
    )
    slots.under("method")
    if not has_clusters:
        st.caption("cluster_balanced and sparse_clusters appear once the map's clusters are built.")
    k = _budget(ws, method, slots)
    a, b, c = st.columns(3)
    seed = int(a.number_input("Seed", min_value=0, value=0, step=1, key="selector_seed"))
    within = b.selectbox(
        "Choose within",
        ["(whole set)", *subsets],
        key="selector_within",
        help="Only samples of this subset can be picked.",
    )
    start = c.selectbox(
        "Start from",
        ["(nothing)", *subsets],
        key="selector_start",
        help="Samples of this subset are kept first and count towards the budget.",
    )
    slots.under("seed", where=a)
    slots.under("within", where=b)
    slots.under("start", where=c)
    options: dict[str, Any] = {}
    for option in SELECTORS[method].options:
        if option == "rescore":
            options[option] = int(
                st.number_input(
                    "Re-score candidates (rescore)",
                    min_value=0,
                    max_value=500,
                    value=0,
                    step=4,
                    key="selector_rescore",
                    help="Re-rank this many best candidates of each greedy step by their exact "
                    "G-Vendi: higher G-Vendi, slower. 0 uses the closed-form order-2 gain only.",
                )
            )
        elif option == "threshold":
            quality = method == "quality_diverse"
            options[option] = float(
                st.number_input(
                    "Too similar when cosine ≥ (threshold)"
                    if quality
                    else "Duplicate when cosine ≥ (threshold)",
                    min_value=0.05 if quality else 0.5,
                    max_value=1.0,
                    value=QUALITY_THRESHOLD if quality else DEDUPE_THRESHOLD,
                    step=0.01,
                    format="%.2f",
                    key=f"selector_threshold_{method}",
                )
            )
        else:
            # Left empty: the selector's own default (score -loss, beta 1, outliers skip).
            text = st.text_input(option, key=f"selector_{option}", placeholder="default")
            if text.strip():
                options[option] = text.strip()  # typed (and refused) by run_selector
        slots.under(option)
    budget_word = (
        "all"
        if k is None
        else f"{k:,}"
        if isinstance(k, int)
        else f"{fmt.percent(float(k), digits=0)}"
    )
    auto = unique_name(f"{method} {budget_word}" + (f" seed {seed}" if seed else ""), subsets)
    name = st.text_input("Name", placeholder=auto, max_chars=MAX_NAME, key="selector_name")
    slots.under("name")
    if st.button("Run selector", type="primary", icon=":material/play_arrow:", key="run_selector"):
        with st.spinner(
            f"Running {method} on {fmt.count(ws.n_samples, 'sample')}…", show_time=True
        ):
            try:
                stored, rows = run_selector(
                    ws,
                    method,
                    name=name.strip() or auto,
                    k=k,
                    seed=seed,
                    within=None if within == "(whole set)" else within,
                    start=None if start == "(nothing)" else start,
                    options=options,
                )
            except PrismError as error:
                slots.show(error)
                return
        if stored != " ".join((name.strip() or auto).split()):  # the same run was stored before
            notice(f"Same as stored subset “{plain(stored)}” (same selector, settings and rows).")
            st.session_state[state.SUBSET_NEXT] = stored
            st.rerun()
        saved(ws, stored, rows)
