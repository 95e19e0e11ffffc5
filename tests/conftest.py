"""Shared fixtures: small dataset files, an in-process CLI runner and one tiny-model workspace.

Every model run uses ``--model tiny`` (a 2-layer random Llama). The tiny model reuses the embedded
model's tokenizer, cached under ``$PRISM_HOME/models`` after its first use, so tests keep the
user's ``PRISM_HOME`` and put their workspaces under ``tmp_path`` instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# Enough for every analysis (k-means with k = 3, UMAP) while keeping tiny-model runs short.
N_SAMPLES = 16
N_EMPTY = 2  # rows with an empty response, skipped (and counted) by `prism features`
# Sketch dimension of the test runs: the default 1024 costs seconds per score on a small CPU
# (a 1024×1024 eigendecomposition) and tests nothing more here.
DIM = 256
TINY = ("--model", "tiny", "--dim", str(DIM))


def sample_records(n: int = N_SAMPLES, *, n_empty: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct prompt/response rows with ids, then ``n_empty`` rows with empty responses."""
    topics = ["apples", "trains", "rivers", "prime numbers", "violins", "glaciers", "tax law"]
    records = []
    for i in range(n):
        topic = topics[i % len(topics)]
        records.append(
            {
                "id": f"s{i:03d}",
                "prompt": f"Question {i}: tell me one fact about {topic}.",
                "response": f"Fact {i} about {topic}: " + "it is interesting. " * (1 + i % 4),
            }
        )
    for j in range(n_empty):
        records.append({"id": f"empty{j}", "prompt": f"Unanswered question {j}?", "response": ""})
    return records


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def make_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """``make_jsonl(name="data.jsonl", n=..., n_empty=..., records=...)`` writes a JSONL file."""

    def make(
        name: str = "data.jsonl",
        *,
        n: int = N_SAMPLES,
        n_empty: int = 0,
        records: Iterable[Mapping[str, Any]] | None = None,
    ) -> Path:
        rows = sample_records(n, n_empty=n_empty) if records is None else records
        return write_jsonl(tmp_path / name, rows)

    return make


def invoke(*args: Any) -> tuple[int, str, str]:
    """Run ``core.cli.main()`` in this process; returns (exit code, stdout, stderr).

    Rich consoles are widened for the call so that messages are not wrapped mid-sentence.
    """
    from core import cli

    out, err = io.StringIO(), io.StringIO()
    argv = ["prism", *map(str, args)]
    widths = (cli.console.width, cli.err.width)
    cli.console.width = cli.err.width = 1000
    saved_argv = sys.argv
    sys.argv = argv
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exit_:
                code = (
                    exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                )
    finally:
        sys.argv = saved_argv
        cli.console.width, cli.err.width = widths
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def run_cli() -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*args)`` → (exit code, stdout, stderr) of an in-process ``prism`` call."""
    return invoke


def run_subprocess(
    *args: Any, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m core *args`` in a real process, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "core", *map(str, args)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def dataset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared dataset: N_SAMPLES rows plus N_EMPTY rows with an empty response."""
    root = tmp_path_factory.mktemp("data")
    return write_jsonl(root / "data.jsonl", sample_records(N_SAMPLES, n_empty=N_EMPTY))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, dataset_file: Path) -> dict[str, Any]:
    """One finished tiny-model workspace (seed 0, batch size 5); treat it as read-only.

    Returns {"path", "code", "stdout", "stderr"} of the `prism features` call that built it.
    Tests that change a workspace copy it first (`copy_built`).
    """
    path = tmp_path_factory.mktemp("built") / "ws"
    code, out, err = invoke(
        "features", dataset_file, *TINY, "--workspace", path, "--batch-size", "5", "--seed", "0"
    )
    assert code == 0, err
    return {"path": path, "code": code, "stdout": out, "stderr": err}


@pytest.fixture
def copy_built(built: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the shared workspace, free to change."""
    import shutil

    target = tmp_path / "ws-copy"
    shutil.copytree(built["path"], target)
    return target
