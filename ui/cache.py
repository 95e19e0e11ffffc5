"""Cached reads and derived tables of a workspace, keyed by the files' modification times.

Everything here is shared across sessions (``st.cache_resource``) and must be treated as
read-only by callers. A workspace rewritten on disk (new clusters, a new map) gets new keys.
"""

from __future__ import annotations

import contextlib
import html
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.data.dataset import ColumnMap, conversations, preview_text
from core.measures.selection import SelectionScorer, grid_tiles, saturation_curve
from core.workspace.jobs import read_progress
from core.workspace.store import FEATURES, MANIFEST, SAMPLES, SUBSETS, Workspace, problems
from ui import format as fmt

# One BLAS thread per computation: the server runs a page and a background curve at once on a
# small machine, and OpenBLAS threads that outnumber free cores spin instead of working (a 0.6 s
# selection score was measured at 3-7 s that way on 2 busy cores).
with contextlib.suppress(Exception):  # threadpoolctl ships with scikit-learn
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")

# Up to this many samples, derived tables (random-subset curve, cluster words, within-cluster
# Vendi) are computed while the page waits (about a second); above it a background thread
# computes them and the pages fill them in when ready.
SYNC_MAX = 3000


def _mtime(path: os.PathLike[str] | str) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0.0


def samples_version(ws: Workspace) -> tuple[str, float]:
    return (str(ws.path), _mtime(ws.path / SAMPLES))


def features_version(ws: Workspace) -> tuple[str, float]:
    return (str(ws.path), _mtime(ws.path / FEATURES))


def manifest_version(ws: Workspace) -> float:
    return _mtime(ws.path / MANIFEST)


def subsets_version(ws: Workspace) -> float:
    return _mtime(ws.path / SUBSETS)


# -- samples ------------------------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def _samples(key: tuple[str, float]) -> pd.DataFrame:
    return Workspace.open(key[0]).samples()


def samples(ws: Workspace) -> pd.DataFrame:
    """The workspace's samples table (shared; do not modify)."""
    return _samples(samples_version(ws))


def column_map(ws: Workspace) -> ColumnMap:
    return ColumnMap.from_dict(ws.manifest.get("dataset", {}).get("columns", {}))


LABEL_CHARS = 600  # cluster words are read from the start of each sample


def _plain_column(frame: pd.DataFrame, columns: ColumnMap) -> pd.Series | None:
    """The prompt (or text) column when it holds plain strings: read directly, fast."""
    name = columns.prompt if columns.kind == "prompt_response" else columns.text
    if name is None or name not in frame.columns:
        return None
    return frame[name].astype("string").fillna("")


@st.cache_resource(max_entries=4, show_spinner=False)
def _previews(key: tuple[str, float], columns: tuple[tuple[str, Any], ...]) -> list[str]:
    frame, mapping = _samples(key), ColumnMap(**dict(columns))
    plain = _plain_column(frame, mapping)
    if plain is None:  # chats: the engine knows how to find the first user turn
        return preview_text(frame, mapping, max_chars=110)
    return [fmt.shorten(text[:400], 110) for text in plain]


def previews(ws: Workspace) -> list[str]:
    """The start of each sample's prompt, one line (plain text, not escaped)."""
    return _previews(samples_version(ws), tuple(column_map(ws).to_dict().items()))


@st.cache_resource(max_entries=4, show_spinner=False)
def _hover(key: tuple[str, float], columns: tuple[tuple[str, Any], ...]) -> np.ndarray:
    frame = _samples(key)
    texts = _previews(key, columns)
    ids = frame["id"].astype(str).to_numpy()
    cluster = frame["cluster"].to_numpy() if "cluster" in frame.columns else None
    # The hover texts travel with every redraw of the map: shorter on big maps.
    width = 80 if len(texts) <= 20_000 else 48
    out = []
    for i, text in enumerate(texts):
        # Plotly renders a little HTML in hover labels: everything from the data is escaped.
        head = f"<b>id {html.escape(fmt.shorten(ids[i], 40))}</b>"
        if cluster is not None:
            head += f" · cluster {int(cluster[i])}"
        out.append(f"{head}<br>{html.escape(fmt.shorten(text, width))}")
    return np.asarray(out, dtype=object)


