"""The on-disk workspace: manifest.json + samples.parquet + features.npy + subsets.json.

A workspace is a directory. ``manifest.json`` records the schema version, the dataset (source,
fingerprint, column mapping), the feature settings (model, scope, dim, seed, …) and every global
result (scores, clustering, layout parameters). ``samples.parquet`` holds one row per sample: the
stable ``id``, all original columns, and derived columns added as analyses run (``loss``,
``grad_norm``, ``cluster``, ``umap_x``…). ``features.npy`` is the (n_samples × dim) float32 matrix
of unit-length sketched gradients, written with ``allow_pickle=False``; ``embeddings.npy`` the
(n_samples × 384 for the default model) unit sentence embeddings of the text-space baseline
(``core.embed``). While features are being extracted, ``shards/`` holds finished shards and
``job.json`` the progress.

Every write goes to a temporary name in the same directory and is then renamed over the target,
so a killed process never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import __version__
from core.errors import WorkspaceError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SAMPLES = "samples.parquet"
FEATURES = "features.npy"
EMBEDDINGS = "embeddings.npy"
SUBSETS = "subsets.json"
SHARDS = "shards"
JOB = "job.json"


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(target: Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_npy(target: Path, array: np.ndarray) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def write_parquet(target: Path, frame: pd.DataFrame) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def read_npy(path: Path, *, mmap: bool = True) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Workspace:
    """A workspace directory; all reads and writes of its files go through here."""

    def __init__(self, path: str | os.PathLike[str], manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Workspace:
        """Open an existing workspace, checking its schema version."""
        root = Path(path)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            hint = "it does not exist" if not root.exists() else "it holds no manifest.json"
            raise WorkspaceError(
                f"{root} is not a Prism workspace ({hint}). Build one with "
                f"`prism features DATA --workspace {root}`."
            )
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise WorkspaceError(
                f"{manifest_path} cannot be read ({error}); rebuild the workspace with --force."
            ) from None
        version = manifest.get("schema_version")
        if not isinstance(version, int):
            raise WorkspaceError(
                f"{manifest_path} has no schema_version; it was not written by Prism."
            )
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"{root} was written by a newer Prism (workspace schema {version}; this Prism reads "
                f"up to {SCHEMA_VERSION}). Upgrade Prism to open it; the workspace is left untouched."
            )
        return cls(root, manifest)

    @classmethod
    def exists(cls, path: str | os.PathLike[str]) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], manifest: dict[str, Any], samples: pd.DataFrame
    ) -> Workspace:
        """Write a new workspace (manifest + samples) and return it."""
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        full = {
            "schema_version": SCHEMA_VERSION,
            "prism_version": __version__,
            "created": now(),
            **manifest,
        }
        workspace = cls(root, full)
        write_parquet(root / SAMPLES, samples)
        workspace.save_manifest()
        return workspace

    # -- manifest -----------------------------------------------------------------------------

    def save_manifest(self) -> None:
        self.manifest["updated"] = now()
        self.manifest["schema_version"] = SCHEMA_VERSION
        write_json(self.path / MANIFEST, self.manifest)

    def update(self, section: str, values: Mapping[str, Any]) -> None:
        """Replace one top-level section of the manifest and save it."""
        self.manifest[section] = dict(values)
        self.save_manifest()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def n_samples(self) -> int:
        return int(self.manifest.get("dataset", {}).get("n_samples", 0))

    @property
    def has_features(self) -> bool:
        return (self.path / FEATURES).is_file() and self.manifest.get("features", {}).get(
            "status"
        ) == "complete"

    # -- samples ------------------------------------------------------------------------------

    def samples(self, columns: list[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.path / SAMPLES, columns=columns)

    def write_samples(self, frame: pd.DataFrame) -> None:
        write_parquet(self.path / SAMPLES, frame)

    def add_columns(self, columns: Mapping[str, np.ndarray | pd.Series]) -> None:
        """Add or replace derived per-sample columns (one value per row, in row order)."""
        frame = self.samples()
        for name, values in columns.items():
            if len(values) != len(frame):
                raise WorkspaceError(
                    f"column {name!r} has {len(values)} values for {len(frame)} samples."
                )
            frame[name] = np.asarray(values)
        self.write_samples(frame)

    def drop_columns(self, names: list[str]) -> None:
        frame = self.samples()
        present = [n for n in names if n in frame.columns]
        if present:
            self.write_samples(frame.drop(columns=present))

    # -- features -----------------------------------------------------------------------------

    def features(self, *, mmap: bool = True) -> np.ndarray:
        """The (n_samples × dim) float32 unit features, memory-mapped by default."""
        if not self.has_features:
            raise WorkspaceError(
                f"{self.path} has no finished features yet. Run `prism features … --workspace {self.path}` "
                "(a stopped run resumes where it left off)."
            )
        return read_npy(self.path / FEATURES, mmap=mmap)

    @property
    def features_path(self) -> Path:
        return self.path / FEATURES

    @property
    def shard_dir(self) -> Path:
        return self.path / SHARDS

    def clear_features(self) -> None:
        """Remove features, shards and every derived result (used by --force)."""
        for name in (FEATURES, JOB):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.shard_dir, ignore_errors=True)
        (self.path / "curves.parquet").unlink(missing_ok=True)
        for section in ("features", "scores", "clusters", "layout", "curves"):
            self.manifest.pop(section, None)

    # -- embeddings (text space) --------------------------------------------------------------

    @property
    def has_embeddings(self) -> bool:
        """True when ``embeddings.npy`` was written by ``prism embed`` for this very dataset."""
        section = self.manifest.get("embedding", {})
        dataset = self.manifest.get("dataset", {})
        return (
            (self.path / EMBEDDINGS).is_file()
            and section.get("n") == self.n_samples
            and section.get("fingerprint") == dataset.get("fingerprint")
        )

    def embeddings(self, *, mmap: bool = True) -> np.ndarray:
        """The (n_samples × dim) float32 unit sentence embeddings, memory-mapped by default."""
        if not self.has_embeddings:
            raise WorkspaceError(
                f"{self.path} has no sentence embeddings for its samples yet. Run "
                f"`prism embed {self.path}`."
            )
        return read_npy(self.path / EMBEDDINGS, mmap=mmap)

    @property
    def embeddings_path(self) -> Path:
        return self.path / EMBEDDINGS

    def write_embeddings(self, embeddings: np.ndarray) -> None:
        write_npy(self.path / EMBEDDINGS, np.ascontiguousarray(embeddings, dtype=np.float32))

    # -- subsets ------------------------------------------------------------------------------

    def subsets(self) -> dict[str, Any]:
        path = self.path / SUBSETS
        if not path.is_file():
            return {}
        return json.loads(path.read_text())

    def write_subsets(self, subsets: Mapping[str, Any]) -> None:
        write_json(self.path / SUBSETS, dict(subsets))


def default_workspace_path(source: str, fingerprint: str) -> Path:
    """``$PRISM_HOME/workspaces/<dataset name>-<fingerprint prefix>``."""
    from core.proxy import prism_home

    stem = source.replace("demo:", "demo-").rstrip("/").split("/")[-1].split(".")[0] or "data"
    return prism_home() / "workspaces" / f"{stem}-{fingerprint[:8]}"


def list_workspaces(root: Path | None = None) -> list[Path]:
    """Workspace directories directly under ``root`` (default ``$PRISM_HOME/workspaces``)."""
    from core.proxy import prism_home

    base = root or prism_home() / "workspaces"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / MANIFEST).is_file())
