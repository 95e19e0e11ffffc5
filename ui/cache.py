"""Cached reads and derived tables of a workspace, keyed by the files' modification times.

Everything here is shared across sessions (``st.cache_resource``) and must be treated as
read-only by callers. A workspace rewritten on disk (new clusters, a new map) gets new keys.
The tables themselves are computed in ``core/`` (``core.workspace.tables``,
``core.measures.selection``); slow ones run on the process's background pool
(``core.workspace.jobs.record.run_in_thread``, one BLAS thread meanwhile).
"""

from __future__ import annotations

import html
import os
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from core.data.columns import ColumnMap
from core.data.text import conversations, preview_text
from core.measures.curves import random_baseline
from core.measures.selection import SelectionScorer, grid_tiles
from core.workspace import tables
from core.workspace.jobs.record import run_in_thread
from core.workspace.manifest import ClustersSection
from core.workspace.store import FEATURES, MANIFEST, SUBSETS, Workspace
from core.workspace.synthesis.candidates import candidate_dir, read_candidates
from core.workspace.synthesis.loop import candidate_coords as coords
from ui import format as fmt

T = TypeVar("T")
DAMAGED = tables.DAMAGED

# Up to this many samples, derived tables (random-subset curve, cluster words, within-cluster
# Vendi) are computed while the page waits (about a second); above it a background thread
# computes them and the pages fill them in when ready.
SYNC_MAX = 3000


def mtime(path: os.PathLike[str] | str) -> float:
    """A file's modification time in ns (0 when it is missing): the version part of a cache key."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0.0


def samples_version(ws: Workspace) -> tuple[str, float]:
    """Changes with ``samples.parquet`` and with any derived column file."""
    return (str(ws.path), ws.samples_version())


def features_version(ws: Workspace) -> tuple[str, float]:
    return (str(ws.path), mtime(ws.path / FEATURES))


def manifest_version(ws: Workspace) -> float:
    return mtime(ws.path / MANIFEST)


def subsets_version(ws: Workspace) -> float:
    return mtime(ws.path / SUBSETS)


# -- samples ------------------------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def samples_at(key: tuple[str, float]) -> pd.DataFrame:
    """The samples table of one ``samples_version`` key (shared; do not modify)."""
    return Workspace.open(key[0]).samples()


def samples(ws: Workspace) -> pd.DataFrame:
    """The workspace's samples table (shared; do not modify)."""
    return samples_at(samples_version(ws))


def column_map(ws: Workspace) -> ColumnMap:
    return ColumnMap.from_dict(dict(ws.dataset.columns))


def _plain_column(frame: pd.DataFrame, columns: ColumnMap) -> pd.Series | None:
    """The prompt (or text) column when it holds plain strings: read directly, fast."""
    name = columns.prompt if columns.kind == "prompt_response" else columns.text
    if name is None or name not in frame.columns:
        return None
    return frame[name].astype("string").fillna("")


@st.cache_resource(max_entries=4, show_spinner=False)
def _previews(key: tuple[str, float], columns: tuple[tuple[str, Any], ...]) -> list[str]:
    frame, mapping = samples_at(key), ColumnMap(**dict(columns))
    plain = _plain_column(frame, mapping)
    if plain is None:  # chats: the engine knows how to find the first user turn
        return preview_text(frame, mapping, max_chars=110)
    return [fmt.shorten(text[:400], 110) for text in plain]


def previews(ws: Workspace) -> list[str]:
    """The start of each sample's prompt, one line (plain text, not escaped)."""
    return _previews(samples_version(ws), tuple(column_map(ws).to_dict().items()))


