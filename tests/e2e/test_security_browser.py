"""The app in a real browser makes no request to another host (no web fonts, no icons, no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_browser import no_traceback, settle, shot

pytestmark = pytest.mark.e2e

PAGES = ["data", "features", "map", "diversity", "subsets", "compare", "grow"]


def test_every_page_loads_only_from_the_app(page: Any, server: str, shots: Path) -> None:
    """...at its own URL, which can be shared: /map is the Map, and / moves on to it."""
    own = urlsplit(server).netloc
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    for name in ["", *PAGES]:
        page.goto(f"{server}/{name}")
        page.get_by_role("heading", name=(name or "map").title()).first.wait_for()
        page.wait_for_url(f"{server}/{name or 'map'}")
        settle(page)
        no_traceback(page)
        assert not page.get_by_text("Page not found").count(), name
        # every icon of the page is drawn: the icon font is there, not its ligature's name
        page.wait_for_function("document.fonts.status === 'loaded'")
    shot(page, shots, "10-no-outside-requests")
    outside = sorted(
        {u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
        - {u for u in requested if urlsplit(u).netloc == own}
    )
    assert not outside, outside
    assert len(requested) > len(PAGES)  # the listener saw the page's own requests


SOCKET_PROBE = """async (url) => await new Promise((done) => {
    const socket = new WebSocket(url, "streamlit");
    socket.onopen = () => { socket.close(); done("open"); };
    socket.onerror = () => done("refused");
    setTimeout(() => done("timeout"), 10000);
})"""


def test_a_page_of_another_local_program_cannot_open_the_apps_socket(
    page: Any, server: str
) -> None:
    """A page served by another program on this machine (another port) is refused the websocket
    that drives the app; the app's own page opens it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Blank(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 — the handler's name in http.server
            body = b"<!doctype html><title>another program</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Blank)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    stream = f"ws://{urlsplit(server).netloc}/_stcore/stream"
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        assert page.evaluate(SOCKET_PROBE, stream) == "refused"
        page.goto(f"{server}/data")
        assert page.evaluate(SOCKET_PROBE, stream) == "open"
    finally:
        other.shutdown()
        other.server_close()
