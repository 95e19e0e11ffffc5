"""Damaged workspaces: every command ends in one message naming the damaged file and the command
that rebuilds it (never a traceback, never a number computed from the wrong rows), and
``problems()`` lists the damage for the app's workspace list."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import DIM, N_SAMPLES

from core.workspace.records import SubsetRecord
from core.workspace.store import FEATURES, MANIFEST, SAMPLES, SUBSETS, Workspace, problems


def _truncate_features(ws: Path) -> None:
    data = (ws / FEATURES).read_bytes()
    (ws / FEATURES).write_bytes(data[: len(data) // 2])


def _fewer_feature_rows(ws: Path) -> None:
    features = np.load(ws / FEATURES, allow_pickle=False)
    np.save(ws / FEATURES, features[:5], allow_pickle=False)


def _nan_features(ws: Path) -> None:
    features = np.load(ws / FEATURES, allow_pickle=False)
    features[3, 7] = np.nan
    np.save(ws / FEATURES, features, allow_pickle=False)


def _garbage_features(ws: Path) -> None:
    (ws / FEATURES).write_bytes(b"these bytes were never an array " * 64)


def _manifest_not_an_object(ws: Path) -> None:
    (ws / MANIFEST).write_text(json.dumps(["not", "a", "manifest"]))


def _samples_missing(ws: Path) -> None:
    (ws / SAMPLES).unlink()


def _samples_garbage(ws: Path) -> None:
    (ws / SAMPLES).write_bytes(b"PAR1 this is not parquet at all")


def _subsets_garbage(ws: Path) -> None:
    (ws / SUBSETS).write_text("{ not json")


DAMAGE: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (how, the file named in the message, what the message says)
    "truncated features": (_truncate_features, FEATURES, "cannot be read"),
    "garbage features": (_garbage_features, FEATURES, "not a .npy file"),
    "features for fewer rows": (_fewer_feature_rows, FEATURES, f"{N_SAMPLES:,} samples"),
    "NaN features": (_nan_features, FEATURES, "non-finite"),
    "manifest not an object": (_manifest_not_an_object, MANIFEST, "not an object"),
    "samples missing": (_samples_missing, SAMPLES, "missing"),
    "samples garbage": (_samples_garbage, SAMPLES, "cannot be read"),
    "subsets garbage": (_subsets_garbage, SUBSETS, "damaged"),
}

# Commands that read what each damage breaks.
COMMANDS: dict[str, list[tuple[str, ...]]] = {
    FEATURES: [
        ("score",),
        ("cluster", "--k", "3"),
        ("select", "--method", "k_center", "--k", "3", "--name", "x"),
    ],  # fmt: skip
    MANIFEST: [("score",), ("info",), ("subset", "list")],
    SAMPLES: [("score",), ("cluster", "--k", "3"), ("export", "--out", "{tmp}/all.jsonl")],
    SUBSETS: [("subset", "list"), ("select", "--method", "random", "--k", "3", "--name", "y")],
}


def _args(command: tuple[str, ...], ws: Path, tmp: Path) -> list[str]:
    head = ["subset", "list"] if command[:2] == ("subset", "list") else [command[0]]
    rest = command[len(head) :]
    return [*head, str(ws), *(a.format(tmp=tmp) for a in rest)]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_command_names_the_damaged_file(
    damage: str, copy_built: Path, run_cli: Any, tmp_path: Path
) -> None:
    Workspace.open(copy_built).write_subsets({"mine": SubsetRecord(ids=("s000", "s001"))})
    spoil, filename, says = DAMAGE[damage]
    spoil(copy_built)
    before = {p.name: p.read_bytes() for p in copy_built.iterdir() if p.is_file()}
    for command in COMMANDS[filename]:
        code, out, err = run_cli(*_args(command, copy_built, tmp_path))
        message = " ".join(err.split())
        assert code == 2, (command, out, err)
        assert "Traceback" not in err and "unexpected" not in message, (command, err)
        assert filename in message and says in message, (command, message)
        assert "prism features" in message or "mv " in message, message  # says what to do
        assert "pickled" not in message and "unsafe" not in message, message
    after = {
        p.name: p.read_bytes() for p in copy_built.iterdir() if p.is_file() and p.name != ".lock"
    }
    assert after == {k: v for k, v in before.items() if k != ".lock"}, "a failed command wrote"
    found = problems(copy_built)
    if damage == "NaN features":
        assert found == []  # the values are checked when an analysis loads them, not on listing
    else:
        assert any(filename in p for p in found), found


def test_problems_of_a_healthy_workspace_is_empty(built: dict[str, Any]) -> None:
    assert problems(built["path"]) == []


def test_score_refuses_features_of_another_row_count(copy_built: Path, run_cli: Any) -> None:
    """5 feature rows for 16 samples: no G-Vendi 'over 5 rows' is reported."""
    _fewer_feature_rows(copy_built)
    code, out, err = run_cli("score", copy_built, "--json")
    assert code == 2 and out == ""
    assert f"(5, {DIM})" in " ".join(err.split())


def test_deleted_features_name_the_command_that_computes_them_again(
    copy_built: Path, run_cli: Any
) -> None:
    features = np.load(copy_built / FEATURES, allow_pickle=False)
    (copy_built / FEATURES).unlink()
    code, _, err = run_cli("score", copy_built)
    message = " ".join(err.split())
    assert code == 2 and f"{FEATURES} is missing" in message, message
    assert f"prism resume {copy_built}" in message
    code, _, err = run_cli("resume", copy_built)  # what the message says does fix it
    assert code == 0, err
    again = Workspace.open(copy_built).features()
    np.testing.assert_allclose(again, features, atol=1e-6)


def test_an_empty_workspace_says_so_instead_of_a_row_range(
    copy_built: Path, run_cli: Any, tmp_path: Path
) -> None:
    import pandas as pd

    manifest = json.loads((copy_built / MANIFEST).read_text())
    manifest["dataset"]["n_samples"] = 0
    (copy_built / MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "all.jsonl"
    code, _, err = run_cli("export", copy_built, "--out", out)
    message = " ".join(err.split())
    assert code == 2 and "manifest.json records none of its 16 rows" in message, message
    assert "prism features" in message and "0..-1" not in message
    samples = pd.read_parquet(copy_built / SAMPLES)
    samples.iloc[:0].to_parquet(copy_built / SAMPLES, index=False)
    code, _, err = run_cli("export", copy_built, "--out", out)
    message = " ".join(err.split())
    assert code == 2 and "has no samples (samples.parquet: 0 rows)" in message, message
    assert "prism features" in message
    assert not out.exists()
