"""Helpers shared by the CLI and job tests: dataset records, an in-process `prism` runner."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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


def app_command(port: int) -> list[str]:
    """The command line of a real app server on 127.0.0.1:``port`` (run from the repository root)."""
    return [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_healthy(
    url: str, process: subprocess.Popen[Any], *, log: Path, timeout: float = 60
) -> None:
    """Wait until ``url`` answers 200; a server that exits or never answers fails with the end
    of its ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server at {url} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
