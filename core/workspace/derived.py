"""The per-sample table of a workspace: ``samples.parquet`` joined with the derived columns.

``samples.parquet`` holds the stable ``id`` and every column the dataset brought. Each analysis
of ``core.workspace.schema.ANALYSES`` keeps its per-sample columns in its own file,
``derived/<analysis>.parquet``, row-aligned with ``samples.parquet`` (columns no analysis
declares go to ``derived/other.parquet``), so computing clusters writes one small file instead
of rewriting every sample's text. ``read`` joins what is asked for; a derived file's column
wins over a column of the same name in ``samples.parquet`` (schema 1 workspaces kept derived
columns there, and they still read).

Every function takes the ``Workspace`` and writes under its lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import PrismError, WorkspaceError
from core.validate import check_indices
from core.workspace.files import short, write_parquet
from core.workspace.schema import ANALYSES, OTHER, analysis_of, is_derived

if TYPE_CHECKING:
    from core.workspace.store import Workspace

SAMPLES = "samples.parquet"
DERIVED = "derived"
_ORDER = (*ANALYSES, OTHER)


def derived_path(root: Path, analysis: str) -> Path:
    return root / DERIVED / f"{analysis}.parquet"


def derived_files(root: Path) -> list[tuple[str, Path]]:
    """(analysis, file) of every derived file present, in schema order."""
    folder = root / DERIVED
    if not folder.is_dir():
        return []
    found = {p.stem: p for p in folder.glob("*.parquet") if not p.name.startswith(".")}
    return [(a, found[a]) for a in (*_ORDER, *sorted(set(found) - set(_ORDER))) if a in found]


def _recompute_hint(workspace: Workspace, analysis: str) -> str:
    if analysis in ANALYSES and ANALYSES[analysis].recompute:
        return f"Compute it again with {ANALYSES[analysis].recompute.format(path=workspace.path)}."
    if analysis in ANALYSES and analysis != "features":
        return f"Compute it again with `prism {ANALYSES[analysis].command} {workspace.path}`."
    return workspace.rebuild_hint()


def _schema(workspace: Workspace, path: Path, analysis: str) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, ValueError) as error:
        raise WorkspaceError(
            f"{path} cannot be read ({short(error)}). {_recompute_hint(workspace, analysis)}"
        ) from None


def _n_rows(workspace: Workspace) -> int:
    return int(pq.read_metadata(workspace.samples_path).num_rows)


def check_rows(workspace: Workspace, rows: object, *, param: str = "rows") -> np.ndarray:
    """Row positions into the samples (``core.validate.check_indices``, empty allowed); a
    workspace with no samples is refused first: none in ``samples.parquet``, or a manifest that
    records none of its rows (damaged)."""
    if not workspace.n_samples:
        n_rows = _n_rows(workspace)
        what = f"manifest.json records none of its {n_rows:,} rows" if n_rows else "0 rows"
        raise PrismError(
            f"{workspace.path} has no samples (samples.parquet: {what}). "
            f"{workspace.rebuild_hint()}",
            param="workspace",
        )
    return check_indices(rows, workspace.n_samples, param=param, allow_empty=True)


def _read_file(
    workspace: Workspace, path: Path, analysis: str, columns: list[str] | None, n_rows: int
) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path, columns=columns)
    except (OSError, ValueError) as error:
        raise WorkspaceError(
            f"{path} cannot be read ({short(error)}). {_recompute_hint(workspace, analysis)}"
        ) from None
    if len(frame) != n_rows:
        raise WorkspaceError(
            f"{path} has {len(frame):,} rows but the workspace has {n_rows:,} samples. "
            + _recompute_hint(workspace, analysis)
        )
    return frame


def column_names(workspace: Workspace) -> list[str]:
    """Every column ``read`` can give: the stored ones, then the derived ones, in order."""
    names = list(_schema(workspace, workspace.samples_path, "features").names)
    for analysis, path in derived_files(workspace.path):
        names += [c for c in _schema(workspace, path, analysis).names if c not in names]
    return names


def derived_columns(workspace: Workspace) -> dict[str, list[str]]:
    """analysis → the columns its derived file holds (files present only)."""
    return {
        analysis: list(_schema(workspace, path, analysis).names)
        for analysis, path in derived_files(workspace.path)
    }


def read(workspace: Workspace, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The samples with their derived columns (all of them, or ``columns`` in that order)."""
    path = workspace.samples_path
    n_rows = _n_rows(workspace)
    parts: list[tuple[str, Path, list[str]]] = []
    from_derived: set[str] = set()
    for analysis, file in derived_files(workspace.path):
        names = [c for c in _schema(workspace, file, analysis).names if c not in from_derived]
        if columns is not None:
            names = [c for c in names if c in columns]
        if names:
            parts.append((analysis, file, names))
            from_derived.update(names)
    stored = pq.read_schema(path).names
    base_wanted = [c for c in (stored if columns is None else columns) if c not in from_derived]
    missing = [c for c in base_wanted if c not in stored]
    if missing:
        raise WorkspaceError(f"{workspace.path} has no column {missing[0]!r} in its samples.")
    try:
        frame = pd.read_parquet(path, columns=base_wanted)
    except (OSError, ValueError) as error:  # pyarrow's errors derive from these
        raise WorkspaceError(
            f"{path} cannot be read ({short(error)}). {workspace.rebuild_hint()}"
        ) from None
    for analysis, file, names in parts:
        derived = _read_file(workspace, file, analysis, names, n_rows)
        for name in names:
            frame[name] = derived[name].to_numpy()
    order = columns if columns is not None else [*stored, *[c for c in frame if c not in stored]]
    return frame[list(order)]


