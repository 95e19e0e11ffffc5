"""The Features page's form: the proxy model, the gradient sketch and the rows to use; Start
prepares the workspace and starts the background job, "Estimate" times a few rows first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import streamlit as st

from core.data.columns import ColumnMap
from core.errors import PrismError
from core.features.extract import FeatureConfig
from core.features.proxy import DEFAULT_MODEL, conversion_note, prism_home
from core.workspace.jobs.estimate import estimate_run
from core.workspace.jobs.extraction import prepare_workspace, start_background
from core.workspace.store import default_workspace_path
from ui import state
from ui.errors import Slots
from ui.panels import data
from ui.panels.jobs import GOTO_MAP

ESTIMATE = "prism_run_estimate"  # (source, sentence) of the last "Estimate the run time"
DIMS = [256, 512, 1024, 2048, 4096]
SCOPES = {"all": "All Linear weights (incl. output head)", "last": "Last K blocks only"}
MODELS = {
    "embedded": "SmolLM2-135M-Instruct, shipped with Prism (the default)",
    "other": "A Hugging Face model name or a local folder",
}


def settings_form(pending: dict[str, Any]) -> None:
    """Every feature setting, then Start: prepares the workspace and starts the job."""
    slots = Slots()
    with st.form("feature_settings", border=True):
        st.markdown("##### Proxy model")
        model_kind = st.radio(
            "Proxy model",
            list(MODELS),
            format_func=lambda kind: MODELS[kind],
            label_visibility="collapsed",
        )
        model_name = st.text_input(
            "Model name or path",
            placeholder="e.g. Qwen/Qwen2.5-0.5B-Instruct or /models/my-lm",
            help="Any causal language model. The published reference uses Qwen2.5-0.5B-Instruct. "
            "Without a network it must already be on this machine.",
        )
        slots.under("model")
        st.markdown("##### Gradient sketch")
        a, b, c = st.columns(3)
        scope_kind = a.selectbox(
            "Parameters",
            ["all", "last"],
            format_func=lambda kind: SCOPES[kind],
            help="Which weights the gradient is taken with respect to. All is the published choice.",
        )
        slots.under("scope", where=a)
        last_k = b.number_input(
            "K (blocks)", min_value=1, max_value=200, value=2, help="Used with “Last K blocks”."
        )
        slots.under("last_k", where=b)
        dim = c.selectbox(
            "Dimension d",
            DIMS,
            index=DIMS.index(1024),
            help="Numbers kept per sample. 1,024 is the default.",
        )
        slots.under("dim", where=c)
        d, e, f = st.columns(3)
        seed = d.number_input(
            "Seed",
            min_value=0,
            value=0,
            step=1,
            help="The random sketch; the same seed gives the same features on any machine.",
        )
        slots.under("seed", where=d)
        batch = e.number_input(
            "Batch size",
            min_value=0,
            max_value=256,
            value=0,
            help="Samples per pass; does not change the features. 0 picks for the device: 8 on "
            "a CPU, 128 on a GPU (long samples go in fewer at a time).",
        )
        slots.under("batch_size", where=e)
        max_length = f.number_input(
            "Max length (tokens)",
            min_value=0,
            value=0,
            step=64,
            help="0 keeps every token; otherwise long samples are cut (and counted).",
        )
        slots.under("max_length", where=f)
        g, h = st.columns([1, 2])
        dtype = g.selectbox(
            "Precision", ["float32", "bfloat16"], help="bfloat16 halves memory on a GPU."
        )
        slots.under("dtype", where=g)
        name = h.text_input(
            "Workspace name",
            value=pending.get("workspace_name", ""),
            placeholder="default: the file name and a fingerprint",
            help="A folder under $PRISM_HOME/workspaces.",
        )
        slots.under("workspace", where=h)
        n_rows = int(pending.get("n_samples") or 0)
        sample = st.number_input(
            "Random sample of rows (0 = every row)",
            min_value=0,
            max_value=n_rows or None,
            value=0,
            step=100,
            help="A seeded random sample of the rows (seed 0), kept in their original order: "
            "unlike the first N rows, it is not biased by how the file is sorted.",
        )
        slots.under("sample")
        rebuild = st.checkbox(
            "Replace the features if this workspace was built with other settings (subsets are kept)"
        )
        slots.under("force")
        left, right = st.columns([1, 4], vertical_alignment="center")
        start = left.form_submit_button("Start", type="primary", icon=":material/play_arrow:")
        probe = right.form_submit_button("Estimate the run time", icon=":material/timer:")
    said = st.session_state.get(ESTIMATE)
    if said and said[0] == pending.get("source"):
        st.info(f"Estimated: {said[1]}", icon=":material/timer:")
    if not (start or probe):
        return
    model = DEFAULT_MODEL if model_kind == "embedded" else model_name.strip()
    if model_kind == "other" and not model:
        slots.show(
            PrismError(
                "Type a model name or a local folder, or choose the embedded model.", param="model"
            )
        )
        return
    try:
        config = FeatureConfig(
            model=model,
            scope="all" if scope_kind == "all" else f"last:{int(last_k)}",
            dim=int(dim),
            seed=int(seed),
            batch_size=int(batch) or None,
            max_length=int(max_length) or None,
            dtype=dtype,
        )
        columns = ColumnMap.from_dict(pending["columns"])
        dataset = data.load(
            pending["source"],
            columns,
            sample=int(sample) or None,
            encoding=pending.get("encoding"),
        )
        if probe:
            note = conversion_note(config.model)  # the first use converts the embedded model
            with st.spinner(
                f"{note[0].upper()}{note[1:]}, then timing a few rows…"
                if note
                else "Timing a few rows with the proxy model…",
                show_time=True,
            ):
                estimate = estimate_run(dataset, config)
            st.session_state[ESTIMATE] = (pending.get("source"), estimate.sentence())
            st.rerun()
        path = workspace_path(name, pending["source"], dataset.fingerprint)
        workspace = prepare_workspace(path, dataset, config, force=rebuild)
    except PrismError as error:  # shown beside the control it is about
        slots.show(error)
        return
    st.session_state.pop(ESTIMATE, None)
    if workspace.notes:
        state.flash(" ".join(workspace.notes), icon="⚠️")
    if not workspace.has_features:
        start_background(workspace.path, batch_size=int(batch) or None)
        st.session_state[GOTO_MAP] = str(workspace.path)
    st.session_state.pop(state.PENDING, None)
    state.set_workspace(workspace.path)
    st.rerun()


def workspace_path(name: str, source: str, fingerprint: str) -> Path:
    if not name.strip():
        return default_workspace_path(source, fingerprint)
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip(".-")
    if not clean:
        raise PrismError(
            "A workspace name needs letters or digits (it becomes a folder name).",
            param="workspace",
        )
    return prism_home() / "workspaces" / clean
