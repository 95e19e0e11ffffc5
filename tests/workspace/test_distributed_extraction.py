"""Two gloo ranks on the CPU (real processes, torch's elastic launcher) fill one workspace: the
result equals a one-process run, each rank computes its own rows once, also as two "nodes" (two
launchers meeting through a c10d rendezvous), and a run whose rank is killed mid-way is finished
by `prism resume` without redoing the kept shards."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from cli_support import DIM, REPO, TINY, invoke, run_subprocess, sample_records, write_jsonl

from core.data.dataset import load_dataset
from core.features.distributed import Group
from core.features.extract import FeatureConfig
from core.workspace.jobs.extraction import finished_shards, prepare_workspace, run_features
from core.workspace.jobs.record import read_progress
from core.workspace.store import Workspace

N_ROWS = 24
FEATURE_ATOL = 1e-5  # float32 agreement across batch shapes and processes (observed ~1e-6)
LOSS_RTOL = 1e-5
EXACT_COLUMNS = ("n_tokens", "n_response_tokens", "truncated")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("dist") / "rows.jsonl", sample_records(N_ROWS))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Workspace:
    """A one-process run over ``data``."""
    config = FeatureConfig(model="tiny", dim=DIM)
    ws = prepare_workspace(tmp_path_factory.mktemp("ref") / "ws", load_dataset(data), config)
    return run_features(ws)


def _assert_same_result(ws: Workspace, reference: Workspace) -> None:
    features = np.load(ws.features_path, allow_pickle=False)
    expected = np.load(reference.features_path, allow_pickle=False)
    assert features.shape == expected.shape == (N_ROWS, DIM)
    assert np.abs(features - expected).max() <= FEATURE_ATOL
    got, want = ws.samples(), reference.samples()
    assert got["id"].tolist() == want["id"].tolist()
    for name in EXACT_COLUMNS:
        np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy())
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=LOSS_RTOL)
    scores, expected_scores = ws.manifest["scores"], reference.manifest["scores"]
    assert scores["g_vendi"] == pytest.approx(expected_scores["g_vendi"], rel=1e-5)


def test_two_gloo_ranks_equal_one_process(data: Path, reference: Workspace, tmp_path: Path) -> None:
    ws_path = tmp_path / "ws"
    done = run_subprocess("features", data, *TINY, "--workspace", ws_path, "--nproc", "2",
                          "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    ws = Workspace.open(ws_path)
    _assert_same_result(ws, reference)
    section = ws.manifest["features"]
    # Each rank computed its half once: 12 + 12 rows, and assembly found every row covered.
    assert section["rank_rows"] == [N_ROWS // 2, N_ROWS // 2]
    assert section["status"] == "complete"
    progress = read_progress(ws_path)
    assert progress is not None and progress.status == "done" and progress.done == N_ROWS
    assert not ws.shard_dir.exists()  # assembled and cleaned once, by rank 0


def test_two_nodes_of_one_rank_each_equal_one_process(
    data: Path, reference: Workspace, tmp_path: Path
) -> None:
    """The README's multi-node line, minus Slurm: one torchrun per "node" (two on this machine),
    meeting through a c10d rendezvous, each node's rank on local rank 0, one shared workspace."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ws_path = tmp_path / "ws"
    launchers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--rdzv-id",
                "prism-test",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "-m",
                "core",
                "features",
                str(data),
                *TINY,
                "--workspace",
                str(ws_path),
                "--quiet",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        errors = [launcher.communicate(timeout=300)[1] for launcher in launchers]
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
    for launcher, err in zip(launchers, errors, strict=True):
        assert launcher.returncode == 0, err
        assert "Traceback" not in err
    ws = Workspace.open(ws_path)
    _assert_same_result(ws, reference)
    assert ws.manifest["features"]["rank_rows"] == [N_ROWS // 2, N_ROWS // 2]


def _rank_process(
    launcher: subprocess.Popen[str], rank: int, timeout: float = 120
) -> psutil.Process:
    """The worker process of ``rank`` under ``launcher`` (torchrun sets RANK in its environment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            pytest.fail(f"the launcher ended early: {launcher.communicate()}")
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and "core" in child.cmdline():
                    return child
            except psutil.Error:
                continue
        time.sleep(0.05)
    pytest.fail(f"rank {rank} did not start within {timeout:.0f} s")


def test_a_killed_rank_is_resumed_without_redoing_kept_shards(
    data: Path, reference: Workspace, tmp_path: Path
) -> None:
    config = FeatureConfig(model="tiny", dim=DIM)
    ws = prepare_workspace(tmp_path / "ws", load_dataset(data), config)
    # torchrun itself, on a prepared workspace: the command line a cluster job would run.
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "core", "resume", str(ws.path), "--quiet", "--shard-size", "2", "--batch-size", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: list[psutil.Process] = []
    try:
        workers = [_rank_process(launcher, 0), _rank_process(launcher, 1)]
        plan = {r: Group(rank=r, world_size=2).windows(np.arange(N_ROWS), 2) for r in (0, 1)}
        firsts_of_rank1 = {int(w[0]) for w in plan[1]}
        deadline = time.monotonic() + 120
        while not any(int(p.name.split("-")[1]) in firsts_of_rank1
                      for p in ws.shard_dir.glob("shard-*.npz")):  # fmt: skip
            assert time.monotonic() < deadline, "rank 1 wrote no shard"
            assert launcher.poll() is None, launcher.communicate()
            time.sleep(0.002)
        workers[1].send_signal(signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)
    finally:
        for process in workers:  # the ranks run in their own sessions: end each by its id
            if process.is_running():
                process.kill()
        if launcher.poll() is None:
            launcher.kill()
        launcher.wait()
    assert launcher.returncode != 0, err

    kept, shards = finished_shards(Workspace.open(ws.path), N_ROWS, DIM)
    assert 0 < kept.sum() < N_ROWS, "the kill must land mid-run"
    owned = {r: set(np.concatenate(plan[r]).tolist()) for r in (0, 1)}
    seen: set[int] = set()
    for _, rows in shards:  # every shard is one rank's, and no row is in two shards
        assert set(rows.tolist()) <= owned[0] or set(rows.tolist()) <= owned[1]
        assert not seen & set(rows.tolist())
        seen |= set(rows.tolist())
    assert seen & owned[1], "rank 1 kept a shard before its kill"

    # Mark the kept shards' losses: a resume that recomputed them would overwrite the marks.
    marked = np.flatnonzero(kept)
    for path, _ in shards:
        with np.load(path, allow_pickle=False) as shard:
            arrays = {name: shard[name] for name in shard.files}
        arrays["loss"] = arrays["loss"] + 1000.0
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    code, _, err = invoke("resume", ws.path, "--quiet")
    assert code == 0, err
    resumed = Workspace.open(ws.path)
    loss = resumed.samples()["loss"].to_numpy()
    expected = reference.samples()["loss"].to_numpy()
    np.testing.assert_allclose(loss[marked], expected[marked] + 1000.0, rtol=LOSS_RTOL)
    redone = np.flatnonzero(~kept)
    np.testing.assert_allclose(loss[redone], expected[redone], rtol=LOSS_RTOL)
    features = np.load(resumed.features_path, allow_pickle=False)
    expected_features = np.load(reference.features_path, allow_pickle=False)
    assert np.abs(features - expected_features).max() <= FEATURE_ATOL