def hover_texts(ws: Workspace) -> np.ndarray:
    return _hover(samples_version(ws), tuple(column_map(ws).to_dict().items()))


def record(ws: Workspace, row: int) -> list[dict[str, str]] | str:
    """What the proxy model saw for one sample: a chat, or a plain text."""
    frame = samples(ws)
    return conversations(frame.iloc[[row]], column_map(ws))[0]


# -- features and scores ------------------------------------------------------------------------


@st.cache_resource(max_entries=2, show_spinner=False)
def _scorer(key: tuple[str, float]) -> SelectionScorer:
    return SelectionScorer(Workspace.open(key[0]).features(mmap=False))


def scorer(ws: Workspace) -> SelectionScorer:
    return _scorer(features_version(ws))


@st.cache_resource(show_spinner=False)
def _executor() -> ThreadPoolExecutor:
    # One worker: background work shares the machine's cores with the page being served.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="prism-background")


def _cluster_vendi_of(scorer: SelectionScorer, labels: np.ndarray) -> dict[int, float]:
    from core.measures.vendi import cluster_vendi as vendi_per_cluster

    scores = vendi_per_cluster(scorer.features, labels, qs=(1.0,))
    return {c: v[1.0] for c, v in scores.items()}


def _words_of(frame: pd.DataFrame, mapping: ColumnMap, k: int) -> list[str]:
    from core.measures.words import top_words

    if mapping.kind == "prompt_response":
        both = (
            frame[mapping.prompt].astype("string").fillna("")
            + " "
            + frame[mapping.response].astype("string").fillna("")
        )
        texts = both.str.slice(0, LABEL_CHARS).tolist()
    elif mapping.kind == "text":
        texts = frame[mapping.text].astype("string").fillna("").str.slice(0, LABEL_CHARS).tolist()
    else:
        chats = conversations(frame, mapping)
        texts = [" ".join(m["content"] for m in c)[:LABEL_CHARS] for c in chats]
    words = top_words(texts, frame["cluster"].to_numpy(), n_clusters=k, n_words=3)
    return [", ".join(w) for w in words]


# Each is computed once per workspace version, in the background thread; arguments are
# gathered in the page's thread (they come from other caches).
@st.cache_resource(max_entries=4, show_spinner=False)
def _curve_future(fkey: tuple[str, float]) -> Future[pd.DataFrame]:
    # The features are loaded in the worker too: the page that asks does not wait for them.
    return _executor().submit(lambda: saturation_curve(_scorer(fkey), seed=0))


@st.cache_resource(max_entries=4, show_spinner=False)
def _vendi_future(fkey: tuple[str, float], skey: tuple[str, float]) -> Future[dict[int, float]]:
    labels = _samples(skey)["cluster"].to_numpy().astype(np.int64)
    return _executor().submit(lambda: _cluster_vendi_of(_scorer(fkey), labels))


@st.cache_resource(max_entries=4, show_spinner=False)
def _words_future(
    skey: tuple[str, float], columns: tuple[tuple[str, Any], ...], k: int
) -> Future[list[str]]:
    return _executor().submit(_words_of, _samples(skey), ColumnMap(**dict(columns)), k)


def _result(future: Future[Any], n: int, wait: bool | None) -> Any:
    """The future's result; None while a large workspace's result is still being computed."""
    if wait is None:
        wait = n <= SYNC_MAX
    if not future.done() and not wait:
        return None
    return future.result()


def curve(ws: Workspace, *, wait: bool | None = None) -> pd.DataFrame | None:
    """G-Vendi of random subsets by size (core.measures.selection.saturation_curve)."""
    return _result(_curve_future(features_version(ws)), ws.n_samples, wait)


def cluster_vendi(ws: Workspace, *, wait: bool | None = None) -> dict[int, float] | None:
    """Within-cluster G-Vendi of every cluster."""
    return _result(_vendi_future(features_version(ws), samples_version(ws)), ws.n_samples, wait)


def cluster_words(ws: Workspace, *, wait: bool | None = None) -> list[str] | None:
    """A short label per cluster: its three most distinctive words."""
    k = int(ws.manifest.get("clusters", {}).get("n_clusters", 0))
    future = _words_future(samples_version(ws), tuple(column_map(ws).to_dict().items()), k)
    return _result(future, ws.n_samples, wait)


