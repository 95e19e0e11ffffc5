"""Export a subset's rows: JSONL, CSV, Parquet or a Hugging Face dataset, plus a manifest.

The rows keep every original column of the dataset, values as loaded and names as in the file
(columns Prism renamed because they clashed with its own are named back), in the original row
order; ``derived=True`` adds Prism's per-sample columns (cluster, umap_x/umap_y, loss, …).
Beside the export, ``<out>.manifest.json`` records where the rows came from and how the subset
was made, so ``prism select --from-manifest`` can rebuild it. JSONL is plain UTF-8 JSON (no
``\\/``, no ``\\uXXXX`` escapes); CSV writes list, dict and struct cells as JSON text.

Exports stream (``samples.parquet`` one record batch at a time, the derived columns alongside):
memory stays at a batch whatever the size of the dataset. Writing is kill-safe and never
destroys anything but a previous export (``core.workspace.publish``).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import json
import os
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
from core.errors import PrismError
from core.measures.vendi import subset_vendi
from core.workspace.compare import WHOLE_SET
from core.workspace.derived import batches as sample_batches
from core.workspace.derived import check_rows
from core.workspace.files import now
from core.workspace.manifest import ClustersSection, FeatureSection
from core.workspace.publish import (
    check_replace,
    content_digest,
    export_lock,
    manifest_path_for,
    pause,
    publish_pair,
    refuse_workspace,
    remove,
    repair,
    temporary,
)
from core.workspace.records import ExportManifest
from core.workspace.schema import RESERVED_COLUMNS
from core.workspace.store import Workspace
from core.workspace.subsets import named_subset
from core.workspace.synthesis.grow import ORIGIN, PROVENANCE, SYNTHETIC, of_origin
from core.workspace.tags import without_tagged

FORMATS = ("jsonl", "csv", "parquet", "hf")
SUFFIXES = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet", "hf": ""}
BATCH_ROWS = 16_384
WHOLE_SET_HOW = {"method": "whole_set"}


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
        raise PrismError(
            f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.", param="fmt"
        )
    return fmt


def export_columns(
    workspace: Workspace, *, derived: bool, rows: np.ndarray | None = None
) -> tuple[list[str], dict[str, str]]:
    """(stored columns to write, stored name → name in the export).

    Original columns are those the dataset brought (``dataset.original_columns``; older
    workspaces: every column not Prism's). Prism's ``id`` is written when the dataset's own id
    column was called ``id``, or with ``derived``; the synthesis provenance (``origin``,
    ``synthesis_*``) with ``derived`` or when ``rows`` (positions) hold synthetic rows."""
    dataset = workspace.dataset
    stored = workspace.sample_columns()
    back = {new: old for old, new in dataset.renamed.items()}
    original = dataset.original_columns
    if original is None:
        original = tuple(c for c in stored if c not in set(RESERVED_COLUMNS) or c in back)
    keep = [c for c in stored if c in set(original) and c != "id"]
    provenance: list[str] = []
    if derived or (rows is not None and of_origin(workspace, rows, SYNTHETIC).size):
        provenance = [c for c in (ORIGIN, *PROVENANCE) if c in stored and c not in keep]
    keep += provenance
    own_id = dataset.columns.get("id") == "id"
    if own_id or derived or provenance:
        keep.insert(0, "id")
    if derived:
        keep += [c for c in stored if c not in keep]
    names = {c: back.get(c, c) for c in keep}
    if (derived or provenance) and names.get("id") == "id" and not own_id:
        names["id"] = "prism_id"
    return keep, names


def _batches(workspace: Workspace, rows: np.ndarray, columns: list[str]) -> Iterator[pa.Table]:
    """Record batches of the selected rows (ascending row order), renamed columns not applied."""
    wanted = np.sort(np.asarray(rows, dtype=np.int64))
    for start, table in sample_batches(workspace, columns, batch_rows=BATCH_ROWS):
        lo, hi = np.searchsorted(wanted, [start, start + table.num_rows])
        if hi > lo:
            yield table.take(pa.array(wanted[lo:hi] - start))


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
    return bool(pa.types.is_nested(kind))  # lists, structs (dicts), maps


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
                pause("write")
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
    from datasets import Dataset  # heavy: datasets, only for this format

    parquet = scratch / "rows.parquet"
    count = _write_stream("parquet", parquet, _batches(workspace, rows, columns), names)
    dataset = Dataset.from_parquet(str(parquet), cache_dir=str(scratch / "cache"))
    folder = scratch / "dataset"
    dataset.save_to_disk(str(folder))
    return folder, count


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
    dataset = workspace.dataset
    settings = (workspace.feature_section or FeatureSection()).settings
    clusters = workspace.clusters or ClustersSection()
    return {
        "prism_version": __version__,
        "exported": now(),
        "format": fmt,
        "n_rows": n_rows,
        "columns": columns,
        "derived_columns": derived,
        "workspace": {
            "path": str(workspace.path.resolve()),
            "fingerprint": dataset.fingerprint,
            "source": dataset.source,
        },
        "features": dict(settings) if workspace.feature_section is not None else None,
        "clusters": {
            "n_clusters": clusters.n_clusters if workspace.clusters is not None else None,
            "seed": clusters.seed,
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
    rows = np.unique(check_rows(workspace, rows))
    if rows.size == 0:
        raise PrismError("Nothing to export: the subset selects no rows.")
    target = Path(out).expanduser()
    manifest_target = manifest_path_for(target)
    if not target.parent.is_dir():
        raise PrismError(
            f"The folder {target.parent} does not exist; create it first.", param="out"
        )
    # Before making a lock file beside it; the full check runs under the lock, after the repair.
    refuse_workspace([p for p in (target, manifest_target) if p.exists() or p.is_symlink()])
    columns, names = export_columns(workspace, derived=derived, rows=rows)
    new_names = [names[c] for c in columns]
    with export_lock(target):
        repair(target, manifest_target)
        check_replace(target, manifest_target, fmt, force=force)
        written: list[Path] = []
        try:
            if fmt == "hf":
                scratch = temporary(target, folder=True)
                written.append(scratch)
                data, count = _write_hf(workspace, rows, columns, new_names, scratch)
            else:
                data = temporary(target)
                written.append(data)
                stored_json = set(workspace.dataset.json_columns)
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
            manifest_temp = temporary(manifest_target)
            written.append(manifest_temp)
            with open(manifest_temp, "w", encoding="utf-8") as handle:
                json.dump(manifest, handle, indent=2, ensure_ascii=False, default=_json_default)
                handle.write("\n")
            publish_pair(data, manifest_temp, target, manifest_target)
        finally:
            for path in written:
                remove(path)
    return ExportResult(target, manifest_target, count, fmt, tuple(new_names))


def export_subset(
    workspace: Workspace,
    name: str | None,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    derived: bool = False,
    force: bool = False,
    origin: str = "all",
    drop_tagged: str | None = None,
) -> ExportResult:
    """``export_rows`` of the named subset ``name`` (None: the whole set, ``WHOLE_SET``), its
    ``how`` going into the manifest; ``origin``: all rows, or only "source" or "synthetic" ones
    (``core.workspace.synthesis.grow``); ``drop_tagged``: leave out the rows with that tag."""
    if name is None:
        rows, how, name = np.arange(workspace.n_samples), dict(WHOLE_SET_HOW), WHOLE_SET
    else:
        rows, how = named_subset(workspace, name)
    if origin != "all":
        rows, how = of_origin(workspace, rows, origin), {**how, "origin": origin}
    if drop_tagged is not None:
        rows = without_tagged(workspace, rows, drop_tagged)
        how = {**how, "drop_tagged": drop_tagged}
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
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    columns, names = export_columns(workspace, derived=derived, rows=rows)
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


def read_manifest(path: str | os.PathLike[str]) -> ExportManifest:
    """An export manifest, checked enough to rebuild its subset.

    When the export it describes lies beside it (``<out>`` for ``<out>.manifest.json``), the
    recorded sha256 must match that data: a manifest left from another export is refused.
    """
    file = Path(path)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrismError(
            f"{file} does not exist; pass the .manifest.json written beside an export.",
            param="manifest",
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise PrismError(
            f"{file} is not a readable JSON manifest ({error}).", param="manifest"
        ) from None
    subset = manifest.get("subset") if isinstance(manifest, dict) else None
    if not isinstance(subset, dict) or not isinstance(subset.get("ids"), list):
        raise PrismError(
            f"{file} is not a Prism export manifest (it has no subset ids).", param="manifest"
        )
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
            "of the two was changed since): export the subset again with `force`, or pass the "
            "manifest that belongs to the data.",
            param="manifest",
        )
    return ExportManifest.from_dict(manifest)


def read_export(path: str | os.PathLike[str], fmt: str) -> pd.DataFrame:
    """Read an export back (tests and users checking a file): every column as written."""
    file = Path(path)
    if fmt == "jsonl":
        return pd.read_json(file, lines=True, dtype=False)
    if fmt == "csv":
        return pd.read_csv(file, dtype=str, keep_default_na=False)
    if fmt == "parquet":
        return pd.read_parquet(file)
    # heavy: datasets, only for this format
    from datasets import load_from_disk

    return load_from_disk(str(file)).to_pandas()
