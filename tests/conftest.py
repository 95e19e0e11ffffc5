"""Shared fixtures: small dataset files, an in-process CLI runner and one tiny-model workspace.

Every model run uses ``--model tiny`` (a 2-layer random Llama). The tiny model reuses the embedded
model's tokenizer, cached under ``$PRISM_HOME/models`` after its first use, so tests keep the
user's ``PRISM_HOME`` and put their workspaces under ``tmp_path`` instead; the workspaces they
make are registered in a registry file of the test run, not the user's.

Under pytest-xdist (``make test`` runs ``-n 2 --dist loadfile``) each worker gets an equal share of
the cores for torch's threads (its own and those of the processes it starts), every test file runs
whole on one worker (its module fixtures are built once) and the real-browser tests share one worker
(one app server and one Chromium). The controller converts the embedded model once before the
workers start, so no two workers convert it at the same time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cli_support import (  # noqa: F401 — re-exported for the tests
    DIM,
    N_EMPTY,
    N_SAMPLES,
    REPO,
    TINY,
    invoke,
    run_subprocess,
    sample_records,
    write_jsonl,
)

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
if _WORKERS > 1:
    # Before torch is imported: worker threads (and the processes tests start) share the cores.
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, _THREADS)


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, the controller fills the embedded model's cache before any worker starts."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        from core.features.proxy import default_model_dir, embedded_model_cached

        if not embedded_model_cached():
            default_model_dir()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, except that every real-browser test goes to one worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/e2e" if path.startswith("tests/e2e/") else path

    return FileScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def workspace_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The registry of workspaces made during the run (``core.workspace.registry``), in a
    temporary folder and passed on to the processes the tests start."""
    from core.workspace.registry import REGISTRY_ENV

    path = tmp_path_factory.mktemp("registry") / "workspaces.json"
    saved = os.environ.get(REGISTRY_ENV)
    os.environ[REGISTRY_ENV] = str(path)
    yield path
    if saved is None:
        os.environ.pop(REGISTRY_ENV, None)
    else:
        os.environ[REGISTRY_ENV] = saved


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


@pytest.fixture
def run_cli() -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*args)`` → (exit code, stdout, stderr) of an in-process ``prism`` call."""
    return invoke


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
