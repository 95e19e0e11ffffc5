"""The app server's door: requests are served only under a local host name.

A page on another site can reach an app on 127.0.0.1 through DNS rebinding (its own name made to
point at this machine), and then it is "same origin" for the browser. What it cannot change is the
name the browser puts in the `Host` and `Origin` headers. So every HTTP request and websocket
handshake is refused unless its `Host` (and its `Origin`, when the browser sends one) names
localhost, 127.0.0.1 or [::1] (any port), the address the server was told to listen on, or a
name listed in PRISM_ALLOWED_HOSTS (comma-separated; `*` turns the check off, e.g. behind a
proxy that checks names itself).

`streamlit run app.py` builds its server from `app.py`'s `st.App`, which installs `middleware()`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import urlsplit

import streamlit as st
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ALLOWED_HOSTS_ENV = "PRISM_ALLOWED_HOSTS"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_ADDRESSES = {"", "0.0.0.0", "::"}


def host_name(netloc: str | None) -> str | None:
    """The lower-case name of a `Host` value or an origin's netloc, without port or brackets.

    None when it is missing or malformed (a user part, a path, a bad port).
    """
    if not netloc:
        return None
    try:
        parts = urlsplit(f"//{netloc}")
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.lower().rstrip(".")


def allowed_names() -> frozenset[str]:
    """The local names, the configured listening address, and PRISM_ALLOWED_HOSTS."""
    names = set(LOCAL_NAMES)
    address = str(st.get_option("server.address") or "").strip()
    if address not in _WILDCARD_ADDRESSES:
        names.add(host_name(address if ":" not in address else f"[{address}]") or address)
    for item in os.environ.get(ALLOWED_HOSTS_ENV, "").split(","):
        item = item.strip()
        if item == "*":
            names.add("*")
        elif item:
            names.add(host_name(item) or item.lower())
    return frozenset(names)


class LocalOnly:
    """ASGI middleware: 403 for a request whose Host or Origin is not an allowed name."""

    def __init__(self, app: ASGIApp, *, names: Iterable[str]) -> None:
        self.app = app
        self.names = frozenset(names)

    def refusal(self, headers: Headers) -> str | None:
        """Why a request is refused, or None when it may pass."""
        if "*" in self.names:
            return None
        shown = ", ".join(f"[{n}]" if ":" in n else n for n in sorted(self.names))
        advice = (
            f"This app answers only to {shown}. To open it under another name, start it with "
            f"{ALLOWED_HOSTS_ENV}=that.name (comma-separated for several)."
        )
        host = headers.get("host")
        if host_name(host) not in self.names:
            return f"Refused: the Host {host!r} is not a name of this app. {advice}"
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or host_name(parts.netloc) not in self.names:
                return f"Refused: a page from {origin!r} may not use this app. {advice}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self.refusal(Headers(scope=scope))
            if problem is not None:
                await PlainTextResponse(problem + "\n", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def middleware() -> list[Middleware]:
    """The middleware `app.py` gives its `st.App`: the Host/Origin check, first of all."""
    return [Middleware(LocalOnly, names=allowed_names())]
