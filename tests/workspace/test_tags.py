"""core.workspace.tags and `prism tag`: keep / drop / flag with notes, undo, concurrent writers
(real processes), and the tags honoured by export (--drop-tagged) and selectors (tag:NAME)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_support import REPO, invoke

from core.errors import PrismError
from core.workspace.store import Workspace
from core.workspace.subsets import rows_of
from core.workspace.tags import (
    tag_column,
    tag_counts,
    tag_rows,
    tag_table,
    tagged_rows,
    undo_tags,
)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    samples = pd.DataFrame({"id": [f"r{i}" for i in range(8)], "text": list("abcdefgh")})
    return Workspace.create(tmp_path / "ws", {"dataset": {"n_samples": 8}}, samples)


def test_tag_list_and_undo(workspace: Workspace) -> None:
    tag_rows(workspace, [1, 2, 3], "drop", note="  garbled   maths ")
    tag_rows(workspace, np.array([3, 4]), "keep")
    assert tag_column(workspace).tolist() == [None, "drop", "drop", "keep", "keep"] + [None] * 3
    table = tag_table(Workspace.open(workspace.path))
    assert table["id"].tolist() == ["r1", "r2", "r3", "r4"]
    assert table["note"].tolist() == ["garbled maths", "garbled maths", None, None]
    assert tag_counts(workspace) == {"keep": 2, "drop": 2, "flag": 0}
    change = undo_tags(workspace)  # row 3 is drop again, row 4 untagged
    assert change.n_rows == 2 and "keep 2 rows" in change.what
    assert tagged_rows(workspace, "drop").tolist() == [1, 2, 3]
    assert tagged_rows(workspace, "keep").tolist() == []
    tag_rows(workspace, [1], "clear")
    assert tagged_rows(workspace, "drop").tolist() == [2, 3]
    undo_tags(workspace)
    undo_tags(workspace)
    assert tag_table(workspace).empty
    with pytest.raises(PrismError, match="nothing|no change"):
        undo_tags(workspace)


def test_refusals_name_the_parameter(workspace: Workspace) -> None:
    for rows, tag, note, param in (
        ([1], "bin", None, "tag"),
        ([], "keep", None, "rows"),
        ([99], "keep", None, "rows"),
        ([1], "keep", "x" * 3000, "note"),
        ([1], "clear", "why", "note"),
    ):
        with pytest.raises(PrismError) as raised:
            tag_rows(workspace, rows, tag, note=note)
        assert raised.value.param == param
    assert tag_table(workspace).empty  # nothing half-written


WRITER = """
import sys, time
from pathlib import Path
from core.workspace.store import Workspace
from core.workspace.tags import tag_rows
path, writer, n_ops, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
print("ready", flush=True)
while not go.exists():  # every writer starts at once
    time.sleep(0.005)
for op in range(n_ops):
    row = 4 * writer + op % 4
    tag_rows(Workspace.open(path), [row], "flag", note=f"writer {writer} op {op}")
"""


WRITERS = 3


def test_concurrent_writers_lose_no_tag(copy_built: Path, tmp_path: Path) -> None:
    """Three processes tagging their own rows over and over, at once: no change is lost."""
    n_ops, go = 12, tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(copy_built), str(w), str(n_ops), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for w in range(WRITERS)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    go.touch()
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    ws = Workspace.open(copy_built)
    assert tagged_rows(ws, "flag").tolist() == list(range(4 * WRITERS))
    last = {4 * w + op % 4: f"writer {w} op {op}" for w in range(WRITERS) for op in range(n_ops)}
    assert tag_table(ws)["note"].tolist() == [last[r] for r in range(4 * WRITERS)]
    assert (
        len(ws.tag_file()["history"]) == WRITERS * n_ops
    )  # every change recorded: none overwritten


def test_cli_tags_then_export_drops_and_selectors_honour_them(
    copy_built: Path, tmp_path: Path
) -> None:
    code, _, err = invoke("tag", copy_built, "--rows", "s001,s002", "--as", "drop", "--note", "bad")
    assert code == 0, err
    code, _, err = invoke(
        "tag", copy_built, "--where", "prompt LIKE '%apples%'", "--as", "keep", "--json"
    )
    assert code == 0, err
    code, out, err = invoke("tag", copy_built, "--list", "--json")
    listed = json.loads(out)
    assert listed["counts"]["drop"] == 2 and listed["counts"]["keep"] >= 2
    ws = Workspace.open(copy_built)
    ids = ws.samples(columns=["id"])["id"].tolist()
    out_file = tmp_path / "kept.jsonl"
    code, _, err = invoke("export", copy_built, "--out", out_file, "--drop-tagged", "drop")
    assert code == 0, err
    exported = [json.loads(line)["id"] for line in out_file.read_text().splitlines()]
    assert exported == [i for i in ids if i not in ("s001", "s002")]
    manifest = json.loads(Path(f"{out_file}.manifest.json").read_text())
    assert manifest["subset"]["how"]["drop_tagged"] == "drop"
    keep = set(tagged_rows(ws, "keep").tolist())
    assert set(rows_of(ws, "tag:keep").tolist()) == keep
    code, _, err = invoke(
        "select", copy_built, "--method", "random", "--k", "2", "--name", "from keep",
        "--within", "tag:keep",
    )  # fmt: skip
    assert code == 0, err
    assert set(rows_of(Workspace.open(copy_built), "from keep").tolist()) <= keep
    code, _, err = invoke(
        "select", copy_built, "--method", "random", "--k", "12", "--name", "no drops",
        "--exclude", "tag:drop",
    )  # fmt: skip
    assert code == 0, err
    chosen = Workspace.open(copy_built).subsets()["no drops"]
    assert not {"s001", "s002"} & set(chosen.ids) and chosen.how["exclude"] == "tag:drop"
    code, _, err = invoke("tag", copy_built, "--rows", "s001", "--as", "bin")
    assert code == 2 and "--as" in err
    code, out, err = invoke("tag", copy_built, "--undo")
    assert code == 0 and "undid" in out
