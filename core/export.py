"""Export a subset's rows: JSONL, CSV, Parquet or a Hugging Face dataset, plus a manifest.

The rows keep every original column of the dataset, values as loaded and names as in the file
(columns Prism renamed because they clashed with its own are named back), in the original row
order; ``derived=True`` adds Prism's per-sample columns (cluster, umap_x/umap_y, loss, …).
Beside the export, ``<out>.manifest.json`` records where the rows came from and how the subset
was made, so ``prism select --from-manifest`` can rebuild it.

Exports stream: ``samples.parquet`` is read one record batch at a time, so memory stays at a
batch whatever the size of the dataset. Every write goes to a temporary name first and is
renamed into place; an existing file or folder is replaced only with ``force``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import __version__
from core.data import RESERVED_COLUMNS
from core.errors import PrismError
from core.vendi import subset_vendi
from core.workspace import SAMPLES, Workspace, now, write_json

FORMATS = ("jsonl", "csv", "parquet", "hf")
SUFFIXES = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet", "hf": ""}
BATCH_ROWS = 16_384


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


def export_columns(workspace: Workspace, *, derived: bool) -> tuple[list[str], dict[str, str]]:
    """(stored columns to write, stored name → name in the export).

    Original columns are those the dataset brought (``dataset.original_columns`` in the manifest;
    older workspaces: every column that is not one of Prism's). Prism's string ``id`` is written
    only when the dataset's own id column was called ``id``, or with ``derived``.
    """
    dataset = workspace.manifest.get("dataset", {})
    stored = pq.read_schema(workspace.path / SAMPLES).names
    back = {new: old for old, new in (dataset.get("renamed") or {}).items()}
    original = dataset.get("original_columns")
    if original is None:
        derived_like = set(RESERVED_COLUMNS)
        original = [c for c in stored if c not in derived_like or c in back]
    keep = [c for c in stored if c in set(original)]
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
    file = pq.ParquetFile(workspace.path / SAMPLES)
    wanted = np.sort(np.asarray(rows, dtype=np.int64))
    start = 0
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        stop = start + batch.num_rows
        lo, hi = np.searchsorted(wanted, [start, stop])
        if hi > lo:
            yield pa.Table.from_batches([batch]).take(pa.array(wanted[lo:hi] - start))
        start = stop


def _write_stream(fmt: str, target: Path, tables: Iterator[pa.Table], names: list[str]) -> int:
    count = 0
    if fmt == "parquet":
        writer: pq.ParquetWriter | None = None
        for table in tables:
            table = table.rename_columns(names)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
            count += table.num_rows
        if writer is None:
            raise PrismError("Nothing to export: the subset selects no rows.")
        writer.close()
        return count
    with open(target, "w", encoding="utf-8", newline="") as handle:
        for table in tables:
            frame = table.rename_columns(names).to_pandas()
            if fmt == "jsonl":
                text = frame.to_json(orient="records", lines=True, force_ascii=False)
                handle.write(text if text.endswith("\n") or not text else text + "\n")
            else:
                frame.to_csv(handle, index=False, header=count == 0)
            count += len(frame)
    return count


def _write_hf(
    workspace: Workspace, rows: np.ndarray, columns: list[str], names: list[str], target: Path
) -> int:
    from datasets import Dataset  # heavy import, only for this format

    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        parquet = Path(scratch) / "rows.parquet"
        count = _write_stream("parquet", parquet, _batches(workspace, rows, columns), names)
        dataset = Dataset.from_parquet(str(parquet), cache_dir=str(Path(scratch) / "cache"))
        dataset.save_to_disk(str(target))
    return count


def _replace(temporary: Path, out: Path) -> None:
    """Move ``temporary`` (file or folder) to ``out``; an old ``out`` goes only once the new is in."""
    if out.is_dir() and not out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        temporary.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temporary, out)


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
    """Write ``rows`` (positions) of the workspace to ``out`` in ``fmt``, with its manifest."""
    check_format(fmt)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        raise PrismError("Nothing to export: the subset selects no rows.")
    if rows[0] < 0 or rows[-1] >= workspace.n_samples:
        raise PrismError(f"Row positions must be in 0..{workspace.n_samples - 1}.")
    target = Path(out).expanduser()
    manifest_target = manifest_path_for(target)
    for path in (target, manifest_target):
        if path.exists() and not force:
            raise PrismError(
                f"{path} already exists; choose another --out, or pass --force to replace it."
            )
    if not target.parent.is_dir():
        raise PrismError(f"The folder {target.parent} does not exist; create it first.")
    columns, names = export_columns(workspace, derived=derived)
    new_names = [names[c] for c in columns]
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        if fmt == "hf":
            count = _write_hf(workspace, rows, columns, new_names, temporary)
        else:
            count = _write_stream(fmt, temporary, _batches(workspace, rows, columns), new_names)
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
        write_json(manifest_target, manifest)
        _replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
    return ExportResult(target, manifest_target, count, fmt, tuple(new_names))


def export_subset(
    workspace: Workspace,
    name: str,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    derived: bool = False,
    force: bool = False,
) -> ExportResult:
    """``export_rows`` of the named subset ``name``, its ``how`` going into the manifest."""
    from core.subsets import named_subset

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
    """An export manifest, checked enough to rebuild its subset."""
    file = Path(path)
    try:
        manifest = json.loads(file.read_text())
    except FileNotFoundError:
        raise PrismError(
            f"{file} does not exist; pass the .manifest.json written beside an export."
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise PrismError(f"{file} is not a readable JSON manifest ({error}).") from None
    subset = manifest.get("subset") if isinstance(manifest, dict) else None
    if not isinstance(subset, dict) or not isinstance(subset.get("ids"), list):
        raise PrismError(f"{file} is not a Prism export manifest (it has no subset ids).")
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
