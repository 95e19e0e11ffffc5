"""Export a subset's rows: JSONL, CSV, Parquet or a Hugging Face dataset, plus a manifest.

The rows keep every original column of the dataset, values as loaded and names as in the file
(columns Prism renamed because they clashed with its own are named back), in the original row
order; ``derived=True`` adds Prism's per-sample columns (cluster, umap_x/umap_y, loss, …).
Beside the export, ``<out>.manifest.json`` records where the rows came from and how the subset
was made, so ``prism select --from-manifest`` can rebuild it. JSONL is plain UTF-8 JSON (no
``\\/``, no ``\\uXXXX`` escapes); CSV writes list, dict and struct cells as JSON text.

Exports stream: ``samples.parquet`` is read one record batch at a time, so memory stays at a
batch whatever the size of the dataset.

Nothing is destroyed. ``force`` replaces only a previous export or a file of the same kind: a
file with the format's suffix (or whose manifest says it is an export of this format), and for
``hf`` only a ``save_to_disk`` folder whose manifest beside it says ``hf`` and that holds nothing
but the dataset's files. Never another folder, never a symbolic link, never a Prism workspace or
anything inside one (a folder holding ``manifest.json`` and ``samples.parquet``, at any level
above ``out``).

The data and its manifest are one pair. Both are written to temporary names beside ``out``
(``.<name>.XXXXXXXX.tmp``), then published: the data renamed into place first, the manifest
last. The manifest records the sha256 of the data (of an ``hf`` folder: of its files' names and
bytes), so a manifest that does not describe the data beside it is detected: ``read_manifest``
(and so ``prism select --from-manifest``) refuses it. The whole export holds an exclusive lock
on ``.<name>.lock`` beside ``out`` (an empty file, left in place: removing it would let two
exports lock two different files); a second export to the same path fails at once instead of
waiting. Because every writer holds that lock, temporaries found by the next export under it
belong to a process that died; it repairs what they left before writing: a finished temporary
manifest that matches the published data is published (the kill came between the two renames),
an ``hf`` folder that was moved aside and matches the current manifest is moved back (the kill
came before the new folder was in), and every other temporary is removed. So after a kill at
any moment, the next export to the path starts from the old pair or the new one.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core import __version__
from core.data.dataset import RESERVED_COLUMNS
from core.errors import PrismError, WorkspaceError
from core.measures.vendi import subset_vendi
from core.workspace.store import MANIFEST, SAMPLES, Workspace, lock_file, now

FORMATS = ("jsonl", "csv", "parquet", "hf")
SUFFIXES = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet", "hf": ""}
# Files ``force`` may replace without a manifest saying they are an export of the format.
KIND_SUFFIXES = {"jsonl": (".jsonl", ".ndjson"), "csv": (".csv",), "parquet": (".parquet", ".pq")}
# What a ``save_to_disk`` folder holds; an ``hf`` export folder holding anything else is not ours.
HF_FILES = ("dataset_info.json", "state.json")
BATCH_ROWS = 16_384
WHOLE_SET_HOW = {"method": "whole_set"}
# Test hook, read here only: PRISM_EXPORT_PAUSE=<step> ("write", "publish", "aside" or
# "manifest") makes an export say so on stderr and wait at that step for a line on stdin, so that
# a test can kill it exactly there, or hold it there while another export tries the same path.
PAUSE_ENV = "PRISM_EXPORT_PAUSE"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest_path: Path
    n_rows: int
    format: str
    columns: tuple[str, ...]


def download_name(subset: str | None, fmt: str) -> str:
    """The file name of a subset's download: ``<name>.<suffix>``, or ``<name>.zip`` for ``hf``."""
    stem = (subset or "subset").replace("/", "_").replace(" ", "_")
    return f"{stem}.zip" if check_format(fmt) == "hf" else f"{stem}{SUFFIXES[fmt]}"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise PrismError(f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    return fmt


def manifest_path_for(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def lock_path_for(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def export_columns(workspace: Workspace, *, derived: bool) -> tuple[list[str], dict[str, str]]:
    """(stored columns to write, stored name → name in the export).

    Original columns are those the dataset brought (``dataset.original_columns`` in the manifest;
    older workspaces: every column that is not one of Prism's). Prism's string ``id`` is written
    only when the dataset's own id column was called ``id``, or with ``derived``.
    """
    dataset = workspace.manifest.get("dataset", {})
    stored = pq.read_schema(workspace.samples_path).names
    back = {new: old for old, new in (dataset.get("renamed") or {}).items()}
    original = dataset.get("original_columns")
    if original is None:
        derived_like = set(RESERVED_COLUMNS)
        original = [c for c in stored if c not in derived_like or c in back]
    keep = [c for c in stored if c in set(original) and c != "id"]
    if (dataset.get("columns") or {}).get("id") == "id" or derived:
        keep.insert(0, "id")
    if derived:
        keep += [c for c in stored if c not in keep]
    names = {c: back.get(c, c) for c in keep}
    if derived and names.get("id") == "id" and (dataset.get("columns") or {}).get("id") != "id":
        names["id"] = "prism_id"
    return keep, names


def _batches(workspace: Workspace, rows: np.ndarray, columns: list[str]) -> Iterator[pa.Table]:
    """Record batches of the selected rows (ascending row order), renamed columns not applied."""
    file = pq.ParquetFile(workspace.samples_path)
    wanted = np.sort(np.asarray(rows, dtype=np.int64))
    start = 0
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        stop = start + batch.num_rows
        lo, hi = np.searchsorted(wanted, [start, stop])
        if hi > lo:
            yield pa.Table.from_batches([batch]).take(pa.array(wanted[lo:hi] - start))
        start = stop


# -- cell values as JSON -----------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """JSON for the Python values Arrow hands out that ``json`` does not know."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a cell of type {type(value).__name__} cannot be written as JSON")


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _is_nested(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_struct(kind)
        or pa.types.is_map(kind)
    )


def _finite_or_null(table: pa.Table) -> pa.Table:
    """NaN and ±inf floats become nulls: JSON has no word for them (``null``, as pandas writes)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            column = table.column(i)
            keep = pc.or_kleene(pc.is_finite(column), pc.is_null(column))
            table = table.set_column(
                i, field, pc.if_else(keep, column, pa.scalar(None, field.type))
            )
    return table


def _nested_as_json(table: pa.Table) -> pa.Table:
    """List, dict (struct) and map cells as JSON text: what a CSV cell can hold."""
    for i, field in enumerate(table.schema):
        if _is_nested(field.type):
            cells = table.column(i).to_pylist(maps_as_pydicts="lossy")
            text = pa.array([None if c is None else _json_line(c) for c in cells], pa.string())
            table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table


# -- writing -----------------------------------------------------------------------------------


def _pause(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        print(f"prism export: paused at {step}", file=sys.stderr, flush=True)
        sys.stdin.readline()


def _write_stream(
    fmt: str,
    target: Path,
    tables: Iterator[pa.Table],
    names: list[str],
    *,
    json_text: frozenset[str] = frozenset(),
) -> int:
    """Write the tables as ``fmt``; ``json_text`` names (in the export) columns that the workspace
    keeps as JSON text because Arrow cannot type them: JSONL gets their values back, CSV and
    Parquet keep the text."""
    count = 0
    with open(target, "wb") as handle:
        writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        for table in tables:
            table = table.rename_columns(names)
            if fmt == "jsonl":
                rows = _finite_or_null(table).to_pylist(maps_as_pydicts="lossy")
                for row in rows:
                    for name in json_text.intersection(row):
                        if row[name] is not None:
                            row[name] = json.loads(row[name])
                handle.write("".join(_json_line(row) + "\n" for row in rows).encode("utf-8"))
            else:
                if fmt == "csv":
                    table = _nested_as_json(table)
                if writer is None:
                    writer = (
                        pq.ParquetWriter(handle, table.schema)
                        if fmt == "parquet"
                        else pacsv.CSVWriter(
                            handle,
                            table.schema,
                            write_options=pacsv.WriteOptions(quoting_style="needed"),
                        )
                    )
                writer.write_table(table)
            if count == 0:  # the first batch is on disk: a kill from here leaves part of a file
                handle.flush()
                _pause("write")
            count += table.num_rows
        if writer is not None:
            writer.close()
    if count == 0:
        raise PrismError("Nothing to export: the subset selects no rows.")
    return count


def _write_hf(
    workspace: Workspace,
    rows: np.ndarray,
    columns: list[str],
    names: list[str],
    scratch: Path,
) -> tuple[Path, int]:
    """Save the rows with ``datasets.save_to_disk`` under ``scratch``; (that folder, rows)."""
    from datasets import Dataset  # heavy import, only for this format

    parquet = scratch / "rows.parquet"
    count = _write_stream("parquet", parquet, _batches(workspace, rows, columns), names)
    dataset = Dataset.from_parquet(str(parquet), cache_dir=str(scratch / "cache"))
    folder = scratch / "dataset"
    dataset.save_to_disk(str(folder))
    return folder, count


def content_digest(path: Path) -> str:
    """sha256 of an export: of the file, or of an ``hf`` folder's files (names and bytes)."""
    if not path.is_dir():
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(content_digest(file).encode("ascii") + b"\n")
    return digest.hexdigest()


def _temporary(target: Path, *, folder: bool = False) -> Path:
    """A new temporary file (or folder) beside ``target``, named ``.<name>.XXXXXXXX.tmp``."""
    prefix, suffix = f".{target.name}.", ".tmp"
    if folder:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def _temporaries(target: Path) -> list[Path]:
    """The temporaries ``_temporary(target)`` names (``tempfile``'s 8 random characters)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
    return sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _recorded(manifest: Path) -> dict[str, Any] | None:
    """An export manifest as a dict, or None when it is missing, unfinished or not JSON."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _digest_of(manifest: Path) -> str | None:
    digest = (_recorded(manifest) or {}).get("sha256")
    return digest if isinstance(digest, str) else None


def _repair(target: Path, manifest_target: Path) -> None:
    """Finish or undo what a killed export to ``target`` left, then remove its temporaries.

    Runs under the export lock, so no live process owns a temporary found here.
    """
    data_temps, manifest_temps = _temporaries(target), _temporaries(manifest_target)
    if not data_temps and not manifest_temps:
        return
    current = _digest_of(manifest_target)
    if current and not target.exists():
        # A folder moved aside to make room for a new one that never came in: move it back.
        for temp in data_temps:
            if temp.is_dir() and content_digest(temp) == current:
                os.rename(temp, target)
                break
    if target.exists():
        published: str | None = None
        for temp in manifest_temps:
            recorded = _digest_of(temp)
            if recorded is None or recorded == current:
                continue
            published = published or content_digest(target)
            if recorded == published:  # the data was renamed in, its manifest not yet
                os.replace(temp, manifest_target)
                break
    for temp in _temporaries(target) + _temporaries(manifest_target):
        _remove(temp)


def _publish(data: Path, manifest: Path, target: Path, manifest_target: Path) -> None:
    """Rename the finished data, then its manifest, into place (see the module docstring)."""
    _pause("publish")
    aside = None
    if target.is_dir() and not target.is_symlink():
        aside = _temporary(target, folder=True)
        os.rename(target, aside)  # onto the empty folder mkdtemp made
        _pause("aside")
    os.replace(data, target)
    _pause("manifest")
    os.replace(manifest, manifest_target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# -- what --force may replace -----------------------------------------------------------------


def _workspace_holding(path: Path) -> Path | None:
    """The Prism workspace ``path`` is or lies in (at any level), or None."""
    for candidate in {path.absolute(), path.resolve()}:
        for folder in (candidate, *candidate.parents):
            if (folder / MANIFEST).is_file() and (folder / SAMPLES).is_file():
                return folder
    return None


def _refuse_workspace(paths: list[Path]) -> None:
    """Refuse when any of ``paths`` is a Prism workspace or lies inside one."""
    for path in paths:
        workspace = _workspace_holding(path)
        if workspace is not None:
            where = "is" if path.resolve() == workspace.resolve() else "is inside"
            raise PrismError(
                f"{path} {where} the Prism workspace {workspace}; an export never replaces "
                "anything in a workspace. Choose another --out."
            )


def _check_replace(target: Path, manifest_target: Path, fmt: str, *, force: bool) -> None:
    """Refuse to write where an export would destroy something (see the module docstring)."""
    existing = [p for p in (target, manifest_target) if p.exists() or p.is_symlink()]
    if not existing:
        return
    _refuse_workspace(existing)
    if not force:
        raise PrismError(
            f"{existing[0]} already exists; choose another --out, or pass --force to replace it."
        )
    refuse = (
        "; --force replaces only a previous export or a file of the same kind. "
        "Choose another --out."
    )
    for path in existing:
        if path.is_symlink():
            raise PrismError(f"{path} is a symbolic link{refuse}")
    previous = _recorded(manifest_target) if manifest_target.exists() else None
    if manifest_target.exists() and (
        not manifest_target.is_file() or previous is None or "subset" not in previous
    ):
        raise PrismError(f"{manifest_target} is not a Prism export manifest{refuse}")
    previous_format = (previous or {}).get("format")
    if not target.exists():
        return
    if target.is_dir():
        if fmt != "hf":
            raise PrismError(f"{target} is a folder, and a {fmt} export is one file{refuse}")
        if previous_format != "hf":
            raise PrismError(
                f"{target} is a folder but not a previous hf export (no {manifest_target.name} "
                f"saying so beside it){refuse}"
            )
        others = [
            p.name
            for p in target.iterdir()
            if not (
                p.is_file() and not p.is_symlink() and (p.suffix == ".arrow" or p.name in HF_FILES)
            )
        ]
        if others:
            raise PrismError(
                f"{target} holds more than an hf export ({', '.join(sorted(others)[:3])}){refuse}"
            )
        return
    if not target.is_file():
        raise PrismError(f"{target} is not a regular file{refuse}")
    if fmt == "hf":
        raise PrismError(f"{target} is a file, and an hf export is a folder{refuse}")
    if previous_format != fmt and target.suffix.lower() not in KIND_SUFFIXES[fmt]:
        raise PrismError(
            f"{target} is neither a previous {fmt} export nor a "
            f"{' / '.join(KIND_SUFFIXES[fmt])} file{refuse}"
        )


@contextlib.contextmanager
def _export_lock(target: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``target`` for a whole export; fail at once if it is held."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(lock_file(lock_path_for(target), timeout_s=0.0))
        except WorkspaceError:
            raise PrismError(
                f"Another export is writing {target}; wait for it to finish, or choose another "
                "--out."
            ) from None
        yield


# -- exports -----------------------------------------------------------------------------------


def _subset_manifest(
    workspace: Workspace,
    rows: np.ndarray,
    *,
    subset: str | None,
    how: dict[str, Any] | None,
    fmt: str,
    columns: list[str],
    derived: bool,
    n_rows: int,
) -> dict[str, Any]:
    samples_id = workspace.samples(columns=["id"])["id"].astype(str).to_numpy()
    ids = [str(samples_id[i]) for i in np.sort(rows)]
    g_vendi = None
    if workspace.has_features:
        g_vendi = subset_vendi(workspace.features(), rows, qs=[1.0])[1.0]
    dataset = workspace.manifest.get("dataset", {})
    return {
        "prism_version": __version__,
        "exported": now(),
        "format": fmt,
        "n_rows": n_rows,
        "columns": columns,
        "derived_columns": derived,
        "workspace": {
            "path": str(workspace.path.resolve()),
            "fingerprint": dataset.get("fingerprint"),
            "source": dataset.get("source"),
        },
        "features": workspace.manifest.get("features", {}).get("settings"),
        "clusters": {
            k: workspace.manifest.get("clusters", {}).get(k) for k in ("n_clusters", "seed")
        },
        "subset": {"name": subset, "how": how or {"method": "ids"}, "ids": ids},
        "g_vendi": g_vendi,
    }


def export_rows(
    workspace: Workspace,
    rows: np.ndarray,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    derived: bool = False,
    force: bool = False,
    subset: str | None = None,
    how: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``rows`` (positions) of the workspace to ``out`` in ``fmt``, with its manifest.

    Safe against kills and concurrent exports, and ``force`` never destroys anything but a
    previous export or a file of the same kind (see the module docstring).
    """
    check_format(fmt)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        raise PrismError("Nothing to export: the subset selects no rows.")
    if rows[0] < 0 or rows[-1] >= workspace.n_samples:
        raise PrismError(f"Row positions must be in 0..{workspace.n_samples - 1}.")
    target = Path(out).expanduser()
    manifest_target = manifest_path_for(target)
    if not target.parent.is_dir():
        raise PrismError(f"The folder {target.parent} does not exist; create it first.")
    # Before making a lock file beside it; the full check runs under the lock, after the repair.
    _refuse_workspace([p for p in (target, manifest_target) if p.exists() or p.is_symlink()])
    columns, names = export_columns(workspace, derived=derived)
    new_names = [names[c] for c in columns]
    with _export_lock(target):
        _repair(target, manifest_target)
        _check_replace(target, manifest_target, fmt, force=force)
        written: list[Path] = []
        try:
            if fmt == "hf":
                scratch = _temporary(target, folder=True)
                written.append(scratch)
                data, count = _write_hf(workspace, rows, columns, new_names, scratch)
            else:
                data = _temporary(target)
                written.append(data)
                stored_json = set(workspace.manifest.get("dataset", {}).get("json_columns") or [])
                json_text = frozenset(names[c] for c in columns if c in stored_json)
                count = _write_stream(
                    fmt, data, _batches(workspace, rows, columns), new_names, json_text=json_text
                )
            manifest = _subset_manifest(
                workspace,
                rows,
                subset=subset,
                how=how,
                fmt=fmt,
                columns=new_names,
                derived=derived,
                n_rows=count,
            )
            manifest["sha256"] = content_digest(data)
            manifest_temp = _temporary(manifest_target)
            written.append(manifest_temp)
            with open(manifest_temp, "w", encoding="utf-8") as handle:
                json.dump(manifest, handle, indent=2, ensure_ascii=False, default=_json_default)
                handle.write("\n")
            _publish(data, manifest_temp, target, manifest_target)
        finally:
            for path in written:
                _remove(path)
    return ExportResult(target, manifest_target, count, fmt, tuple(new_names))


def export_subset(
    workspace: Workspace,
    name: str | None,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    derived: bool = False,
    force: bool = False,
) -> ExportResult:
    """``export_rows`` of the named subset ``name``, its ``how`` going into the manifest; with
    ``name`` None, of the whole set (the manifest's subset is then ``WHOLE_SET``)."""
    if name is None:
        from core.workspace.compare import WHOLE_SET

        rows, how, name = np.arange(workspace.n_samples), dict(WHOLE_SET_HOW), WHOLE_SET
    else:
        from core.workspace.subsets import named_subset

        rows, how = named_subset(workspace, name)
    return export_rows(
        workspace, rows, fmt=fmt, out=out, derived=derived, force=force, subset=name, how=how
    )


def export_bytes(
    workspace: Workspace,
    rows: np.ndarray,
    *,
    fmt: str,
    derived: bool = False,
    subset: str | None = None,
    how: dict[str, Any] | None = None,
) -> tuple[bytes, str]:
    """The export as one downloadable blob and its file name: the file itself, or for ``hf``
    a zip of the dataset folder; the manifest travels inside a zip (``hf``) or separately via
    ``export_manifest``."""
    name = download_name(subset, fmt)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / (name.removesuffix(".zip") if fmt == "hf" else name)
        result = export_rows(
            workspace, rows, fmt=fmt, out=out, derived=derived, subset=subset, how=how
        )
        if fmt != "hf":
            return out.read_bytes(), out.name
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    archive.write(path, Path(out.name) / path.relative_to(out))
            archive.write(result.manifest_path, result.manifest_path.name)
        return buffer.getvalue(), name


def export_manifest(
    workspace: Workspace,
    rows: np.ndarray,
    *,
    fmt: str,
    derived: bool = False,
    subset: str | None = None,
    how: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest an export of ``rows`` would carry (for a download beside the file)."""
    columns, names = export_columns(workspace, derived=derived)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    return _subset_manifest(
        workspace,
        rows,
        subset=subset,
        how=how,
        fmt=check_format(fmt),
        columns=[names[c] for c in columns],
        derived=derived,
        n_rows=int(rows.size),
    )


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An export manifest, checked enough to rebuild its subset.

    When the export it describes lies beside it (``<out>`` for ``<out>.manifest.json``), the
    recorded sha256 must match that data: a manifest left from another export is refused.
    """
    file = Path(path)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrismError(
            f"{file} does not exist; pass the .manifest.json written beside an export."
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise PrismError(f"{file} is not a readable JSON manifest ({error}).") from None
    subset = manifest.get("subset") if isinstance(manifest, dict) else None
    if not isinstance(subset, dict) or not isinstance(subset.get("ids"), list):
        raise PrismError(f"{file} is not a Prism export manifest (it has no subset ids).")
    data = file.with_name(file.name.removesuffix(".manifest.json"))
    recorded = manifest.get("sha256")
    if (
        file.name.endswith(".manifest.json")
        and isinstance(recorded, str)
        and data.exists()
        and content_digest(data) != recorded
    ):
        raise PrismError(
            f"{data} does not match its manifest {file} (an export to it was interrupted, or one "
            "of the two was changed since): export the subset again with --force, or pass the "
            "manifest that belongs to the data."
        )
    return manifest


def read_export(path: str | os.PathLike[str], fmt: str) -> pd.DataFrame:
    """Read an export back (tests and users checking a file): every column as written."""
    file = Path(path)
    if fmt == "jsonl":
        return pd.read_json(file, lines=True, dtype=False)
    if fmt == "csv":
        return pd.read_csv(file, dtype=str, keep_default_na=False)
    if fmt == "parquet":
        return pd.read_parquet(file)
    from datasets import load_from_disk

    return load_from_disk(str(file)).to_pandas()
