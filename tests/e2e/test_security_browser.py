"""The app in a real browser makes no request to another host (no web fonts, no icons, no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_browser import no_traceback, settle, shot

pytestmark = pytest.mark.e2e

PAGES = ["data", "features", "map", "diversity", "subsets", "compare"]


def test_every_page_loads_only_from_the_app(page: Any, server: str, shots: Path) -> None:
    own = urlsplit(server).netloc
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    for name in PAGES:
        page.goto(f"{server}/{name}")
        page.get_by_role("heading", name=name.title()).first.wait_for()
        settle(page)
        no_traceback(page)
        # every icon of the page is drawn: the icon font is there, not its ligature's name
        page.wait_for_function("document.fonts.status === 'loaded'")
    shot(page, shots, "10-no-outside-requests")
    outside = sorted(
        {u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
        - {u for u in requested if urlsplit(u).netloc == own}
    )
    assert not outside, outside
    assert len(requested) > len(PAGES)  # the listener saw the page's own requests
