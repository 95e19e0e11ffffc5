"""Tests for the `prism` command line: outputs of every command, and one clear message per bad input.

A bad input exits with status 2, prints exactly one ``error:`` message naming the specific
problem (never a traceback), and leaves no workspace behind.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import DIM, N_EMPTY, N_SAMPLES, TINY, run_subprocess, sample_records, write_jsonl

from core.workspace.records import SubsetRecord
from core.workspace.store import MANIFEST, Workspace


def _flat(text: str) -> str:
    return " ".join(text.split())


def assert_user_error(code: int, out: str, err: str, *details: str) -> str:
    """Exit 2, one message on stderr holding every detail, no traceback; returns the message."""
    assert code == 2, f"exit code {code}; stdout={out!r} stderr={err!r}"
    assert "Traceback" not in err and "Traceback" not in out
    assert err.count("error:") == 1, err
    message = _flat(err)
    for detail in details:
        assert detail in message, f"{detail!r} not in {message!r}"
    return message


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# Bad inputs to `prism features`


@pytest.mark.parametrize(
    ("name", "content", "details"),
    [
        ("missing.jsonl", None, ["missing.jsonl: file not found"]),
        ("data.xlsx", b"PK\x03\x04", ["unsupported file type '.xlsx'", "Supported:"]),
        ("empty.jsonl", b"", ["empty.jsonl is empty"]),
        ("blank.csv", b"\n \n", ["blank.csv is empty"]),
        ("header.csv", b"prompt,response\n", ["no data rows", "prompt, response"]),
        (
            "broken.jsonl",
            b'{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": \n',
            ["line 2 is not valid JSON"],
        ),
        (
            "latin1.jsonl",
            '{"prompt": "caf\u00e9", "response": "ok"}\n'.encode("latin-1"),
            ["is not valid UTF-8", "byte 0xe9", "line 1"],
        ),
        (
            "allempty.jsonl",
            b'{"prompt": "a", "response": ""}\n{"prompt": "b", "response": null}\n',
            ["every row is empty", "'prompt', 'response'"],
        ),
        (
            "nocols.jsonl",
            b'{"foo": "a", "bar": "b"}\n',
            ["cannot tell which columns hold the samples", "Columns: foo, bar", "--prompt-col"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_dataset_files(
    run_cli: Any, tmp_path: Path, name: str, content: bytes | None, details: list[str]
) -> None:
    source = tmp_path / name
    if content is not None:
        source.write_bytes(content)
    ws = tmp_path / "ws"
    assert_user_error(*run_cli("features", source, *TINY, "--workspace", ws), *details)
    assert not ws.exists()


def test_wrong_column_names_list_the_available_columns(
    run_cli: Any, make_jsonl: Any, tmp_path: Path
) -> None:
    source, ws = make_jsonl(n=3), tmp_path / "ws"
    result = run_cli(
        "features", source, *TINY, "--workspace", ws, "--prompt-col", "question",
        "--response-col", "response",
    )  # fmt: skip
    assert_user_error(
        *result, "no column 'question' (--prompt-col)", "Available columns: id, prompt, response"
    )
    result = run_cli("features", source, *TINY, "--workspace", ws, "--prompt-col", "prompt")
    assert_user_error(*result, "needs a response column", "--response-col")
    assert not ws.exists()


def test_duplicate_ids_are_refused(run_cli: Any, tmp_path: Path) -> None:
    records = sample_records(4)
    records[3]["id"] = records[1]["id"]
    source, ws = write_jsonl(tmp_path / "dups.jsonl", records), tmp_path / "ws"
    result = run_cli("features", source, *TINY, "--workspace", ws, "--id-col", "id")
    assert_user_error(*result, "duplicated value", "'s001' (rows 2, 4)", "Ids must be unique")
    assert not ws.exists()


@pytest.mark.parametrize("dim", ["0", "-5", "100000"])
def test_impossible_dim(run_cli: Any, make_jsonl: Any, tmp_path: Path, dim: str) -> None:
    ws = tmp_path / "ws"
    result = run_cli(
        "features", make_jsonl(n=3), "--model", "tiny", "--workspace", ws, "--dim", dim
    )
    assert_user_error(*result, "--dim", "from 1 to 16,384", f"got {int(dim)}")
    assert not ws.exists()


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        (["--scope", "first:2"], "scope (--scope) must be 'all'"),
        (["--seed", "-1"], "seed (--seed) must be an integer from 0 to 2**32 − 1"),
        (["--batch-size", "0"], "batch_size (--batch-size) must be an integer ≥ 1"),
        (["--max-length", "1"], "max_length (--max-length) must be an integer ≥ 2"),
        (["--dtype", "float8"], "dtype (--dtype) must be one of float32, bfloat16"),
        (["--limit", "0"], "--limit must be ≥ 1"),
    ],
)
def test_bad_feature_options(
    run_cli: Any, make_jsonl: Any, tmp_path: Path, args: list[str], detail: str
) -> None:
    ws = tmp_path / "ws"
    assert_user_error(
        *run_cli("features", make_jsonl(n=3), *TINY, "--workspace", ws, *args), detail
    )
    assert not ws.exists()


def test_unparsable_option_is_a_usage_error(run_cli: Any, make_jsonl: Any, tmp_path: Path) -> None:
    code, out, err = run_cli(
        "features", make_jsonl(n=3), "--workspace", tmp_path / "ws", "--dim", "x"
    )
    assert code == 2
    assert "Traceback" not in err and "Invalid value for '--dim'" in _flat(err)
    assert not (tmp_path / "ws").exists()


def test_unknown_model_offline(make_jsonl: Any, tmp_path: Path) -> None:
    """A real process, because the hub reads HF_HUB_OFFLINE when it is first imported."""
    ws = tmp_path / "ws"
    result = run_subprocess(
        "features", make_jsonl(n=3), "--model", "no-such-org/no-such-model", "--workspace", ws,
        "--quiet", env={"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert_user_error(
        result.returncode,
        result.stdout,
        result.stderr,
        "--model: Could not load model 'no-such-org/no-such-model'",
        "Use `default` (the embedded",
    )
    assert not ws.exists(), "a failed first run must not leave a half-made workspace"


def test_skipped_rows_are_counted(built: dict[str, Any]) -> None:
    message = _flat(built["stderr"])
    assert f"{N_SAMPLES} samples, {N_EMPTY} skipped (empty cells)" in message
    manifest = Workspace.open(built["path"]).manifest
    assert manifest["dataset"]["n_skipped"] == N_EMPTY
    assert manifest["dataset"]["n_total"] == N_SAMPLES + N_EMPTY


# --------------------------------------------------------------------------------------------
# Bad workspaces


def test_newer_schema_asks_for_an_upgrade(
    run_cli: Any, copy_built: Path, dataset_file: Path
) -> None:
    manifest = json.loads((copy_built / MANIFEST).read_text())
    manifest["schema_version"] = 99
    (copy_built / MANIFEST).write_text(json.dumps(manifest))
    before = _snapshot(copy_built)
    for args in (["info", copy_built], ["score", copy_built], ["score", copy_built, "--json"]):
        assert_user_error(*run_cli(*args), "newer Prism", "workspace schema 99", "Upgrade Prism")
    result = run_cli("features", dataset_file, *TINY, "--workspace", copy_built)
    assert_user_error(*result, "newer Prism", "Upgrade Prism")
    assert _snapshot(copy_built) == before


@pytest.mark.parametrize("command", ["info", "score", "cluster", "map", "resume"])
def test_not_a_workspace(run_cli: Any, tmp_path: Path, command: str) -> None:
    assert_user_error(*run_cli(command, tmp_path / "nowhere"), "is not a Prism workspace")
    assert not (tmp_path / "nowhere").exists()


def test_score_before_features_says_what_to_run(run_cli: Any, tmp_path: Path) -> None:
    manifest = {"dataset": {"n_samples": 1}, "features": {"settings": {}, "status": "pending"}}
    Workspace.create(tmp_path / "ws", manifest, pd.DataFrame({"id": ["0"]}))
    assert_user_error(
        *run_cli("score", tmp_path / "ws"), "no finished features yet", "prism features"
    )


def test_features_refuses_a_non_empty_directory(
    run_cli: Any, make_jsonl: Any, tmp_path: Path
) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.txt").write_text("precious")
    result = run_cli("features", make_jsonl(n=3), *TINY, "--workspace", target)
    assert_user_error(*result, "exists and is not a Prism workspace", "refusing to write")
    assert [p.name for p in target.iterdir()] == ["thesis.txt"]


def test_k_larger_than_n(run_cli: Any, copy_built: Path) -> None:
    before = _snapshot(copy_built)
    result = run_cli("cluster", copy_built, "--k", str(N_SAMPLES + 1))
    assert_user_error(
        *result, "n_clusters (--k) must be between 1 and the number of samples (16)", "got 17"
    )
    assert_user_error(
        *run_cli("cluster", copy_built, "--k", "0"), "n_clusters (--k) must be between 1"
    )
    assert _snapshot(copy_built) == before


def test_unknown_subset(run_cli: Any, built: dict[str, Any]) -> None:
    result = run_cli("score", built["path"], "--subset", "nope")
    assert_user_error(*result, "no subset named 'nope'", "subsets: none yet")


def test_per_cluster_before_clustering(run_cli: Any, built: dict[str, Any]) -> None:
    result = run_cli("score", built["path"], "--per-cluster", "--json")
    assert_user_error(*result, "has no clusters yet", "prism cluster")


# --------------------------------------------------------------------------------------------
# Outputs


def _check_scores(record: dict[str, Any], *, n: int, dim: int) -> None:
    assert {"g_vendi", "vendi", "n", "dim"} <= set(record)
    assert record["n"] == n and record["dim"] == dim
    vendi = record["vendi"]
    assert set(vendi) == {"0.5", "1", "2", "inf"}
    assert record["g_vendi"] == pytest.approx(vendi["1"])
    assert 1 - 1e-6 <= record["g_vendi"] <= min(n, dim) + 1e-6
    assert all(math.isfinite(v) for v in vendi.values())
    eps = 1e-6 * vendi["0.5"]
    assert vendi["0.5"] + eps >= vendi["1"] >= vendi["2"] - eps >= vendi["inf"] - 2 * eps


def test_score_json(run_cli: Any, built: dict[str, Any]) -> None:
    code, out, err = run_cli("score", built["path"], "--json")
    assert code == 0, err
    record = json.loads(out)
    _check_scores(record, n=N_SAMPLES, dim=DIM)
    # The manifest keeps the very scores `score` prints (beside them: the text-space baselines).
    assert set(record["text"]) == {"embedding_vendi", "ngram_vendi", "distinct_2"}
    scores = {key: value for key, value in record.items() if key != "text"}
    assert Workspace.open(built["path"]).manifest["scores"] == scores


def test_score_table(run_cli: Any, built: dict[str, Any]) -> None:
    code, out, err = run_cli("score", built["path"])
    assert code == 0, err
    assert "G-Vendi (q = 1)" in out and "Vendi q = inf" in out


def test_score_of_a_subset(run_cli: Any, copy_built: Path, tmp_path: Path) -> None:
    ids = [r["id"] for r in sample_records(N_SAMPLES)][:6]
    Workspace.open(copy_built).write_subsets({"first six": SubsetRecord(ids=tuple(ids))})
    code, out, err = run_cli("score", copy_built, "--subset", "first six", "--json")
    assert code == 0, err
    record = json.loads(out)
    _check_scores(record, n=6, dim=DIM)
    assert record["subset"] == "first six"
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    code, out, err = run_cli("score", copy_built, "--ids", ids_file, "--json")
    assert code == 0, err
    assert json.loads(out)["g_vendi"] == pytest.approx(record["g_vendi"])
    ids_file.write_text("s000\nnot-an-id\n")
    assert_user_error(*run_cli("score", copy_built, "--ids", ids_file), "1 ids are not in")


def test_cluster_then_per_cluster_scores(run_cli: Any, copy_built: Path) -> None:
    code, out, err = run_cli("cluster", copy_built, "--k", "3", "--seed", "0")
    assert code == 0, err
    assert "3 clusters (seed 0)" in _flat(out)
    # 16 rows in 3 clusters: the figures are rough, and the output says so and by which rule
    assert f"few rows: {N_SAMPLES} rows in 3 clusters" in _flat(out)
    assert "fewer than 100 rows" in _flat(out)
    ws = Workspace.open(copy_built)
    labels = ws.samples()["cluster"].to_numpy()
    assert sorted(set(labels.tolist())) == [0, 1, 2]
    section = ws.manifest["clusters"]
    assert section["n_clusters"] == 3 and section["seed"] == 0
    assert sum(section["sizes"]) == N_SAMPLES
    assert section["sizes"] == np.bincount(labels, minlength=3).tolist()

    code, out, err = run_cli("score", copy_built, "--per-cluster", "--json")
    assert code == 0, err
    record = json.loads(out)
    _check_scores(record, n=N_SAMPLES, dim=DIM)
    rows = record["clusters"]
    assert [row["cluster"] for row in rows] == [0, 1, 2]
    assert [row["size"] for row in rows] == section["sizes"]
    for row in rows:
        assert 1 - 1e-6 <= row["vendi"]["1"] <= row["size"] + 1e-6

    code, out, _ = run_cli("compare", copy_built)
    assert code == 0 and "few rows:" in _flat(out)  # beside the coverage column

    # The same seed gives the same clustering.
    code, out, _ = run_cli("cluster", copy_built, "--k", "3", "--seed", "0", "--json")
    assert code == 0 and f"{N_SAMPLES} rows in 3 clusters" in json.loads(out)["few_rows"]
    assert np.array_equal(Workspace.open(copy_built).samples()["cluster"].to_numpy(), labels)


def _check_map(path: Path, *, n: int, n_neighbors: int) -> None:
    ws = Workspace.open(path)
    frame = ws.samples()
    assert {"umap_x", "umap_y"} <= set(frame.columns)
    coords = frame[["umap_x", "umap_y"]].to_numpy()
    assert coords.shape == (n, 2) and np.isfinite(coords).all()
    assert ws.manifest["layout"]["seed"] == 0
    assert ws.manifest["layout"]["n_neighbors"] == n_neighbors
    # Below the fit-sample threshold UMAP is fit on every row.
    assert ws.manifest["layout"]["fit_rows"] == n and ws.manifest["layout"]["method"] == "umap"


def test_map_writes_coordinates(run_cli: Any, copy_built: Path) -> None:
    """The CLI plumbing, on the first 3 rows: a layout that small needs no numba compilation
    (umap-learn's first call costs ~30 s; the full UMAP run is the slow test below)."""
    ws = Workspace.open(copy_built)
    ws.write_samples(ws.samples().iloc[:3])
    np.save(ws.features_path, ws.features(mmap=False)[:3], allow_pickle=False)
    ws.manifest["dataset"]["n_samples"] = 3
    ws.save_manifest()
    code, out, err = run_cli("map", copy_built, "--n-neighbors", "5")
    assert code == 0, err
    assert "stored a 2-D map of 3 samples" in _flat(out)
    _check_map(copy_built, n=3, n_neighbors=5)


@pytest.mark.slow
def test_map_writes_umap_coordinates(run_cli: Any, copy_built: Path) -> None:
    code, out, err = run_cli("map", copy_built, "--n-neighbors", "5")
    assert code == 0, err
    _check_map(copy_built, n=N_SAMPLES, n_neighbors=5)
    coords = Workspace.open(copy_built).samples()[["umap_x", "umap_y"]].to_numpy()
    assert run_cli("map", copy_built, "--n-neighbors", "5")[0] == 0  # same seed, same map
    again = Workspace.open(copy_built).samples()[["umap_x", "umap_y"]].to_numpy()
    assert np.array_equal(coords, again)


def test_info_json_lists_columns_and_settings(run_cli: Any, built: dict[str, Any]) -> None:
    code, out, err = run_cli("info", built["path"], "--json")
    assert code == 0, err
    record = json.loads(out)
    expected = {"id", "prompt", "response", "loss", "grad_norm", "n_tokens", "n_response_tokens"}
    assert expected | {"truncated"} <= set(record["columns"])
    assert record["features"]["status"] == "complete"
    assert record["features"]["settings"]["model"] == "tiny"
    assert record["features"]["settings"]["seed"] == 0
    assert record["dataset"]["n_samples"] == N_SAMPLES
    assert record["job"]["status"] == "done"
    assert record["subsets"] == {}


def test_info_table(run_cli: Any, built: dict[str, Any]) -> None:
    code, out, err = run_cli("info", built["path"])
    assert code == 0, err
    text = _flat(out)
    assert f"{N_SAMPLES} samples ({N_EMPTY} skipped)" in text
    assert "G-Vendi" in text and "columns id," in text


def test_rerun_of_a_finished_workspace_has_nothing_to_do(
    run_cli: Any, copy_built: Path, dataset_file: Path
) -> None:
    before = (copy_built / "features.npy").read_bytes()
    code, out, err = run_cli("features", dataset_file, *TINY, "--workspace", copy_built, "--quiet")
    assert code == 0, err
    assert "nothing to do" in _flat(err)
    code, out, err = run_cli("resume", copy_built)
    assert code == 0, err
    assert "nothing to do" in _flat(err)
    assert (copy_built / "features.npy").read_bytes() == before


def test_module_entry_point_help() -> None:
    result = run_subprocess("--help", timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("features", "resume", "score", "cluster", "map", "info"):
        assert command in result.stdout
