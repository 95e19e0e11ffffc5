"""Text space in the app (AppTest): the linked maps, the text measures beside G-Vendi.

The workspace carries what `prism embed` adds (tests/app_workspaces.add_text_space). A selection
made on the text map is injected as the chart's event, as a browser would send it; the
real-browser test of the lasso itself is tests/e2e/test_text_space_browser.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from app_workspaces import make_workspace
from test_app import app, assert_clean, home, metric, router_only, texts, values  # noqa: F401 — fixtures

from core.workspace.analyses import text_scores
from core.workspace.store import Workspace
from ui import format as fmt
from ui import state

N = 160


@pytest.fixture
def embedded(home: Path) -> Workspace:
    return make_workspace(home / "workspaces" / "demo-gsm8k", n=N, dim=32, seed=0, text_space=True)


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_side_by_side_maps_share_one_selection(embedded: Workspace) -> None:
    at = app()
    assert_clean(at)
    control = at.segmented_control(key=f"prism_map_view_{embedded.name}")
    assert control.options == ["Gradient space", "Text space", "Side by side"]
    assert len(charts(at)) == 1
    control.set_value("Side by side").run()
    assert_clean(at)
    gradient, text = charts(at)
    frame = embedded.samples()
    np.testing.assert_allclose(values(text["data"][0]["x"]), frame["emb_umap_x"].to_numpy())
    assert "Gradient space beside text space" in texts(at)

    # A box on the text map: the browser sends the points inside it (customdata = row) …
    expected = np.flatnonzero(frame["emb_umap_x"].to_numpy() <= 0)
    points = [{"customdata": int(r)} for r in expected]
    box = {"x": [-20.0, 0.0], "y": [-20.0, 20.0]}
    at.session_state["map_chart_text"] = {
        "selection": {"points": points, "box": [box], "lasso": []}
    }
    at.run()
    assert_clean(at)
    assert list(at.session_state[state.SELECTION]["rows"]) == expected.tolist()
    assert at.session_state[state.SELECTION]["how"] == {"method": "box", "space": "text"}
    # … and the gradient map draws the same rows as selected.
    gradient, _ = charts(at)
    assert sorted(values(gradient["data"][0]["selectedpoints"]).tolist()) == expected.tolist()
    assert metric(at, "Selected samples") == f"{len(expected):,}"
    # The selection's text measures are the engine's.
    scores = text_scores(embedded, expected)
    assert f"embedding Vendi {fmt.score(scores.embedding_vendi)}" in texts(at)


def test_neighbourhood_agreement_is_a_colour(embedded: Workspace) -> None:
    at = app()
    label = "Neighbourhood agreement (gradient vs text)"
    box = at.selectbox(key=f"{state.COLOR_BY}_{embedded.name}")
    assert label in box.options and "Text cluster" in box.options
    box.set_value(label).run()
    assert_clean(at)
    marker = charts(at)[0]["data"][0]["marker"]
    assert marker["colorbar"]["title"]["text"] == label


def test_diversity_and_compare_show_the_four_numbers(embedded: Workspace) -> None:
    at = app("diversity")
    assert_clean(at)
    section = embedded.manifest["embedding"]
    assert metric(at, "Embedding Vendi") == fmt.score(section["embedding_vendi"])
    assert metric(at, "n-gram Vendi") == fmt.score(embedded.manifest["lexical"]["ngram_vendi"])
    assert any("What the measures mean" in e.label for e in at.expander)

    at = app("compare")
    assert_clean(at)
    assert at.toggle[0].value is True  # text measures shown by default once embedded
    table = at.dataframe[0].value
    assert {"embedding_vendi", "ngram_vendi", "distinct_2"} <= set(table.columns) or any(
        "Vendi" in str(c) and "mbedding" in str(c) for c in table.columns
    )


def test_without_embeddings_the_map_says_how_to_get_them(home: Path) -> None:
    make_workspace(home / "workspaces" / "demo-gsm8k", n=60, dim=16, seed=1)
    at = app()
    assert_clean(at)
    assert not at.segmented_control
    assert any(b.key == "embed_start_map" and "prism embed" in (b.help or "") for b in at.button)


def test_without_embeddings_a_button_computes_them_in_the_background(home: Path) -> None:
    """The button starts the real job (its own process), the page follows it, Cancel stops it."""
    import time

    from core.workspace.jobs import embedding
    from core.workspace.jobs.record import CANCELLED, process_alive

    ws = make_workspace(home / "workspaces" / "demo-gsm8k", n=60, dim=16, seed=1)
    at = app()
    next(b for b in at.button if b.key == "embed_start_map").click().run()
    assert_clean(at)
    job = embedding.read_status(ws.path)
    assert job is not None and job.running and job.total == 60 and process_alive(job.pid)
    assert "Computing text space" in texts(at)
    [bar] = at.get("progress")
    assert "of 60 texts embedded" in bar.proto.text
    # Cancel once the job is inside its run (it says so), not while Python still starts.
    deadline = time.monotonic() + 120
    while embedding.read_status(ws.path).message == "starting":  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the job did not start within 120 s"
        time.sleep(0.1)
    next(b for b in at.button if b.key == "embed_cancel").click().run()
    while process_alive(job.pid):
        assert time.monotonic() < deadline, "the job did not stop"
        time.sleep(0.1)
    stopped = embedding.read_status(ws.path)
    assert stopped is not None and stopped.status == CANCELLED, stopped
    assert not Workspace.open(ws.path).has_embeddings
    at.run()
    assert_clean(at)
    assert any(b.key == "embed_start_map" for b in at.button)  # it can be started again
    assert "stopped before the text space was stored" in texts(at)
