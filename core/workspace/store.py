"""The on-disk workspace: manifest.json, the samples table, features.npy, subsets.json.

A workspace is a directory. ``manifest.json`` records the schema version, the dataset (source,
fingerprint, column mapping), the feature settings (model, scope, dim, seed, …) and every global
result (scores, clustering, layout parameters), one typed section each
(``core.workspace.manifest``). ``samples.parquet`` holds one row per sample: the stable ``id`` and
all original columns; each analysis keeps its per-sample columns (``loss``, ``grad_norm``,
``cluster``, ``umap_x``…) in ``derived/<analysis>.parquet`` (``core.workspace.derived``,
``core.workspace.schema``). ``features.npy`` is the (n_samples × dim) float32 matrix of
unit-length sketched gradients, written with ``allow_pickle=False``; ``embeddings.npy`` the
(n_samples × 384 for the default model) unit sentence embeddings of the text-space baseline. While
features are being extracted, ``shards/`` holds finished shards and ``jobs/`` the progress of
background jobs (``core.workspace.jobs.record``). ``subsets.json`` holds the named subsets, read
and written as ``core.workspace.records.SubsetRecord``.

Every write is atomic (``core.workspace.files``). Every read-modify-write (manifest, samples,
subsets) holds the workspace lock (``Workspace.lock``: ``fcntl.flock`` on ``.lock``), and
``save_manifest`` merges by section: it writes only the sections this process changed since it
read the manifest onto what is on disk now, so two commands never drop each other's results.

A damaged file (truncated ``features.npy``, garbage ``samples.parquet`` or ``subsets.json``, a
manifest that is not a JSON object, features whose rows do not match the samples or are not
finite) raises a ``WorkspaceError`` naming the file and the command that rebuilds it;
``problems(path)`` lists them without raising, for listings.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from core import __version__
from core.errors import WorkspaceError
from core.features.proxy import prism_home
from core.workspace import derived, origin
from core.workspace.derived import SAMPLES
from core.workspace.files import (  # write_parquet: re-exported for callers of the store
    lock_file,
    now,
    read_npy,
    short,
    write_json,
    write_npy,
    write_parquet,  # noqa: F401
)
from core.workspace.manifest import (
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    ClustersSection,
    CurvesSection,
    FeatureSection,
    IfdSection,
    LayoutSection,
    OutliersSection,
    Scores,
    Section,
    SynthesisSection,
    TypedSections,
)
from core.workspace.records import SubsetRecord

MANIFEST = "manifest.json"
FEATURES = "features.npy"
EMBEDDINGS = "embeddings.npy"
SUBSETS = "subsets.json"
TAGS = "tags.json"  # keep / drop / flag marks and their undo history (core.workspace.tags)
INDEX = "index"  # the nearest-neighbour index of the features (core.workspace.similar)
SHARDS = "shards"
IFD_SHARDS = "ifd-shards"  # finished rows of an IFD pass (core.workspace.jobs.ifd)
JOBS = "jobs"  # background jobs' records (core.workspace.jobs.record)
JOB = f"{JOBS}/features.json"  # the feature job's record (schema 1: ``job.json``)
LOCK = ".lock"
_FINITE_CHUNK_ROWS = 65_536
# Feature files (path, mtime, size) already found finite in this process: checked once per version.
_finite_files: set[tuple[str, int, int]] = set()


class Workspace(TypedSections):
    """A workspace directory; all reads and writes of its files go through here (its manifest's
    sections typed: ``core.workspace.manifest.TypedSections``)."""

    def __init__(self, path: str | os.PathLike[str], manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest
        # The manifest as last read or written: save_manifest writes only what changed since.
        self._base: dict[str, Any] = {}
        # Things the last operation did that the user should be told (printed by the CLI,
        # shown by the app), e.g. subsets marked stale by a rebuild on other data.
        self.notes: list[str] = []

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this workspace's lock: every read-modify-write of its files runs inside one."""
        with lock_file(self.path / LOCK, what=str(self.path)):
            yield

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
        manifest = _read_manifest(manifest_path)
        version = manifest.get("schema_version")
        if not isinstance(version, int):
            raise WorkspaceError(
                f"{manifest_path} has no schema_version; it was not written by Prism."
            )
        if version < min(READABLE_VERSIONS):
            raise WorkspaceError(
                f"{manifest_path} has workspace schema {version}, older than any this Prism reads "
                f"({', '.join(map(str, READABLE_VERSIONS))}); rebuild the workspace."
            )
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"{root} was written by a newer Prism (workspace schema {version}; this Prism reads "
                f"up to {SCHEMA_VERSION}). Upgrade Prism to open it; the workspace is left untouched."
            )
        workspace = cls(root, manifest)
        workspace._base = copy.deepcopy(manifest)
        return workspace

    @classmethod
    def exists(cls, path: str | os.PathLike[str]) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        sections: Mapping[str, Any] | Sequence[Section],
        samples: pd.DataFrame,
    ) -> Workspace:
        """Write a new workspace (its manifest ``sections`` + samples) and return it.

        ``sections``: typed sections, or a manifest's JSON object of them.
        """
        root = Path(path)
        (root / JOBS).mkdir(parents=True, exist_ok=True)
        manifest = (
            dict(sections)
            if isinstance(sections, Mapping)
            else {section.NAME: section.to_dict() for section in sections}
        )
        full = {
            "schema_version": SCHEMA_VERSION,
            "prism_version": __version__,
            "created": now(),
            **manifest,
        }
        workspace = cls(root, full)
        workspace.write_samples(samples)
        workspace.save_manifest()
        return workspace

    # -- manifest -----------------------------------------------------------------------------

    def save_manifest(self) -> None:
        """Write the sections changed since the last read onto the manifest on disk, under the lock.

        Sections another command wrote meanwhile are kept (and read back into ``self.manifest``).
        """
        path = self.path / MANIFEST
        with self.lock():
            on_disk = _read_manifest(path) if path.is_file() else {}
            merged = dict(on_disk)
            missing = object()
            for key in set(self.manifest) | set(self._base):
                mine = self.manifest.get(key, missing)
                if mine == self._base.get(key, missing):
                    continue
                if mine is missing:
                    merged.pop(key, None)
                else:
                    merged[key] = mine
            merged["updated"] = now()
            merged["schema_version"] = SCHEMA_VERSION
            write_json(path, merged)
            self.manifest.clear()
            self.manifest.update(merged)
            self._base = copy.deepcopy(merged)

    def reload(self) -> None:
        """Read the manifest again from disk (dropping unsaved changes)."""
        fresh = _read_manifest(self.path / MANIFEST)
        self.manifest.clear()
        self.manifest.update(fresh)
        self._base = copy.deepcopy(fresh)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def n_samples(self) -> int:
        return int(self.dataset.n_samples or 0)

    @property
    def has_features(self) -> bool:
        section = self.feature_section
        return (self.path / FEATURES).is_file() and section is not None and section.complete

    # -- samples (core.workspace.derived) ------------------------------------------------------

    @property
    def samples_path(self) -> Path:
        """``samples.parquet``, checked readable (its footer): a WorkspaceError says what to do."""
        path = self.path / SAMPLES
        if not path.is_file():
            raise WorkspaceError(
                f"{path} is missing, so the workspace has no samples. {self.rebuild_hint()}"
            )
        try:
            pq.read_metadata(path)
        except (OSError, ValueError) as error:
            raise WorkspaceError(
                f"{path} cannot be read ({short(error)}). {self.rebuild_hint()}"
            ) from None
        return path

    def samples(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The samples with their derived columns: all, or ``columns`` in that order."""
        return derived.read(self, columns)

    def sample_columns(self) -> list[str]:
        """The names ``samples()`` gives, without reading any values."""
        return derived.column_names(self)

    def samples_version(self) -> float:
        """Changes whenever the samples table does (what caches of it key on)."""
        return derived.version(self.path)

    def write_samples(self, frame: pd.DataFrame) -> None:
        """Replace the whole samples table (derived columns go to their analyses' files)."""
        derived.write(self, frame)

    def add_columns(self, columns: Mapping[str, np.ndarray | pd.Series]) -> None:
        """Add or replace derived per-sample columns (one value per row, in row order)."""
        derived.add(self, columns)

    def drop_columns(self, names: list[str]) -> None:
        derived.drop(self, names)

    def rebuild_hint(self) -> str:
        """The command that rebuilds this workspace for its origin (``core.workspace.origin``)."""
        return origin.rebuild_hint(self)

    # -- features -----------------------------------------------------------------------------

    def features(self, *, mmap: bool = True, check_finite: bool = True) -> np.ndarray:
        """The (n_samples × dim) float32 unit features, memory-mapped by default.

        Refuses (WorkspaceError) a file that cannot be read, whose shape does not match the
        samples and the recorded dim, or (``check_finite``) that holds NaN or infinite values.
        """
        path = self.path / FEATURES
        if (self.feature_section or FeatureSection()).complete and not path.is_file():
            raise WorkspaceError(
                f"{path} is missing (deleted?). {origin.missing_features_hint(self)}"
            )
        if not self.has_features:
            raise WorkspaceError(
                f"{self.path} has no finished features yet. Run `prism resume {self.path}` "
                "(or `prism features … --workspace` again; a stopped run resumes where it left off)."
            )
        try:
            features = read_npy(path, mmap=mmap)
        except (OSError, ValueError, EOFError) as error:
            raise WorkspaceError(
                f"{path} cannot be read ({short(error)}). {self.rebuild_hint()}"
            ) from None
        dim = (self.feature_section or FeatureSection()).dim
        expected = (self.n_samples, dim if isinstance(dim, int) else features.shape[-1])
        if features.ndim != 2 or features.shape != expected:
            raise WorkspaceError(
                f"{path} holds an array of shape {features.shape}, but the workspace has "
                f"{expected[0]:,} samples × {expected[1]} numbers. {self.rebuild_hint()}"
            )
        stat = path.stat()
        version = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if check_finite and version not in _finite_files:
            for start in range(0, len(features), _FINITE_CHUNK_ROWS):
                block = np.asarray(features[start : start + _FINITE_CHUNK_ROWS])
                bad = ~np.isfinite(block).all(axis=1)
                if bad.any():
                    row = start + int(np.flatnonzero(bad)[0])
                    raise WorkspaceError(
                        f"{path} holds non-finite values (NaN or infinity), first at row {row:,}; "
                        f"no score or analysis can use it. {self.rebuild_hint()}"
                    )
            _finite_files.add(version)
        return features

    @property
    def features_path(self) -> Path:
        return self.path / FEATURES

    @property
    def shard_dir(self) -> Path:
        return self.path / SHARDS

    def clear_features(self) -> None:
        """Remove features, shards, the neighbour index and every derived result (--force)."""
        for name in (FEATURES, JOB, "job.json"):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.shard_dir, ignore_errors=True)
        shutil.rmtree(self.index_dir, ignore_errors=True)
        shutil.rmtree(self.path / IFD_SHARDS, ignore_errors=True)
        (self.path / "curves.parquet").unlink(missing_ok=True)
        self.drop_sections(
            FeatureSection,
            Scores,
            ClustersSection,
            LayoutSection,
            CurvesSection,
            SynthesisSection,
            IfdSection,
            OutliersSection,
            save=False,
        )
        # Synthetic rows go with the samples being replaced; their candidates are set aside, not
        # deleted (features of other settings must not join the new samples).
        candidates = self.path / "synthesis"
        if candidates.is_dir():
            candidates.rename(self.path / f"synthesis-replaced-{now().replace(':', '')}")

    # -- embeddings (text space) --------------------------------------------------------------

    @property
    def has_embeddings(self) -> bool:
        """True when ``embeddings.npy`` was written by ``prism embed`` for this very dataset."""
        section = self.embedding
        return (
            (self.path / EMBEDDINGS).is_file()
            and section is not None
            and section.n == self.n_samples
            and section.fingerprint == self.dataset.fingerprint
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

    def subsets(self) -> dict[str, SubsetRecord]:
        """The named subsets of ``subsets.json``, in its order (none when it does not exist)."""
        data = self._json_file(SUBSETS, "named subsets")
        if not all(isinstance(r, dict) and isinstance(r.get("ids"), list) for r in data.values()):
            self._damaged(SUBSETS, "it is not a JSON object of named subsets", "no subsets")
        return {name: SubsetRecord.from_dict(record) for name, record in data.items()}

    def write_subsets(self, subsets: Mapping[str, SubsetRecord]) -> None:
        write_json(self.path / SUBSETS, {name: r.to_dict() for name, r in subsets.items()})

    # -- tags ---------------------------------------------------------------------------------

    def tag_file(self) -> dict[str, Any]:
        """``tags.json``: {"tags": {id: {"tag", "note", "at"}}, "history": [...]} ({} when none)."""
        data = self._json_file(TAGS, "tags")
        if not all(isinstance(data.get(k, t()), t) for k, t in (("tags", dict), ("history", list))):
            self._damaged(TAGS, "it does not hold tags and their history", "no tags")
        return data

    def write_tags(self, data: Mapping[str, Any]) -> None:
        write_json(self.path / TAGS, dict(data))

    @property
    def index_dir(self) -> Path:
        return self.path / INDEX

    def _json_file(self, name: str, what: str) -> dict[str, Any]:
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self._damaged(name, short(error), f"no {what}")
        if not isinstance(data, dict):
            self._damaged(name, f"it is not a JSON object of {what}", f"no {what}")
        return data

    def _damaged(self, name: str, reason: str, fresh: str) -> NoReturn:
        path = self.path / name
        raise WorkspaceError(
            f"{path} is damaged ({reason}). Move it away to start again with {fresh} "
            f"(`mv '{path}' '{path}.damaged'`), or restore it from a copy."
        )


# A damaged manifest no longer says how the workspace was made.
_OR_IMPORT = "(features imported from elsewhere: `prism import-features` into a new workspace)"


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WorkspaceError(
            f"{path} cannot be read ({short(error)}). Rebuild the workspace with "
            f"`prism features DATA --workspace {path.parent} --force` {_OR_IMPORT}."
        ) from None
    if not isinstance(manifest, dict):
        raise WorkspaceError(
            f"{path} is JSON but not an object (it holds {type(manifest).__name__}); it was not "
            f"written by Prism or is damaged. Rebuild the workspace with "
            f"`prism features DATA --workspace {path.parent} --force` {_OR_IMPORT}."
        )
    return manifest


def problems(path: str | os.PathLike[str]) -> list[str]:
    """What is damaged in the workspace at ``path``, one message per file (empty: healthy).

    Cheap: reads the manifest, the Parquet footer, the ``.npy`` header and ``subsets.json``, not
    the feature values (those are checked when an analysis loads them).
    """
    root = Path(path)
    try:
        workspace = Workspace.open(root)
    except WorkspaceError as error:
        return [str(error)]
    found: list[str] = []
    samples = root / SAMPLES
    try:
        n_rows = pq.read_metadata(samples).num_rows
    except (OSError, ValueError) as error:
        reason = "missing" if not samples.exists() else f"cannot be read ({short(error)})"
        found.append(f"{samples} is {reason}. {workspace.rebuild_hint()}")
    else:
        if n_rows != workspace.n_samples:
            found.append(
                f"{samples} has {n_rows:,} rows but the manifest records {workspace.n_samples:,} "
                f"samples. {workspace.rebuild_hint()}"
            )
        found += derived.problems(workspace, n_rows)
    if workspace.has_features:
        try:
            workspace.features(check_finite=False)
        except WorkspaceError as error:
            found.append(str(error))
    for read in (workspace.subsets, workspace.tag_file):
        try:
            read()
        except WorkspaceError as error:
            found.append(str(error))
    return found


def default_workspace_path(source: str, fingerprint: str) -> Path:
    """``$PRISM_HOME/workspaces/<dataset name>-<fingerprint prefix>``."""
    stem = source.replace("demo:", "demo-").rstrip("/").split("/")[-1].split(".")[0] or "data"
    return prism_home() / "workspaces" / f"{stem}-{fingerprint[:8]}"


def list_workspaces(root: Path | None = None) -> list[Path]:
    """Workspace directories directly under ``root`` (default ``$PRISM_HOME/workspaces``)."""
    base = root or prism_home() / "workspaces"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / MANIFEST).is_file())
