"""Workspaces from features computed elsewhere (``prism import-features``).

``read_feature_file`` reads an N×d array from a ``.npy`` file (never unpickled: an object or
pickled array is refused) or from a list column of a Parquet file; it must hold real numbers
(a complex array is refused: its imaginary part would be dropped) and d ≤ ``MAX_IMPORT_DIM``.
``import_features`` checks it against a loaded dataset — one row per sample, every row finite
and non-zero (offending ids named) — scales the rows to unit length, and writes a complete
workspace whose ``features`` section records where the numbers came from (``model: "imported"``,
the source path, its sha256, the original dimension). Scores are computed as after
``prism features``; clusters, the map, selectors, export and the app then read it like any other
workspace. ``imported_source`` says whether a workspace was made so (Prism cannot compute more
features in its space: no extraction, no synthesis); ``rebuild_hint`` and
``missing_features_hint`` give, for any workspace, the command that makes it (or its features)
again from its origin.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.data.dataset import Dataset
from core.errors import PrismError, WorkspaceError
from core.measures.vendi import gram_from_npy, vendi_from_covariance
from core.validate import check_features
from core.workspace.files import atomic_path, now, read_npy
from core.workspace.jobs.extraction import (
    check_workspace_target,
    dataset_section,
    outermost_missing,
    remove_created,
)
from core.workspace.manifest import DatasetSection, FeatureSection, scores_record
from core.workspace.origin import IMPORTED
from core.workspace.store import Workspace

# Largest feature dimension imported: the analyses hold d×d float64 matrices (G-Vendi of a
# selection, greedy selectors, curves), 2 GiB at this d; it is also the largest d Prism's own
# sketch gives (core.features.sketch.MAX_DIM).
MAX_IMPORT_DIM = 16_384
_HASH_BLOCK = 2**20
_SHOWN_IDS = 10


def is_imported(workspace: Workspace) -> bool:
    """Whether the workspace's features were imported (no proxy model computed them)."""
    section = workspace.feature_section
    return section is not None and section.settings.get("model") == IMPORTED


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _from_parquet(path: Path, column: str | None) -> np.ndarray:
    schema = pq.read_schema(path)
    lists = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
    lists += [f.name for f in schema if pa.types.is_fixed_size_list(f.type)]
    if column is None:
        if len(lists) != 1:
            raise PrismError(
                f"{path} has {len(lists)} list columns ({', '.join(lists) or 'none'}); name the "
                "one that holds the features.",
                param="features_col",
            )
        column = lists[0]
    if column not in lists:
        raise PrismError(
            f"{path} has no list column {column!r}; its list columns: {', '.join(lists) or 'none'}.",
            param="features_col",
        )
    cells = pq.read_table(path, columns=[column]).column(column).combine_chunks()
    lengths = np.asarray(cells.value_lengths().fill_null(-1))
    if len(lengths) and (lengths.min() != lengths.max() or lengths[0] < 1):
        raise PrismError(
            f"column {column!r} of {path} must hold lists of one length d ≥ 1 (no nulls); got "
            f"lengths from {lengths.min()} to {lengths.max()} (-1 = null).",
            param="features",
        )
    values = np.asarray(cells.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return values.reshape(len(cells), int(lengths[0]) if len(lengths) else 0)


def read_feature_file(path: str | os.PathLike[str], *, column: str | None = None) -> np.ndarray:
    """The N×d array in a ``.npy`` file (memory-mapped, no pickle) or a Parquet list column."""
    source = Path(path)
    if not source.is_file():
        raise PrismError(f"{source} is not a file.", param="features")
    if source.suffix.lower() == ".parquet":
        array = _from_parquet(source, column)
    elif source.suffix.lower() == ".npy":
        try:
            array = read_npy(source)
        except (OSError, ValueError, EOFError) as error:
            raise PrismError(
                f"{source} cannot be read as .npy: {str(error).rstrip('.')}. Save the features as "
                "a numeric array "
                "(np.save(path, features.astype('float32'), allow_pickle=False)).",
                param="features",
            ) from None
    else:
        raise PrismError(
            f"{source}: features must be a .npy file or a .parquet file with a list column.",
            param="features",
        )
    if array.ndim != 2 or array.shape[1] < 1 or not np.issubdtype(array.dtype, np.number):
        raise PrismError(
            f"{source} must hold a 2-D numeric array (n_samples × d); got shape "
            f"{tuple(array.shape)} and dtype {array.dtype}.",
            param="features",
        )
    if array.shape[1] > MAX_IMPORT_DIM:
        raise PrismError(
            f"{source} has d = {array.shape[1]:,} numbers per row, more than the {MAX_IMPORT_DIM:,} "
            "Prism imports (its analyses hold d × d matrices: 2 GiB at that limit). Project the "
            "features down first, e.g. with a seeded Gaussian map to 1,024 numbers: "
            "x @ np.random.default_rng(0).standard_normal((d, 1024)) (cosines are kept within a "
            "few percent).",
            param="features",
        )
    try:
        array = check_features(array, param="features")  # real numbers; floats are not copied
    except PrismError as error:
        raise PrismError(
            f"{source}: {error} Complex values are refused rather than cut to their real part. "
            "Save the real features you mean (to keep both parts of complex ones: "
            "np.concatenate([x.real, x.imag], axis=1)).",
            param="features",
        ) from None
    return array


def _name_ids(ids: Any, rows: np.ndarray) -> str:
    shown = ", ".join(repr(str(i)) for i in ids[rows[:_SHOWN_IDS]])
    more = f" and {len(rows) - _SHOWN_IDS:,} more" if len(rows) > _SHOWN_IDS else ""
    return shown + more


def unit_features(array: np.ndarray, ids: Any) -> np.ndarray:
    """float32 unit rows of ``array``; non-finite or zero rows are refused, naming their ids."""
    out = np.empty(array.shape, dtype=np.float32)
    step = 65536
    for start in range(0, len(array), step):
        out[start : start + step] = array[start : start + step]
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise PrismError(
            f"{len(bad):,} feature rows hold NaN or infinite values, samples "
            f"{_name_ids(ids, bad)}; fix or drop them before importing.",
            param="features",
        )
    norms = np.linalg.norm(out, axis=1)
    if (norms == 0).any():
        bad = np.flatnonzero(norms == 0)
        raise PrismError(
            f"{len(bad):,} feature rows are all zero (no direction to normalise), samples "
            f"{_name_ids(ids, bad)}.",
            param="features",
        )
    out /= norms[:, None]
    return out


def import_features(
    path: str | os.PathLike[str],
    dataset: Dataset,
    features_path: str | os.PathLike[str],
    *,
    column: str | None = None,
) -> Workspace:
    """A new, complete workspace at ``path`` from ``dataset`` and the features in ``features_path``."""

    root = Path(path)
    check_workspace_target(root)
    if root.exists() and any(root.iterdir()):
        raise WorkspaceError(
            f"{root} exists and is not empty; import-features writes a new workspace. Choose a "
            "new or empty directory for `workspace`.",
            param="workspace",
        )
    source = Path(features_path).absolute()
    array = read_feature_file(source, column=column)
    if array.shape[0] != dataset.n_samples:
        raise PrismError(
            f"{source} has {array.shape[0]:,} feature rows but the dataset has "
            f"{dataset.n_samples:,} samples; they must match one to one, in file order.",
            param="features",
        )
    features = unit_features(array, dataset.samples["id"].to_numpy())
    n, dim = features.shape
    settings = {
        "model": IMPORTED,
        "source": str(source),
        "sha256": file_sha256(source),
        "original_dim": int(array.shape[1]),
        "dim": int(dim),
        **({"column": column} if column else {}),
    }
    described = dataset_section(dataset)
    section = FeatureSection(settings=settings, status="pending")
    created = outermost_missing(root)
    try:
        workspace = Workspace.create(
            root,
            {DatasetSection.NAME: described.to_dict(), FeatureSection.NAME: section.to_dict()},
            dataset.samples,
        )
        with atomic_path(workspace.features_path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, features, allow_pickle=False)
        with workspace.lock():
            workspace.set_section(
                section.replace(status="complete", n_samples=n, dim=dim, completed=now()),
                save=False,
            )
            gram, rows = gram_from_npy(workspace.features_path)  # N×N when N < d
            record = scores_record(vendi_from_covariance(gram), n=rows, dim=dim)
            workspace.set_section(record)
    except BaseException:
        remove_created(root, created)  # leave no half-written workspace behind
        raise
    return workspace
