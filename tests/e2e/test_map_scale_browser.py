"""A map larger than its drawn sample, in a real browser: a lasso selects every row inside it.

The workspace is built with ``prism import-features`` (synthetic clustered features) and
``prism cluster``; its map coordinates are planted 2-D blobs written as the layout (UMAP itself
is not the point here). The server draws at most ``PRISM_MAP_MAX_POINTS`` = 400 of its 3,000
rows. The expected selection is computed here from every row's coordinates and the polygon
Plotly reports for the drawn lasso (data coordinates), with this suite's own point-in-polygon
test, and compared with the count the page shows and the ids of the subset saved from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import invoke, write_jsonl
from conftest import app_server
from test_browser import (
    decoded,
    inside,
    lasso_reported,
    metric_value,
    no_traceback,
    settle,
    shot,
)

from core.workspace.manifest import LayoutSection
from core.workspace.store import Workspace

pytestmark = pytest.mark.e2e

N_ROWS = 3_000
DRAWN = 400


@pytest.fixture(scope="module")
def big_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("prism-big-map")
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((12, 16))
    topic = rng.integers(0, 12, N_ROWS)
    features = centres[topic] + 0.4 * rng.standard_normal((N_ROWS, 16))
    np.save(home / "features.npy", features.astype(np.float32), allow_pickle=False)
    data = write_jsonl(
        home / "data.jsonl",
        ({"id": f"r{i}", "text": f"row {i} about topic {topic[i]}"} for i in range(N_ROWS)),
    )
    path = home / "workspaces" / "big"
    code, _, err = invoke("import-features", data, home / "features.npy", "--workspace", path)
    assert code == 0, err
    code, _, err = invoke("cluster", path, "--k", "30")
    assert code == 0, err
    # Planted map: one dense blob (most rows) and sparse ones around it.
    spots = np.array([[0.0, 0.0], [6, 5], [-5, 6], [5, -6], [-6, -4], [0, 9]])
    weight = np.array([0.7, 0.06, 0.06, 0.06, 0.06, 0.06])
    spot = rng.choice(len(spots), size=N_ROWS, p=weight)
    spread = np.where(spot == 0, 1.2, 0.8)[:, None]
    coords = spots[spot] + spread * rng.standard_normal((N_ROWS, 2))
    ws = Workspace.open(path)
    with ws.lock():
        ws.add_columns({"umap_x": coords[:, 0], "umap_y": coords[:, 1]})
        ws.set_section(LayoutSection(method="planted coordinates", seed=5))
    (home / "app.json").write_text(json.dumps({"last_workspace": str(path)}))
    return home


@pytest.fixture(scope="module")
def big_server(big_home: Path) -> Iterator[str]:
    with app_server(big_home, {"PRISM_MAP_MAX_POINTS": str(DRAWN)}) as url:
        yield url


def _plotted(page: Any) -> dict[str, np.ndarray]:
    data = page.evaluate(
        """() => {
            const trace = document.querySelector('.js-plotly-plot').data[0];
            const plain = (v) => (v && v.bdata !== undefined) ? v : (v ? Array.from(v) : null);
            return {x: plain(trace.x), y: plain(trace.y), rows: plain(trace.customdata)};
        }"""
    )
    return {key: np.asarray(decoded(value)) for key, value in data.items()}


def test_lasso_on_a_sampled_map_selects_every_row_inside(
    page: Any, big_server: str, big_home: Path, shots: Path
) -> None:
    page.goto(big_server)
    page.locator(".js-plotly-plot .nsewdrag").first.wait_for()
    page.get_by_text("Draw a", exact=False).first.wait_for()
    settle(page)
    no_traceback(page)
    plotted = _plotted(page)
    drawn = plotted["rows"].astype(int)
    assert 0 < len(drawn) <= DRAWN
    page.get_by_text(f"Drawing {len(drawn):,} of {N_ROWS:,} samples", exact=False).wait_for()
    shot(page, shots, "scale-01-sampled-map")

    lasso = lasso_reported(page, steps=10)
    page.get_by_text("Selected samples").wait_for()
    settle(page)
    no_traceback(page)
    shown = int(metric_value(page, "Selected samples").replace(",", ""))

    ws = Workspace.open(big_home / "workspaces" / "big")
    frame = ws.samples()
    x, y = frame["umap_x"].to_numpy(), frame["umap_y"].to_numpy()
    expected = inside(x, y, lasso["x"], lasso["y"])
    assert 0 < expected.sum() < N_ROWS
    assert shown == int(expected.sum())
    # Rows that were not drawn are selected too: far more than the drawn points inside.
    not_drawn = np.setdiff1d(np.flatnonzero(expected), drawn)
    assert not_drawn.size > 0 and lasso["n"] < shown
    assert page.get_by_text("Exact, over every row of the selection").count() == 1
    shot(page, shots, "scale-02-lasso")

    page.get_by_label("Subset name").fill("whole lasso")
    page.get_by_role("button", name="Save as subset").click()
    page.get_by_text("Saved “whole lasso”").wait_for()
    settle(page)
    saved = json.loads((ws.path / "subsets.json").read_text())["whole lasso"]
    assert saved["how"]["method"] == "lasso"
    assert sorted(saved["ids"]) == sorted(frame["id"].astype(str).to_numpy()[expected].tolist())
