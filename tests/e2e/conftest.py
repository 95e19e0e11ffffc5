"""A real app server and a real browser for the end-to-end tests.

The server is `streamlit run app.py` on a free port of 127.0.0.1, under a $PRISM_HOME in a
temporary folder that holds a small prepared demo workspace (GSM8K text, synthetic features),
so the tests do not wait for the real model. Chromium is Debian's (/usr/bin/chromium), driven
headless by Playwright. Screenshots of every step go to artifacts/e2e/ (not committed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from app_workspaces import make_workspace  # noqa: E402
from cli_support import app_command, free_port, wait_until_healthy  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_ROWS = 400


@pytest.fixture(scope="session")
def prism_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("prism-home")
    make_workspace(home / "workspaces" / "demo-gsm8k", n=DEMO_ROWS, dim=64, seed=0, text_space=True)
    return home


@contextmanager
def app_server(home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """The app served under ``$PRISM_HOME`` = ``home`` (plus ``env``); yields its URL and stops
    the server (and waits for it) on exit."""
    port = free_port()
    env = {**os.environ, "PRISM_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("PRISM_DATA_ROOTS", None)
    log = open(home / "server.log", "wb")  # noqa: SIM115 — closed below
    process = subprocess.Popen(
        app_command(port),
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/_stcore/health", process, log=home / "server.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="session")
def server(prism_home: Path) -> Iterator[str]:
    """The app's URL; the server is stopped (and waited for) at the end of the session."""
    with app_server(prism_home) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `make browser` (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, server: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
