"""Exports never destroy anything: what ``--force`` may replace, the data + manifest pair under
kills (real ``python -m core export`` processes killed at each publishing step), two exports to
one path at once, and JSONL/CSV cells that read back as they were.

The processes are held at a step with ``PRISM_EXPORT_PAUSE`` (``core.workspace.publish``): the export says
so on stderr and waits for a line on stdin, so a kill lands exactly there.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import REPO, invoke

from core.errors import PrismError
from core.workspace.compare import WHOLE_SET
from core.workspace.export import (
    content_digest,
    export_rows,
    export_subset,
    manifest_path_for,
    read_export,
    read_manifest,
)
from core.workspace.publish import PAUSE_ENV
from core.workspace.store import Workspace, write_npy
from core.workspace.subsets import save_subset

N = 12
COLUMNS = ["id", "prompt", "response", "tags", "meta", "score", "count"]


def _records() -> list[dict[str, Any]]:
    """Rows with text that JSON writers like to escape, list and dict cells, a missing float."""
    return [
        {
            "id": f"r{i:02d}",
            "prompt": f"Question {i}: what is a/b when a = {i}? Café, naïve, 日本語, 🚀",
            "response": f'Answer {i}, "quoted", comma, and\na second line; path /usr/{i}',
            "tags": [f"t{i}", "shared/tag", "é"][: 1 + i % 3],
            "meta": {"source": f"site/{i}", "level": i % 4},
            "score": None if i % 5 == 0 else i / 7,
            "count": 2**40 + i,
        }
        for i in range(N)
    ]


def _workspace(path: Path) -> Workspace:
    """A finished workspace with list, dict and float columns (no model: features are random)."""
    samples = pd.DataFrame(_records())
    manifest = {
        "dataset": {
            "source": "records",
            "fingerprint": "export-safety",
            "columns": {"prompt": "prompt", "response": "response", "id": "id"},
            "original_columns": COLUMNS[1:],  # Prism keeps "id" apart
            "n_samples": N,
            "n_total": N,
            "n_skipped": 0,
            "renamed": {},
        },
        "features": {"settings": {"model": "synthetic", "dim": 8, "seed": 0}, "status": "complete"},
    }
    workspace = Workspace.create(path, manifest, samples)
    features = np.random.default_rng(0).standard_normal((N, 8)).astype(np.float32)
    write_npy(workspace.features_path, features / np.linalg.norm(features, axis=1, keepdims=True))
    save_subset(workspace, "first", ["r00", "r01", "r02"])
    save_subset(workspace, "last", ["r09", "r10", "r11"])
    save_subset(workspace, "all", [f"r{i:02d}" for i in range(N)])
    return Workspace.open(path)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return _workspace(tmp_path / "ws")


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself) with its bytes."""
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_round_trips_every_cell(ws: Workspace, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"all.{fmt}"
    result = export_subset(ws, "all", fmt=fmt, out=out)
    assert result.n_rows == N and list(result.columns) == COLUMNS
    expected = _records()
    if fmt == "jsonl":
        text = out.read_text(encoding="utf-8")
        assert "\\/" not in text and "\\u" not in text  # plain UTF-8 JSON
        assert "a/b" in text and "日本語" in text and "🚀" in text
        got = [json.loads(line) for line in text.splitlines()]
    elif fmt == "csv":
        with open(out, encoding="utf-8", newline="") as handle:
            got = list(csv.DictReader(handle))
        for row in got:  # list and dict cells are JSON text, numbers their exact digits
            row["tags"], row["meta"] = json.loads(row["tags"]), json.loads(row["meta"])
            row["score"] = float(row["score"]) if row["score"] else None
            row["count"] = int(row["count"])
    else:
        got = read_export(out, fmt).to_dict(orient="records")
        for row in got:
            row["tags"] = list(row["tags"])
            row["score"] = None if math.isnan(row["score"]) else row["score"]
    assert len(got) == N
    for row, want in zip(got, expected, strict=True):
        assert row.keys() == want.keys()
        for key in COLUMNS:
            if key == "score" and want[key] is not None:
                assert row[key] == pytest.approx(want[key], rel=1e-15)
            else:
                assert row[key] == want[key], key


def test_cli_exports_the_whole_set_without_subset(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "whole.jsonl"
    code, stdout, err = invoke("export", ws.path, "--out", out)
    assert code == 0, err
    assert "the whole set" in stdout
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        r["id"] for r in _records()
    ]
    manifest = read_manifest(manifest_path_for(out))
    assert manifest.subset["name"] == WHOLE_SET
    assert manifest.subset["how"] == {"method": "whole_set"}
    assert manifest.n_rows == N and len(manifest.subset["ids"]) == N
    assert manifest.sha256 == content_digest(out)


# -- what --force may replace ------------------------------------------------------------------


def test_force_never_replaces_a_folder_or_anything_in_a_workspace(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = tmp_path / "my-data"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "sub" / "deep.jsonl").write_text("{}\n")
    (ws.path / "notes").mkdir()
    (ws.path / "notes" / "old.jsonl").write_text("{}\n")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an export")
    before = {p: _snapshot(p) for p in (folder, ws.path, text_file)}

    refused = [
        (folder, "jsonl", "is a folder"),
        (folder, "hf", "not a previous hf export"),
        (ws.path, "hf", "is the Prism workspace"),
        (ws.path / "samples.parquet", "parquet", "inside the Prism workspace"),
        (ws.path / "manifest.json", "jsonl", "inside the Prism workspace"),
        (ws.path / "notes" / "old.jsonl", "jsonl", "inside the Prism workspace"),
        (text_file, "csv", "neither a previous csv export"),
    ]
    for out, fmt, message in refused:
        code, _, err = invoke(
            "export", ws.path, "--subset", "first", "--format", fmt, "--out", out, "--force"
        )
        assert code == 2, (out, fmt, err)
        assert message in err and "Choose another --out" in err, err
        assert "Traceback" not in err
    assert {p: _snapshot(p) for p in (folder, ws.path, text_file)} == before
    assert _temporaries(tmp_path) == [] and _temporaries(ws.path) == []

    # A workspace file is refused even without --force, with no hint to use it.
    code, _, err = invoke("export", ws.path, "--out", ws.path / "subsets.json")
    assert code == 2 and "inside the Prism workspace" in err and "pass --force" not in err


def test_force_replaces_a_previous_export_of_the_same_format(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "rows.data"  # no suffix: only its manifest says what it is
    export_subset(ws, "first", fmt="jsonl", out=out)
    with pytest.raises(PrismError, match="already exists"):
        export_subset(ws, "last", fmt="jsonl", out=out)
    with pytest.raises(PrismError, match="neither a previous csv export"):
        export_subset(ws, "last", fmt="csv", out=out, force=True)
    export_subset(ws, "last", fmt="jsonl", out=out, force=True)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        "r09",
        "r10",
        "r11",
    ]
    assert read_manifest(manifest_path_for(out)).subset["name"] == "last"

    folder = tmp_path / "rows-hf"
    export_subset(ws, "first", fmt="hf", out=folder)
    export_subset(ws, "last", fmt="hf", out=folder, force=True)
    assert read_export(folder, "hf")["id"].tolist() == ["r09", "r10", "r11"]
    manifest = read_manifest(manifest_path_for(folder))
    assert manifest.subset["name"] == "last" and manifest.sha256 == content_digest(folder)
    (folder / "my-notes.txt").write_text("mine")  # no longer only an export: kept
    with pytest.raises(PrismError, match="holds more than an hf export"):
        export_subset(ws, "first", fmt="hf", out=folder, force=True)
    assert (folder / "my-notes.txt").read_text() == "mine"
    assert _temporaries(tmp_path) == []


def test_a_manifest_that_does_not_match_its_data_is_refused(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    result = export_subset(ws, "first", fmt="jsonl", out=out)
    out.write_text(out.read_text().replace("r01", "r99"))
    with pytest.raises(PrismError, match="does not match its manifest"):
        read_manifest(result.manifest_path)
    code, _, err = invoke(
        "select", ws.path, "--from-manifest", result.manifest_path, "--name", "again"
    )
    assert code == 2 and "does not match its manifest" in err


# -- kills and concurrency, in real processes ---------------------------------------------------


def _start(ws: Workspace, *args: Any, pause: str) -> subprocess.Popen[str]:
    """``python -m core export`` held at ``pause``; returns once it says it is there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "export", str(ws.path), *map(str, args)],
        cwd=REPO,
        env={**os.environ, PAUSE_ENV: pause},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if f"paused at {pause}" in line:
            return process
    process.wait()
    raise AssertionError(f"the export never reached {pause}: {''.join(seen)}")


def _kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL


def _export(ws: Workspace, *args: Any) -> subprocess.CompletedProcess[str]:
    """``python -m core export`` run to its end; stderr with rich's line wrapping undone (and a
    wide console, so that no path longer than a line is broken mid-word)."""
    done = subprocess.run(
        [sys.executable, "-m", "core", "export", str(ws.path), *map(str, args)],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "1000"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    done.stderr = " ".join(done.stderr.split())
    return done


@pytest.mark.parametrize(
    ("fmt", "step", "after_kill", "after_next_run"),
    [
        ("jsonl", "write", "old", "old"),  # half a temporary file on disk
        ("csv", "publish", "old", "old"),  # both temporaries finished, nothing renamed yet
        ("parquet", "manifest", "mismatch", "new"),  # data renamed in, manifest not yet
        ("hf", "aside", "missing", "old"),  # old folder moved aside, new one not yet in
    ],
)
def test_a_killed_export_leaves_the_old_pair_or_the_new_one(
    ws: Workspace, tmp_path: Path, fmt: str, step: str, after_kill: str, after_next_run: str
) -> None:
    out = tmp_path / ("rows" if fmt == "hf" else f"rows.{fmt}")
    manifest = manifest_path_for(out)
    export_subset(ws, "first", fmt=fmt, out=out)
    old = (_snapshot(out), manifest.read_bytes())

    process = _start(ws, "--subset", "last", "--format", fmt, "--out", out, "--force", pause=step)
    _kill(process)
    assert _temporaries(tmp_path), "a killed export leaves its temporaries"
    if after_kill == "old":
        assert (_snapshot(out), manifest.read_bytes()) == old
    elif after_kill == "mismatch":  # new data beside the old manifest: detected
        assert _snapshot(out) != old[0] and manifest.read_bytes() == old[1]
        with pytest.raises(PrismError, match="does not match its manifest"):
            read_manifest(manifest)
    else:
        assert not out.exists() and manifest.read_bytes() == old[1]

    # The next export to the path repairs and cleans up under the lock, even when it is refused.
    again = _export(ws, "--subset", "first", "--format", fmt, "--out", out)
    assert again.returncode == 2 and "already exists" in again.stderr, again.stderr
    assert _temporaries(tmp_path) == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".lock")]  # the dead one's too
    recorded = read_manifest(manifest)  # the pair matches again
    assert recorded.sha256 == content_digest(out)
    if after_next_run == "old":
        assert (_snapshot(out), manifest.read_bytes()) == old
    else:
        assert recorded.subset["name"] == "last"
        assert read_export(out, fmt)["id"].tolist() == ["r09", "r10", "r11"]


def test_two_exports_to_one_path_one_fails(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    first = _start(ws, "--subset", "first", "--out", out, pause="publish")
    second = _export(ws, "--subset", "last", "--out", out, "--force")
    assert second.returncode == 2
    assert f"Another export is writing {out}" in second.stderr
    stdout, stderr = first.communicate("\n", timeout=120)  # let the first one finish
    assert first.returncode == 0, stderr
    assert "wrote 3 rows" in stdout
    recorded = read_manifest(manifest_path_for(out))
    assert recorded.subset["name"] == "first" and recorded.sha256 == content_digest(out)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        "r00",
        "r01",
        "r02",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rows.jsonl",
        "rows.jsonl.manifest.json",
        "ws",
    ]  # the refused export and the finished one left no lock file


def test_export_rows_refuses_a_path_held_by_another_process(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    holder = _start(ws, "--subset", "first", "--format", "csv", "--out", out, pause="write")
    try:
        with pytest.raises(PrismError, match="Another export is writing"):
            export_rows(ws, np.arange(3), fmt="csv", out=out, force=True)
    finally:
        _kill(holder)
    export_rows(ws, np.arange(3), fmt="csv", out=out)  # the lock died with its holder
    assert _temporaries(tmp_path) == []


def test_exports_refused_or_not_leave_nothing_beside_their_pair(
    ws: Workspace, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "rows.csv"
    pair = ["rows.csv", "rows.csv.manifest.json"]
    export_rows(ws, np.arange(3), fmt="csv", out=out)
    assert sorted(p.name for p in out_dir.iterdir()) == pair
    with pytest.raises(PrismError, match="already exists"):
        export_rows(ws, np.arange(3), fmt="csv", out=out)  # refused under the lock
    with pytest.raises(PrismError):
        export_rows(ws, np.arange(3), fmt="jsonl", out=out, force=True)  # not a JSONL file
    export_rows(ws, np.arange(4), fmt="csv", out=out, force=True)
    assert sorted(p.name for p in out_dir.iterdir()) == pair


def test_a_lock_file_removed_by_its_last_holder_is_never_taken_as_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race that removing lock files opens: a waiter opened the file just before its holder
    removed it on release, then gets the lock of that removed file. ``lock_file`` sees that the
    path no longer names it and locks the file at the path, so a second locker of the path is
    still shut out."""
    import fcntl

    import core.workspace.files as files

    lock = tmp_path / ".rows.csv.lock"
    lock.touch()
    stale = os.open(lock, os.O_RDWR)
    lock.unlink()  # its holder removed it on release
    real_open, handed = os.open, []

    def open_stale_first(path: Any, flags: int, mode: int = 0o777) -> int:
        if not handed:
            handed.append(path)
            return stale
        return real_open(path, flags, mode)

    monkeypatch.setattr(files.os, "open", open_stale_first)
    with files.lock_file(lock, timeout_s=0.0, remove=True):
        monkeypatch.undo()
        assert handed and lock.exists()
        other = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # the path's file is the one held
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    assert not lock.exists()
