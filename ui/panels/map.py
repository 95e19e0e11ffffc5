"""The map: what colours it (columns discovered through ``core.workspace.schema``), the two
spaces (gradient, text), which points a big map draws, and lasso/box/cluster-table events
turned into the current selection.

A map of more than ``max_points()`` samples draws a density-preserving seeded sample
(``core.measures.regions.density_sample``) and resolves a lasso or box on the server against every
sample's coordinates, drawn or not (``core.measures.regions.rows_in_shapes``).
``PRISM_MAP_MAX_POINTS`` lowers or raises the number drawn."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.errors import PrismError
from core.measures.regions import PointIndex, density_sample
from core.workspace import schema
from core.workspace.jobs import analysis as analyze
from core.workspace.store import Workspace
from ui import cache, explain, state
from ui import format as fmt
from ui.charts import Colouring, map_figure
from ui.events import event_signature, rows_from_event
from ui.panels import clusters, jobs, selection, subsets, textspace

# Points drawn at most: the figure then stays under about 4 MB (bench/app_scale.py), well inside
# what Plotly's WebGL scatter draws smoothly (~100k).
MAX_POINTS = 40_000
MAX_POINTS_ENV = "PRISM_MAP_MAX_POINTS"


def max_points() -> int:
    """How many points a map draws at most: ``$PRISM_MAP_MAX_POINTS``, else ``MAX_POINTS``."""
    text = os.environ.get(MAX_POINTS_ENV, "").strip()
    if not text:
        return MAX_POINTS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise PrismError(
            f"{MAX_POINTS_ENV} must be a positive whole number of points; got {text!r}. "
            "Unset it to draw the default sample.",
            param="max_points",
        )
    return value


_NOT_COLOURS = {"id", *schema.COORDINATE_COLUMNS}


# -- colour ------------------------------------------------------------------------------------


def colour_options(frame: pd.DataFrame, content: tuple[str, ...]) -> dict[str, str | None]:
    """Label → column for every column worth colouring by (discovered, not hard-coded)."""
    named = schema.colour_columns()
    options: dict[str, str | None] = {}
    for column, label in named.items():
        if column in frame.columns:
            options[label] = column
    for column in frame.columns:
        if column in _NOT_COLOURS or column in schema.COLUMNS or column in content:
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


@st.cache_resource(max_entries=4, show_spinner=False)
def _colour_options(key: tuple[str, float], content: tuple[str, ...]) -> dict[str, str | None]:
    return colour_options(cache.samples_at(key), content)


def colouring(
    frame: pd.DataFrame, label: str, column: str | None, rows: np.ndarray | None = None
) -> Colouring:
    """How the drawn points are coloured: ``rows`` are the drawn rows (None: all of them)."""
    if column is None:
        return Colouring("none")
    label = label.removeprefix("Column: ")
    series = frame[column] if rows is None else frame[column].iloc[rows]
    if column in ("cluster", "emb_cluster"):
        return Colouring(
            "categorical",
            label,
            series.to_numpy().astype(np.int64),
            tuple(
                f"{'text ' if column == 'emb_cluster' else ''}cluster {c}"
                for c in range(int(frame[column].max()) + 1)
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

    @classmethod
    def of(cls, space: schema.Space) -> Space:
        return cls(space.key, space.x, space.y, space.title)

    @property
    def chart_key(self) -> str:
        return state.MAP_CHART if self.name == "gradient" else f"{state.MAP_CHART}_{self.name}"

    @property
    def event_key(self) -> str:
        return state.MAP_EVENT if self.name == "gradient" else f"{state.MAP_EVENT}_{self.name}"

    @property
    def shown_key(self) -> str:
        return state.MAP_SHOWN if self.name == "gradient" else f"{state.MAP_SHOWN}_{self.name}"


GRADIENT = Space.of(schema.COORDINATES["gradient"])
TEXT = Space.of(schema.COORDINATES["text"])


_VIEWS = {"Gradient space": (GRADIENT,), "Text space": (TEXT,), "Side by side": (GRADIENT, TEXT)}


def map_views(frame: pd.DataFrame) -> list[str]:
    """The views this workspace can show: text space needs its embeddings (``prism embed``)."""
    if TEXT.x in frame.columns and TEXT.y in frame.columns:
        return list(_VIEWS)
    return ["Gradient space"]


def view_spaces(view: str) -> tuple[Space, ...]:
    return _VIEWS.get(view, (GRADIENT,))


# -- which points are drawn ---------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def _drawn_rows(key: tuple[str, float], n: int, limit: int) -> np.ndarray | None:
    if n <= limit:
        return None
    frame = cache.samples_at(key)
    return density_sample(frame[GRADIENT.x].to_numpy(), frame[GRADIENT.y].to_numpy(), limit, seed=0)


def drawn_rows(ws: Workspace, n: int) -> np.ndarray | None:
    """Rows drawn on a map of more than ``max_points()`` samples (the same on both spaces'
    maps): a seeded sample stratified on a grid over the gradient-space map; None: all drawn."""
    return _drawn_rows(cache.samples_version(ws), n, max_points())


@st.cache_resource(max_entries=4, show_spinner=False)
def _point_index(key: tuple[str, float], x: str, y: str) -> PointIndex:
    frame = cache.samples_at(key)
    return PointIndex(frame[x].to_numpy(), frame[y].to_numpy())


def point_index(ws: Workspace, space: Space) -> PointIndex:
    """Every sample's coordinates on ``space``'s map, indexed for lasso and box tests."""
    return _point_index(cache.samples_version(ws), space.x, space.y)


# -- events -> the current selection ------------------------------------------------------------


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
            sampled = drawn is not None
            points = point_index(ws, space) if sampled else None
            rows = rows_from_event(event, n, coords=points, sampled=sampled)
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
                state.reset_table(state.CLUSTER_TABLE)
    table = st.session_state.get(state.table_key(state.CLUSTER_TABLE))
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
    named = (
        label in schema.colour_columns().values()
    )  # our names read as words; data columns keep their case
    return f", coloured by {label.lower() if named else label}"


def drawn_figure(
    ws: Workspace,
    frame: pd.DataFrame,
    colour: Colouring,
    drawn: np.ndarray | None,
    space: Space = GRADIENT,
    *,
    selected_rows: np.ndarray | None = None,
    revision: int = 0,
    height: int = 600,
) -> go.Figure:
    """The map's figure: every point, or only the ``drawn`` rows (``colour`` is of those);
    ``selected_rows`` (row numbers) are drawn as selected, the others dimmed."""
    x = frame[space.x].to_numpy()
    y = frame[space.y].to_numpy()
    hover = cache.hover_texts(ws, drawn)  # of the drawn rows only
    all_rows = np.arange(len(frame))
    selected = selected_rows
    if drawn is not None:
        x, y, all_rows = x[drawn], y[drawn], drawn
        if selected_rows is not None:
            selected = np.flatnonzero(np.isin(drawn, selected_rows, assume_unique=True))
    shown = "" if drawn is None else f" (showing {len(drawn):,} of {len(frame):,})"
    prefix = "UMAP" if space is GRADIENT else f"{space.title}: UMAP"
    return map_figure(
        x,
        y,
        all_rows,
        hover,
        colour,
        selected=selected,
        revision=revision,
        title=(f"{prefix} of {fmt.count(len(frame), 'sample')}{shown}{_coloured_by(colour.label)}"),
        height=height,
    )


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
    # After a lasso or box, Plotly already shows the selection; redrawing the same figure keeps it
    # (and spares sending the whole map again). Any other selection is drawn into the figure.
    generation = st.session_state.get(state.MAP_GENERATION, 0)
    n_drawn = len(frame) if drawn is None else len(drawn)
    base = (str(ws.path), cache.samples_version(ws)[1], colour.label, n_drawn, generation)
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
    selected_rows = rows if rows is not None and not native else None
    st.session_state[space.shown_key] = {
        "base": base,
        "native": native,
        "selected": selected_rows is not None,
    }
    figure = drawn_figure(
        ws,
        frame,
        colour,
        drawn,
        space,
        selected_rows=selected_rows,
        revision=generation,
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
    if drawn is not None:
        st.caption(
            f"Drawing {len(drawn):,} of {fmt.count(len(frame), 'sample')}: a seeded sample that "
            "keeps each region's density and every isolated point. A lasso or box selects "
            "every sample inside it, drawn or not."
        )


# -- the page -------------------------------------------------------------------------------------


def map_page(ws: Workspace) -> None:
    """The map (or two, side by side) with its colour and space controls, the cluster table under
    it, and beside it the selection (or the whole set) and the saved subsets."""
    if analyze.needs_analysis(ws):
        jobs.build_map(ws)
        st.stop()
    frame = cache.samples(ws)
    cache.prefetch(ws)  # the random-subset baseline, ready before the first lasso
    drawn = drawn_rows(ws, len(frame))
    views = map_views(frame)
    view = views[0]
    options = _colour_options(cache.samples_version(ws), cache.column_map(ws).content_columns)
    labels = list(options)
    pick, space_pick, note = st.columns([1, 1.25, 1.35], vertical_alignment="bottom")
    label = pick.selectbox("Colour by", labels, index=0, key=f"{state.COLOR_BY}_{ws.name}")
    if len(views) > 1:
        view = (
            space_pick.segmented_control(
                "Space",
                views,
                default=views[0],
                key=f"prism_map_view_{ws.name}",
                help="Gradient space places samples by what they teach the model; text space by "
                "what they say (sentence embeddings). Side by side, a selection on one map is "
                "highlighted on the other.",
            )
            or views[0]
        )
    else:
        textspace.text_space_job(ws, key="map", place=space_pick)
    note.caption(
        f"**{ws.name}** · {fmt.count(len(frame), 'sample')} · "
        f"G-Vendi {fmt.score(ws.g_vendi)} · "
        "hover a point to read its prompt; drag to lasso, double-click to zoom out"
    )
    spaces = view_spaces(view)
    apply_events(ws, frame, drawn, spaces)
    rows = state.selection_rows(ws, len(frame))
    colour = colouring(frame, label, options.get(label), drawn)

    if len(spaces) == 1:
        left, right = st.columns([0.62, 0.38], gap="large")
        with left:
            map_chart(ws, frame, colour, rows, drawn, spaces[0])
            if "cluster" in frame.columns:
                clusters.cluster_picker(ws)
    else:
        for column, space in zip(st.columns(2, gap="medium"), spaces, strict=True):
            with column:
                map_chart(ws, frame, colour, rows, drawn, space, height=520)
        left, right = st.columns([0.62, 0.38], gap="large")
        with left:
            textspace.text_space_summary(ws, frame)
            if "cluster" in frame.columns:
                clusters.cluster_picker(ws)
    with right:
        if rows is None:
            selection.whole_set_panel(ws, len(frame))
        else:
            selection.selection_panel(ws, frame, rows)
        st.divider()
        subsets.subsets_list(ws, frame)
    if len(views) > 1:
        explain.measures_help()
