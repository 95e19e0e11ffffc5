"""Feature extraction into a workspace: resumable and sharded, in this process or a background one.

``prepare_workspace`` writes the dataset and the feature settings into a workspace (refusing to
mix settings unless forced). ``run_features`` then computes features shard by shard: each
finished shard is written atomically to ``shards/``, and the job record (``jobs/features.json``,
``core.workspace.jobs.record``) holds progress (samples/s, ETA), so a killed run picks up at the first
missing shard and ends with exactly the features an uninterrupted run gives. Memory stays
bounded by one shard plus the model. ``start_background`` runs the same job in its own process
(for the app; it survives a closed tab) and ``cancel`` stops it, keeping its finished shards.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from core.data.columns import ColumnMap
from core.data.dataset import Dataset
from core.data.text import conversations
from core.errors import JobStopped, WorkspaceError
from core.features.distributed import SOLO, Group
from core.features.extract import FeatureConfig, FeatureExtractor
from core.features.proxy import conversion_note, load_proxy
from core.measures.vendi import gram_from_npy, vendi_from_covariance
from core.validate import check_int, check_number
from core.workspace.files import atomic_path, now
from core.workspace.jobs.record import FEATURES, Job, Stop, sigterm_stops, start_job, write_progress
from core.workspace.manifest import DatasetSection, FeatureSection, Section, scores_record
from core.workspace.origin import imported_source
from core.workspace.schema import ANALYSES
from core.workspace.store import Workspace
from core.workspace.subsets import mark_stale

DEFAULT_SHARD_SIZE = 128
# A shard also closes after this much work, so a kill loses at most about this much.
DEFAULT_SHARD_SECONDS = 30.0
FEATURE_COLUMNS = ANALYSES["features"].column_names
_COLUMN_DTYPES = {
    "loss": np.float32,
    "grad_norm": np.float32,
    "n_tokens": np.int32,
    "n_response_tokens": np.int32,
    "truncated": np.bool_,
}


# ------------------------------------------------------------------------------------------
# Preparing a workspace


def _settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_workspace_target(path: str | os.PathLike[str]) -> None:
    """Refuse a workspace path that is, or lies under, an existing file — before any work."""
    root = Path(path)
    for part in (root, *root.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                where = "" if part == root else f" (its parent {part} is a file)"
                raise WorkspaceError(
                    f"{root} is not a directory{where}; a workspace is a folder. Choose a new "
                    "or empty directory for `workspace`.",
                    param="workspace",
                )
            return


def outermost_missing(path: str | os.PathLike[str]) -> Path | None:
    """The outermost folder that creating ``path`` would add (``path`` itself or a parent)."""
    root = Path(path).absolute()
    missing = None
    for part in (root, *root.parents):
        if part.exists() or part.is_symlink():
            break
        missing = part
    return missing


def remove_created(path: str | os.PathLike[str], created: Path | None) -> None:
    """Undo a workspace this run created (``created``, from ``outermost_missing``, with all in
    it; None: the folder existed, empty, so only what was written into it goes), nothing else."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for child in Path(path).iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def dataset_section(dataset: Dataset) -> DatasetSection:
    """The manifest's record of a loaded dataset (what was read, how, and what was said)."""
    return DatasetSection(
        source=dataset.source,
        fingerprint=dataset.fingerprint,
        columns=dataset.columns.to_dict(),
        n_samples=dataset.n_samples,
        n_total=dataset.n_total,
        n_skipped=dataset.n_skipped,
        renamed=dataset.renamed,
        original_columns=tuple(c for c in dataset.samples.columns if c != "id"),
        json_columns=tuple(dataset.json_columns),
        split=dataset.split,
        sample=dataset.sample,
        sample_seed=dataset.sample_seed,
        notes=tuple(dataset.notes),
    )


