"""Tests for core.workspace.jobs.record: kill-and-resume gives the uninterrupted features, runs are reproducible,
and a workspace is never mixed with other data or settings unless forced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import DIM, N_SAMPLES, REPO, TINY, sample_records, write_jsonl

from core.data.dataset import load_dataset
from core.errors import WorkspaceError
from core.features.extract import FeatureConfig
from core.features.tokenize import PAD_MULTIPLE
from core.workspace.jobs.extraction import FEATURE_COLUMNS, config_from_workspace, prepare_workspace
from core.workspace.jobs.record import Progress, cancel, read_progress, write_progress
from core.workspace.manifest import ClustersSection, LayoutSection
from core.workspace.records import SubsetRecord
from core.workspace.store import JOB, MANIFEST, Workspace

# Float32 agreement of the same feature row computed in other batch shapes (observed ~1e-7).
FEATURE_ATOL = 1e-5


def _features(path: Path) -> np.ndarray:
    return np.load(path / "features.npy", allow_pickle=False)


def _derived(path: Path) -> pd.DataFrame:
    return Workspace.open(path).samples(columns=["id", *FEATURE_COLUMNS])


def _temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------------------------
# Kill and resume


def test_kill_mid_run_then_resume_gives_the_uninterrupted_result(
    run_cli: Any, built: dict[str, Any], dataset_file: Path, tmp_path: Path
) -> None:
    shard_size = 4
    n_shards = -(-N_SAMPLES // shard_size)
    ws = tmp_path / "A"
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "features", str(dataset_file), *TINY,
         "--workspace", str(ws), "--shard-size", str(shard_size), "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    shards = ws / "shards"
    deadline = time.monotonic() + 300
    try:
        while not any(shards.glob("*.npz")):
            if process.poll() is not None:
                pytest.fail(f"the run ended before writing a shard: {process.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("no shard appeared within 300 s")
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL

    left = sorted(p.name for p in shards.glob("*.npz"))
    assert 1 <= len(left) < n_shards, (
        f"the kill left {len(left)} of {n_shards} shards; the run must be killed mid-way "
        "(raise N_SAMPLES if the machine is too fast for this test)"
    )
    assert not (ws / "features.npy").exists()
    # job.json still says "running", but its process is gone: it reads as failed.
    assert json.loads((ws / JOB).read_text())["status"] == "running"
    progress = read_progress(ws)
    assert progress is not None and progress.status == "failed"
    assert 0 < progress.done < N_SAMPLES
    manifest = json.loads((ws / MANIFEST).read_text())
    assert manifest["features"]["status"] == "running"
    assert manifest["features"]["shard_size"] == shard_size

    # `resume` keeps the job's own shard size (not its default of 128) and the finished shards.
    code, out, err = run_cli("resume", ws, "--quiet")
    assert code == 0, err

    # Uninterrupted reference: the shared workspace (same data and settings, batch size 5).
    # Other batch shapes: equal to float32 tolerance, not bit for bit.
    reference = built["path"]
    assert np.abs(_features(ws) - _features(reference)).max() <= FEATURE_ATOL
    pd.testing.assert_frame_equal(_derived(ws), _derived(reference), rtol=1e-5)
    finished = Workspace.open(ws)
    assert finished.has_features and finished.manifest["features"]["status"] == "complete"
    ours, theirs = finished.manifest["scores"], Workspace.open(reference).manifest["scores"]
    assert ours["n"] == theirs["n"] and ours["g_vendi"] == pytest.approx(
        theirs["g_vendi"], rel=1e-5
    )
    job = json.loads((ws / JOB).read_text())
    assert job["status"] == "done" and job["done"] == job["total"] == N_SAMPLES
    assert not shards.exists(), "the shard directory is removed once features are assembled"
    assert _temp_files(ws) == []


def test_resume_cleans_up_after_a_kill_during_a_shard_write(run_cli: Any, copy_built: Path) -> None:
    """A killed writer's temporary file does not survive (or block) the final clean-up."""
    ws = Workspace.open(copy_built)
    reference = _features(copy_built).copy()
    frame = ws.samples()
    # Make the copy look like a run killed while writing its last shard, after all the others.
    ws.shard_dir.mkdir()
    for index, start in enumerate(range(0, N_SAMPLES, 8)):
        np.savez(
            ws.shard_dir / f"shard-{index:05d}.npz",
            features=reference[start : start + 8],
            **{name: frame[name].to_numpy()[start : start + 8] for name in FEATURE_COLUMNS},
        )
    (ws.shard_dir / ".shard-00002.npz.abc123.tmp").write_bytes(b"half")
    (copy_built / "features.npy").unlink()
    ws.manifest["features"].update({"status": "running", "shard_size": 8})
    ws.manifest.pop("scores")
    ws.save_manifest()
    code, out, err = run_cli("resume", copy_built, "--quiet")
    assert code == 0, err
    assert np.array_equal(_features(copy_built), reference)
    pd.testing.assert_frame_equal(_derived(copy_built), frame[["id", *FEATURE_COLUMNS]])
    assert Workspace.open(copy_built).manifest["scores"]["n"] == N_SAMPLES
    assert not ws.shard_dir.exists()
    assert _temp_files(copy_built) == []


