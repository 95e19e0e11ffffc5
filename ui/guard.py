"""The app server's door: requests are served only under the app's own names, and only to its own pages.

A page on another site can reach an app on 127.0.0.1 through DNS rebinding (its own name made to
point at this machine), and then it is "same origin" for the browser. What it cannot change is the
name the browser puts in the `Host` and `Origin` headers. A page served by another local program
(`http://127.0.0.1:9999`) has a local name but another port, which the browser puts in `Origin`.
So every HTTP request and websocket handshake is refused (403) unless

- its `Host` names localhost, 127.0.0.1 or [::1], the address the server was told to listen on, or
  a name listed in PRISM_ALLOWED_HOSTS (any port: the port a client dialled says nothing about
  who sent it), and there is exactly one `Host` header;
- its `Origin`, when the browser sends one, is one of those names on the port this server answers
  on, or an entry of PRISM_ALLOWED_HOSTS: `host` (on this server's port, or on the scheme's
  default port as a reverse proxy serves it) or `host:port` (that port only, e.g. `localhost:9000`
  for an SSH tunnel); `[::1]:9000` for an IPv6 address with a port;
- its request line names a path (`GET /x`), not a whole URL (`GET http://other/x`): this app is no
  proxy.

PRISM_ALLOWED_HOSTS is comma-separated; `*` turns the name and origin checks off (e.g. behind a
proxy that checks names itself). `streamlit run app.py` builds its server from `app.py`'s
`st.App`, which installs `middleware()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import streamlit as st
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ALLOWED_HOSTS_ENV = "PRISM_ALLOWED_HOSTS"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_ADDRESSES = {"", "0.0.0.0", "::"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_port(netloc: str | None) -> tuple[str, int | None] | None:
    """(lower-case name, port or None) of a `Host` value or an origin's netloc, without brackets.

    None when it is missing or malformed (a user part, a path, a bad port).
    """
    if not netloc:
        return None
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.lower().rstrip("."), port


def host_name(netloc: str | None) -> str | None:
    """The lower-case name of a `Host` value or an origin's netloc, without port or brackets."""
    parsed = host_port(netloc)
    return None if parsed is None else parsed[0]


@dataclass(frozen=True)
class Allowed:
    """Who may use the app: `own` names on the server's port, configured `extra` (name, port)
    pairs (port None: the server's port or the scheme's default), or anyone (`everyone`)."""

    own: frozenset[str]
    extra: frozenset[tuple[str, int | None]] = frozenset()
    everyone: bool = False

    @property
    def names(self) -> frozenset[str]:
        """Every name a `Host` header may carry."""
        return self.own | {name for name, _ in self.extra}

    def host_ok(self, host: str | None) -> bool:
        return self.everyone or host_name(host) in self.names

    def origin_ok(self, origin: str, *, server_port: int | None) -> bool:
        """Whether a page from `origin` (scheme://host[:port]) is one of this app's own."""
        if self.everyone:
            return True
        parts = urlsplit(origin)
        address = host_port(parts.netloc) if parts.scheme in _DEFAULT_PORTS else None
        if address is None:
            return False
        name, port = address
        port = port if port is not None else _DEFAULT_PORTS[parts.scheme]
        if name in self.own and port == server_port:
            return True
        if (name, port) in self.extra:
            return True
        return (name, None) in self.extra and port in (server_port, _DEFAULT_PORTS[parts.scheme])

    def shown(self) -> str:
        """The allowed names and origins, as a person would type them."""

        def bracket(name: str) -> str:
            return f"[{name}]" if ":" in name else name

        entries = [bracket(n) for n in sorted(self.own)]
        entries += sorted(bracket(n) if p is None else f"{bracket(n)}:{p}" for n, p in self.extra)
        return ", ".join(dict.fromkeys(entries))


def parse_entry(item: str) -> tuple[str, int | None]:
    """One PRISM_ALLOWED_HOSTS entry: `host`, `host:port`, `[v6]:port` or a bare IPv6 address."""
    item = item.strip()
    if item.count(":") > 1 and not item.startswith("["):
        item = f"[{item}]"  # a bare IPv6 address has no port
    parsed = host_port(item)
    return parsed if parsed is not None else (item.lower(), None)


def allowed() -> Allowed:
    """The local names, the configured listening address, and PRISM_ALLOWED_HOSTS."""
    own = set(LOCAL_NAMES)
    address = str(st.get_option("server.address") or "").strip()
    if address not in _WILDCARD_ADDRESSES:
        own.add(parse_entry(address)[0])
    items = [i.strip() for i in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if i.strip()]
    extra = frozenset(parse_entry(i) for i in items if i != "*")
    return Allowed(own=frozenset(own), extra=extra, everyone="*" in items)


def _server_port(scope: Scope) -> int | None:
    """The port this request reached: the listening socket's, else the configured one."""
    server = scope.get("server")
    if server and server[1] is not None:
        return int(server[1])
    configured = st.get_option("server.port")
    return int(configured) if configured else None


class LocalOnly:
    """ASGI middleware: 403 for a request whose Host or Origin is not the app's, or that names a
    whole URL; 400 for one with more than one Host or Origin header."""

    def __init__(self, app: ASGIApp, *, allowed: Allowed) -> None:
        self.app = app
        self.allowed = allowed

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, why) a request is refused, or None when it may pass."""
        path = str(scope.get("path") or "")
        if not path.startswith("/"):
            return 403, f"Refused: the request names {path!r}, not a path of this app (no proxy)."
        headers = Headers(scope=scope)
        hosts, origins = headers.getlist("host"), headers.getlist("origin")
        if len(hosts) > 1 or len(origins) > 1:
            return 400, (
                f"Refused: {len(hosts)} Host and {len(origins)} Origin headers; "
                "a request carries one of each at most."
            )
        advice = (
            f"This app answers only to {self.allowed.shown()} (its own names on port "
            f"{_server_port(scope)}). To open it under another name or port, start it with "
            f"{ALLOWED_HOSTS_ENV}=name or name:port (comma-separated for several)."
        )
        host = hosts[0] if hosts else None
        if not self.allowed.host_ok(host):
            return 403, f"Refused: the Host {host!r} is not a name of this app. {advice}"
        if origins and not self.allowed.origin_ok(origins[0], server_port=_server_port(scope)):
            return 403, f"Refused: a page from {origins[0]!r} may not use this app. {advice}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self.refusal(scope)
            if problem is not None:
                code, why = problem
                await PlainTextResponse(why + "\n", status_code=code)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def middleware() -> list[Middleware]:
    """The middleware `app.py` gives its `st.App`: the Host/Origin check, first of all."""
    return [Middleware(LocalOnly, allowed=allowed())]