def prepare_workspace(
    path: str | os.PathLike[str], dataset: Dataset, config: FeatureConfig, *, force: bool = False
) -> Workspace:
    """Create the workspace for ``dataset`` + ``config``, or reopen it to resume the same job.

    An existing workspace built from other data or settings is refused unless ``force``, which
    clears its features and derived results. Its subsets are kept; those whose ids now name other
    rows are marked stale (``core.workspace.subsets.mark_stale``), and ``workspace.notes`` says so.
    """
    root = Path(path)
    check_workspace_target(root)
    wanted = {"fingerprint": dataset.fingerprint, **config.settings()}
    workspace: Workspace | None = None
    if Workspace.exists(root):
        workspace = Workspace.open(root)
        section = workspace.feature_section or FeatureSection()
        built = {"fingerprint": workspace.dataset.fingerprint, **section.settings}
        diff = _settings_diff(built, wanted)
        if not diff:
            return workspace
        if not force:
            raise WorkspaceError(
                f"Workspace {root} was built with other data or settings:\n  "
                + "\n  ".join(diff)
                + "\nChoose another `workspace`, or rebuild this one with `force` (its features "
                "and analyses are replaced; subsets are kept).",
                param="workspace",
            )
        workspace.clear_features()
    elif root.exists() and any(root.iterdir()):
        raise WorkspaceError(
            f"{root} exists and is not a Prism workspace; refusing to write into it. "
            "Choose an empty or new directory for `workspace`.",
            param="workspace",
        )
    described = dataset_section(dataset)
    sections: tuple[Section, ...] = (described, FeatureSection(settings=config.settings()))
    if workspace is not None:
        before = workspace.samples()
        before_columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
        # Keep the in-memory manifest: clear_features() dropped the stale analyses from it, and
        # re-reading the file would bring them back.
        with workspace.lock():
            for new in sections:
                workspace.set_section(new, save=False)
            workspace.write_samples(dataset.samples)
            workspace.save_manifest()
            stale = mark_stale(workspace, before=before, before_columns=before_columns)
        if stale:
            names = ", ".join(repr(n) for n in stale[:5]) + (", …" if len(stale) > 5 else "")
            workspace.notes.append(
                f"{len(stale)} subset(s) ({names}) name rows that changed with the new data; "
                "their ids would now select other rows, so they are marked stale and cannot be "
                "exported or used. Delete them with `prism subset delete`."
            )
        return workspace
    created = outermost_missing(root)
    try:
        return Workspace.create(root, sections, dataset.samples)
    except BaseException:
        remove_created(root, created)  # leave no half-written workspace behind
        raise


def config_from_workspace(workspace: Workspace, **overrides: Any) -> FeatureConfig:
    """The FeatureConfig a workspace was prepared with (batch size / device may be overridden).
    A workspace of imported features has none: Prism cannot compute features in their space."""

    source = imported_source(workspace)
    if source is not None:
        raise WorkspaceError(
            f"{workspace.path} holds features imported from {source}; they name no model Prism "
            "can run, so Prism cannot compute features in their space. "
            f"{workspace.rebuild_hint()}"
        )
    settings = dict((workspace.feature_section or FeatureSection()).settings)
    if not settings:
        raise WorkspaceError(
            f"{workspace.path} has no feature settings; run `prism features` first."
        )
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return FeatureConfig(**settings)


# ------------------------------------------------------------------------------------------
# Running


def _shard_path(workspace: Workspace, rows: np.ndarray) -> Path:
    # Rows of a new shard are all still missing, so (first row, count) never names a kept shard.
    return workspace.shard_dir / f"shard-{int(rows.min()):09d}-{len(rows):06d}.npz"


def _shard_rows(path: Path, shard: Any, legacy_size: int) -> np.ndarray:
    """The sample rows a shard holds: stored in it, or (older shards) implied by its index."""
    if "rows" in shard.files:
        return np.asarray(shard["rows"], dtype=np.int64)
    index = int(path.stem.split("-")[1])
    start = index * legacy_size
    return np.arange(start, start + len(shard["features"]), dtype=np.int64)


def finished_shards(
    workspace: Workspace, total: int, dim: int
) -> tuple[np.ndarray, list[tuple[Path, np.ndarray]]]:
    """(mask of rows already computed, [(shard file, its rows)]) from the readable shards.

    A shard that cannot be read, or whose arrays do not fit, is ignored and its rows computed
    again: a run killed while writing one loses that shard, nothing else.
    """
    done = np.zeros(total, dtype=bool)
    shards: list[tuple[Path, np.ndarray]] = []
    legacy_size = int((workspace.feature_section or FeatureSection()).shard_size or 1)
    if not workspace.shard_dir.is_dir():
        return done, shards
    for path in sorted(workspace.shard_dir.glob("shard-*.npz")):
        try:
            with np.load(path, allow_pickle=False) as shard:
                rows = _shard_rows(path, shard, legacy_size)
                ok = shard["features"].shape == (len(rows), dim) and all(
                    len(shard[name]) == len(rows) for name in FEATURE_COLUMNS
                )
        except Exception:  # unreadable: recomputed
            continue
        if not ok or len(rows) == 0 or rows.min() < 0 or rows.max() >= total:
            continue
        done[rows] = True
        shards.append((path, rows))
    return done, shards


def _update_features(workspace: Workspace, *, save: bool = True, **changes: Any) -> None:
    """Change fields of the ``features`` section (and save it, unless ``save`` is False)."""
    section = workspace.feature_section or FeatureSection()
    workspace.set_section(dataclasses.replace(section, **changes), save=save)


