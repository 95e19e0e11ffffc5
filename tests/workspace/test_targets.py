"""Target sets in a workspace: from a file, a subset and typed text; relevance, selection,
coverage and deletion through `prism`; imported-features workspaces refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import N_SAMPLES, invoke, sample_records, write_jsonl

from core.workspace.store import Workspace
from core.workspace.targets import group_codes, target_features, target_table

TOL = 1e-5  # the same rows in other batch shapes agree to float32 rounding


@pytest.fixture
def grouped(tmp_path: Path) -> Path:
    """Six rows of the shared dataset, in another order, with a subject column."""
    rows = sample_records(N_SAMPLES)[:6][::-1]
    for i, row in enumerate(rows):
        row["subject"] = "odd" if i % 2 else "even"
    return write_jsonl(tmp_path / "target.jsonl", rows)


def ok(*args: Any) -> str:
    code, out, err = invoke(*args)
    assert code == 0, err
    return out


def test_targets_from_a_file_a_subset_and_text(
    copy_built: Path, grouped: Path, built: dict[str, Any]
) -> None:
    ws_path = copy_built
    ok("target", "add", ws_path, grouped, "--name", "file-t", "--group-col", "subject")
    ok("select", ws_path, "--method", "random", "--k", "4", "--seed", "1", "--name", "four")
    ok("target", "add", ws_path, "--subset", "four", "--name", "sub-t")
    ok(
        "target",
        "add",
        ws_path,
        "--text",
        "Fact about apples.",
        "--text",
        "Trains.",
        "--name",
        "typed",
    )
    ws = Workspace.open(ws_path)
    pool = np.asarray(ws.features())
    position = {i: n for n, i in enumerate(ws.samples(columns=["id"])["id"].astype(str))}

    # A file target's features are the workspace's features of the same rows (computed in
    # another batch shape, by the same extraction).
    table = target_table(ws, "file-t")
    rows = [position[i] for i in table["id"]]
    np.testing.assert_allclose(target_features(ws, "file-t"), pool[rows], atol=TOL)
    codes, names = group_codes(ws, "file-t")
    assert names == ("even", "odd") and codes.tolist() == [0, 1, 0, 1, 0, 1]

    # A subset target copies its rows' stored features.
    sub = target_table(ws, "sub-t")
    assert list(sub["pool_id"]) == list(sub["id"]) and len(sub) == 4
    np.testing.assert_array_equal(
        target_features(ws, "sub-t"), pool[[position[i] for i in sub["id"]]]
    )

    typed = target_features(ws, "typed")
    assert typed.shape == (2, pool.shape[1])
    np.testing.assert_allclose(np.linalg.norm(typed, axis=1), 1.0, atol=TOL)

    listed = json.loads(ok("target", "list", ws_path, "--json"))
    assert [t["name"] for t in listed] == ["file-t", "sub-t", "typed"]
    assert listed[0]["groups"] == {"even": 3, "odd": 3} and listed[0]["stale"] is None

    # Relevance: a stored derived column; the file's own rows are the most relevant (max: 1).
    ok("relevance", ws_path, "--target", "file-t", "--agg", "max")
    values = Workspace.open(ws_path).samples(columns=["relevance:file-t"])["relevance:file-t"]
    np.testing.assert_allclose(values.to_numpy()[rows], 1.0, atol=TOL)

    # Selection: round-robin over the two groups picks one row of each group first.
    out = ok(
        "select", ws_path, "--method", "targeted", "--target", "file-t", "--k", "4",
        "--option", "agg=max", "--option", "round_robin=true", "--name", "rr", "--json",
    )  # fmt: skip
    assert json.loads(out)["size"] == 4
    record = Workspace.open(ws_path).subsets()["rr"]
    assert record.how["target"]["name"] == "file-t"
    chosen = [position[i] for i in record.ids]
    assert set(chosen) <= set(rows)
    group_of = {position[i]: g for i, g in zip(table["id"], table["group"], strict=True)}
    assert [group_of[r] for r in chosen] == ["even", "odd", "even", "odd"]
    ok("select", ws_path, "--method", "targeted_diverse", "--target", "typed", "--k", "3",
       "--within", "four", "--name", "td")  # fmt: skip
    td = Workspace.open(ws_path).subsets()["td"].ids
    assert set(td) <= set(Workspace.open(ws_path).subsets()["four"].ids)

    report = json.loads(
        ok(
            "target",
            "coverage",
            ws_path,
            "file-t",
            "--threshold",
            "0.999",
            "--min-close",
            "4",
            "--json",
        )  # fmt: skip
    )
    assert [g["group"] for g in report["groups"]] == ["even", "odd"]
    for group in report["groups"]:
        assert group["close_rows"] >= 3 and group["best"][0]["cosine"] > 1 - TOL

    ok("target", "delete", ws_path, "file-t")
    ws = Workspace.open(ws_path)
    assert "relevance:file-t" not in ws.sample_columns()
    assert not (ws_path / "targets" / "file-t.npy").exists()
    code, _, err = invoke("relevance", ws_path, "--target", "file-t")
    assert code == 2 and "--target" in err and "sub-t" in err


def test_bad_targets_are_refused(copy_built: Path, grouped: Path, tmp_path: Path) -> None:
    code, _, err = invoke("target", "add", copy_built, grouped, "--name", "../x")
    assert code == 2 and "--name" in err
    code, _, err = invoke(
        "target", "add", copy_built, grouped, "--name", "t", "--group-col", "nope"
    )
    assert code == 2 and "--group-col" in err and "subject" in err
    assert not (copy_built / "targets" / "t.npy").exists()
    ok("target", "add", copy_built, "--text", "x y z", "--name", "t")
    code, _, err = invoke("target", "add", copy_built, "--text", "again", "--name", "t")
    assert code == 2 and "exists already" in err
    code, _, err = invoke("select", copy_built, "--method", "targeted", "--k", "3", "--name", "n")
    assert code == 2 and "target" in err
    # Features rebuilt with other settings: the target is no longer in the pool's space.
    ws = Workspace.open(copy_built)
    section = ws.feature_section
    assert section is not None
    ws.set_section(section.replace(settings={**section.settings, "seed": 7}))
    code, _, err = invoke("relevance", copy_built, "--target", "t")
    assert code == 2 and "stale" in err
    assert json.loads(ok("target", "list", copy_built, "--json"))[0]["stale"]

    # Imported features: Prism cannot compute new rows in that space; a subset still works.
    features = np.random.default_rng(0).standard_normal((N_SAMPLES, 8)).astype(np.float32)
    data = write_jsonl(tmp_path / "pool.jsonl", sample_records(N_SAMPLES))
    np.save(tmp_path / "f.npy", features, allow_pickle=False)
    imported = tmp_path / "imported"
    ok("import-features", data, tmp_path / "f.npy", "--workspace", imported)
    code, _, err = invoke("target", "add", imported, grouped, "--name", "t")
    assert code == 2 and "imported features" in err
    ok("select", imported, "--method", "random", "--k", "3", "--name", "three")
    ok("target", "add", imported, "--subset", "three", "--name", "t")
    ok("relevance", imported, "--target", "t", "--whiten")
