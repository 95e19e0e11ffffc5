"""Gradient space beside text space in a real browser: a lasso on one map lights up the same
rows on the other.

The shared demo workspace (tests/e2e/conftest.py) carries a text space (synthetic embeddings,
their own map), so the Map page offers "Side by side". The check reads what each Plotly figure
in the page actually highlights (its resolved ``selectedpoints``), not the app's own state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_browser import draw_lasso, metric_value, no_traceback, settle, shot

pytestmark = pytest.mark.e2e

HIGHLIGHTED = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => {
    const rows = plot._fullData[0].selectedpoints;
    return rows ? Array.from(rows).map(i => plot._fullData[0].customdata[i]).sort((a, b) => a - b)
                : null;
})"""


def highlighted_after_lasso(page: Any, index: int, previous: int | None) -> list[list[int]]:
    draw_lasso(page, index)
    page.wait_for_function(
        f"""() => {{
            const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
            const counts = plots.map(p => (p._fullData[0].selectedpoints || []).length);
            return counts.length === 2 && counts[0] > 0 && counts[0] === counts[1]
                && counts[0] !== {previous if previous is not None else -1};
        }}""",
        timeout=60_000,
    )
    settle(page)
    return page.evaluate(HIGHLIGHTED)


def test_lasso_on_either_map_highlights_the_same_rows_on_the_other(
    page: Any, server: str, shots: Path
) -> None:
    page.goto(server)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    settle(page)
    page.get_by_text("Side by side", exact=True).click()
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot').length === 2", timeout=60_000
    )
    settle(page)
    assert "Gradient space beside text space" in page.locator("body").inner_text()

    gradient, text = highlighted_after_lasso(page, 0, None)
    assert gradient == text
    assert int(metric_value(page, "Selected samples").replace(",", "")) == len(gradient)
    shot(page, shots, "13-linked-maps-gradient-lasso")

    gradient2, text2 = highlighted_after_lasso(page, 1, len(gradient))
    assert gradient2 == text2 and gradient2 != gradient
    assert int(metric_value(page, "Selected samples").replace(",", "")) == len(text2)
    assert "Text space" in page.locator("body").inner_text()  # the selection's text measures
    shot(page, shots, "14-linked-maps-text-lasso")
    no_traceback(page)