def run_features(
    workspace: Workspace,
    *,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    device: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_seconds: float = DEFAULT_SHARD_SECONDS,
    on_progress: Callable[[Job], None] | None = None,
    group: Group = SOLO,
) -> Workspace:
    """Compute (or finish) the features of a prepared workspace, then its scores.

    Work goes in windows of ``shard_size`` missing rows; a shard closes when its window is done
    or when ``shard_seconds`` of work have passed since the last one closed, whichever comes
    first, so a kill loses at most about ``shard_seconds`` of work whatever the data or device.
    A stop (Ctrl-C, SIGTERM from the app's Cancel) keeps the finished rows and raises
    ``JobStopped`` saying what was kept and how to resume.

    Under torchrun, ``group`` (``core.features.distributed.join``) is this rank: rank 0 plans
    the missing rows, each rank computes its windows of them into its own shards, and rank 0
    alone writes the manifest and the progress (the other ranks' rows estimated from its own),
    waits for all ranks, and assembles; the others return when their windows are done.
    """

    config = config_from_workspace(
        workspace, batch_size=batch_size, batch_tokens=batch_tokens, device=group.device or device
    )
    check_int(shard_size, param="shard_size", minimum=1)
    check_number(shard_seconds, param="shard_seconds", above=0)
    samples = workspace.samples()
    total = len(samples)
    plan = None
    if group.is_main and not workspace.has_features:
        # A started job keeps its own shard size.
        shard_size = int((workspace.feature_section or FeatureSection()).shard_size or shard_size)
        _update_features(
            workspace, shard_size=shard_size, shard_seconds=float(shard_seconds), status="running"
        )
        workspace.shard_dir.mkdir(exist_ok=True)
        covered, _ = finished_shards(workspace, total, config.dim)
        plan = (shard_size, np.flatnonzero(~covered))
    plan = group.share(plan)  # one plan for all ranks, read before any of them writes a shard
    if plan is None:
        return workspace
    shard_size, todo = plan
    windows = group.windows(todo, shard_size)
    columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
    started, t0 = now(), time.monotonic()
    state = {"done": total - len(todo), "new": 0}

    def report(status: str, message: str = "") -> None:
        if not group.is_main:
            return
        elapsed = time.monotonic() - t0
        new = min(state["new"] * group.world_size, len(todo))  # the other ranks: estimated
        if status == "running":
            state["done"] = max(state["done"], total - len(todo) + new)
        rate = new / elapsed if elapsed > 0 and new else 0.0
        eta = (total - state["done"]) / rate if rate else None
        progress = Job(
            status, state["done"], total, rate, eta, os.getpid(), message, started, now()
        )
        write_progress(workspace, progress)
        if on_progress is not None:
            on_progress(progress)

    with sigterm_stops():
        try:
            loading = conversion_note(config.model) or "loading the proxy model"
            report("running", loading if len(todo) else "assembling")
            if len(todo):
                proxy = load_proxy(
                    config.model,
                    dtype=config.dtype,
                    device=config.device,
                    trust_remote_code=config.trust_remote_code,
                )
                extractor = FeatureExtractor(proxy, config)
                _update_features(
                    workspace,
                    model_fingerprint=proxy.fingerprint,
                    n_params_in_scope=extractor.n_params,
                    n_layers_in_scope=len(extractor.layers),
                    device=str(proxy.device),
                )
                t0 = time.monotonic()  # the rate counts extraction only, not the model load
                report("running")
                last_close = time.monotonic()
                for rows in windows:
                    encoded = extractor.encode(conversations(samples.iloc[rows], columns))
                    pending: list[tuple[list[int], np.ndarray, np.ndarray, np.ndarray]] = []
                    with closing(extractor.iter_batches(encoded)) as batches:
                        for part in batches:
                            pending.append(part)
                            state["new"] += len(part[0])
                            report("running")
                            if time.monotonic() - last_close >= shard_seconds:
                                _write_shard(workspace, rows, encoded, pending)
                                pending, last_close = [], time.monotonic()
                    _write_shard(workspace, rows, encoded, pending)
                    last_close = time.monotonic()
            rank_rows = group.gather(state["new"])  # waits for every rank's last shard
            if not group.is_main:
                return workspace
            ranks = {"rank_rows": tuple(rank_rows)} if group.distributed else {}
            _assemble(workspace, total, config.dim, **ranks)
            state["done"] = total
            report("done", "features complete")
        except (Stop, KeyboardInterrupt) as error:
            shown = state["done"]  # what the progress said, rows not yet in a shard included
            if group.is_main:
                kept, _ = finished_shards(workspace, total, config.dim)
                state["done"] = int(kept.sum())
                _update_features(workspace, status="cancelled")
            report(
                "cancelled",
                _stop_note(state["done"], shown - state["done"], shard_size, shard_seconds),
            )
            interrupted = isinstance(error, KeyboardInterrupt)
            if not group.is_main:  # rank 0 says what was kept and how to resume
                raise JobStopped(
                    f"rank {group.rank}: its finished shards are kept.",
                    exit_code=130 if interrupted else 143,
                ) from None
            raise JobStopped(
                f"Feature extraction was {'interrupted' if interrupted else 'stopped'}: "
                f"{state['done']:,} of {total:,} samples are finished and kept in {workspace.path}. "
                f"Continue with: prism resume {shlex.quote(str(workspace.path))}",
                exit_code=130 if interrupted else 143,
            ) from None
        except BaseException as error:
            if group.is_main:
                _update_features(workspace, status="failed")
            report("failed", str(error) or type(error).__name__)
            raise
    return workspace