@st.cache_resource(max_entries=4, show_spinner=False)
def _hover(
    key: tuple[str, float], columns: tuple[tuple[str, Any], ...], rows: np.ndarray | None = None
) -> np.ndarray:
    frame = samples_at(key)
    texts = _previews(key, columns)
    ids = frame["id"].astype(str).to_numpy()
    cluster = frame["cluster"].to_numpy() if "cluster" in frame.columns else None
    picked = range(len(texts)) if rows is None else np.asarray(rows).tolist()
    # The hover texts travel with every redraw of the map: shorter on big maps.
    width = 80 if len(picked) <= 20_000 else 40
    out = []
    for i in picked:
        # Plotly renders a little HTML in hover labels: everything from the data is escaped.
        head = f"<b>id {html.escape(fmt.shorten(ids[i], 40))}</b>"
        if cluster is not None:
            head += f" · cluster {int(cluster[i])}"
        out.append(f"{head}<br>{html.escape(fmt.shorten(texts[i], width))}")
    return np.asarray(out, dtype=object)


def hover_texts(ws: Workspace, rows: np.ndarray | None = None) -> np.ndarray:
    """Hover labels (escaped HTML) of ``rows``, in that order (None: of every sample)."""
    return _hover(samples_version(ws), tuple(column_map(ws).to_dict().items()), rows)


def record(ws: Workspace, row: int) -> list[dict[str, str]] | str:
    """What the proxy model saw for one sample: a chat, or a plain text."""
    frame = samples(ws)
    return conversations(frame.iloc[[row]], column_map(ws))[0]


# -- features and scores ------------------------------------------------------------------------


@st.cache_resource(max_entries=2, show_spinner=False)
def scorer_at(key: tuple[str, float]) -> SelectionScorer:
    """The selection scorer of one ``features_version`` key (shared)."""
    # Memory-mapped: a million rows cost the pages a selection touches, not a copy of them all.
    return SelectionScorer(Workspace.open(key[0]).features(mmap=True))


def scorer(ws: Workspace) -> SelectionScorer:
    return scorer_at(features_version(ws))


# Each is computed once per workspace version, in the background thread; arguments are
# gathered in the page's thread (they come from other caches).
@st.cache_resource(max_entries=4, show_spinner=False)
def _curve_future(fkey: tuple[str, float]) -> Future[pd.DataFrame]:
    # The features are loaded in the worker too: the page that asks does not wait for them.
    return run_in_thread(lambda: random_baseline(scorer_at(fkey).features, seed=0))


@st.cache_resource(max_entries=4, show_spinner=False)
def _vendi_future(fkey: tuple[str, float], skey: tuple[str, float]) -> Future[dict[int, float]]:
    labels = samples_at(skey)["cluster"].to_numpy().astype(np.int64)
    return run_in_thread(lambda: tables.cluster_vendi_scores(scorer_at(fkey).features, labels))


@st.cache_resource(max_entries=4, show_spinner=False)
def _words_future(
    skey: tuple[str, float], columns: tuple[tuple[str, Any], ...], k: int
) -> Future[list[str]]:
    return run_in_thread(tables.cluster_words, samples_at(skey), ColumnMap(**dict(columns)), k)


def _result(future: Future[Any], n: int, wait: bool | None) -> Any:
    """The future's result; None while a large workspace's result is still being computed."""
    if wait is None:
        wait = n <= SYNC_MAX
    if not future.done() and not wait:
        return None
    return future.result()


def curve(ws: Workspace, *, wait: bool | None = None) -> pd.DataFrame | None:
    """G-Vendi of random subsets by size (``core.measures.curves.random_baseline``)."""
    return _result(_curve_future(features_version(ws)), ws.n_samples, wait)


def cluster_vendi(ws: Workspace, *, wait: bool | None = None) -> dict[int, float] | None:
    """Within-cluster G-Vendi of every cluster."""
    return _result(_vendi_future(features_version(ws), samples_version(ws)), ws.n_samples, wait)


def cluster_words(ws: Workspace, *, wait: bool | None = None) -> list[str] | None:
    """A short label per cluster: its three most distinctive words."""
    k = (ws.clusters or ClustersSection()).n_clusters
    future = _words_future(samples_version(ws), tuple(column_map(ws).to_dict().items()), k)
    return _result(future, ws.n_samples, wait)


