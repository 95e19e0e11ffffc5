"""What a newcomer does first, in a real browser: open a workspace built with
`--workspace FOLDER`, read a long record, see a damaged workspace marked, and map columns that
could not be detected.

The workspaces are made for each test inside the shared server's $PRISM_HOME (one of the folders
the app may read) and removed afterwards, with the app's remembered state, so the other browser
tests still find the demo as they left it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from app_workspaces import make_workspace
from test_browser import choose, no_traceback, settle, shot

from core.workspace.subsets import save_subset

pytestmark = pytest.mark.e2e

LONG_LINES = 1_500  # about 30,000 px of text if nothing held it


@pytest.fixture
def scratch(prism_home: Path) -> Iterator[Path]:
    """A folder for this test's workspaces in $PRISM_HOME; app.json is put back afterwards."""
    folder = prism_home / "newcomer"
    app_state = prism_home / "app.json"
    saved = app_state.read_bytes() if app_state.exists() else None
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(prism_home / "workspaces" / "newcomer-damaged", ignore_errors=True)
    if saved is None:
        app_state.unlink(missing_ok=True)
    else:
        app_state.write_bytes(saved)


def main_height(page: Any) -> int:
    return int(
        page.evaluate(
            "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
        )
    )


def test_open_a_workspace_folder_and_read_a_long_record(
    page: Any, server: str, scratch: Path, shots: Path
) -> None:
    ws = make_workspace(scratch / "ws" / "math-notes", n=60, dim=16, seed=2, gsm8k=False)
    frame = ws.samples()
    frame.loc[0, "answer"] = "\n".join(f"step {i}: carry the one" for i in range(LONG_LINES))
    frame.loc[0, ["truncated", "n_tokens", "n_response_tokens"]] = [True, 512, 511]
    ws.write_samples(frame)
    save_subset(ws, "long ones", ["0"], how={"method": "hand"})

    page.goto(f"{server}/data")
    page.get_by_text("Your workspaces").wait_for()
    settle(page)
    shot(page, shots, "20-newcomer-data-page")
    page.get_by_role("textbox", name="Open a workspace folder").fill(str(ws.path))
    page.get_by_role("button", name="Open folder").click()
    page.get_by_role("heading", name="Map").first.wait_for()
    settle(page)
    no_traceback(page)

    # Back on the Data page, it is listed (as the one opened) and remembered.
    page.goto(f"{server}/data")
    page.get_by_text("Your workspaces").wait_for()
    settle(page)
    card = page.locator('[data-testid="stHorizontalBlock"]').filter(has_text="math-notes").last
    assert card.get_by_role("button", name="Opened").is_visible()

    # The record: every column, where the model stopped reading, and a page of sane height.
    page.goto(f"{server}/subsets")
    page.get_by_text("Its records").wait_for()
    settle(page)
    records = page.locator('[data-testid="stDataFrame"]').filter(has_text="Prompt").first
    records.scroll_into_view_if_needed()
    box = records.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)
    page.get_by_text("the rest was cut by --max-length").wait_for()
    settle(page)
    no_traceback(page)
    body = page.locator("body").inner_text()
    assert "first 511 tokens of the response" in body
    assert "step 0: carry the one" in body  # the text is there, in its scrolling box
    others = page.locator('[data-testid="stDataFrame"]').filter(has_text="Value").first
    cells = others.get_by_role("gridcell", include_hidden=True).all_text_contents()
    assert "difficulty" in cells and str(frame["difficulty"].iloc[0]) in cells
    # 1,500 lines of text would stretch the page to tens of thousands of pixels.
    assert main_height(page) < 4_000, main_height(page)
    shot(page, shots, "21-newcomer-long-record")


def test_damaged_workspace_and_undetected_columns(
    page: Any, server: str, prism_home: Path, scratch: Path, shots: Path
) -> None:
    damaged = make_workspace(
        prism_home / "workspaces" / "newcomer-damaged", n=30, dim=8, gsm8k=False
    )
    data = (damaged.path / "features.npy").read_bytes()
    (damaged.path / "features.npy").write_bytes(data[: len(data) // 2])
    scratch.mkdir(parents=True, exist_ok=True)
    source = scratch / "problems.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(8)],
            "statement": [f"What is {a} + {a}?" for a in rng.integers(1, 50, 8)],
            "worked_solution": [f"It is {i}." for i in range(8)],
        }
    ).to_csv(source, index=False)

    page.goto(f"{server}/data")
    page.get_by_text("Your workspaces").wait_for()
    settle(page)
    card = (
        page.locator('[data-testid="stHorizontalBlock"]').filter(has_text="newcomer-damaged").last
    )
    message = card.locator('[data-testid="stAlertContentError"]')
    assert "features.npy" in message.inner_text()
    assert card.get_by_role("button", name="Open").is_disabled()

    page.locator('input[type="file"]').set_input_files(str(source))
    page.get_by_text("Pick the columns below").wait_for()
    settle(page)
    continue_button = page.get_by_role("button", name="Continue: compute features")
    assert continue_button.is_disabled()
    for label in ("Prompt column", "Response column"):  # both empty, none guessed
        picker = page.get_by_role("combobox", name=label)
        assert picker.input_value() == ""
        assert picker.get_attribute("placeholder") == "choose a column"
    shot(page, shots, "22-newcomer-columns-to-choose")
    choose(page, "Prompt column", "statement")
    settle(page)
    choose(page, "Response column", "worked_solution")
    page.get_by_text("8 usable rows").wait_for()
    settle(page)
    no_traceback(page)
    assert continue_button.is_enabled()
    shot(page, shots, "23-newcomer-columns-chosen")
