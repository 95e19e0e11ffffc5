"""Tables of a workspace as the app lists them: clusters (size, sparse, within-cluster Vendi,
top words) and workspaces (name, source, rows, status, G-Vendi); the rows a big map draws are
``core.measures.regions.density_sample``.

DataFrames in, DataFrames out; no streamlit here (``ui/cache.py`` caches these per version of
the workspace's files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.data.columns import ColumnMap
from core.data.text import conversations
from core.measures.vendi import cluster_vendi
from core.measures.words import top_words
from core.workspace.jobs.record import read_progress
from core.workspace.manifest import ClustersSection
from core.workspace.store import Workspace, problems

LABEL_CHARS = 600  # cluster words are read from the start of each sample
N_WORDS = 3  # words per cluster label

# -- clusters -------------------------------------------------------------------------------------


def cluster_word_texts(frame: pd.DataFrame, columns: ColumnMap) -> list[str]:
    """The text each sample's words are read from: the start of its prompt and response, chat or
    plain text (LABEL_CHARS characters)."""
    if columns.kind == "prompt_response":
        both = (
            frame[columns.prompt].astype("string").fillna("")
            + " "
            + frame[columns.response].astype("string").fillna("")
        )
        return [str(t) for t in both.str.slice(0, LABEL_CHARS).tolist()]
    if columns.kind == "text":
        text = frame[columns.text].astype("string").fillna("")
        return [str(t) for t in text.str.slice(0, LABEL_CHARS).tolist()]
    chats = conversations(frame, columns)
    return [
        (c if isinstance(c, str) else " ".join(m["content"] for m in c))[:LABEL_CHARS]
        for c in chats
    ]


def cluster_words(frame: pd.DataFrame, columns: ColumnMap, n_clusters: int) -> list[str]:
    """A short label per cluster: its N_WORDS most distinctive words, comma-separated.

    ``frame`` holds the samples with their ``cluster`` column.
    """
    texts = cluster_word_texts(frame, columns)
    words = top_words(texts, frame["cluster"].to_numpy(), n_clusters=n_clusters, n_words=N_WORDS)
    return [", ".join(w) for w in words]


def cluster_vendi_scores(features: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Within-cluster G-Vendi (q = 1) of every cluster: {cluster: score}."""
    scores = cluster_vendi(features, np.asarray(labels, dtype=np.int64), qs=(1.0,))
    return {int(c): float(v[1.0]) for c, v in scores.items()}


def cluster_table(
    clusters: ClustersSection,
    *,
    vendi: Mapping[int, float] | None = None,
    words: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per cluster: cluster, size, sparse, [vendi], words.

    ``clusters`` is the manifest's clusters section (its ``sizes`` and ``sparse``); a missing
    ``vendi`` leaves that column out, missing ``words`` read "…" (still being computed).
    """
    sizes = list(clusters.sizes)
    sparse = set(clusters.sparse)
    n_clusters = len(sizes)
    table = pd.DataFrame(
        {
            "cluster": np.arange(n_clusters, dtype=np.int64),
            "size": np.asarray(sizes, dtype=np.int64),
            "sparse": [c in sparse for c in range(n_clusters)],
        }
    )
    if vendi is not None:
        table["vendi"] = [vendi.get(c, float("nan")) for c in range(n_clusters)]
    table["words"] = list(words) if words is not None else ["…"] * n_clusters
    return table


# -- workspaces -----------------------------------------------------------------------------------

DAMAGED = "damaged"  # the status of a workspace whose files cannot be read as they are
JOB_WORDS = {
    "running": "computing features",
    "failed": "stopped by an error",
    "cancelled": "stopped",
    "done": "ready",
}


def _status(ws: Workspace) -> str:
    """Where a workspace stands, in words: ready, features only, computing features (x of y)…"""
    features = ws.feature_section
    if ws.has_features:
        return "ready" if ws.layout is not None else "features only"
    status = features.status if features is not None else "pending"
    progress = read_progress(ws.path)
    if progress is not None:
        status = JOB_WORDS.get(progress.status, progress.status)
        if progress.status == "running":
            status += f" ({progress.done:,} of {progress.total:,})"
    return status


def workspace_summaries(paths: Sequence[os.PathLike[str] | str]) -> pd.DataFrame:
    """A row per workspace: path, name, source, rows, model, status, g_vendi, updated, problems.

    A damaged workspace has the status ``DAMAGED`` and, under ``problems``, what is wrong with
    which file and the command that rebuilds it (``core.workspace.store.problems``); it is
    listed, never fatal.
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
        features, scores = ws.feature_section, ws.scores
        row: dict[str, Any] = {
            "path": str(ws.path),
            "name": ws.name,
            "source": ws.dataset.source or "",
            "rows": ws.n_samples,
            "model": (features.settings.get("model", "") if features else "") or "",
            "status": _status(ws),
            "g_vendi": scores.g_vendi if scores else None,
            "updated": ws.updated,
            "problems": "",
        }
        rows.append(row)
    return pd.DataFrame(rows)
