"""The local app is not a door into the machine.

- A real `streamlit run app.py` server answers HTTP requests and websocket handshakes only when
  their Host is a local name or one the user configured (DNS rebinding), their Origin is the
  app's own host and port (not another local program's page) or a configured one, they carry one
  Host header, and their request line names a path, not a whole URL.
- The Data page's server paths and the Subsets page's path exports stay inside the data roots
  (the working directory, $PRISM_HOME, PRISM_DATA_ROOTS), symlinks included.
- Uploads are pruned by age and by total size.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import app_command, free_port
from test_app import app, assert_clean, errors, home, router_only  # noqa: F401 — fixtures

from core.errors import PrismError
from ui import paths

REPO = Path(__file__).resolve().parent.parent
CONFIGURED = "prism.example"  # a name the test server is told to answer to
TUNNEL = 9000  # a configured `localhost:port` origin (an SSH tunnel's port)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a real app server on 127.0.0.1 (as `make run` starts it)."""
    home = tmp_path_factory.mktemp("security-home")
    port = free_port()
    env = {
        **os.environ,
        "PRISM_HOME": str(home),
        "PRISM_ALLOWED_HOSTS": f"{CONFIGURED}, localhost:{TUNNEL}",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            app_command(port),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while status(port, "/_stcore/health", host=f"127.0.0.1:{port}") != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app server did not start:\n{log_path.read_text()}")
                time.sleep(0.3)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def ask(
    port: int, path: str, *, host: str, origin: str | None = None, upgrade: bool = False
) -> tuple[int, str]:
    """(status, start of the body) of one raw request to 127.0.0.1:port with these headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        if origin is not None:
            conn.putheader("Origin", origin)
        if upgrade:
            conn.putheader("Upgrade", "websocket")
            conn.putheader("Connection", "Upgrade")
            conn.putheader("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode())
            conn.putheader("Sec-WebSocket-Version", "13")
            conn.putheader("Sec-WebSocket-Protocol", "streamlit")
        conn.endheaders()
        reply = conn.getresponse()
        body = "" if reply.status == 101 else reply.read(2000).decode("utf-8", "replace")
        return reply.status, body
    except OSError:
        return -1, ""
    finally:
        conn.close()


def status(port: int, path: str, **headers: object) -> int:
    return ask(port, path, **headers)[0]  # type: ignore[arg-type]


def raw(port: int, request_line: str, *headers: str) -> tuple[int, str]:
    """(status, start of the reply) of a request written byte for byte, as no client library
    would write it (a whole URL as its target, two Host headers)."""
    text = "\r\n".join([request_line, *headers, "Connection: close", "", ""])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(text.encode("ascii"))
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
            if len(reply) > 2000:
                break
    head = reply.decode("utf-8", "replace")
    return int(head.split(" ", 2)[1]), head


def upgrade_headers() -> list[str]:
    key = base64.b64encode(os.urandom(16)).decode()
    return [
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: streamlit",
    ]


# ------------------------------------------------------------------------------------------
# Host and Origin (DNS rebinding)


def test_foreign_host_is_refused_over_http(server: int) -> None:
    for path in ("/", "/_stcore/health", "/_stcore/host-config"):
        code, body = ask(server, path, host=f"evil.example:{server}")
        assert code == 403, (path, code)
        assert "PRISM_ALLOWED_HOSTS" in body  # the refusal says how to allow a name
    assert status(server, "/", host="evil.example") == 403
    assert status(server, "/", host="localhost.evil.example") == 403
    assert status(server, "/", host="127.0.0.1.nip.io") == 403


def test_local_and_configured_hosts_are_served(server: int) -> None:
    for host in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST", CONFIGURED):
        assert status(server, "/", host=f"{host}:{server}") == 200, host
    assert status(server, "/_stcore/health", host="localhost") == 200  # any port


def test_foreign_origin_is_refused_over_http(server: int) -> None:
    local = f"127.0.0.1:{server}"
    assert status(server, "/", host=local, origin="http://evil.example") == 403
    assert status(server, "/", host=local, origin="null") == 403
    assert status(server, "/", host=local, origin=f"http://localhost:{server}") == 200
    assert status(server, "/", host=local, origin=f"http://{CONFIGURED}") == 200
    assert status(server, "/", host=local, origin=f"https://{CONFIGURED}:{server}") == 200


def test_a_page_of_another_local_program_is_refused(server: int) -> None:
    """A page on another port of this machine is another program's: its Origin is refused."""
    local = f"127.0.0.1:{server}"
    for origin in ("http://127.0.0.1:9999", "http://localhost", "https://[::1]:8443"):
        code, body = ask(server, "/", host=local, origin=origin)
        assert code == 403, origin
        assert "name:port" in body and str(server) in body  # says the port and how to allow one
        assert status(server, "/_stcore/stream", host=local, origin=origin, upgrade=True) == 403
    # a configured host:port is that port only; a configured bare name is not any port
    assert status(server, "/", host=local, origin=f"http://localhost:{TUNNEL}") == 200
    assert status(server, "/", host=local, origin=f"http://localhost:{TUNNEL + 1}") == 403
    assert status(server, "/", host=local, origin=f"http://{CONFIGURED}:9999") == 403
    assert status(server, "/", host=local, origin="http://127.0.0.1:notaport") == 403


def test_two_host_headers_and_whole_url_targets_are_refused(server: int) -> None:
    local = f"Host: 127.0.0.1:{server}"
    assert raw(server, "GET / HTTP/1.1", local)[0] == 200  # the same request, written well
    # refused by the HTTP parser (h11) or, for one that lets them through, by the guard
    for second in ("Host: evil.example", local):
        assert raw(server, "GET / HTTP/1.1", local, second)[0] == 400, second
    upgrade = upgrade_headers()
    assert (
        raw(server, "GET /_stcore/stream HTTP/1.1", "Host: evil.example", local, *upgrade)[0] == 400
    )
    two_origins = (f"Origin: http://{local[6:]}", "Origin: http://evil.example")
    code, body = raw(server, "GET / HTTP/1.1", local, *two_origins)
    assert code == 400 and "2 Origin" in body
    for target in ("http://evil.example/", f"http://127.0.0.1:{server}/", "*"):
        code, body = raw(server, f"GET {target} HTTP/1.1", local)
        assert code == 403 and "no proxy" in body, target
    assert raw(server, "GET http://evil.example/_stcore/stream HTTP/1.1", local, *upgrade)[0] == 403


def test_the_guard_checks_every_host_header_a_parser_passes_on() -> None:
    """Some HTTP parsers (httptools) pass two Host headers on to the app: the guard refuses them."""
    import asyncio

    from ui.guard import Allowed, LocalOnly

    served: list[str] = []

    async def inner(scope: dict, receive: object, send: object) -> None:
        served.append(scope["path"])

    guard = LocalOnly(inner, allowed=Allowed(own=frozenset({"127.0.0.1"})))  # type: ignore[arg-type]
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    def call(*hosts: bytes, path: str = "/") -> int:
        sent.clear()
        headers = [(b"host", h) for h in hosts]
        scope = {"type": "http", "path": path, "headers": headers, "server": ("127.0.0.1", 8501)}
        asyncio.run(guard(scope, receive, send))  # type: ignore[arg-type]
        return int(sent[0]["status"]) if sent else 200

    assert call(b"127.0.0.1:8501") == 200 and served == ["/"]
    assert call(b"127.0.0.1:8501", b"evil.example") == 400
    assert call(b"evil.example", b"127.0.0.1:8501") == 400
    assert call(b"127.0.0.1:8501", b"127.0.0.1:8501") == 400
    assert call(b"127.0.0.1:8501", path="http://evil.example/") == 403
    assert served == ["/"]  # nothing refused reached the app


def test_websocket_handshake_needs_local_host_and_origin(server: int) -> None:
    stream = "/_stcore/stream"
    evil = f"evil.example:{server}"
    local = f"127.0.0.1:{server}"
    # what a rebound page sends: its own name as Host and Origin (same origin for the browser)
    assert status(server, stream, host=evil, origin=f"http://{evil}", upgrade=True) == 403
    assert status(server, stream, host=evil, upgrade=True) == 403
    assert status(server, stream, host=local, origin="http://evil.example", upgrade=True) == 403
    # the app's own page
    assert status(server, stream, host=local, origin=f"http://{local}", upgrade=True) == 101
    assert status(server, stream, host=f"localhost:{server}", upgrade=True) == 101
    # another local program's page
    assert status(server, stream, host=local, origin="http://127.0.0.1:9999", upgrade=True) == 403


def test_host_names_parse_like_a_browser_sends_them() -> None:
    from ui.guard import host_name

    assert host_name("LocalHost:8501") == "localhost"
    assert host_name("[::1]:8501") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("localhost.") == "localhost"
    for bad in (None, "", "user@localhost", "localhost:99999", "localhost:x", "localhost/a"):
        assert host_name(bad) is None, bad


def test_allowed_hosts_entries_take_a_host_or_a_host_and_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ui.guard import allowed

    monkeypatch.setenv("PRISM_ALLOWED_HOSTS", " Box.Lan , localhost:9000, [::1]:7000, fe80::1,,")
    rules = allowed()
    assert ("box.lan", None) in rules.extra and ("localhost", 9000) in rules.extra
    assert ("::1", 7000) in rules.extra and ("fe80::1", None) in rules.extra
    assert rules.host_ok("box.lan:1234") and not rules.host_ok("evil.example")
    assert rules.origin_ok("http://box.lan", server_port=8501)  # behind a proxy on port 80
    assert rules.origin_ok("http://box.lan:8501", server_port=8501)
    assert not rules.origin_ok("http://box.lan:8080", server_port=8501)
    assert rules.origin_ok("http://[::1]:7000", server_port=8501)
    assert rules.origin_ok("http://[::1]:8501", server_port=8501)
    assert not rules.origin_ok("http://[::1]:7001", server_port=8501)
    assert not rules.origin_ok("ftp://localhost:8501", server_port=8501)
    monkeypatch.setenv("PRISM_ALLOWED_HOSTS", "*")
    assert allowed().origin_ok("http://anything:1", server_port=8501)


# ------------------------------------------------------------------------------------------
# Server paths and path exports stay inside the data roots


@pytest.fixture
def roots(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> dict[str, Path]:
    """A local app (127.0.0.1) with no configured roots, run from a fresh working directory,
    and a file outside them all."""
    from streamlit import config

    saved = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    request.addfinalizer(lambda: config.set_option("server.address", saved))
    monkeypatch.delenv("PRISM_DATA_ROOTS", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    (work / "data.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    (home / "mine.jsonl").write_text('{"prompt": "p", "response": "r"}\n')
    return {"home": home, "work": work, "outside": outside}


def test_server_paths_default_to_the_working_directory_and_home(roots: dict[str, Path]) -> None:
    assert paths.check_server_path(str(roots["work"] / "data.jsonl")).name == "data.jsonl"
    assert paths.check_server_path("data.jsonl").name == "data.jsonl"  # from the working dir
    assert paths.check_server_path(str(roots["home"] / "mine.jsonl")).name == "mine.jsonl"
    for text in (str(roots["outside"] / "secret.jsonl"), "/etc/passwd", "../elsewhere"):
        with pytest.raises(PrismError) as refused:
            paths.check_server_path(text)
        message = str(refused.value)
        assert "outside the folders" in message and "PRISM_DATA_ROOTS" in message
        assert str(roots["work"]) in message and str(roots["home"]) in message


def test_configured_roots_add_to_the_defaults(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRISM_DATA_ROOTS", str(roots["outside"]))
    assert paths.check_server_path(str(roots["outside"] / "secret.jsonl")).is_file()
    assert paths.check_server_path(str(roots["work"] / "data.jsonl")).is_file()


def test_a_symlink_out_of_the_roots_is_refused(roots: dict[str, Path]) -> None:
    work = roots["work"]
    (work / "link.jsonl").symlink_to(roots["outside"] / "secret.jsonl")
    (work / "linked-folder").symlink_to(roots["outside"], target_is_directory=True)
    (work / "loop").symlink_to(work / "loop")
    for name in ("link.jsonl", "linked-folder", "linked-folder/secret.jsonl"):
        with pytest.raises(PrismError, match="outside the folders"):
            paths.check_server_path(str(work / name))
    with pytest.raises(PrismError):
        paths.check_server_path(str(work / "loop"))
    # a link that stays inside is fine
    (work / "inner.jsonl").symlink_to(work / "data.jsonl")
    assert paths.check_server_path(str(work / "inner.jsonl")) == (work / "data.jsonl").resolve()


def test_an_exposed_app_reads_only_configured_roots(
    roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit import config

    saved = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        allowed, note = paths.server_paths_allowed()
        assert not allowed and "PRISM_DATA_ROOTS" in note
        with pytest.raises(PrismError, match="PRISM_DATA_ROOTS"):
            paths.check_server_path(str(roots["home"] / "mine.jsonl"))
        monkeypatch.setenv("PRISM_DATA_ROOTS", str(roots["outside"]))
        assert paths.server_paths_allowed()[0]
        assert paths.check_server_path(str(roots["outside"] / "secret.jsonl")).is_file()
        with pytest.raises(PrismError, match="outside the folders"):
            paths.check_server_path(str(roots["home"] / "mine.jsonl"))
    finally:
        config.set_option("server.address", saved)


def test_data_page_does_not_read_outside_the_roots(roots: dict[str, Path]) -> None:
    at = app("data")
    at.segmented_control(key="data_origin").set_value("Path on the server")
    at.run()
    at.text_input(key="server_path").input(str(roots["outside"] / "secret.jsonl"))
    at.run()
    assert_clean(at)
    [refusal] = [e for e in errors(at) if "outside the folders" in e]
    assert "PRISM_DATA_ROOTS" in refusal and str(roots["work"]) in refusal.replace("\\", "")
    assert "`" not in refusal  # shown as plain text: no raw Markdown
    assert not [s for s in at.selectbox if s.label == "Prompt column"]  # nothing was read
    # said once: the refusal names the open folders, so the caption that lists them steps aside
    assert not any(str(roots["work"]) in c.value.replace("\\", "") for c in at.caption)
    at.text_input(key="server_path").input(str(roots["work"] / "data.jsonl"))
    at.run()
    assert not errors(at)  # the page says which folders are open
    assert any(str(roots["work"]) in c.value.replace("\\", "") for c in at.caption)


def test_path_exports_stay_inside_the_roots(roots: dict[str, Path]) -> None:
    work = roots["work"]
    assert paths.check_target(str(work / "out.jsonl")) == work / "out.jsonl"
    exported = paths.check_target(str(paths.exports_folder() / "out.jsonl"))
    assert exported.parent.is_dir()  # the exports folder is made on demand
    (work / "escape").symlink_to(roots["outside"], target_is_directory=True)
    (work / "dangling.jsonl").symlink_to(roots["outside"] / "new.jsonl")
    for target in (
        roots["outside"] / "out.jsonl",
        work / "escape" / "out.jsonl",
        work / "dangling.jsonl",
        Path("/etc/cron.d/prism"),
    ):
        with pytest.raises(PrismError) as refused:
            paths.check_target(str(target))
        assert "outside the folders" in str(refused.value)
        assert "PRISM_DATA_ROOTS" in str(refused.value)
    assert not (roots["outside"] / "new.jsonl").exists()


# ------------------------------------------------------------------------------------------
# Uploads are pruned


def _upload(home: Path, digest: str, size: int, age_s: float) -> Path:
    folder = home / "uploads" / digest
    folder.mkdir(parents=True)
    (folder / "data.jsonl").write_bytes(b"x" * size)
    used = time.time() - age_s
    os.utime(folder / "data.jsonl", (used, used))
    return folder


def test_uploads_older_than_a_day_are_pruned(home: Path) -> None:
    day = paths.UPLOAD_MAX_AGE_S
    old = _upload(home, "old", 10, day + 60)
    recent = _upload(home, "recent", 10, day - 60)
    kept = _upload(home, "kept", 10, 2 * day)
    removed = paths.prune_uploads(keep=kept)
    assert removed == [old]
    assert not old.exists() and recent.is_dir() and kept.is_dir()


def test_uploads_never_exceed_the_total_size(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "UPLOAD_MAX_TOTAL_MB", 3)
    mb = 2**20
    folders = [_upload(home, f"u{i}", mb, age_s=600 - 100 * i) for i in range(5)]  # u0 oldest
    newest = folders[-1]
    paths.prune_uploads(keep=newest)
    left = sorted(p.name for p in (home / "uploads").iterdir())
    assert left == ["u2", "u3", "u4"]  # the least recently used went first
    total = sum(f.stat().st_size for f in (home / "uploads").rglob("*") if f.is_file())
    assert total <= 3 * mb


def test_a_new_upload_prunes_old_ones(home: Path) -> None:
    stale = _upload(home, "stale", 10, paths.UPLOAD_MAX_AGE_S + 3600)
    at = app("data")
    at.file_uploader[0].set_value(("pairs.csv", b"prompt,response\nhi,there\n", "text/csv"))
    at.run()
    assert_clean(at)
    assert not stale.exists()
    assert [p.name for p in (home / "uploads").rglob("pairs.csv")] == ["pairs.csv"]
