"""Long jobs: resumable, sharded feature extraction, in this process or a background one.

``prepare_workspace`` writes the dataset and the feature settings into a workspace (refusing to
mix settings unless forced). ``run_features`` then computes features shard by shard: each
finished shard is written atomically to ``shards/``, and ``job.json`` records progress
(samples/s, ETA), so a killed run picks up at the first missing shard and ends with exactly the
features an uninterrupted run gives. Memory stays bounded by one shard plus the model.
``start_background`` runs the same job in its own process (for the app) — it survives a closed
browser tab — and ``cancel`` stops it; its finished shards are kept for a later resume.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data import ColumnMap, Dataset, conversations
from core.errors import PrismError, WorkspaceError
from core.gradients import FeatureConfig
from core.workspace import JOB, Workspace, atomic_path, now, read_npy, write_json

DEFAULT_SHARD_SIZE = 128
FEATURE_COLUMNS = ("loss", "grad_norm", "n_tokens", "n_response_tokens", "truncated")


@dataclass(frozen=True)
class Progress:
    """A snapshot of a feature job, as written to ``job.json``."""

    status: str  # "running" | "done" | "failed" | "cancelled"
    done: int
    total: int
    samples_per_s: float = 0.0
    eta_s: float | None = None
    pid: int | None = None
    message: str = ""
    started: str = ""
    updated: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


# ------------------------------------------------------------------------------------------
# Preparing a workspace


def _settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def prepare_workspace(
    path: str | os.PathLike[str], dataset: Dataset, config: FeatureConfig, *, force: bool = False
) -> Workspace:
    """Create the workspace for ``dataset`` + ``config``, or reopen it to resume the same job.

    An existing workspace built from other data or settings is refused unless ``force``, which
    clears its features and derived results (its subsets are kept).
    """
    root = Path(path)
    wanted = {"fingerprint": dataset.fingerprint, **config.settings()}
    workspace: Workspace | None = None
    if Workspace.exists(root):
        workspace = Workspace.open(root)
        built = {
            "fingerprint": workspace.manifest.get("dataset", {}).get("fingerprint"),
            **workspace.manifest.get("features", {}).get("settings", {}),
        }
        diff = _settings_diff(built, wanted)
        if not diff:
            return workspace
        if not force:
            raise WorkspaceError(
                f"Workspace {root} was built with other data or settings:\n  "
                + "\n  ".join(diff)
                + "\nChoose another --workspace, or pass --force to rebuild this one (its features "
                "and analyses are replaced; subsets are kept)."
            )
        workspace.clear_features()
    elif root.exists() and any(root.iterdir()):
        raise WorkspaceError(
            f"{root} exists and is not a Prism workspace; refusing to write into it. "
            "Choose an empty or new directory for --workspace."
        )
    manifest = {
        "dataset": {
            "source": dataset.source,
            "fingerprint": dataset.fingerprint,
            "columns": dataset.columns.to_dict(),
            "n_samples": dataset.n_samples,
            "n_total": dataset.n_total,
            "n_skipped": dataset.n_skipped,
            "renamed": dataset.renamed,
            # Stored names of the columns the file brought (export writes exactly these).
            "original_columns": [c for c in dataset.samples.columns if c != "id"],
        },
        "features": {"settings": config.settings(), "status": "pending"},
    }
    if workspace is not None:
        # Keep the in-memory manifest: clear_features() dropped the stale analyses from it, and
        # re-reading the file would bring them back.
        workspace.manifest.update(manifest)
        workspace.write_samples(dataset.samples)
        workspace.save_manifest()
        return workspace
    return Workspace.create(root, manifest, dataset.samples)


def config_from_workspace(workspace: Workspace, **overrides: Any) -> FeatureConfig:
    """The FeatureConfig a workspace was prepared with (batch size / device may be overridden)."""
    settings = dict(workspace.manifest.get("features", {}).get("settings", {}))
    if not settings:
        raise WorkspaceError(
            f"{workspace.path} has no feature settings; run `prism features` first."
        )
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return FeatureConfig(**settings)


# ------------------------------------------------------------------------------------------
# Running


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def _shard_path(workspace: Workspace, index: int) -> Path:
    return workspace.shard_dir / f"shard-{index:05d}.npz"


def _finished_shard(workspace: Workspace, index: int, size: int, dim: int) -> bool:
    path = _shard_path(workspace, index)
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as shard:
            return shard["features"].shape == (size, dim)
    except Exception:  # a shard we cannot read is simply recomputed
        return False


def write_progress(workspace: Workspace, progress: Progress) -> None:
    write_json(workspace.path / JOB, progress.__dict__)


def read_progress(path: str | os.PathLike[str]) -> Progress | None:
    """The last progress written by a job in workspace ``path``, if any."""
    import json

    job = Path(path) / JOB
    if not job.is_file():
        return None
    try:
        data = json.loads(job.read_text())
        progress = Progress(**data)
    except (OSError, ValueError, TypeError):
        return None
    if progress.status == "running" and progress.pid and not process_alive(progress.pid):
        return Progress(
            **{
                **progress.__dict__,
                "status": "failed",
                "message": progress.message
                or "the job's process ended without finishing; resume it",
            }
        )
    return progress


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a finished, unreaped child counts as not running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return True


class _Stop(Exception):
    pass


def run_features(
    workspace: Workspace,
    *,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    device: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_progress: Callable[[Progress], None] | None = None,
) -> Workspace:
    """Compute (or finish) the features of a prepared workspace, then its scores."""
    from core.proxy import load_proxy

    config = config_from_workspace(
        workspace, batch_size=batch_size, batch_tokens=batch_tokens, device=device
    )
    if shard_size < 1:
        raise PrismError(f"shard_size must be ≥ 1, got {shard_size}.")
    if workspace.has_features:
        return workspace
    samples = workspace.samples()
    columns = ColumnMap.from_dict(workspace.manifest["dataset"]["columns"])
    total = len(samples)
    ranges = shard_ranges(total, workspace.manifest["features"].get("shard_size", shard_size))
    workspace.manifest["features"]["shard_size"] = (
        ranges[0][1] - ranges[0][0] if ranges else shard_size
    )
    workspace.manifest["features"]["status"] = "running"
    workspace.save_manifest()
    workspace.shard_dir.mkdir(exist_ok=True)
    todo = [
        i for i, (a, b) in enumerate(ranges) if not _finished_shard(workspace, i, b - a, config.dim)
    ]
    done = total - sum(ranges[i][1] - ranges[i][0] for i in todo)
    started, t0 = now(), time.monotonic()
    state = {"done": done, "new": 0}

    def report(status: str, message: str = "") -> None:
        elapsed = time.monotonic() - t0
        rate = state["new"] / elapsed if elapsed > 0 and state["new"] else 0.0
        eta = (total - state["done"]) / rate if rate else None
        progress = Progress(
            status, state["done"], total, rate, eta, os.getpid(), message, started, now()
        )
        write_progress(workspace, progress)
        if on_progress is not None:
            on_progress(progress)

    def stop(signum: int, frame: Any) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, stop) if _main_thread() else None
    try:
        report("running", "loading the proxy model" if todo else "assembling")
        if todo:
            from core.gradients import FeatureExtractor

            proxy = load_proxy(
                config.model,
                dtype=config.dtype,
                device=config.device,
                trust_remote_code=config.trust_remote_code,
            )
            extractor = FeatureExtractor(proxy, config)
            workspace.manifest["features"].update(
                {
                    "model_fingerprint": proxy.fingerprint,
                    "n_params_in_scope": extractor.n_params,
                    "n_layers_in_scope": len(extractor.layers),
                    "device": str(proxy.device),
                }
            )
            workspace.save_manifest()
            t0 = time.monotonic()  # the rate counts extraction only, not the model load
            report("running")
            for index in todo:
                start, end = ranges[index]
                encoded = extractor.encode(conversations(samples.iloc[start:end], columns))

                def on_batch(n: int) -> None:
                    state["done"] += n
                    state["new"] += n
                    report("running")

                batch = extractor.compute(encoded, on_batch=on_batch)
                with atomic_path(_shard_path(workspace, index)) as tmp, open(tmp, "wb") as handle:
                    np.savez(
                        handle,
                        **{
                            "features": batch.features,
                            **{name: getattr(batch, name) for name in FEATURE_COLUMNS},
                        },
                    )
        _assemble(workspace, ranges, config.dim)
        report("done", "features complete")
    except _Stop:
        workspace.manifest["features"]["status"] = "cancelled"
        workspace.save_manifest()
        report("cancelled", "stopped; finished shards are kept — resume to continue")
        raise PrismError(
            "Feature extraction was stopped; run it again to resume from the last finished shard."
        ) from None
    except BaseException as error:
        workspace.manifest["features"]["status"] = "failed"
        workspace.save_manifest()
        report("failed", str(error) or type(error).__name__)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return workspace


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _assemble(workspace: Workspace, ranges: list[tuple[int, int]], dim: int) -> None:
    """Stream the shards into features.npy and the per-sample columns; then score."""
    from numpy.lib.format import open_memmap

    from core.vendi import covariance_from_npy, vendi_from_covariance

    total = ranges[-1][1] if ranges else 0
    columns: dict[str, list[np.ndarray]] = {name: [] for name in FEATURE_COLUMNS}
    with atomic_path(workspace.features_path) as tmp:
        out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, dim))
        for index, (start, end) in enumerate(ranges):
            with np.load(_shard_path(workspace, index), allow_pickle=False) as shard:
                out[start:end] = shard["features"]
                for name in FEATURE_COLUMNS:
                    columns[name].append(shard[name])
        out.flush()
        del out
    workspace.add_columns({name: np.concatenate(parts) for name, parts in columns.items()})
    truncated = int(np.concatenate(columns["truncated"]).sum()) if total else 0
    workspace.manifest["features"].update(
        {
            "status": "complete",
            "n_samples": total,
            "dim": dim,
            "n_truncated": truncated,
            "grad_norm": "estimated from the sketch (JL estimate, a few % relative error), not exact",
            "completed": now(),
        }
    )
    covariance, n = covariance_from_npy(workspace.features_path)
    workspace.manifest["scores"] = scores_record(vendi_from_covariance(covariance), n=n, dim=dim)
    workspace.save_manifest()
    # rmtree, not rmdir: a run killed while writing a shard leaves its temporary file behind.
    shutil.rmtree(workspace.shard_dir, ignore_errors=True)


def q_label(q: float) -> str:
    return "inf" if q == float("inf") else f"{q:g}"


def scores_record(scores: dict[float, float], *, n: int, dim: int) -> dict[str, Any]:
    """The one schema for whole-set scores, in the manifest and in `prism score --json`."""
    return {
        "g_vendi": float(scores[1.0]),
        "vendi": {q_label(q): float(v) for q, v in scores.items()},
        "n": int(n),
        "dim": int(dim),
    }


# ------------------------------------------------------------------------------------------
# Background process (for the app)


def start_background(
    path: str | os.PathLike[str],
    *,
    batch_size: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> int:
    """Run `prism resume` for a prepared workspace in a detached process; returns its pid."""
    root = Path(path)
    command = [
        sys.executable,
        "-m",
        "core",
        "resume",
        str(root),
        "--quiet",
        "--shard-size",
        str(shard_size),
    ]
    if batch_size:
        command += ["--batch-size", str(batch_size)]
    log = open(root / "job.log", "ab")  # noqa: SIM115 — handed to the child process
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    log.close()
    write_progress(
        Workspace.open(root),
        Progress(
            "running",
            0,
            Workspace.open(root).n_samples,
            pid=process.pid,
            message="starting",
            started=now(),
            updated=now(),
        ),
    )
    return process.pid


def cancel(path: str | os.PathLike[str]) -> bool:
    """Ask a running background job to stop (finished shards are kept). True if one was running."""
    progress = read_progress(path)
    if progress is None or progress.status != "running" or not progress.pid:
        return False
    try:
        os.kill(progress.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def load_features(workspace: Workspace) -> np.ndarray:
    return read_npy(workspace.features_path)
