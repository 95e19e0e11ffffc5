"""No lost work: Ctrl-C and Cancel keep what is finished, shards close by time as well as by size,
a rebuild on other data marks the subsets it invalidates, and concurrent commands (real
processes) never lose each other's updates."""

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
import pytest
from cli_support import DIM, REPO, TINY, invoke, sample_records, write_jsonl

from core.data.dataset import load_dataset
from core.errors import PrismError
from core.features.extract import FeatureConfig
from core.workspace.jobs.extraction import finished_shards, prepare_workspace, run_features
from core.workspace.jobs.record import cancel, read_progress
from core.workspace.store import Workspace
from core.workspace.subsets import rows_of, save_subset

# Float32 agreement of the same feature row computed in other batch shapes (observed ~1e-7).
FEATURE_ATOL = 1e-5
N_LONG = 64  # enough rows that a tiny-model run is still going when it is interrupted


def _features_cmd(data: Path, ws: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core", "features", str(data), *TINY, "--workspace", str(ws),
            "--quiet", *extra]  # fmt: skip


def _wait_for_shard(process: subprocess.Popen[Any], shards: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not any(shards.glob("*.npz")):
        if process.poll() is not None:
            pytest.fail(f"the run ended before writing a shard: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no shard appeared within {timeout:.0f} s")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("long")
    return write_jsonl(root / "long.jsonl", sample_records(N_LONG))


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory: pytest.TempPathFactory, long_file: Path) -> np.ndarray:
    """Features of an uninterrupted run over ``long_file`` (in this process: the runs that are
    interrupted are the real processes)."""
    ws = tmp_path_factory.mktemp("long-ref") / "ws"
    code, _, err = invoke("features", long_file, *TINY, "--workspace", ws, "--quiet")
    assert code == 0, err
    return np.load(ws / "features.npy", allow_pickle=False)