def batches(
    workspace: Workspace, columns: list[str], *, batch_rows: int
) -> Iterator[tuple[int, pa.Table]]:
    """(first row, table of ``columns``) batches of every row, streamed from ``samples.parquet``
    (derived columns, a few numbers a row, are read whole and sliced alongside)."""
    n_rows = _n_rows(workspace)
    derived: dict[str, pa.ChunkedArray] = {}
    for analysis, file in derived_files(workspace.path):
        wanted = [c for c in _schema(workspace, file, analysis).names if c in columns]
        wanted = [c for c in wanted if c not in derived]
        if wanted:
            table = pa.Table.from_pandas(
                _read_file(workspace, file, analysis, wanted, n_rows), preserve_index=False
            )
            derived.update({c: table.column(c) for c in wanted})
    base = [c for c in columns if c not in derived]
    file = pq.ParquetFile(workspace.samples_path)
    start = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=base):
        table = pa.Table.from_batches([batch])
        arrays = [
            derived[c].slice(start, batch.num_rows) if c in derived else table.column(c)
            for c in columns
        ]
        yield start, pa.Table.from_arrays(arrays, names=list(columns))
        start += batch.num_rows


def write(workspace: Workspace, frame: pd.DataFrame) -> None:
    """Replace the whole table: ``samples.parquet`` and the derived files (those whose columns
    ``frame`` lacks are removed: their rows would no longer match)."""
    with workspace.lock():
        groups: dict[str, list[str]] = {}
        for name in frame.columns:
            if is_derived(name):
                groups.setdefault(analysis_of(name), []).append(name)
        base = [c for c in frame.columns if not is_derived(c)]
        write_parquet(workspace.path / SAMPLES, frame[base])
        for analysis, names in groups.items():
            write_parquet(
                derived_path(workspace.path, analysis), frame[names].reset_index(drop=True)
            )
        for analysis, file in derived_files(workspace.path):
            if analysis not in groups:
                file.unlink(missing_ok=True)


def add(workspace: Workspace, columns: Mapping[str, np.ndarray | pd.Series]) -> None:
    """Add or replace derived columns (one value per sample, in row order), each in the file of
    the analysis that owns it."""
    with workspace.lock():
        n_rows = _n_rows(workspace)
        groups: dict[str, dict[str, np.ndarray]] = {}
        for name, values in columns.items():
            if len(values) != n_rows:
                raise WorkspaceError(
                    f"column {name!r} has {len(values)} values for {n_rows} samples."
                )
            groups.setdefault(analysis_of(name), {})[name] = np.asarray(values)
        for analysis, values in groups.items():
            path = derived_path(workspace.path, analysis)
            frame = pd.DataFrame(index=pd.RangeIndex(n_rows))
            # A damaged or stale file (other rows) is replaced by the new columns.
            with contextlib.suppress(WorkspaceError):
                if path.is_file():
                    frame = _read_file(workspace, path, analysis, None, n_rows)
            for name, array in values.items():
                frame[name] = array
            write_parquet(path, frame)


def drop(workspace: Workspace, names: list[str]) -> None:
    """Remove derived columns (and, in a schema 1 workspace, from ``samples.parquet``)."""
    gone = set(names)
    with workspace.lock():
        for analysis, path in derived_files(workspace.path):
            held = list(_schema(workspace, path, analysis).names)
            if not gone & set(held):
                continue
            keep = [c for c in held if c not in gone]
            if keep:
                write_parquet(path, pd.read_parquet(path, columns=keep))
            else:
                path.unlink(missing_ok=True)
        stored = pq.read_schema(workspace.samples_path).names
        if gone & set(stored):
            frame = pd.read_parquet(workspace.samples_path)
            write_parquet(workspace.path / SAMPLES, frame.drop(columns=sorted(gone & set(stored))))


def version(root: Path) -> float:
    """A number that changes whenever the table does (``samples.parquet`` or a derived file is
    written or removed): what caches of the table key on."""
    stamps = []
    for path in [root / SAMPLES, *(p for _, p in derived_files(root))]:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamps.append(f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}")
    digest = hashlib.blake2b("|".join(stamps).encode(), digest_size=6).digest()
    return float(int.from_bytes(digest, "big"))


def problems(workspace: Workspace, n_rows: int) -> list[str]:
    """What is wrong with the derived files (unreadable, or not one row per sample)."""
    found = []
    for analysis, path in derived_files(workspace.path):
        try:
            rows = pq.read_metadata(path).num_rows
        except (OSError, ValueError) as error:
            found.append(
                f"{path} cannot be read ({short(error)}). {_recompute_hint(workspace, analysis)}"
            )
            continue
        if rows != n_rows:
            found.append(
                f"{path} has {rows:,} rows but the workspace has {n_rows:,} samples. "
                + _recompute_hint(workspace, analysis)
            )
    return found