# --------------------------------------------------------------------------------------------
# Reproducibility and settings


N_BATCH1 = 8  # rows of the batch-size-1 run: the first rows, enough to hold a 64-token sample


@pytest.fixture(scope="module")
def batch1(built: dict[str, Any], dataset_file: Path, tmp_path_factory: Any) -> Path:
    """The first N_BATCH1 rows of the shared data, computed again with --batch-size 1."""
    from cli_support import invoke

    ws = tmp_path_factory.mktemp("batch1") / "ws"
    code, out, err = invoke(
        "features", dataset_file, *TINY, "--workspace", ws, "--batch-size", "1",
        "--limit", N_BATCH1, "--quiet",
    )  # fmt: skip
    assert code == 0, err
    return ws


def _multiple_of_pad(path: Path) -> np.ndarray:
    """Rows whose token count is an exact multiple of the padding width."""
    return (_derived(path)["n_tokens"].to_numpy() % PAD_MULTIPLE) == 0


def test_same_seed_same_features_across_runs_and_batch_sizes(
    built: dict[str, Any], batch1: Path
) -> None:
    features = _features(batch1)
    assert features.dtype == np.float32 and features.shape == (N_BATCH1, DIM)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    # Per-sample results do not depend on the other samples, so they equal `built`'s first rows
    # (another run of the model, with --batch-size 5) to float32 tolerance.
    pd.testing.assert_frame_equal(
        _derived(batch1), _derived(built["path"]).iloc[:N_BATCH1], rtol=1e-5
    )
    reference = _features(built["path"])[:N_BATCH1]
    assert np.abs(features - reference).max() <= FEATURE_ATOL
    # Rows whose length is an exact multiple of the padding width are the ones that once differed.
    assert _multiple_of_pad(batch1).any(), "the shared dataset should hold a 64-token sample"


