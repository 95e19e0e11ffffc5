"""The map page's parts: colour options, the selection from chart and tables, the side panel."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from core.workspace import Workspace
from ui import analyze, cache, state
from ui import format as fmt
from ui.charts import Colouring, map_figure
from ui.records import records
from ui.stats import event_signature, rows_from_event, selection_stats
from ui.subsetview import delete_with_undo, how_text, save_rows_form, undo_notice
from ui.widgets import PAGES, empty_state, plain

MAX_POINTS = 100_000  # Plotly's comfortable ceiling for one WebGL scatter
_NOT_COLOURS = {"id", "umap_x", "umap_y"}
_NAMED = {
    "cluster": "Cluster",
    "loss": "Loss",
    "grad_norm": "Gradient norm",
    "n_tokens": "Tokens",
    "n_response_tokens": "Response tokens",
    "truncated": "Truncated",
}


# -- colour ------------------------------------------------------------------------------------


def colour_options(frame: pd.DataFrame, content: tuple[str, ...]) -> dict[str, str | None]:
    """Label → column for every column worth colouring by (discovered, not hard-coded)."""
    options: dict[str, str | None] = {}
    for column, label in _NAMED.items():
        if column in frame.columns:
            options[label] = column
    for column in frame.columns:
        if column in _NOT_COLOURS or column in _NAMED or column in content:
            continue
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) or _few_values(series):
            options[f"Column: {column}"] = column
    options["One colour"] = None
    return options


def _few_values(series: pd.Series, limit: int = 30) -> bool:
    try:
        return 1 < series.nunique(dropna=True) <= limit
    except TypeError:  # lists or dicts in cells
        return False


def colouring(frame: pd.DataFrame, label: str, column: str | None) -> Colouring:
    if column is None:
        return Colouring("none")
    label = label.removeprefix("Column: ")
    series = frame[column]
    if column == "cluster":
        return Colouring(
            "categorical",
            label,
            series.to_numpy().astype(np.int64),
            tuple(f"cluster {c}" for c in range(int(series.max()) + 1)),
        )
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return Colouring("numeric", label, series.to_numpy(dtype=np.float64, na_value=np.nan))
    text = series.astype("string").fillna("(missing)")
    counts = text.value_counts()
    top = list(counts.index[:19])
    names = [*top, "other"] if len(counts) > len(top) else top
    code_of = {name: i for i, name in enumerate(top)}
    codes = text.map(lambda v: code_of.get(v, len(top))).to_numpy(dtype=np.int64)
    return Colouring("categorical", label, codes, tuple(str(n) for n in names))


# -- which points are drawn ---------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def _drawn_rows(key: tuple[str, float], n: int) -> np.ndarray | None:
    """Rows drawn on a map of more than MAX_POINTS samples: a sample stratified by cluster."""
    if n <= MAX_POINTS:
        return None
    frame = cache._samples(key)
    rng = np.random.default_rng(0)
    fraction = MAX_POINTS / n
    if "cluster" in frame.columns:
        groups = frame.groupby("cluster").indices.values()
    else:
        groups = [np.arange(n)]
    picked = [
        rng.choice(rows, size=max(1, int(round(len(rows) * fraction))), replace=False)
        for rows in groups
    ]
    return np.sort(np.concatenate(picked))


def drawn_rows(ws: Workspace, n: int) -> np.ndarray | None:
    return _drawn_rows(cache.samples_version(ws), n)


# -- events -> the current selection ------------------------------------------------------------


def _table_key(name: str) -> str:
    return f"{name}_{st.session_state.get(f'{name}_generation', 0)}"


def _reset_table(name: str) -> None:
    st.session_state[f"{name}_generation"] = st.session_state.get(f"{name}_generation", 0) + 1


def apply_events(ws: Workspace, frame: pd.DataFrame, drawn: np.ndarray | None) -> None:
    """Fold the last map selection and cluster-table selection into the current selection.

    Each event is acted on once (by its signature): the map's widget keeps its last value until
    the figure changes, and a selection made elsewhere must not be overwritten by it.
    """
    n = len(frame)
    event = st.session_state.get(state.MAP_CHART)
    signature = event_signature(event)
    shown = st.session_state.get(state.MAP_SHOWN) or {}
    if event is not None and signature is None and shown.get("native"):
        # The map shows Plotly's own lasso and the user cleared it there (a double click).
        state.clear_selection()
    elif signature and signature != st.session_state.get(state.MAP_EVENT):
        st.session_state[state.MAP_EVENT] = signature
        coords = (frame["umap_x"].to_numpy(), frame["umap_y"].to_numpy())
        rows = rows_from_event(event, n, coords=coords, sampled=drawn is not None)
        if rows is not None:
            selection = (event or {}).get("selection", {})
            method = (
                "lasso" if selection.get("lasso") else "box" if selection.get("box") else "points"
            )
            state.set_selection(ws, rows, {"method": method})
            _reset_table(state.CLUSTER_TABLE)
    table = st.session_state.get(_table_key(state.CLUSTER_TABLE))
    picked = ((table or {}).get("selection") or {}).get("rows") or []
    picked_sig = json.dumps(sorted(int(r) for r in picked))
    if picked and picked_sig != st.session_state.get(state.CLUSTER_PICK):
        st.session_state[state.CLUSTER_PICK] = picked_sig
        clusters = sorted(int(c) for c in picked)
        rows = np.flatnonzero(np.isin(frame["cluster"].to_numpy(), clusters))
        state.set_selection(ws, rows, {"method": "clusters", "clusters": clusters})
    elif not picked:
        st.session_state[state.CLUSTER_PICK] = None


def _coloured_by(label: str) -> str:
    if not label:
        return ""
    named = label in _NAMED.values()  # our own names read as words; data columns keep their case
    return f", coloured by {label.lower() if named else label}"


def map_chart(
    ws: Workspace,
    frame: pd.DataFrame,
    colour: Colouring,
    rows: np.ndarray | None,
    drawn: np.ndarray | None,
) -> None:
    x = frame["umap_x"].to_numpy()
    y = frame["umap_y"].to_numpy()
    hover = cache.hover_texts(ws)
    all_rows = np.arange(len(frame))
    if drawn is not None:
        x, y, hover, all_rows = x[drawn], y[drawn], hover[drawn], drawn
        if colour.values is not None:
            colour = Colouring(colour.kind, colour.label, colour.values[drawn], colour.categories)
    # After a lasso or box, Plotly already shows the selection; redrawing the same figure keeps it
    # (and spares sending the whole map again). Any other selection is drawn into the figure.
    generation = st.session_state.get(state.MAP_GENERATION, 0)
    base = (str(ws.path), cache.samples_version(ws)[1], colour.label, len(all_rows), generation)
    last = st.session_state.get(state.MAP_SHOWN) or {}
    native = (
        rows is not None
        and state.selection_how(ws).get("method") in ("lasso", "box")
        and event_signature(st.session_state.get(state.MAP_CHART)) is not None
        and event_signature(st.session_state.get(state.MAP_CHART))
        == st.session_state.get(state.MAP_EVENT)
        and last.get("base") == base
        and not last.get("selected")
    )
    selected = None
    if rows is not None and not native:
        selected = rows if drawn is None else np.flatnonzero(np.isin(drawn, rows))
    st.session_state[state.MAP_SHOWN] = {
        "base": base,
        "native": native,
        "selected": selected is not None,
    }
    shown = "" if drawn is None else f" (showing {len(drawn):,} of {len(frame):,})"
    figure = map_figure(
        x,
        y,
        all_rows,
        hover,
        colour,
        selected=selected,
        revision=generation,
        title=f"UMAP of {fmt.count(len(frame), 'sample')}{shown}{_coloured_by(colour.label)}",
    )
    st.plotly_chart(
        figure,
        key=state.MAP_CHART,
        on_select="rerun",
        selection_mode=("lasso", "box"),
        config={
            "displaylogo": False,
            "scrollZoom": True,
            "modeBarButtonsToRemove": ["autoScale2d"],
        },
        width="stretch",
    )


# -- side panel ---------------------------------------------------------------------------------


def whole_set_panel(ws: Workspace, n: int) -> None:
    clusters = ws.manifest.get("clusters", {})
    scores = ws.manifest.get("scores", {})
    st.markdown("#### Selection")
    st.info(
        "Draw a **lasso** or a **box** on the map, or pick clusters in the table below the map, "
        "to select samples. Their diversity is compared here with the whole set and with random "
        "subsets of the same size.",
        icon=":material/gesture_select:",
    )
    a, b = st.columns(2)
    a.metric("Samples", f"{n:,}")
    b.metric("G-Vendi (whole set)", fmt.score(scores.get("g_vendi")))
    if clusters:
        c, d = st.columns(2)
        c.metric("Clusters", f"{clusters.get('n_clusters', 0):,}")
        d.metric(
            "Sparse clusters",
            f"{clusters.get('n_sparse', 0):,}",
            help="Smaller than the median cluster size.",
        )


def selection_panel(ws: Workspace, frame: pd.DataFrame, rows: np.ndarray) -> None:
    n = len(frame)
    info = ws.manifest.get("clusters", {})
    labels = frame["cluster"].to_numpy() if "cluster" in frame.columns else None
    stats = selection_stats(
        cache.scorer(ws),
        rows,
        whole_g_vendi=float(ws.manifest.get("scores", {}).get("g_vendi", float("nan"))),
        curve=cache.curve(ws),
        labels=labels,
        cluster_sizes=info.get("sizes"),
    )
    how = state.selection_how(ws)
    head, button = st.columns([1.4, 1], vertical_alignment="center")
    head.markdown("#### Selection")
    if button.button("Clear", icon=":material/close:", help="Clear the selection", width="content"):
        state.clear_selection()
        _reset_table(state.CLUSTER_TABLE)
        st.rerun()
    a, b = st.columns(2)
    a.metric(
        "Selected samples",
        f"{stats.n_selected:,}",
        help=f"Selected by {how.get('method', 'hand')}.",
    )
    a.caption(f"{fmt.percent(stats.n_selected / n, digits=1)} of {fmt.count(n, 'sample')}")
    delta = None
    if stats.random_mean is not None:
        delta = f"{stats.g_vendi - stats.random_mean:+,.1f} vs random"
    b.metric(
        "G-Vendi of the selection",
        fmt.score(stats.g_vendi),
        delta=delta,
        help="Effective number of distinct gradient directions among the selected samples.",
    )
    c, d = st.columns(2)
    c.metric("Whole set", fmt.score(stats.whole_g_vendi), help="G-Vendi of every sample.")
    if stats.random_mean is None:
        d.metric("Random, same size", "…", help="The random-subset baseline is being computed.")
    else:
        d.metric(
            "Random, same size",
            fmt.score(stats.random_mean),
            help=f"Mean G-Vendi of random subsets of {stats.n_selected:,} samples "
            f"(± {stats.random_sd:,.1f} standard deviation).",
        )
    if stats.coverage is not None:
        cov = stats.coverage
        st.markdown(
            f"**Cluster coverage** {cov.n_covered:,} of {cov.n_clusters:,} clusters "
            f"({fmt.percent(cov.fraction)}) · {fmt.percent(cov.weighted)} of samples live in the "
            f"covered clusters · entropy {cov.entropy:.2f} nats"
        )
        st.progress(min(max(cov.fraction, 0.0), 1.0))
    save_rows_form(ws, rows, how, key="save_subset")
    records(ws, frame, rows)


# -- below the map ------------------------------------------------------------------------------


def cluster_picker(ws: Workspace) -> None:
    table, pending = cache.cluster_table(ws)
    table = table.rename(
        columns={"cluster": "Cluster", "size": "Samples", "sparse": "Sparse", "words": "Top words"}
    )
    st.markdown("#### Clusters")
    st.caption(
        "Click rows to select their clusters on the map (several at once with Ctrl/⌘). "
        "Sparse clusters are smaller than the median — their samples push the model in rarer directions."
    )
    st.dataframe(
        table,
        key=_table_key(state.CLUSTER_TABLE),
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        height=320,
        width="stretch",
        column_config={
            "Samples": st.column_config.ProgressColumn(
                "Samples", format="%d", min_value=0, max_value=int(table["Samples"].max() or 1)
            ),
            "Sparse": st.column_config.CheckboxColumn("Sparse"),
            "Top words": st.column_config.TextColumn("Top words", width="large"),
        },
    )
    if pending:
        st.caption("Reading the clusters' top words…")
        refresh_when_ready(str(ws.path))


@st.fragment(run_every=1.5)
def refresh_when_ready(path: str) -> None:
    """Rerun the page once the background results of this workspace are in."""
    if cache.background_ready(Workspace.open(path)):
        st.rerun(scope="app")


def subsets_list(ws: Workspace, frame: pd.DataFrame) -> None:
    subsets = ws.subsets()
    st.markdown("#### Saved subsets")
    undo_notice(ws)
    if not subsets:
        st.caption("None yet. Select samples on the map and use **Save as subset**.")
        st.page_link(
            PAGES["subsets"], label="Or make one with a selector", icon=":material/bookmarks:"
        )
        return
    listing = pd.DataFrame(
        [
            {
                "Name": name,
                "Samples": len(entry.get("ids", [])),
                "Made by": how_text(entry.get("how") or {}),
                "Created": str(entry.get("created", ""))[:16].replace("T", " "),
            }
            for name, entry in subsets.items()
        ]
    )
    st.dataframe(listing, hide_index=True, width="stretch", key="subset_listing")
    name = st.selectbox("Subset", list(subsets), key="subset_choice")
    show, drop = st.columns(2)
    if show.button("Show on map", icon=":material/visibility:", width="stretch"):
        index = pd.Index(frame["id"].astype(str))
        rows = index.get_indexer([str(i) for i in subsets[name].get("ids", [])])
        state.set_selection(ws, rows[rows >= 0], {"method": "subset", "subset": name})
        _reset_table(state.CLUSTER_TABLE)
        st.rerun()
    if drop.button("Delete", icon=":material/delete:", width="stretch"):
        delete_with_undo(ws, name)
    st.page_link(
        PAGES["subsets"], label="Export, combine and compare subsets", icon=":material/bookmarks:"
    )


# -- clusters and map still missing -------------------------------------------------------------


def build_map(ws: Workspace) -> None:
    """Start (once) and follow the background build of clusters and map."""
    status = analyze.read_status(ws.path)
    if status is None or status.get("status") == "done":  # "done" is stale when it gets here
        analyze.start(ws.path)
        status = analyze.read_status(ws.path)
    if status and status.get("status") == "failed":
        empty_state(
            "The map could not be built",
            f"{plain(status.get('message', ''))}",
        )
        if st.button("Try again", icon=":material/refresh:", type="primary"):
            analyze.start(ws.path)
            st.rerun()
        return
    _follow_build(str(ws.path))


@st.fragment(run_every=1.0)
def _follow_build(path: str) -> None:
    ws = Workspace.open(path)
    if not analyze.needs_analysis(ws):
        st.rerun(scope="app")
    status = analyze.read_status(path) or {}
    if status.get("status") == "failed":
        st.rerun(scope="app")
    with st.container(border=True):
        st.markdown("#### Building the map")
        st.markdown(
            f"Grouping {fmt.count(ws.n_samples, 'sample')} into clusters and laying them out in 2-D. "
            "This runs in the background and takes under a minute for a few thousand samples."
        )
        steps = ["clusters", "layout"]
        done = steps.index(status.get("step")) if status.get("step") in steps else 0
        st.progress(done / len(steps), text=status.get("message") or "starting…")
