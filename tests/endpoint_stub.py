"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for faults that a real model
server cannot be asked to show on cue: a key it requires, replies over any cap, and requests it
accepts and never answers. It is a real HTTP server (``http.server``) that the ``openai`` client
talks to over a socket; ``transformers serve`` (tests/synthesis/test_generators.py) covers real
generation.

Prompt requests (the synthesis prompts' system turn) get a new question, response requests an
answer; both differ per request, so that they clean into distinct samples.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Behaviour:
    """What the server does; a test may change it while the server runs."""

    key: str | None = None  # the Bearer key required, if any
    answer_first: int | None = None  # answer this many chat requests, then hang on the rest
    reply_chars: int | None = None  # pad each response reply to this many characters
    completion_tokens: int | None = None  # reported in ``usage`` (None: within max_tokens)
    release: threading.Event = field(default_factory=threading.Event)  # set: answer the held
    seen_keys: list[str | None] = field(default_factory=list)
    answered: int = 0
    hanging: int = 0  # requests held unanswered right now


def _reply(behaviour: Behaviour, messages: list[dict[str, str]], number: int) -> str:
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    if system.startswith("You write new"):
        return f"Question {number}: a farmer plants {number} rows of {number + 3} trees; how many?"
    text = f"Answer {number}: {number} × {number + 3} = {number * (number + 3)} trees in all."
    if behaviour.reply_chars is not None:
        text = (text + " " + "x" * behaviour.reply_chars)[: behaviour.reply_chars]
    return text


def _handler(
    behaviour: Behaviour, lock: threading.Lock
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 — http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            auth = self.headers.get("Authorization")
            key = auth.removeprefix("Bearer ") if auth else None
            with lock:
                behaviour.seen_keys.append(key)
            if behaviour.key is not None and key != behaviour.key:
                self._send(401, {"error": {"message": "invalid api key", "type": "auth"}})
                return
            with lock:
                number = behaviour.answered
                over = behaviour.answer_first is not None and number >= behaviour.answer_first
                if over:
                    behaviour.hanging += 1
                else:
                    behaviour.answered += 1
            if over:  # accept and never answer (until the test lets go)
                behaviour.release.wait()
                with lock:
                    behaviour.hanging -= 1
                    number = behaviour.answered
                    behaviour.answered += 1
            content = _reply(behaviour, request.get("messages", []), number)
            tokens = behaviour.completion_tokens
            if tokens is None:  # what a server that keeps to max_tokens reports
                tokens = min(len(content.split()), int(request.get("max_tokens") or 16))
            self._send(
                200,
                {
                    "id": f"chatcmpl-{number}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": request.get("model", "m"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 10,
                        "completion_tokens": tokens,
                        "total_tokens": 10 + tokens,
                    },
                },
            )

    return Handler


@contextmanager
def serving(behaviour: Behaviour) -> Iterator[str]:
    """Run the server in a thread; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), _handler(behaviour, threading.Lock())
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        behaviour.release.set()  # let held requests go, so that the server can stop
        server.shutdown()
        server.server_close()
        thread.join()
