"""The map page's parts: colour options, the selection from chart and tables, the side panel."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from core.measures.selection import event_signature, rows_from_event, selection_stats
from core.workspace import analysis_job as analyze
from core.workspace.store import Workspace
from ui import cache, explain, state
from ui import format as fmt
from ui.charts import Colouring, map_figure
from ui.records import records
from ui.subsetview import delete_with_undo, how_text, save_rows_form, undo_notice
from ui.widgets import PAGES, empty_state, plain

MAX_POINTS = 100_000  # Plotly's comfortable ceiling for one WebGL scatter
TEXT_SCORE_LIMIT = 5_000  # selections scored in text space live (n-gram Vendi is exact below 2,048)
_NOT_COLOURS = {"id", "umap_x", "umap_y", "emb_umap_x", "emb_umap_y"}
_NAMED = {
    "cluster": "Cluster",
    "nbr_agreement": "Neighbourhood agreement (gradient vs text)",
    "emb_cluster": "Text cluster",
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
    if column in ("cluster", "emb_cluster"):
        return Colouring(
            "categorical",
            label,
            series.to_numpy().astype(np.int64),
            tuple(
                f"{'text ' if column == 'emb_cluster' else ''}cluster {c}"
                for c in range(int(series.max()) + 1)
            ),
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


# -- the two spaces ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """One map: gradient space (the features) or text space (sentence embeddings)."""

    name: str
    x: str
    y: str
    title: str

    @property
    def chart_key(self) -> str:
        return state.MAP_CHART if self.name == "gradient" else f"{state.MAP_CHART}_{self.name}"

    @property
    def event_key(self) -> str:
        return state.MAP_EVENT if self.name == "gradient" else f"{state.MAP_EVENT}_{self.name}"

    @property
    def shown_key(self) -> str:
        return state.MAP_SHOWN if self.name == "gradient" else f"{state.MAP_SHOWN}_{self.name}"


GRADIENT = Space("gradient", "umap_x", "umap_y", "Gradient space")
TEXT = Space("text", "emb_umap_x", "emb_umap_y", "Text space")
_VIEWS = {"Gradient space": (GRADIENT,), "Text space": (TEXT,), "Side by side": (GRADIENT, TEXT)}


def map_views(frame: pd.DataFrame) -> list[str]:
    """The views this workspace can show: text space needs `prism embed`."""
    if TEXT.x in frame.columns and TEXT.y in frame.columns:
        return list(_VIEWS)
    return ["Gradient space"]


def view_spaces(view: str) -> tuple[Space, ...]:
    return _VIEWS.get(view, (GRADIENT,))


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


def apply_events(
    ws: Workspace,
    frame: pd.DataFrame,
    drawn: np.ndarray | None,
    spaces: tuple[Space, ...] = (GRADIENT,),
) -> None:
    """Fold the last map selections and cluster-table selection into the current selection.

    Each event is acted on once (by its signature): a map's widget keeps its last value until
    the figure changes, and a selection made elsewhere (or on the other map) must not be
    overwritten by it.
    """
    n = len(frame)
    for space in spaces:
        event = st.session_state.get(space.chart_key)
        signature = event_signature(event)
        shown = st.session_state.get(space.shown_key) or {}
        if event is not None and signature is None and shown.get("native"):
            # The map shows Plotly's own lasso and the user cleared it there (a double click).
            state.clear_selection()
        elif signature and signature != st.session_state.get(space.event_key):
            st.session_state[space.event_key] = signature
            coords = (frame[space.x].to_numpy(), frame[space.y].to_numpy())
            rows = rows_from_event(event, n, coords=coords, sampled=drawn is not None)
            if rows is not None:
                selection = (event or {}).get("selection", {})
                method = (
                    "lasso"
                    if selection.get("lasso")
                    else "box"
                    if selection.get("box")
                    else "points"
                )
                how = (
                    {"method": method}
                    if space is GRADIENT
                    else {"method": method, "space": space.name}
                )
                state.set_selection(ws, rows, how)
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
    space: Space = GRADIENT,
    *,
    height: int = 600,
) -> None:
    x = frame[space.x].to_numpy()
    y = frame[space.y].to_numpy()
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
    last = st.session_state.get(space.shown_key) or {}
    how = state.selection_how(ws)
    signature = event_signature(st.session_state.get(space.chart_key))
    native = (
        rows is not None
        and how.get("method") in ("lasso", "box")
        and how.get("space", GRADIENT.name) == space.name  # drawn on this very map
        and signature is not None
        and signature == st.session_state.get(space.event_key)
        and last.get("base") == base
        and not last.get("selected")
    )
    selected = None
    if rows is not None and not native:
        selected = rows if drawn is None else np.flatnonzero(np.isin(drawn, rows))
    st.session_state[space.shown_key] = {
        "base": base,
        "native": native,
        "selected": selected is not None,
    }
    shown = "" if drawn is None else f" (showing {len(drawn):,} of {len(frame):,})"
    prefix = "UMAP" if space is GRADIENT else f"{space.title}: UMAP"
    figure = map_figure(
        x,
        y,
        all_rows,
        hover,
        colour,
        selected=selected,
        revision=generation,
        title=(f"{prefix} of {fmt.count(len(frame), 'sample')}{shown}{_coloured_by(colour.label)}"),
        height=height,
    )
    st.plotly_chart(
        figure,
        key=space.chart_key,
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
    if ws.has_embeddings:
        selection_text_scores(ws, rows)
    save_rows_form(ws, rows, how, key="save_subset")
    records(ws, frame, rows)


def selection_text_scores(ws: Workspace, rows: np.ndarray) -> None:
    """The text-space measures of the selection, beside its G-Vendi."""
    from ui.compareview import cached_text_scores

    if len(rows) > TEXT_SCORE_LIMIT:
        st.caption(
            f"Text-space measures are shown for selections of up to {TEXT_SCORE_LIMIT:,} samples "
            "here; save the selection and open Compare for larger ones."
        )
        return
    scores = cached_text_scores(ws, np.asarray(rows, dtype=np.int64))
    distinct = scores.get("distinct_2")
    st.markdown(
        f"**Text space** · embedding Vendi {fmt.score(scores.get('embedding_vendi'))} · "
        f"n-gram Vendi {fmt.score(scores.get('ngram_vendi'))} · distinct-2 "
        f"{'–' if distinct is None else f'{distinct:.3f}'}",
        help=" \n\n".join(
            f"**{name}**: {explain.MEASURES[name]}"
            for name in ("Embedding Vendi", "n-gram Vendi", "distinct-2")
        ),
    )


def text_space_summary(ws: Workspace, frame: pd.DataFrame) -> None:
    """Whole-set numbers of the two spaces and how far their neighbourhoods agree."""
    section = ws.manifest.get("embedding") or {}
    lexical = ws.manifest.get("lexical") or {}
    near = section.get("neighbours") or {}
    st.markdown("#### Gradient space beside text space")
    a, b, c, d = st.columns(4)
    a.metric(
        "G-Vendi",
        fmt.score(ws.manifest.get("scores", {}).get("g_vendi")),
        help=explain.MEASURES["G-Vendi"],
    )
    b.metric(
        "Embedding Vendi",
        fmt.score(section.get("embedding_vendi")),
        help=explain.MEASURES["Embedding Vendi"],
    )
    c.metric(
        "n-gram Vendi", fmt.score(lexical.get("ngram_vendi")), help=explain.MEASURES["n-gram Vendi"]
    )
    distinct = lexical.get("distinct_2")
    d.metric(
        "distinct-2",
        "–" if distinct is None else f"{distinct:.3f}",
        help=explain.MEASURES["distinct-2"],
    )
    if near:
        ratio = near["mean_agreement"] / near["chance"] if near.get("chance") else float("nan")
        st.caption(
            f"Of each sample's {near['k']} nearest neighbours, on average "
            f"{fmt.percent(near['mean_agreement'], digits=1)} are the same in both spaces "
            f"({ratio:.1f}× the {fmt.percent(near['chance'], digits=2)} of chance); the rank "
            f"correlation of pairwise similarities is ρ = {near['rank_correlation']:.2f}. "
            "Colour by *Neighbourhood agreement* to find samples that read alike but teach the "
            "model different things."
        )


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
