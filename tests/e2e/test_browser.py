"""The app in a real browser: the demo map, a lasso, a saved subset, an upload, a bad upload.

Each test leaves screenshots of its steps in artifacts/e2e/. The lasso test checks the number
the page shows against an independent count: the polygon Plotly reports for the drawn lasso
(its data coordinates) and the coordinates the map actually plotted, counted with a pure-numpy
point-in-polygon test written here.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e

# A lasso in the plot area, as fractions of its width and height: concave, so that the test
# would notice a selection resolved by a bounding box instead of the polygon.
LASSO = [(0.18, 0.2), (0.75, 0.12), (0.85, 0.55), (0.5, 0.45), (0.55, 0.85), (0.15, 0.7)]


def shot(page: Any, shots: Path, name: str) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main area, so grow the window)."""
    height = page.evaluate(
        '() => Math.max(900, ...Array.from(document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stMainBlockContainer"]\')).map(e => e.scrollHeight + 80))'
    )
    page.set_viewport_size({"width": 1400, "height": int(min(height, 6000))})
    time.sleep(0.6)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})


def settle(page: Any, timeout: float = 60) -> None:
    """Wait until the app has finished its script run (no 'running' indicator for a moment)."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.8:
            return
        time.sleep(0.1)
    raise AssertionError("the app kept running")


def metric_value(page: Any, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def choose(page: Any, label: str, option: str) -> None:
    box = page.get_by_role("combobox", name=label)
    # Scrolled first: a list opened by a click that also scrolls the page closes at once.
    box.scroll_into_view_if_needed()
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def draw_lasso(page: Any, index: int = 0, *, steps: int = 12) -> None:
    """Drag the LASSO polygon with the mouse over the ``index``-th map of the page."""
    area = page.locator(".js-plotly-plot .nsewdrag").nth(index)
    area.wait_for()
    box = area.bounding_box()
    path = [(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy) for fx, fy in LASSO]
    page.mouse.move(*path[0])
    page.mouse.down()
    for x, y in [*path[1:], path[0]]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def lasso_reported(page: Any, *, steps: int = 12) -> dict[str, Any]:
    """Draw the LASSO on the first map; the polygon Plotly reports for it, in data coordinates
    (``x``, ``y``), and ``n``, the number of drawn points Plotly found inside."""
    page.evaluate(
        """() => {
            const gd = document.querySelector('.js-plotly-plot');
            window.__lasso = null;
            gd.on('plotly_selected', (event) => {
                if (event && event.lassoPoints) {
                    window.__lasso = {x: Array.from(event.lassoPoints.x), y: Array.from(event.lassoPoints.y),
                                      n: event.points.length};
                }
            });
        }"""
    )
    draw_lasso(page, steps=steps)
    page.wait_for_function("() => window.__lasso !== null")
    return page.evaluate("() => window.__lasso")


def no_traceback(page: Any) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Something went wrong" not in body


def decoded(value: Any) -> list[Any] | None:
    """A figure array as sent to the browser: a list, or plotly's base64 typed-array form."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return value


def inside(x: np.ndarray, y: np.ndarray, px: list[float], py: list[float]) -> np.ndarray:
    """Even-odd ray casting, written here so the check does not trust the app's own helper."""
    result = np.zeros(x.shape, dtype=bool)
    n = len(px)
    for i in range(n):
        x1, y1, x2, y2 = px[i], py[i], px[i - 1], py[i - 1]
        if y1 == y2:
            continue
        straddles = (y1 > y) != (y2 > y)
        crossing = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        result ^= straddles & (x < crossing)
    return result