def test_ctrl_c_exits_130_keeps_shards_and_says_how_to_resume(
    long_file: Path, long_reference: np.ndarray, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    process = subprocess.Popen(
        _features_cmd(long_file, ws, "--shard-size", "2", "--batch-size", "1"),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for_shard(process, ws / "shards")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, (out, err)
    message = " ".join(err.split())
    assert "Traceback" not in err
    assert f"Continue with: prism resume {ws}" in message
    kept, _ = finished_shards(Workspace.open(ws), N_LONG, DIM)
    assert 0 < kept.sum() < N_LONG
    assert f"{int(kept.sum()):,} of {N_LONG:,} samples are finished and kept" in message
    assert read_progress(ws).status == "cancelled"  # type: ignore[union-attr]

    code, _, err = invoke("resume", ws, "--quiet")
    assert code == 0, err
    features = np.load(ws / "features.npy", allow_pickle=False)
    assert np.abs(features - long_reference).max() <= FEATURE_ATOL


def test_shards_close_by_time_so_a_kill_keeps_work_below_one_shard(
    long_file: Path, long_reference: np.ndarray, tmp_path: Path
) -> None:
    """One window of 128 rows holds the whole 64-row job; a shard still closes every 0.2 s."""
    ws = tmp_path / "ws"
    process = subprocess.Popen(
        _features_cmd(long_file, ws, "--shard-seconds", "0.2", "--batch-size", "1"),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for_shard(process, ws / "shards")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    workspace = Workspace.open(ws)
    assert workspace.manifest["features"]["shard_size"] == 128 > N_LONG
    kept, shards = finished_shards(workspace, N_LONG, DIM)
    assert 0 < kept.sum() < N_LONG, "the kill must land mid-run (raise N_LONG on a fast machine)"
    kept_rows = np.flatnonzero(kept)
    kept_features = np.zeros((N_LONG, DIM), dtype=np.float32)
    for path, rows in shards:
        with np.load(path, allow_pickle=False) as shard:
            kept_features[rows] = shard["features"]

    # The background job of the app resumes it (what "Resume" after Cancel does).
    resumed: list[int] = []
    run_features(Workspace.open(ws), on_progress=lambda p: resumed.append(p.done))
    assert resumed[0] == kept.sum(), "the resume starts from the kept rows, not from 0"
    features = np.load(ws / "features.npy", allow_pickle=False)
    # Rows of kept shards are reused as they are; the others agree to float32 tolerance.
    np.testing.assert_array_equal(features[kept_rows], kept_features[kept_rows])
    assert np.abs(features - long_reference).max() <= FEATURE_ATOL


def test_cancel_of_a_background_job_keeps_its_finished_rows(tmp_path: Path) -> None:
    from core.workspace.jobs.extraction import start_background

    # Many rows, so the job is surely still running when Cancel comes (it stops after ~1 s).
    dataset = load_dataset(write_jsonl(tmp_path / "many.jsonl", sample_records(8 * N_LONG)))
    ws = prepare_workspace(tmp_path / "ws", dataset, FeatureConfig(model="tiny", dim=DIM))
    pid = start_background(ws.path, batch_size=1, shard_seconds=0.2)
    deadline = time.monotonic() + 300
    while not any(ws.shard_dir.glob("*.npz")):
        assert time.monotonic() < deadline, "no shard within 300 s"
        time.sleep(0.005)
    assert cancel(ws.path)
    while _alive(pid):
        assert time.monotonic() < deadline, "the job did not stop"
        time.sleep(0.05)
    progress = read_progress(ws.path)
    assert progress is not None and progress.status == "cancelled"
    kept, _ = finished_shards(Workspace.open(ws.path), 8 * N_LONG, DIM)
    assert progress.done == kept.sum() > 0
    assert f"{progress.done:,} finished samples are kept" in progress.message


def test_a_stop_says_the_rows_in_progress_are_redone(tmp_path: Path) -> None:
    """The progress counts rows before their shard is written: a stop then keeps fewer than it
    showed, and says that those in progress are computed again (not lost work)."""
    from core.errors import JobStopped

    dataset = load_dataset(write_jsonl(tmp_path / "few.jsonl", sample_records(12)))
    ws = prepare_workspace(tmp_path / "ws", dataset, FeatureConfig(model="tiny", dim=DIM))
    shown: list[int] = []

    def stop_after_two(progress: Any) -> None:
        if progress.status == "running" and progress.done >= 2 and not shown:
            shown.append(progress.done)
            raise KeyboardInterrupt

    with pytest.raises(JobStopped):
        run_features(ws, batch_size=1, shard_seconds=600, on_progress=stop_after_two)
    progress = read_progress(ws.path)
    assert progress is not None and progress.status == "cancelled" and progress.done == 0
    assert shown == [2]
    assert progress.message.startswith("stopped; 0 finished samples are kept; the 2 in progress")
    assert "redone on resume" in progress.message and "128 samples or 600 s" in progress.message


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return finished == 0


# --------------------------------------------------------------------------------------------
# Subsets and rebuilds on other data


def _numbered(n: int, offset: int = 0) -> list[dict[str, str]]:
    """Rows without an id column (ids are row numbers)."""
    return [{k: v for k, v in r.items() if k != "id"} for r in sample_records(n + offset)][offset:]


def test_rebuild_on_other_data_marks_subsets_whose_rows_changed(tmp_path: Path) -> None:
    config = FeatureConfig(model="tiny", dim=DIM)
    first = write_jsonl(tmp_path / "a.jsonl", _numbered(10))
    ws = prepare_workspace(tmp_path / "ws", load_dataset(first), config)
    save_subset(ws, "first three", ["0", "1", "2"])
    # Other data, row-number ids: row "0" is now another sample.
    other = write_jsonl(tmp_path / "b.jsonl", _numbered(10, offset=5))
    rebuilt = prepare_workspace(ws.path, load_dataset(other), config, force=True)
    assert any("first three" in note and "stale" in note for note in rebuilt.notes)
    with pytest.raises(PrismError, match="stale"):
        rows_of(rebuilt, "first three")


def test_rebuild_keeps_subsets_whose_rows_are_unchanged(tmp_path: Path) -> None:
    config = FeatureConfig(model="tiny", dim=DIM)
    data = write_jsonl(tmp_path / "a.jsonl", sample_records(10))
    ws = prepare_workspace(tmp_path / "ws", load_dataset(data), config)
    save_subset(ws, "two", ["s001", "s002"])
    # Stable ids, the same rows plus others: the subset still names what it named.
    more = write_jsonl(tmp_path / "b.jsonl", sample_records(14))
    rebuilt = prepare_workspace(ws.path, load_dataset(more), config, force=True)
    assert rebuilt.notes == []
    np.testing.assert_array_equal(rows_of(rebuilt, "two"), [1, 2])


def test_export_of_a_stale_subset_is_refused_by_the_cli(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", _numbered(10))
    ws = tmp_path / "ws"
    for data, extra in (
        (first, []),
        (write_jsonl(tmp_path / "b.jsonl", _numbered(10, 5)), ["--force"]),
    ):
        # The builds run in this process; the export that must refuse is a real one.
        code, _, err = invoke("features", data, *TINY, "--workspace", ws, "--quiet", *extra)
        assert code == 0, err
        if not extra:
            save_subset(Workspace.open(ws), "head", ["0", "1"])
        else:
            assert "marked stale" in " ".join(err.split())
    out = tmp_path / "head.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "core", "export", str(ws), "--subset", "head", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "stale" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    listed = subprocess.run(
        [sys.executable, "-m", "core", "subset", "list", str(ws), "--json"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "other rows" in json.loads(listed.stdout)["head"]["stale"]


# --------------------------------------------------------------------------------------------
# Concurrency: real processes


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "core", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_concurrent_selects_keep_every_subset(copy_built: Path) -> None:
    names = [f"random {i}" for i in range(12)]
    processes = [
        _spawn("select", str(copy_built), "--method", "random", "--k", "3", "--seed", str(i),
               "--name", name)
        for i, name in enumerate(names)
    ]  # fmt: skip
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    assert sorted(Workspace.open(copy_built).subsets()) == sorted(names)


def test_concurrent_clusterings_leave_labels_and_manifest_in_agreement(copy_built: Path) -> None:
    processes = [
        _spawn("cluster", str(copy_built), "--k", str(k), "--seed", "0") for k in (2, 3, 4, 5)
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    ws = Workspace.open(copy_built)
    labels = ws.samples()["cluster"].to_numpy()
    section = ws.manifest["clusters"]
    assert np.bincount(labels, minlength=section["n_clusters"]).tolist() == section["sizes"]


WRITER = """
import sys
import numpy as np
from core.workspace.store import Workspace
path, tag, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(rounds):
    ws = Workspace.open(path)
    with ws.lock():
        ws.add_columns({f"col_{tag}": np.full(ws.n_samples, i)})
        ws.manifest[f"section_{tag}"] = {"round": i}  # a section this Prism does not know
        ws.save_manifest()
"""


def test_concurrent_writers_keep_each_others_columns_and_sections(copy_built: Path) -> None:
    """Two processes each writing a column and a manifest section, over and over, at once."""
    rounds = 15
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(copy_built), tag, str(rounds)],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for tag in ("a", "b", "c")
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    ws = Workspace.open(copy_built)
    frame = ws.samples()
    manifest = json.loads((copy_built / "manifest.json").read_text())
    for tag in ("a", "b", "c"):
        assert (frame[f"col_{tag}"] == rounds - 1).all()
        assert manifest[f"section_{tag}"] == {"round": rounds - 1}
    assert manifest["scores"] == Workspace.open(copy_built).manifest["scores"]
