"""Tests for the workspace's typed manifest, derived-column files, schema, rows_of and Job record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import RESERVED_COLUMNS as DATA_RESERVED
from core.errors import PrismError
from core.workspace.derived import DERIVED
from core.workspace.jobs import record as jobs
from core.workspace.manifest import (
    SCHEMA_VERSION,
    ClustersSection,
    DatasetSection,
    RoundRecord,
    Scores,
    SynthesisSection,
)
from core.workspace.records import SubsetRecord
from core.workspace.schema import (
    ANALYSES,
    DERIVED_COLUMNS,
    RESERVED_COLUMNS,
    analysis_of,
    colour_columns,
)
from core.workspace.store import MANIFEST, SAMPLES, Workspace, problems, write_parquet
from core.workspace.subsets import rows_of, rows_of_all, save_subset


def _samples() -> pd.DataFrame:
    return pd.DataFrame(
        {"id": ["a", "b", "c"], "prompt": ["p1", "p2", "p3"], "response": list("xyz")}
    )


def _ws(tmp_path: Path) -> Workspace:
    manifest = {"dataset": {"source": "x.jsonl", "fingerprint": "f", "n_samples": 3}}
    return Workspace.create(tmp_path / "ws", manifest, _samples())


# -- typed manifest ---------------------------------------------------------------------------


def test_sections_round_trip_and_keep_unknown_keys() -> None:
    data = {"n_clusters": 2, "sizes": [3, 1], "sparse": [1], "seed": 0, "future_key": {"a": 1}}
    section = ClustersSection.from_dict(data)
    assert section.n_clusters == 2 and section.sizes == (3, 1) and section.sparse == (1,)
    assert section.to_dict() == data
    assert DatasetSection.from_dict(None) == DatasetSection()
    assert Scores.from_dict({"g_vendi": 2.5}).g_vendi == 2.5


def test_synthesis_rounds_read_as_round_records_and_write_back_unchanged() -> None:
    judged = {
        "round": 2,
        "target": "sparse",
        "generator": "tiny",
        "pool_before": 16,
        "n_clusters": 2,
        "n_sparse": 1,
        "sparse_rows_before": 5,
        "generated": 4,
        "malformed": 1,
        "duplicate": 0,
        "dense": 1,
        "kept": 2,
        "g_vendi_before": 3.5,
        "status": "judged",
        "seconds": 1.25,
    }
    joined = {
        **judged,
        "round": 1,
        "status": "joined",
        "g_vendi_after": 3.75,
        "joined": 2,
        "sparse_rows_after": 7,
        "sparse_clusters_reached": 1,
    }
    data = {"settings": {"rounds": 2}, "rounds": [joined, judged, {"round": 3, "new": 1}]}
    section = SynthesisSection.from_dict(data)
    first, second, bare = section.rounds
    assert isinstance(first, RoundRecord) and first.is_joined and first.joined == 2
    assert second.status == "judged" and second.g_vendi_after is None and not second.is_joined
    assert bare.generated is None and bare.extra == {"new": 1}
    assert section.to_dict() == {**data, "n_joined": 0, "origin_added": False}
    assert [list(r.to_dict()) for r in section.rounds] == [
        list(joined),
        list(judged),
        ["round", "new"],
    ]


def test_typed_access_and_set_section(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    assert ws.clusters is None and ws.dataset.fingerprint == "f" and ws.n_samples == 3
    ws.set_section(ClustersSection(n_clusters=1, sizes=(3,), seed=4))
    again = Workspace.open(ws.path)
    assert again.clusters == ClustersSection(n_clusters=1, sizes=(3,), seed=4)
    assert again.manifest["clusters"]["sizes"] == [3]  # plain JSON on disk


def test_schema_1_workspace_opens_and_reads_its_derived_columns(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    # A schema 1 workspace: derived columns inside samples.parquet.
    write_parquet(ws.path / SAMPLES, _samples().assign(cluster=[0, 1, 0], loss=[1.0, 2.0, 3.0]))
    manifest = json.loads((ws.path / MANIFEST).read_text())
    (ws.path / MANIFEST).write_text(json.dumps({**manifest, "schema_version": 1}))
    old = Workspace.open(ws.path)
    assert old.samples()["cluster"].tolist() == [0, 1, 0]
    old.add_columns({"cluster": np.array([2, 2, 1], dtype=np.int32)})  # the new file wins
    assert old.samples(columns=["cluster", "loss"]).to_dict("list") == {
        "cluster": [2, 2, 1],
        "loss": [1.0, 2.0, 3.0],
    }
    old.drop_columns(["cluster"])
    assert "cluster" not in old.sample_columns()
    old.save_manifest()
    assert Workspace.open(ws.path).manifest["schema_version"] == SCHEMA_VERSION == 2


# -- derived columns --------------------------------------------------------------------------


def test_an_analysis_writes_its_own_file_not_samples_parquet(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    before = (ws.path / SAMPLES).read_bytes()
    version = ws.samples_version()
    ws.add_columns({"umap_x": np.zeros(3), "umap_y": np.ones(3), "cluster": np.arange(3)})
    assert (ws.path / SAMPLES).read_bytes() == before
    assert sorted(p.name for p in (ws.path / DERIVED).iterdir()) == [
        "clusters.parquet",
        "layout.parquet",
    ]
    assert ws.samples_version() != version
    frame = ws.samples()
    assert list(frame.columns) == ["id", "prompt", "response", "cluster", "umap_x", "umap_y"]
    assert ws.samples(columns=["umap_y", "id"]).columns.tolist() == ["umap_y", "id"]
    assert problems(ws.path) == []


def test_write_samples_replaces_the_whole_table(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    ws.add_columns({"cluster": np.arange(3), "loss": np.ones(3)})
    frame = ws.samples().iloc[:2].drop(columns=["cluster"])
    ws.write_samples(frame)
    assert ws.samples().to_dict("list") == {**frame.to_dict("list")}
    assert not (ws.path / DERIVED / "clusters.parquet").exists()


def test_a_derived_file_with_other_rows_is_a_named_problem(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    ws.add_columns({"cluster": np.arange(3)})
    write_parquet(ws.path / DERIVED / "clusters.parquet", pd.DataFrame({"cluster": [0]}))
    found = problems(ws.path)
    assert (
        len(found) == 1
        and "clusters.parquet has 1 rows" in found[0]
        and "prism cluster" in found[0]
    )


# -- schema -----------------------------------------------------------------------------------


def test_schema_declares_each_column_once() -> None:
    assert len(DERIVED_COLUMNS) == len(set(DERIVED_COLUMNS))
    assert analysis_of("cluster") == "clusters" and analysis_of("umap_x") == "layout"
    assert set(ANALYSES["features"].column_names) == {
        "loss",
        "grad_norm",
        "n_tokens",
        "n_response_tokens",
        "truncated",
    }
    assert "umap_x" not in colour_columns() and colour_columns()["cluster"] == "Cluster"
    # The reader's reserved names (core.data may not import core.workspace) match the schema.
    assert set(DATA_RESERVED) == set(RESERVED_COLUMNS)


# -- rows_of ----------------------------------------------------------------------------------


def test_rows_of_is_strict_by_default_and_lenient_for_listings(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    save_subset(ws, "two", ["c", "a"])
    np.testing.assert_array_equal(rows_of(ws, "two"), [2, 0])
    with pytest.raises(PrismError, match="not in the workspace") as info:
        rows_of(ws, "file.txt", ids=["a", "zz"])
    assert info.value.param == "ids"
    subsets = ws.subsets()
    subsets["gone"] = SubsetRecord(ids=("a", "zz"))
    subsets["stale"] = SubsetRecord.from_dict({"ids": ["b"], "stale": {"changed": 1}})
    ws.write_subsets(subsets)
    with pytest.raises(PrismError, match="names 1 ids"):
        rows_of(ws, "gone")
    with pytest.raises(PrismError, match="stale"):
        rows_of(ws, "stale")
    every = rows_of_all(ws)
    assert {k: v.tolist() for k, v in every.items()} == {"two": [2, 0], "gone": [0], "stale": []}


# -- one Job record -----------------------------------------------------------------------------


def test_start_read_and_cancel_a_process_job(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    job = jobs.start_job(ws.path, "sleeper", ["timeit", "-n", "1", "import time; time.sleep(60)"])
    try:
        read = jobs.read_job(ws.path, "sleeper")
        assert read is not None and read.kind == "sleeper" and read.running and read.pid == job.pid
        assert (ws.path / "jobs" / "sleeper.json").is_file()
        assert jobs.cancel_job(ws.path, "sleeper")
        deadline = time.monotonic() + 20
        while jobs.process_alive(int(job.pid or 0)) and time.monotonic() < deadline:
            time.sleep(0.1)
        after = jobs.read_job(ws.path, "sleeper")
        assert after is not None and after.status == jobs.FAILED  # its process is gone
    finally:
        if job.pid and jobs.process_alive(job.pid):
            os.kill(job.pid, 9)


def test_a_thread_job_is_cancelled_through_its_record(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    jobs.report_job(ws.path, "curves", done=1, total=4, message="random, seed 0")
    job = jobs.read_job(ws.path, "curves")
    assert job is not None and job.running and job.pid == os.getpid() and job.fraction == 0.25
    assert not jobs.cancelled(ws.path, "curves")
    assert jobs.cancel_job(ws.path, "curves") and jobs.cancelled(ws.path, "curves")


def test_run_in_thread_records_the_job_and_its_outcome(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    gate = threading.Event()

    def work(steps: int) -> str:
        gate.wait(20)
        for step in range(1, steps + 1):
            jobs.report_job(ws.path, "tables", done=step, total=steps, step=f"step {step}")
        return "finished"

    future = jobs.run_in_thread(work, 3, where=ws.path, kind="tables", total=3)
    running = jobs.read_job(ws.path, "tables")
    assert running is not None and running.running and running.step == "starting"
    gate.set()
    assert future.result(timeout=20) == "finished"
    done = jobs.read_job(ws.path, "tables")
    assert done is not None and done.status == jobs.DONE and done.fraction == 1.0

    def broken() -> None:
        jobs.report_job(ws.path, "broken", done=2, total=5)
        raise ValueError("no such column: 'loss'")

    failed_future = jobs.run_in_thread(broken, where=ws.path, kind="broken", total=5)
    with pytest.raises(ValueError, match="no such column"):
        failed_future.result(timeout=20)
    failed = jobs.read_job(ws.path, "broken")
    assert failed is not None and failed.status == jobs.FAILED
    assert failed.done == 2 and "no such column" in failed.message
    # Without a job it is a plain background call.
    assert jobs.run_in_thread(sum, [1, 2, 3]).result(timeout=20) == 6


def test_schema_1_job_files_still_read(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ws.path / "analysis.json").write_text(
        json.dumps({"status": "running", "step": "layout", "message": "", "pid": dead.pid})
    )
    (ws.path / "job.json").write_text(json.dumps({"status": "done", "done": 3, "total": 3}))
    analysis = jobs.read_job(ws.path, jobs.ANALYSIS)
    assert analysis is not None and analysis.status == "failed" and analysis.step == "layout"
    assert "start it again" in analysis.message
    features = jobs.read_progress(ws.path)
    assert features is not None and features.status == "done" and features.fraction == 1.0
