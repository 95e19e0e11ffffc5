"""The Map page above its drawn cap (AppTest): what it draws and says, a lasso resolved on every
row, an estimated G-Vendi labelled as one, and a bad ``PRISM_MAP_MAX_POINTS`` explained; cluster
tables and the cluster-size chart bounded when there are very many clusters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from app_workspaces import make_workspace
from test_app import app, assert_clean, errors, home, metric, router_only, values  # noqa: F401 — fixtures

from core.measures.regions import points_in_polygon
from core.workspace.store import Workspace
from ui import state

N_ROWS = 400


@pytest.fixture
def big(home: Path) -> Workspace:
    return make_workspace(home / "workspaces" / "demo-gsm8k", n=N_ROWS, dim=16, seed=4)


def _trace(at: object) -> dict[str, object]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]  # type: ignore[attr-defined]


def test_lasso_selects_every_row_inside_not_only_the_drawn(
    big: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRISM_MAP_MAX_POINTS", "60")
    at = app()
    assert_clean(at)
    trace = _trace(at)
    assert len(trace["text"]) <= 60  # type: ignore[arg-type]
    assert any("Drawing" in c.value and f"of {N_ROWS:,} samples" in c.value for c in at.caption)
    frame = big.samples()
    x, y = frame["umap_x"].to_numpy(), frame["umap_y"].to_numpy()
    # A concave polygon around the middle of the map, in data coordinates.
    cx, cy, r = float(np.median(x)), float(np.median(y)), float(np.std(x))
    px = [cx - r, cx + r, cx + r, cx, cx - r]
    py = [cy - r, cy - r, cy + r, cy, cy + r]
    expected = np.flatnonzero(points_in_polygon(x, y, px, py))
    assert 0 < expected.size < N_ROWS
    # The browser reports only the drawn points inside; the server takes every row inside.
    at.session_state["map_chart"] = {
        "selection": {"points": [{"customdata": 0}], "box": [], "lasso": [{"x": px, "y": py}]}
    }
    at.run()
    assert_clean(at)
    assert list(at.session_state[state.SELECTION]["rows"]) == expected.tolist()
    assert metric(at, "Selected samples") == f"{expected.size:,}"
    assert any("Exact, over every row of the selection" in c.value for c in at.caption)


def test_a_costly_selection_shows_a_labelled_estimate(
    big: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.measures.selection.EXACT_FLOPS", 1.0)
    at = app()
    at.session_state[state.SELECTION] = {
        "workspace": str(big.path),
        "rows": list(range(0, N_ROWS, 2)),
        "how": {"method": "lasso"},
    }
    at.run()
    assert_clean(at)
    value = metric(at, "G-Vendi of the selection (estimate)")
    assert "±" in value
    assert any("G-Vendi estimated from" in c.value for c in at.caption)


def test_a_bad_drawn_cap_is_explained(big: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISM_MAP_MAX_POINTS", "lots")
    at = app()
    assert not at.exception
    assert any("PRISM_MAP_MAX_POINTS must be a positive whole number" in e for e in errors(at))


def test_many_clusters_are_shown_bounded(big: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from ui import charts
    from ui.panels import clusters as clusters_panel

    monkeypatch.setattr(clusters_panel, "TABLE_MAX_ROWS", 5)
    monkeypatch.setattr(charts, "SIZE_BARS_MAX", 7)
    k = int(big.manifest["clusters"]["n_clusters"])
    assert k > 7
    at = app()
    assert_clean(at)
    table = next(d for d in at.dataframe if "Top words" in d.value.columns)
    assert table.value["Cluster"].tolist() == [0, 1, 2, 3, 4]  # the largest, in cluster order
    assert any(f"Showing the first 5 of {k:,} clusters" in c.value for c in at.caption)
    at = app("diversity")
    assert_clean(at)
    sizes = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]  # type: ignore[attr-defined]
    ranks = values(sizes["x"]).tolist()
    assert len(ranks) <= 7 and ranks[0] == 1 and ranks[-1] == k
    assert any("evenly spaced ranks" in c.value for c in at.caption)