def cluster_table(ws: Workspace, *, with_vendi: bool = False) -> tuple[pd.DataFrame, bool]:
    """(``core.workspace.tables.cluster_table`` of the workspace; whether parts are pending)."""
    section = ws.clusters or ClustersSection()
    scores = cluster_vendi(ws) if with_vendi else None
    words = cluster_words(ws) if section.sizes else []
    pending = words is None or (with_vendi and scores is None)
    vendi = (scores or {}) if with_vendi else None
    return tables.cluster_table(section, vendi=vendi, words=words), pending


TILE_MIN_ROWS = 20_000  # below this a selection's Gram matrix is cheap enough as it is


def _build_tiles(fkey: tuple[str, float], coords: np.ndarray) -> None:
    scorer = scorer_at(fkey)
    per_side = scorer.tiles_per_side()
    if per_side >= 2:
        scorer.build_tiles(grid_tiles(coords[:, 0], coords[:, 1], per_side))


@st.cache_resource(max_entries=4, show_spinner=False)
def _tiles_future(fkey: tuple[str, float], skey: tuple[str, float]) -> Future[None]:
    frame = samples_at(skey)
    coords = frame[["umap_x", "umap_y"]].to_numpy(dtype=np.float64)
    return run_in_thread(_build_tiles, fkey, coords)


def prefetch(ws: Workspace) -> None:
    """Start the background work the map wants before the first lasso: map tiles, baseline."""
    if ws.n_samples >= TILE_MIN_ROWS and "umap_x" in samples(ws).columns:
        _tiles_future(features_version(ws), samples_version(ws))
    _curve_future(features_version(ws))


def background_ready(ws: Workspace) -> bool:
    """Whether every background result of this workspace is in."""
    futures = [_curve_future(features_version(ws))]
    if ws.n_samples >= TILE_MIN_ROWS and "umap_x" in samples(ws).columns:
        futures.append(_tiles_future(features_version(ws), samples_version(ws)))
    if "cluster" in samples(ws).columns:
        k = (ws.clusters or ClustersSection()).n_clusters
        futures.append(
            _words_future(samples_version(ws), tuple(column_map(ws).to_dict().items()), k)
        )
        futures.append(_vendi_future(features_version(ws), samples_version(ws)))
    return all(f.done() for f in futures)


# -- synthesis candidates ---------------------------------------------------------------------------


def candidates_version(ws: Workspace) -> tuple[str, tuple[tuple[str, float], ...]]:
    """Changes with any round's candidate file (a new round, a decision by hand, a join)."""
    folder = candidate_dir(ws)
    files = sorted(folder.glob("round-*.parquet")) if folder.is_dir() else []
    return (str(ws.path), tuple((f.name, mtime(f)) for f in files))


@st.cache_resource(max_entries=4, show_spinner=False)
def _candidates(key: tuple[str, tuple[tuple[str, float], ...]]) -> pd.DataFrame:
    return read_candidates(Workspace.open(key[0]))


def candidates(ws: Workspace) -> pd.DataFrame:
    """Every synthesis candidate with its provenance (``core.workspace.synthesis.candidates``; shared)."""
    return _candidates(candidates_version(ws))


@st.cache_resource(max_entries=32, show_spinner=False)
def _candidate_coords(
    key: tuple[str, tuple[tuple[str, float], ...]], skey: tuple[str, float], round_no: int
) -> np.ndarray | None:
    return coords(Workspace.open(key[0]), round_no)


def candidate_coords(ws: Workspace, round_no: int) -> np.ndarray | None:
    """Map coordinates (M×2) of a round's candidates (``core.workspace.synthesis.loop``; shared)."""
    return _candidate_coords(candidates_version(ws), samples_version(ws), round_no)
