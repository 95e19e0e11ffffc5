"""Curation in a real browser: a selector subset, a lasso subset, both on Compare, a download.

The steps a curator takes, in order, on the shared demo server (tests/e2e/conftest.py): run a
selector on the Subsets page, lasso a region of the map and save it, check that Compare lists
both subsets with their sizes, and download one as JSON Lines — the file must hold exactly the
subset's rows. Screenshots of each step go to artifacts/e2e/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_browser import choose, draw_lasso, metric_value, no_traceback, settle, shot

pytestmark = pytest.mark.e2e

SELECTED = "k-center sixty"
LASSOED = "lasso for compare"


def subsets(prism_home: Path) -> dict[str, Any]:
    return json.loads((prism_home / "workspaces" / "demo-gsm8k" / "subsets.json").read_text())


def grid_rows(page: Any, n_columns_at_least: int = 2) -> dict[str, list[str]]:
    """The first table on the page, read from the grid's accessibility layer (the table itself
    is drawn on a canvas): first cell → the row's cells, values unformatted."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.get_by_role("gridcell", include_hidden=True).first.wait_for(state="attached")
    table = {}
    for row in grid.get_by_role("row", include_hidden=True).all():
        cells = [
            c.strip() for c in row.get_by_role("gridcell", include_hidden=True).all_text_contents()
        ]
        if len(cells) >= n_columns_at_least:
            table[cells[0]] = cells
    return table


def test_selector_and_lasso_subsets_compared_and_downloaded(
    page: Any, server: str, prism_home: Path, shots: Path, tmp_path: Path
) -> None:
    # 1. A selector subset, from the Subsets page.
    page.goto(f"{server}/subsets")
    page.get_by_role("button", name="Run selector").wait_for()
    settle(page)
    no_traceback(page)
    choose(page, "Selector", "k_center — greedy farthest point (cosine)")
    settle(page)
    page.get_by_label("Rows").fill("60")
    page.get_by_label("Rows").press("Enter")
    settle(page)
    page.get_by_label("Name").fill(SELECTED)
    page.get_by_label("Name").press("Enter")
    settle(page)
    page.get_by_role("button", name="Run selector").click()
    page.get_by_text(f"Saved “{SELECTED}”").wait_for()
    settle(page)
    no_traceback(page)
    assert len(subsets(prism_home)[SELECTED]["ids"]) == 60
    assert subsets(prism_home)[SELECTED]["how"]["method"] == "k_center"
    shot(page, shots, "10-selector-subset")

    # 2. A lasso subset, from the map.
    page.goto(server)
    page.get_by_text("Draw a", exact=False).first.wait_for()
    settle(page)
    draw_lasso(page)
    page.get_by_text("Selected samples").wait_for()
    settle(page)
    lassoed = int(metric_value(page, "Selected samples").replace(",", ""))
    assert lassoed > 0
    page.get_by_label("Subset name").fill(LASSOED)
    page.get_by_role("button", name="Save as subset").click()
    page.get_by_text(f"Saved “{LASSOED}”").wait_for()
    settle(page)
    no_traceback(page)
    assert len(subsets(prism_home)[LASSOED]["ids"]) == lassoed

    # 3. Both side by side on Compare, with their sizes.
    page.goto(f"{server}/compare")
    page.get_by_role("heading", name="Subsets side by side").wait_for()
    page.get_by_role("button", name="Compute the curves").wait_for()
    settle(page)
    no_traceback(page)
    table = grid_rows(page)
    assert table[SELECTED][1] == "60", table[SELECTED]
    assert table[LASSOED][1] == str(lassoed), table[LASSOED]
    assert "(whole set)" in table
    shot(page, shots, "11-compare")

    # 4. Download the selector subset as JSON Lines: exactly its rows.
    page.goto(f"{server}/subsets")
    page.get_by_role("button", name="Run selector").wait_for()
    settle(page)
    picker = page.get_by_role("combobox", name="Work with")
    picker.scroll_into_view_if_needed()  # its menu opens only when it is in view
    choose(page, "Work with", SELECTED)
    settle(page)
    button = page.get_by_role("button", name="Download JSON Lines")
    button.scroll_into_view_if_needed()
    with page.expect_download() as event:
        button.click()
    download = event.value
    assert download.suggested_filename == "k-center_sixty.jsonl"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    rows = pd.read_json(saved, lines=True, dtype=False)
    assert len(rows) == 60
    samples = pd.read_parquet(prism_home / "workspaces" / "demo-gsm8k" / "samples.parquet")
    chosen = sorted(int(i) for i in subsets(prism_home)[SELECTED]["ids"])
    assert rows["question"].tolist() == samples["question"].iloc[chosen].tolist()
    no_traceback(page)
    shot(page, shots, "12-export")
