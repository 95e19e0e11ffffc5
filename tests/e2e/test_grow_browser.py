"""The Grow page in a real browser, on a real tiny-model workspace with one joined round of
tiny-model candidates: the round table and the candidate map are there, a lasso on the map aims
the next run at a cluster, and a one-round job with the tiny generator (typed into the Hugging
Face name field) starts in the background with review on by default, is seen to finish, is
joined by hand, and "Undo this join" takes its rows out again.
Screenshots of each step go to artifacts/e2e/.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import app_server
from test_app_grow import PER_ROUND, grow_workspace
from test_browser import draw_lasso, metric_value, no_traceback, settle, shot

from core.workspace.manifest import SynthesisSection
from core.workspace.store import Workspace

pytestmark = pytest.mark.e2e

USER_PRISM_HOME = Path(os.environ.get("PRISM_HOME") or Path.home() / ".cache" / "prism")
NEW_PER_ROUND = 2
T = TypeVar("T")


@pytest.fixture(scope="module")
def grow_server(
    built: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("grow-home")
    # The tiny model borrows the embedded model's tokenizer, cached under the user's home.
    if (USER_PRISM_HOME / "models").is_dir():
        (home / "models").symlink_to(USER_PRISM_HOME / "models")
    ws = grow_workspace(built["path"], home / "workspaces" / "grow", review=False)
    (home / "app.json").write_text(json.dumps({"last_workspace": str(ws.path)}))
    with app_server(home) as url:
        yield url, ws.path


def table_cells(page: Any, header: str) -> list[list[str]]:
    """The rows of the table that has a column ``header``, read from the grid's accessibility
    layer (the table itself is drawn on a canvas)."""
    grid = page.locator('[data-testid="stDataFrame"]').filter(has_text=header).first
    grid.get_by_role("gridcell", include_hidden=True).first.wait_for(state="attached")
    rows = []
    for row in grid.get_by_role("row", include_hidden=True).all():
        cells = [
            c.strip() for c in row.get_by_role("gridcell", include_hidden=True).all_text_contents()
        ]
        if cells:
            rows.append(cells)
    return rows


def until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 30) -> T:
    """``read()`` again until ``done`` holds of it (the grid redraws a moment after a rerun)."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.5)
        value = read()
    return value


def test_grow_page_shows_rounds_and_map_and_runs_a_round(
    browser: Any, grow_server: tuple[str, Path], shots: Path
) -> None:
    url, path = grow_server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(f"{url}/grow")
        page.get_by_text("Grow the sparse regions").wait_for()
        settle(page)
        no_traceback(page)
        # The round table and the candidate map, with the stored numbers.
        [record] = Workspace.open(path).section(SynthesisSection).rounds
        rounds = table_cells(page, "Generated")
        assert len(rounds) == 1
        assert rounds[0][:3] == ["1", "sparse", str(PER_ROUND)]
        assert metric_value(page, "Candidates") == str(PER_ROUND)
        assert rounds[0][8] == str(record.joined)  # the Joined column
        legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
        assert "sample in a sparse cluster" in legend
        assert any(text.startswith(("kept and joined", "landed in a dense")) for text in legend)
        shot(page, shots, "grow-1-page")
        # A lasso over most of the map aims at the cluster holding most of what it caught.
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        draw_lasso(page)
        page.get_by_text("From the map:").wait_for()
        settle(page)
        # One round with the tiny generator, typed into the Hugging Face name field.
        page.get_by_role("radio", name="Hugging Face model").click()
        settle(page)
        page.get_by_label("Model name or local path", exact=True).fill("tiny")
        page.get_by_label("Per round", exact=True).fill(str(NEW_PER_ROUND))
        page.get_by_text("Sampling and limits").click()
        page.get_by_label("Longest reply (tokens)", exact=True).fill("8")
        page.get_by_label("Longest reply (tokens)", exact=True).press("Tab")
        settle(page)
        assert page.get_by_role("switch", name="Review each round by hand").is_checked()
        page.get_by_role("button", name="Start").click()
        page.get_by_text("Growing", exact=True).wait_for()
        shot(page, shots, "grow-2-running")
        # A refresh finds the job again (it runs in its own process), running or finished.
        page.reload()
        page.get_by_text(re.compile(rf"^Growing$|{NEW_PER_ROUND} generated")).first.wait_for()
        page.get_by_text("The last run finished").wait_for(timeout=240_000)
        settle(page)
        no_traceback(page)
        section = Workspace.open(path).section(SynthesisSection)
        assert [r.round for r in section.rounds] == [1, 2]
        assert section.settings["target"].startswith("cluster:")
        assert section.settings["generator"] == "tiny"
        new = section.rounds[1]
        assert new.generated == NEW_PER_ROUND and new.status == "judged"
        rounds = until(lambda: table_cells(page, "Generated"), lambda rows: len(rows) == 2)
        assert [r[0] for r in rounds] == ["1", "2"]
        # The sidebar's count follows the join (the browser kept a stale label once).
        grown = f"{path.name} · {Workspace.open(path).n_samples:,} rows"
        sidebar = page.get_by_role("combobox", name="Workspace")
        assert until(sidebar.input_value, lambda shown: shown == grown) == grown
        assert rounds[1][1] == section.settings["target"]
        assert metric_value(page, "Candidates") == str(PER_ROUND + NEW_PER_ROUND)
        shot(page, shots, "grow-3-finished")
        # Join the reviewed round, then undo it from the round table.
        n_before = Workspace.open(path).n_samples

        def statuses() -> list[str]:
            rounds = Workspace.open(path).section(SynthesisSection).rounds
            return [str(r.status) for r in rounds]

        page.get_by_role("button", name="Join", exact=True).click()
        assert until(statuses, lambda s: s == ["joined", "joined"]) == ["joined", "joined"]
        page.get_by_role("button", name="Undo this join").wait_for()
        settle(page)
        page.get_by_role("button", name="Undo this join").click()
        # The round shown in the box (the one read last) is undone; the other stays joined.
        done = until(statuses, lambda s: "unjoined" in s)
        assert sorted(done) == ["joined", "unjoined"]
        undone = Workspace.open(path).section(SynthesisSection).rounds[done.index("unjoined")]
        page.get_by_text("taken out").first.wait_for()
        no_traceback(page)
        assert Workspace.open(path).n_samples == n_before - int(undone.unjoined or 0)
        shot(page, shots, "grow-4-undone")
    finally:
        context.close()
