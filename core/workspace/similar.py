"""Find similar rows: the nearest rows of a workspace in gradient space to a row, a set of rows'
centroid, or pasted text.

Up to ``EXACT_MAX_ROWS`` rows the query is compared with every row of the memory-mapped
features (exact, ``nearest_in_pool``). Above it, one faiss inner-product index per workspace and
feature version (``core.measures.neighbour_index``) is built on first use, stored in
``index/features.faiss`` with a record of the features it was built from (``index/features.json``:
size and modification time of ``features.npy``, rows, dim, when extraction completed), read back
memory-mapped, and rebuilt when the features change. Pasted text gets its features on the fly
with the workspace's own proxy, scope, dim and seed (one forward and backward pass); a workspace
of imported features has no proxy, so it can only be queried by rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.columns import ColumnMap
from core.errors import PrismError
from core.measures.neighbour_index import (
    EXACT_MAX_ROWS,
    build_index,
    read_index,
    search_index,
    write_index,
)
from core.measures.neighbours import nearest_in_pool
from core.validate import check_indices, check_int
from core.workspace.files import atomic_path, now, write_json
from core.workspace.store import Workspace

INDEX_FILE = "features.faiss"
INDEX_RECORD = "features.json"
N_NEIGHBORS_DEFAULT = 50


@dataclass(frozen=True)
class Similar:
    """Nearest rows of one query: ``rows`` (int64) and their ``cosines`` (float32), best first;
    ``query`` says what was asked, ``exact`` whether every row was compared, ``built_index``
    whether this call built (or rebuilt) the index, ``seconds`` how long the search took."""

    rows: np.ndarray
    cosines: np.ndarray
    query: str
    exact: bool
    built_index: bool = False
    seconds: float = 0.0


def feature_version(workspace: Workspace) -> dict[str, Any]:
    """What identifies the features an index was built from."""
    stat = workspace.features_path.stat()
    section = workspace.feature_section
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "n": workspace.n_samples,
        "dim": None if section is None else section.dim,
        "completed": None if section is None else section.completed,
    }


def index_is_current(workspace: Workspace) -> bool:
    """True when the stored index was built from the workspace's current features."""
    folder = workspace.index_dir
    try:
        record = json.loads((folder / INDEX_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (folder / INDEX_FILE).is_file() or not workspace.has_features:
        return False
    return bool(
        isinstance(record, dict)
        and record.get("features") == feature_version(workspace)
        and record.get("bytes") == (folder / INDEX_FILE).stat().st_size
    )


def neighbour_index(workspace: Workspace, *, seed: int = 0) -> tuple[Any, bool]:
    """(the workspace's index, whether this call built it): read when current, else built from
    the features and stored (the record written last, so a killed build leaves no index that
    looks current)."""
    if index_is_current(workspace):
        return read_index(workspace.index_dir / INDEX_FILE), False
    version = feature_version(workspace)
    started = time.monotonic()
    index = build_index(workspace.features(), seed=seed)
    target = workspace.index_dir / INDEX_FILE
    with workspace.lock():
        (workspace.index_dir / INDEX_RECORD).unlink(missing_ok=True)
        with atomic_path(target) as tmp:
            write_index(index, tmp)
        record = {
            "features": version,
            "bytes": target.stat().st_size,
            "n_lists": int(index.nlist),
            "seed": int(seed),
            "built": now(),
            "seconds": round(time.monotonic() - started, 2),
        }
        write_json(workspace.index_dir / INDEX_RECORD, record)
    return index, True


def nearest_rows(
    workspace: Workspace,
    query: np.ndarray,
    *,
    n_neighbors: int = N_NEIGHBORS_DEFAULT,
    leave_out: Sequence[int] | np.ndarray = (),
    exact_max_rows: int = EXACT_MAX_ROWS,
    what: str = "a vector",
) -> Similar:
    """The ``n_neighbors`` rows of largest cosine to the unit vector ``query`` (d,), the rows of
    ``leave_out`` (the query's own) left out; exact up to ``exact_max_rows`` rows."""
    features = workspace.features()
    n = len(features)
    k = check_int(n_neighbors, param="n_neighbors", minimum=1)
    left_out = np.unique(np.asarray(leave_out, dtype=np.int64))
    wanted = min(n, k + len(left_out))
    vector = np.asarray(query, dtype=np.float32).reshape(1, -1)
    started = time.monotonic()
    exact = n <= exact_max_rows
    built = False
    if exact:
        rows, cosines = nearest_in_pool(features, vector, wanted)
    else:
        index, built = neighbour_index(workspace)
        started = time.monotonic()
        rows, cosines = search_index(index, vector, wanted)
    keep = ~np.isin(rows[0], left_out)
    return Similar(
        rows=rows[0][keep][:k],
        cosines=cosines[0][keep][:k],
        query=what,
        exact=exact,
        built_index=built,
        seconds=round(time.monotonic() - started, 4),
    )


def similar_to_rows(workspace: Workspace, rows: object, **options: Any) -> Similar:
    """Nearest rows to one row, or to the centroid (normalised mean) of several, themselves left
    out (``nearest_rows`` takes the options)."""
    positions = np.unique(check_indices(rows, workspace.n_samples, param="rows"))
    features = workspace.features()
    centroid = np.asarray(features[positions], dtype=np.float64).mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    if norm == 0:
        raise PrismError("These rows' features cancel out: their centroid has no direction.")
    what = (
        f"row {positions[0]}" if len(positions) == 1 else f"the centroid of {len(positions)} rows"
    )
    return nearest_rows(workspace, centroid / norm, leave_out=positions, what=what, **options)


def text_features(workspace: Workspace, text: str, *, prompt: str | None = None) -> np.ndarray:
    """The (d,) unit feature of pasted ``text`` with the workspace's own proxy and sketch: the
    response to ``prompt`` (empty when None) for a chat workspace, the whole text otherwise."""
    # heavy: torch (the proxy), only when features are computed
    from core.features.extract import FeatureExtractor
    from core.features.proxy import load_proxy
    from core.workspace.imported import IMPORTED
    from core.workspace.jobs.extraction import config_from_workspace

    if not isinstance(text, str) or not text.strip():
        raise PrismError("text must be some text to find similar rows for.", param="text")
    section = workspace.feature_section
    if section is not None and section.settings.get("model") == IMPORTED:
        raise PrismError(
            "This workspace holds imported features: there is no proxy model to compute the "
            "features of new text with. Find rows similar to a row instead.",
            param="text",
        )
    config = config_from_workspace(workspace)
    kind = ColumnMap.from_dict(dict(workspace.dataset.columns)).kind
    if kind == "text" and prompt:
        raise PrismError("This workspace holds plain text: give no prompt.", param="prompt")
    sample: Any = (
        text
        if kind == "text"
        else [{"role": "user", "content": prompt or ""}, {"role": "assistant", "content": text}]
    )
    proxy = load_proxy(
        config.model,
        dtype=config.dtype,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
    )
    extractor = FeatureExtractor(proxy, config)
    features = extractor.compute(extractor.encode([sample])).features[0]
    if not np.any(features):
        raise PrismError(
            "The text gives no gradient (no tokens to score); paste a longer text.", param="text"
        )
    return features


def similar_to_text(
    workspace: Workspace, text: str, *, prompt: str | None = None, **options: Any
) -> Similar:
    """Nearest rows to the features of pasted ``text`` (``text_features``)."""
    vector = text_features(workspace, text, prompt=prompt)
    return nearest_rows(workspace, vector, what="the pasted text", **options)