def _stop_note(kept: int, redone: int, shard_size: int, shard_seconds: float) -> str:
    """What a stop keeps; the rows in progress (not yet in a shard) are computed again."""
    redo = (
        f"; the {redone:,} in progress are redone on resume (a shard holds at most "
        f"{shard_size:,} samples or {shard_seconds:g} s of work)"
    )
    kept_note = f"stopped; {kept:,} finished samples are kept"
    return f"{kept_note}{redo if redone > 0 else ''} — resume to continue"


def _write_shard(
    workspace: Workspace,
    rows: np.ndarray,
    encoded: list[Any],
    parts: list[tuple[list[int], np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    """Write the finished batches ``parts`` of the window ``rows`` as one shard (atomically)."""
    if not parts:
        return
    local = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    order = np.argsort(local, kind="stable")
    local = local[order]
    shard_rows = rows[local]
    arrays = {
        "rows": shard_rows,
        "features": np.concatenate([p[1] for p in parts])[order],
        "grad_norm": np.concatenate([p[2] for p in parts])[order],
        "loss": np.concatenate([p[3] for p in parts])[order].astype(np.float32),
        "n_tokens": np.array([len(encoded[i].input_ids) for i in local], dtype=np.int32),
        "n_response_tokens": np.array([encoded[i].n_response for i in local], dtype=np.int32),
        "truncated": np.array([encoded[i].truncated for i in local], dtype=bool),
    }
    with atomic_path(_shard_path(workspace, shard_rows)) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def _assemble(workspace: Workspace, total: int, dim: int, **changes: Any) -> None:
    """Stream the shards into features.npy and the per-sample columns; then score.

    ``changes`` go into the features section with the rest (``rank_rows`` of a distributed run).
    """

    covered, shards = finished_shards(workspace, total, dim)
    if not covered.all():
        missing = np.flatnonzero(~covered)
        raise WorkspaceError(
            f"{workspace.path}: {len(missing):,} samples have no finished shard (first row "
            f"{int(missing[0]):,}); run `prism resume {workspace.path}` to compute them."
        )
    columns: dict[str, np.ndarray] = {
        name: np.zeros(total, dtype=dtype) for name, dtype in _COLUMN_DTYPES.items()
    }
    with atomic_path(workspace.features_path) as tmp:
        out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, dim))
        for path, rows in shards:
            with np.load(path, allow_pickle=False) as shard:
                out[rows] = shard["features"]
                for name in FEATURE_COLUMNS:
                    columns[name][rows] = shard[name]
        out.flush()
        del out
    with workspace.lock():
        workspace.add_columns(columns)
        _update_features(
            workspace,
            save=False,
            status="complete",
            n_samples=total,
            dim=dim,
            n_truncated=int(columns["truncated"].sum()),
            grad_norm="estimated from the sketch (JL estimate, a few % relative error), not exact",
            completed=now(),
            **changes,
        )
        gram, n = gram_from_npy(workspace.features_path)
        record = scores_record(vendi_from_covariance(gram), n=n, dim=dim)
        workspace.set_section(record)
    # rmtree, not rmdir: a run killed while writing a shard leaves its temporary file behind.
    shutil.rmtree(workspace.shard_dir, ignore_errors=True)


def start_background(
    path: str | os.PathLike[str],
    *,
    batch_size: int | None = None,
    shard_size: int | None = None,
    shard_seconds: float | None = None,
) -> int:
    """Run `prism resume` for a prepared workspace in a detached process; returns its pid."""
    argv = ["core", "resume", str(path), "--quiet"]
    argv += ["--shard-size", str(shard_size or DEFAULT_SHARD_SIZE)]
    argv += ["--shard-seconds", str(shard_seconds or DEFAULT_SHARD_SECONDS)]
    if batch_size:
        argv += ["--batch-size", str(batch_size)]
    job = start_job(path, FEATURES, argv, total=Workspace.open(path).n_samples)
    return int(job.pid or 0)