def test_demo_map_lasso_and_save_subset(
    page: Any, server: str, prism_home: Path, shots: Path
) -> None:
    page.goto(server)
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    plot.wait_for()
    page.get_by_text("Draw a", exact=False).first.wait_for()
    settle(page)
    no_traceback(page)
    assert metric_value(page, "G-Vendi (whole set)")
    shot(page, shots, "01-demo-map")

    # Record what Plotly itself reports for the lasso: its polygon in data coordinates.
    lasso = lasso_reported(page, steps=15)
    page.get_by_text("Selected samples").wait_for()
    settle(page)
    no_traceback(page)
    shown = int(metric_value(page, "Selected samples").replace(",", ""))

    # The plotted coordinates, as the browser holds them, and an independent count.
    data = page.evaluate(
        """() => {
            const trace = document.querySelector('.js-plotly-plot').data[0];
            const plain = (v) => (v && v.bdata !== undefined) ? v : (v ? Array.from(v) : null);
            return {x: plain(trace.x), y: plain(trace.y), rows: plain(trace.customdata),
                    selected: plain(trace.selectedpoints)};
        }"""
    )
    data = {key: decoded(value) for key, value in data.items()}
    x, y = np.asarray(data["x"], dtype=float), np.asarray(data["y"], dtype=float)
    counted = inside(x, y, lasso["x"], lasso["y"])
    assert 0 < counted.sum() < len(x), "the lasso should take some points, not all"
    assert shown == int(counted.sum()) == lasso["n"]
    # The map now dims everything else: exactly the counted points are drawn as selected.
    assert sorted(data["selected"]) == np.flatnonzero(counted).tolist()
    # The polygon Plotly reports is the one drawn (its first vertex is where the mouse went down).
    xaxis_range = page.evaluate(
        "() => document.querySelector('.js-plotly-plot')._fullLayout.xaxis.range"
    )
    first_fraction = (lasso["x"][0] - xaxis_range[0]) / (xaxis_range[1] - xaxis_range[0])
    assert abs(first_fraction - LASSO[0][0]) < 0.02
    shot(page, shots, "02-lasso-selection")

    # Save it as a subset and see it listed.
    page.get_by_label("Subset name").fill("lasso picks")
    page.get_by_role("button", name="Save as subset").click()
    page.get_by_text("Saved “lasso picks”").wait_for()
    settle(page)
    no_traceback(page)
    subsets = json.loads((prism_home / "workspaces" / "demo-gsm8k" / "subsets.json").read_text())
    assert len(subsets["lasso picks"]["ids"]) == shown
    assert subsets["lasso picks"]["how"]["method"] == "lasso"
    expected_ids = sorted(str(r) for r in np.asarray(data["rows"])[counted])
    assert sorted(subsets["lasso picks"]["ids"]) == expected_ids
    assert page.get_by_role("combobox", name="Subset", exact=True).input_value() == "lasso picks"
    shot(page, shots, "03-subset-saved")

    # A click on a record shows it in full, its text escaped, in a dialog where the user looks
    # (not below the fold of the narrow column); Escape closes it and it stays closed.
    records = page.locator('[data-testid="stDataFrame"]').filter(has_text="Prompt").first
    records.scroll_into_view_if_needed()  # a mouse click only lands inside the viewport
    first_row = records.bounding_box()
    page.mouse.click(first_row["x"] + 14, first_row["y"] + 35 + 17)
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Response", exact=True).wait_for()
    settle(page)
    no_traceback(page)
    box, view = dialog.bounding_box(), page.viewport_size
    assert box is not None and 0 <= box["y"] < view["height"] / 2  # its top is in view
    assert "cluster" in dialog.inner_text() and "loss" in dialog.inner_text()
    shot(page, shots, "04-record")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    settle(page)
    assert not page.get_by_role("dialog").count()

    # A click on a cluster in the table selects that cluster.
    clusters = page.locator('[data-testid="stDataFrame"]').filter(has_text="Top words").first
    clusters.scroll_into_view_if_needed()
    table_box = clusters.bounding_box()
    page.mouse.click(table_box["x"] + 14, table_box["y"] + 35 + 17)
    size_of_largest = json.loads(
        (prism_home / "workspaces" / "demo-gsm8k" / "manifest.json").read_text()
    )["clusters"]["sizes"][0]
    deadline = time.monotonic() + 30
    while (
        metric_value(page, "Selected samples") != f"{size_of_largest:,}"
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert metric_value(page, "Selected samples") == f"{size_of_largest:,}"
    settle(page)
    shot(page, shots, "05-cluster-selected")

    # Clear: back to the whole set, and the map no longer dims anything.
    page.get_by_role("button", name="Clear", exact=True).click()
    page.get_by_text("Draw a", exact=False).first.wait_for()
    settle(page)
    no_traceback(page)
    assert page.locator('[data-testid="stMetric"]').filter(has_text="Selected samples").count() == 0
    selected = page.evaluate(
        "() => document.querySelector('.js-plotly-plot').data[0].selectedpoints || null"
    )
    assert not decoded(selected)


def _pairs_csv(path: Path) -> Path:
    rows = [
        {
            "instruction": f"Say the number {i}",
            "output": f"{i}",
            "task": f"What is {i} plus {i}?",
            "solution": "" if i % 4 == 0 else f"{i} + {i} = {2 * i}",
        }
        for i in range(12)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_upload_with_a_non_default_column_mapping(
    page: Any, server: str, tmp_path: Path, shots: Path
) -> None:
    source = _pairs_csv(tmp_path / "pairs.csv")
    page.goto(f"{server}/data")
    page.get_by_text("Add a dataset").wait_for()
    page.get_by_text("Up to 1,024 MB per file").wait_for()  # the stated limit
    page.locator('input[type="file"]').set_input_files(str(source))
    page.get_by_text("12 usable rows").wait_for()  # detected: instruction → output
    settle(page)
    choose(page, "Prompt column", "task")
    settle(page)
    choose(page, "Response column", "solution")
    page.get_by_text("9 usable rows").wait_for()  # rows 0, 4, 8 have no solution
    settle(page)
    no_traceback(page)
    assert page.get_by_text("3 rows skipped").is_visible()
    shot(page, shots, "06-upload-mapped")
    page.get_by_role("button", name="Continue: compute features").click()
    page.get_by_text("New features for").wait_for()
    settle(page)
    no_traceback(page)
    body = page.locator("body").inner_text()
    assert re.search(r"prompt = task, response = solution", body)
    assert "9 samples" in body
    shot(page, shots, "07-features-form")


def test_bad_upload_says_what_is_wrong(page: Any, server: str, tmp_path: Path, shots: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"prompt,response\n\xff\xfe not text,oops\n")
    page.goto(f"{server}/data")
    page.get_by_text("Add a dataset").wait_for()
    page.locator('input[type="file"]').set_input_files(str(broken))
    message = page.locator('[data-testid="stAlertContentError"]').filter(has_text="not valid UTF-8")
    message.wait_for()
    assert "save the file as UTF-8" in message.inner_text()
    no_traceback(page)
    shot(page, shots, "08-bad-upload")


@pytest.mark.parametrize("path", ["diversity", "features"])
def test_other_pages_render(page: Any, server: str, shots: Path, path: str) -> None:
    page.goto(f"{server}/{path}")
    page.get_by_role("heading", name=path.title()).first.wait_for()
    if path == "diversity":
        page.locator(".js-plotly-plot").nth(1).wait_for()
    settle(page)
    no_traceback(page)
    shot(page, shots, f"09-{path}")


def test_gzip_upload_is_read(page: Any, server: str, tmp_path: Path) -> None:
    """A .jsonl.gz upload is accepted by the uploader and read like the plain file."""
    import gzip
    import json

    source = tmp_path / "pairs.jsonl.gz"
    rows = [{"question": f"What is {i} times 3?", "answer": f"{3 * i}"} for i in range(7)]
    with gzip.open(source, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    page.goto(f"{server}/data")
    page.get_by_text("Add a dataset").wait_for()
    page.locator('input[type="file"]').set_input_files(str(source))
    page.get_by_text("7 usable rows").wait_for()
    no_traceback(page)
