"""Exporting a subset: download buttons (the file, its manifest; built on click) and a write to a
path on the server, confirmed before anything is replaced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from core.errors import PrismError
from core.workspace.export import (
    FORMATS,
    download_name,
    export_bytes,
    export_columns,
    export_manifest,
    export_subset,
    manifest_path_for,
)
from core.workspace.store import Workspace
from core.workspace.subsets import named_subset
from ui import format as fmt
from ui import paths, state
from ui.errors import Slots
from ui.panels.subsets import positions
from ui.widgets import code, plain

FORMAT_LABELS = {
    "jsonl": "JSON Lines",
    "csv": "CSV",
    "parquet": "Parquet",
    "hf": "HF dataset (zip)",
}


MIME = {
    "jsonl": "application/jsonl",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "hf": "application/zip",
}


def _stem(name: str) -> str:
    return download_name(name, "hf").removesuffix(".zip")


# The two below run when a download button is clicked, on a thread of their own (no script run,
# so no streamlit caches): they read the subset afresh.


def export_file(path: str, name: str, fmt_name: str, derived: bool) -> bytes:
    """The export of subset ``name`` as bytes: the file itself, or a zip for ``hf``."""
    ws = Workspace.open(path)
    rows, how = named_subset(ws, name)
    data, _ = export_bytes(ws, rows, fmt=fmt_name, derived=derived, subset=name, how=how)
    return data


def manifest_file(path: str, name: str, fmt_name: str, derived: bool) -> bytes:
    """The manifest an export of subset ``name`` carries, as JSON bytes."""
    ws = Workspace.open(path)
    rows, how = named_subset(ws, name)
    manifest = export_manifest(ws, rows, fmt=fmt_name, derived=derived, subset=name, how=how)
    return json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")


WRITTEN = "prism_export_written"  # the message of the last write, shown once after a rerun


def _write(
    ws: Workspace, name: str, target: Path, fmt_name: str, derived: bool, force: bool
) -> None:
    result = export_subset(ws, name, fmt=fmt_name, out=target, derived=derived, force=force)
    st.session_state[WRITTEN] = (
        f"Wrote {fmt.count(result.n_rows, 'row')} to {code(result.path)} "
        f"({FORMAT_LABELS[fmt_name]}); manifest {code(result.manifest_path)}."
    )
    st.rerun()


def export_panel(ws: Workspace, name: str) -> None:
    """Download buttons (built on click) and a write to a path, for one subset."""
    rows = positions(ws).get(name, np.zeros(0, dtype=np.int64))
    fmt_name = (
        st.segmented_control(
            "Format",
            FORMATS,
            default="jsonl",
            format_func=lambda name: FORMAT_LABELS[name],
            key="export_format",
        )
        or "jsonl"
    )
    derived = st.checkbox(
        "Include Prism's columns",
        key="export_derived",
        help="Adds cluster, umap_x/umap_y, loss, gradient norm, token counts and a grown "
        "set's provenance (and Prism's id as prism_id) to the original columns. Synthetic rows "
        "carry their provenance either way.",
    )
    columns, names = export_columns(ws, derived=derived, rows=rows)
    shown = [names[c] for c in columns]
    st.caption(
        f"{fmt.count(int(rows.size), 'row')} in the original order · columns: "
        + ", ".join(code(c) for c in shown[:14])
        + (f" and {len(shown) - 14:,} more" if len(shown) > 14 else "")
        + " · the manifest records where the rows came from and how the subset was made, so "
        "`prism select --from-manifest` can rebuild it."
    )
    path = str(ws.path)
    download, manifest = st.columns(2)
    download.download_button(
        f"Download {FORMAT_LABELS[fmt_name]}",
        data=lambda: export_file(path, name, fmt_name, derived),
        file_name=download_name(name, fmt_name),
        mime=MIME[fmt_name],
        on_click="ignore",
        type="primary",
        icon=":material/download:",
        width="stretch",
        key="export_download",
    )
    manifest.download_button(
        "Download manifest (JSON)",
        data=lambda: manifest_file(path, name, fmt_name, derived),
        file_name=f"{download_name(name, fmt_name)}.manifest.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/description:",
        width="stretch",
        key="export_manifest",
    )
    write_form(ws, name, fmt_name, derived)


def write_form(ws: Workspace, name: str, fmt_name: str, derived: bool) -> None:
    allowed, note = paths.server_paths_allowed()
    default = paths.exports_folder() / (
        _stem(name) if fmt_name == "hf" else download_name(name, fmt_name)
    )
    slots = Slots()
    with st.expander("Write to a path on the server", icon=":material/save:"):
        with st.form(f"export_write_{fmt_name}", border=False):
            text = st.text_input(
                "File to write" if fmt_name != "hf" else "Folder to write",
                value=str(default),
                disabled=not allowed,
                help="The manifest goes beside it (<file>.manifest.json). An existing file is "
                "replaced only after you confirm.",
            )
            slots.under("out", "force")
            write = st.form_submit_button("Write", icon=":material/save:")
        if not allowed:
            st.caption(plain(note))
        written = st.session_state.pop(WRITTEN, None)
        if written:
            st.success(written, icon=":material/task_alt:")
        confirm_key = (str(ws.path), name, fmt_name, derived)
        if write:
            st.session_state.pop(state.EXPORT_CONFIRM, None)
            try:
                target = paths.check_target(text)
                if target.exists() or manifest_path_for(target).exists():
                    st.session_state[state.EXPORT_CONFIRM] = {
                        "key": confirm_key,
                        "target": str(target),
                    }
                else:
                    _write(ws, name, target, fmt_name, derived, force=False)
            except PrismError as error:
                slots.show(error)
        pending = st.session_state.get(state.EXPORT_CONFIRM)
        if pending and tuple(pending["key"]) == confirm_key:
            target = Path(pending["target"])
            st.warning(
                f"{code(target)} (or its manifest) already exists. Replace it?",
                icon=":material/warning:",
            )
            yes, no, _ = st.columns([1, 1, 3])
            if yes.button("Replace", type="primary", key="export_replace"):
                st.session_state.pop(state.EXPORT_CONFIRM, None)
                try:
                    _write(ws, name, target, fmt_name, derived, force=True)
                except PrismError as error:
                    slots.show(error)
            if no.button("Cancel", key="export_cancel"):
                st.session_state.pop(state.EXPORT_CONFIRM, None)
                st.rerun()