def test_other_settings_are_refused_unless_forced(
    run_cli: Any, built: dict[str, Any], copy_built: Path, dataset_file: Path
) -> None:
    ws = copy_built
    # Give the copy analyses and a subset, to see what --force replaces and what it keeps.
    Workspace.open(ws).write_subsets({"mine": SubsetRecord(ids=("s000", "s001"))})
    w = Workspace.open(ws)
    w.add_columns({"cluster": np.zeros(N_SAMPLES, dtype=np.int32)})
    w.set_section(ClustersSection(n_clusters=1, seed=0, n_sparse=0))
    w.set_section(LayoutSection(method="umap", seed=0))
    before = {p.name: p.read_bytes() for p in ws.iterdir() if p.is_file()}

    code, out, err = run_cli("features", dataset_file, *TINY, "--workspace", ws, "--seed", "1")
    assert code == 2 and "Traceback" not in err
    message = " ".join(err.split())
    assert "built with other data or settings" in message and "seed: 0 → 1" in message
    assert "--force" in message
    assert {p.name: p.read_bytes() for p in ws.iterdir() if p.is_file()} == before

    other_data = write_jsonl(ws.parent / "other.jsonl", sample_records(N_SAMPLES - 1))
    code, out, err = run_cli("features", other_data, *TINY, "--workspace", ws)
    assert code == 2 and "fingerprint:" in " ".join(err.split())
    assert {p.name: p.read_bytes() for p in ws.iterdir() if p.is_file()} == before

    n = 8  # a rebuild from the first rows only: other data *and* another seed
    code, out, err = run_cli(
        "features", dataset_file, *TINY, "--workspace", ws, "--seed", "1", "--limit", n,
        "--force", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    rebuilt = Workspace.open(ws)
    assert rebuilt.manifest["features"]["settings"]["seed"] == 1
    assert rebuilt.n_samples == n and len(rebuilt.samples()) == n
    assert rebuilt.manifest["features"]["status"] == "complete"
    # Analyses of the old features are gone (they would describe other features) …
    assert "clusters" not in rebuilt.manifest and "layout" not in rebuilt.manifest
    assert "cluster" not in rebuilt.samples().columns
    # … subsets are kept, and the new scores describe the new features.
    assert rebuilt.subsets() == {"mine": SubsetRecord(ids=("s000", "s001"))}
    assert rebuilt.manifest["scores"]["n"] == n
    # Another seed gives other features: no row is even close to its seed-0 twin.
    seed1, seed0 = _features(ws), _features(built["path"])[:n]
    assert seed1.shape == seed0.shape
    assert (np.abs(seed1 - seed0).max(axis=1) > 1e-3).all()
    # The per-sample loss does not depend on the sketch seed.
    np.testing.assert_array_equal(_derived(ws)["loss"], _derived(built["path"])["loss"][:n])


def test_prepare_workspace_checks(tmp_path: Path, dataset_file: Path) -> None:
    dataset = load_dataset(dataset_file)
    config = FeatureConfig(model="tiny", seed=3, dim=64)
    ws = prepare_workspace(tmp_path / "ws", dataset, config)
    assert ws.manifest["features"] == {"settings": config.settings(), "status": "pending"}
    assert ws.manifest["dataset"]["fingerprint"] == dataset.fingerprint
    assert "batch_size" not in config.settings() and "device" not in config.settings()
    # The same settings reopen it; batch size and device are not settings.
    again = prepare_workspace(
        tmp_path / "ws", dataset, FeatureConfig(model="tiny", seed=3, dim=64, batch_size=2)
    )
    assert again.manifest == Workspace.open(tmp_path / "ws").manifest
    assert config_from_workspace(again, batch_size=2) == FeatureConfig(
        model="tiny", seed=3, dim=64, batch_size=2
    )
    with pytest.raises(WorkspaceError, match="dim: 64 → 32"):
        prepare_workspace(tmp_path / "ws", dataset, FeatureConfig(model="tiny", seed=3, dim=32))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(WorkspaceError, match="not a Prism workspace"):
        prepare_workspace(tmp_path / "other", dataset, config)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_workspace(empty, dataset, config).n_samples == N_SAMPLES


def test_config_from_a_workspace_without_settings(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", {}, pd.DataFrame({"id": ["0"]}))
    with pytest.raises(WorkspaceError, match="no feature settings"):
        config_from_workspace(ws)


# --------------------------------------------------------------------------------------------
# Progress


def test_progress_of_a_dead_job_reads_as_failed(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", {}, pd.DataFrame({"id": ["0"]}))
    assert read_progress(ws.path) is None
    assert cancel(ws.path) is False
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_progress(ws, Progress("running", 3, 10, pid=dead.pid, started="t", updated="t"))
    progress = read_progress(ws.path)
    assert progress is not None and progress.status == "failed" and progress.done == 3
    assert "resume" in progress.message
    assert cancel(ws.path) is False
    write_progress(ws, Progress("running", 3, 10, pid=os.getpid()))
    assert read_progress(ws.path).status == "running"  # type: ignore[union-attr]
    assert read_progress(ws.path).fraction == pytest.approx(0.3)  # type: ignore[union-attr]
    (ws.path / JOB).write_text("{broken")
    assert read_progress(ws.path) is None


def test_the_text_space_job_embeds_and_records_each_step(
    copy_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``core.workspace.jobs.embedding.run`` (what the app's button starts in a process)."""
    from core.workspace.jobs import embedding
    from core.workspace.jobs import record as records

    seen: list[tuple[str, str, int]] = []
    write = records.write_job

    def spy(where: Any, job: Any) -> None:
        seen.append((job.status, job.step, job.done))
        write(where, job)

    monkeypatch.setattr(records, "write_job", spy)
    embedding.run(copy_built)
    ws = Workspace.open(copy_built)
    job = embedding.read_status(copy_built)
    assert ws.has_embeddings and ws.embeddings().shape[0] == ws.n_samples
    assert job is not None and job.status == "done" and job.done == job.total == ws.n_samples
    # The steps in order (16 texts fill one batch: no partial "embedding" report), every
    # record after the embedding counting all texts, and the count never going back.
    steps = [step for _, step, _ in seen if step != "embedding"]
    order = [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s]
    assert order == ["loading", "clusters", "map", "neighbours", "lexical"]
    counts = [d for _, _, d in seen]
    assert counts == sorted(counts) and counts[-1] == ws.n_samples
    assert all(d == ws.n_samples for _, step, d in seen if step in ("clusters", "map"))