def cluster_table(ws: Workspace, *, with_vendi: bool = False) -> tuple[pd.DataFrame, bool]:
    """(one row per cluster: cluster, size, sparse, [vendi], words; whether parts are pending)."""
    info = ws.manifest.get("clusters", {})
    sizes = info.get("sizes", [])
    sparse = set(info.get("sparse", []))
    k = len(sizes)
    table = pd.DataFrame(
        {
            "cluster": np.arange(k, dtype=np.int64),
            "size": np.asarray(sizes, dtype=np.int64),
            "sparse": [c in sparse for c in range(k)],
        }
    )
    pending = False
    if with_vendi:
        scores = cluster_vendi(ws)
        pending |= scores is None
        table["vendi"] = [(scores or {}).get(c, float("nan")) for c in range(k)]
    words = cluster_words(ws) if k else []
    pending |= words is None
    table["words"] = words if words is not None else ["…"] * k
    return table, pending


TILE_MIN_ROWS = 20_000  # below this a selection's Gram matrix is cheap enough as it is


def _build_tiles(fkey: tuple[str, float], coords: np.ndarray) -> None:
    scorer = _scorer(fkey)
    per_side = scorer.tiles_per_side()
    if per_side >= 2:
        scorer.build_tiles(grid_tiles(coords[:, 0], coords[:, 1], per_side))


@st.cache_resource(max_entries=4, show_spinner=False)
def _tiles_future(fkey: tuple[str, float], skey: tuple[str, float]) -> Future[None]:
    frame = _samples(skey)
    coords = frame[["umap_x", "umap_y"]].to_numpy(dtype=np.float64)
    return _executor().submit(_build_tiles, fkey, coords)


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
        k = int(ws.manifest.get("clusters", {}).get("n_clusters", 0))
        futures.append(
            _words_future(samples_version(ws), tuple(column_map(ws).to_dict().items()), k)
        )
        futures.append(_vendi_future(features_version(ws), samples_version(ws)))
    return all(f.done() for f in futures)


# -- helpers for pages ---------------------------------------------------------------------------


JOB_WORDS = {
    "running": "computing features",
    "failed": "stopped by an error",
    "cancelled": "stopped",
    "done": "ready",
}


DAMAGED = "damaged"


def workspace_summaries(paths: list[os.PathLike[str] | str]) -> pd.DataFrame:
    """A row per workspace for the pickers: name, source, rows, status, G-Vendi, updated.

    A damaged workspace has the status ``DAMAGED`` and, under ``problems``, what is wrong with
    which file and the command that rebuilds it (``core.workspace.store.problems``).
    """
    rows = []
    for path in paths:
        ws: Workspace | None = None
        try:
            found = problems(path)
            ws = None if found else Workspace.open(path)
        except Exception as error:  # a broken workspace is listed, never fatal
            found = [f"{path} cannot be read ({type(error).__name__}: {error})."]
        if ws is None or found:
            rows.append(
                {
                    "path": str(path),
                    "name": os.path.basename(str(path)),
                    "status": DAMAGED,
                    "problems": "\n".join(found),
                }
            )
            continue
        manifest = ws.manifest
        features = manifest.get("features", {})
        status = "ready" if ws.has_features else features.get("status", "pending")
        if ws.has_features and "layout" not in manifest:
            status = "features only"
        if not ws.has_features:
            progress = read_progress(ws.path)
            if progress is not None:
                status = JOB_WORDS.get(progress.status, progress.status)
                if progress.status == "running":
                    status += f" ({progress.done:,} of {progress.total:,})"
        rows.append(
            {
                "path": str(ws.path),
                "name": ws.name,
                "source": manifest.get("dataset", {}).get("source", ""),
                "rows": ws.n_samples,
                "model": features.get("settings", {}).get("model", ""),
                "status": status,
                "g_vendi": manifest.get("scores", {}).get("g_vendi"),
                "updated": manifest.get("updated", manifest.get("created", "")),
                "problems": "",
            }
        )
    return pd.DataFrame(rows)
