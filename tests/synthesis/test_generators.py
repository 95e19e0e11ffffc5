"""Generators: real generation with the embedded model, and the OpenAI-compatible path against a
real ``transformers serve`` over the same model on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import free_port, wait_until_healthy
from endpoint_stub import Behaviour, serving

from core.errors import PrismError
from core.features.proxy import default_model_dir
from core.synthesis.endpoint import endpoint_key
from core.synthesis.generation import GenerationSettings
from core.synthesis.generators import make_generator
from core.workspace.jobs.record import Stop, sigterm_stops

CHATS = [
    [{"role": "user", "content": "Write a short story about a fox."}],
    [{"role": "user", "content": "Invent a math word problem about apples."}],
    [{"role": "user", "content": "Describe your favourite place."}],
]
SAMPLED = GenerationSettings(temperature=1.0, top_p=0.95, max_new_tokens=6)
# Two tokens tell the two chats' greedy answers apart ("As the" / "A math"); every token costs the
# `transformers serve` endpoint about a CPU second, so the endpoint tests ask for no more.
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=2, timeout_s=60)
SECRET = "sk-prism-test-secret-0123456789"


@pytest.fixture(scope="module")
def local() -> Any:
    return make_generator("default", device="cpu", batch_size=3)


@pytest.fixture(scope="module")
def first_run(local: Any) -> list[str]:
    return local.generate(CHATS, settings=SAMPLED, seeds=[1, 2, 3])


def test_local_gives_one_reproducible_completion_per_chat(local: Any, first_run: list[str]) -> None:
    assert local.label == "local:default (SmolLM2-135M-Instruct, embedded)"
    assert len(first_run) == len(CHATS)
    assert all(isinstance(text, str) and text.strip() for text in first_run)
    assert local.failures == {}


def test_local_same_seed_same_text_in_any_batch(local: Any, first_run: list[str]) -> None:
    # Each chat samples with its own seeded generator, so the same seed gives the same text even
    # beside other chats (float32 on one CPU: padded and unpadded logits differ by ~1e-7, far below
    # what moves a sampled token).
    alone = local.generate([CHATS[1]], settings=SAMPLED, seeds=[2])
    assert alone == [first_run[1]]


def test_local_other_seeds_give_other_texts(local: Any, first_run: list[str]) -> None:
    # At temperature 1, three 6-token completions all repeating under new seeds is vanishingly rare.
    other = local.generate(CHATS, settings=SAMPLED, seeds=[101, 102, 103])
    assert all(text.strip() for text in other)
    assert other != first_run


def test_greedy_ignores_the_seed() -> None:
    tiny = make_generator("tiny", device="cpu")
    assert tiny.label.startswith("local:tiny")
    one = tiny.generate(CHATS[:2], settings=GREEDY, seeds=[1, 2])
    two = tiny.generate(CHATS[:2], settings=GREEDY, seeds=[7, 8])
    assert one == two and len(one) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", 2.5),
        ("temperature", float("nan")),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("max_new_tokens", 0),
        ("max_new_tokens", True),
        ("timeout_s", 0),
        ("max_reply_chars", 0),
        ("max_reply_chars", 2_000_000),  # above what a dataset cell may hold
    ],
)
def test_settings_name_the_bad_parameter(field: str, value: object) -> None:
    with pytest.raises(PrismError) as caught:
        GenerationSettings(**{field: value})  # type: ignore[arg-type]
    assert caught.value.param == field
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"name": "tiny", "endpoint": "http://127.0.0.1:1/v1"}, "endpoint"),
        ({"endpoint": "ftp://example/v1", "endpoint_model": "m"}, "endpoint"),
        ({"endpoint": "http://127.0.0.1:abc/v1", "endpoint_model": "m"}, "endpoint"),
        (
            {"endpoint": "http://127.0.0.1:1/v1", "endpoint_model": "m", "api_key_file": ""},
            "api_key_file",
        ),
        ({"endpoint_model": "m"}, "endpoint_model"),
        (
            {"endpoint": "http://127.0.0.1:1/v1", "endpoint_model": "m", "api_key_env": "a b"},
            "api_key_env",
        ),
        ({"name": "./no/such/model-dir"}, "generator"),
    ],
)
def test_make_generator_names_the_bad_option(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(PrismError) as caught:
        make_generator(**kwargs)
    assert caught.value.param == param


def test_requests_are_checked(local: Any) -> None:
    with pytest.raises(PrismError) as caught:
        local.generate(CHATS, settings=SAMPLED, seeds=[1, 2])
    assert caught.value.param == "seeds"
    with pytest.raises(PrismError) as caught:
        local.generate([[{"role": "user"}]], settings=SAMPLED, seeds=[1])
    assert caught.value.param == "chats"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, model name) of ``transformers serve`` pinned to the embedded model."""
    model = str(default_model_dir())
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-c",
        "from transformers.cli.transformers import main; main()",
        "serve",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log=log_path, timeout=120)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_endpoint_returns_completions_in_order(
    served: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, model = served
    monkeypatch.setenv("PRISM_TEST_KEY", SECRET)
    generator = make_generator(
        endpoint=url, endpoint_model=model, api_key_env="PRISM_TEST_KEY", batch_size=2
    )
    assert generator.label == f"endpoint:{url} model={model}"
    assert SECRET not in generator.label and SECRET not in repr(vars(generator))
    # Greedy, so each chat has one answer: sent together (concurrently) or alone, they match.
    together = generator.generate(CHATS[:2], settings=GREEDY, seeds=[1, 2])
    alone = [
        generator.generate([chat], settings=GREEDY, seeds=[seed])[0]
        for chat, seed in zip(CHATS[:2], [1, 2], strict=True)
    ]
    assert generator.failures == {}
    assert together == alone
    assert all(text.strip() for text in together)
    assert len(set(together)) > 1  # distinct prompts, distinct answers: the order is observable


def test_endpoint_unknown_model_is_a_clear_error(served: tuple[str, str]) -> None:
    url, _ = served
    generator = make_generator(endpoint=url, endpoint_model="no-such-model", max_retries=0)
    with pytest.raises(PrismError) as caught:
        generator.generate(CHATS[:1], settings=GREEDY, seeds=[0])
    assert caught.value.param == "endpoint"
    assert "no-such-model" in str(caught.value)


def test_refused_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISM_TEST_KEY", SECRET)
    url = f"http://user:pw@127.0.0.1:{free_port()}/v1?key=abc"
    generator = make_generator(
        endpoint=url, endpoint_model="m", api_key_env="PRISM_TEST_KEY", max_retries=0
    )
    assert "pw" not in generator.label and "abc" not in generator.label
    with pytest.raises(PrismError) as caught:
        generator.generate(CHATS[:1], settings=GREEDY, seeds=[0])
    message = str(caught.value)
    assert caught.value.param == "endpoint"
    assert "cannot be reached" in message and "server is running" in message
    assert SECRET not in message and "pw" not in message


def test_a_server_that_is_not_openai_compatible_is_a_clear_error(tmp_path: Path) -> None:
    # A real HTTP server of another kind (a static file server answers POST with 501).
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as static:
        thread = threading.Thread(target=static.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{static.server_address[1]}/v1"
            generator = make_generator(endpoint=url, endpoint_model="m", max_retries=0)
            with pytest.raises(PrismError) as caught:
                generator.generate(CHATS[:1], settings=GREEDY, seeds=[0])
        finally:
            static.shutdown()
            thread.join()
    assert caught.value.param == "endpoint"
    assert "501" in str(caught.value) and "OpenAI-compatible" in str(caught.value)


def test_local_replies_over_the_character_cap_are_failures(local: Any) -> None:
    capped = GenerationSettings(temperature=1.0, max_new_tokens=6, max_reply_chars=3)
    replies = local.generate(CHATS, settings=capped, seeds=[1, 2, 3])
    assert replies == ["", "", ""]  # six tokens of English are longer than 3 characters
    assert sorted(local.failures) == [0, 1, 2]
    assert all("max_reply_chars" in why and "limit of 3" in why for why in local.failures.values())


def test_endpoint_replies_over_the_caps_are_failures() -> None:
    """A server that ignores the caps: a 3,000-character reply, then 500 tokens reported for
    max_new_tokens 6. Neither becomes a reply; a reply within both caps does."""
    behaviour = Behaviour(reply_chars=3000, completion_tokens=4)
    with serving(behaviour) as url:
        generator = make_generator(endpoint=url, endpoint_model="m", max_retries=0)
        settings = GenerationSettings(max_new_tokens=6, max_reply_chars=1000, timeout_s=30)
        assert generator.generate(CHATS[:2], settings=settings, seeds=[1, 2]) == ["", ""]
        assert all(
            "3,000 characters, more than the limit of 1,000 (max_reply_chars)" in why
            for why in generator.failures.values()
        )
        behaviour.reply_chars, behaviour.completion_tokens = None, 500
        assert generator.generate(CHATS[:1], settings=settings, seeds=[1]) == [""]
        assert "500 tokens, more than the limit of 6 (max_new_tokens" in generator.failures[0]
        behaviour.completion_tokens = 6
        [reply] = generator.generate(CHATS[:1], settings=settings, seeds=[1])
        assert reply.startswith("Answer") and generator.failures == {}


def test_sigterm_stops_a_call_at_once_while_the_endpoint_hangs() -> None:
    """The server accepts every request and never answers (a 120 s timeout, 2 retries): SIGTERM
    ends the call within a wait step instead of minutes later."""
    behaviour = Behaviour(answer_first=0)
    with serving(behaviour) as url:
        generator = make_generator(endpoint=url, endpoint_model="m", batch_size=2)
        settings = GenerationSettings(max_new_tokens=6, timeout_s=120)
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
        started = time.monotonic()
        with sigterm_stops(), pytest.raises(Stop):
            timer.start()
            generator.generate(CHATS, settings=settings, seeds=[1, 2, 3])
        elapsed = time.monotonic() - started
        timer.join()
        assert behaviour.hanging == 2  # both workers were inside a request when it stopped
    assert elapsed < 6, elapsed  # 1 s to the signal, then one 0.2 s wait step


def test_the_key_comes_from_a_variable_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    behaviour = Behaviour(key=SECRET)
    key_file = tmp_path / "key.txt"
    key_file.write_text(SECRET + "\n")
    monkeypatch.delenv("PRISM_ENDPOINT_API_KEY", raising=False)
    with serving(behaviour) as url:
        options = {"endpoint": url, "endpoint_model": "m", "max_retries": 0}
        from_file = make_generator(**options, api_key_file=str(key_file))
        assert from_file.generate(CHATS[:1], settings=GREEDY, seeds=[0])[0].startswith("Answer")
        monkeypatch.setenv("PRISM_ENDPOINT_API_KEY", SECRET)
        from_env = make_generator(**options, api_key_env="PRISM_ENDPOINT_API_KEY")
        assert from_env.generate(CHATS[:1], settings=GREEDY, seeds=[0])[0].startswith("Answer")
        monkeypatch.delenv("PRISM_ENDPOINT_API_KEY")
        without = make_generator(**options, api_key_env="PRISM_ENDPOINT_API_KEY")
        with pytest.raises(PrismError) as caught:
            without.generate(CHATS[:1], settings=GREEDY, seeds=[0])
    assert behaviour.seen_keys[:2] == [SECRET, SECRET]
    message = str(caught.value)
    assert "key was refused" in message and "PRISM_ENDPOINT_API_KEY" in message
    assert SECRET not in message
    assert endpoint_key("PRISM_ENDPOINT_API_KEY") is None
    (tmp_path / "empty.txt").touch()
    for bad in (tmp_path / "missing.txt", tmp_path / "empty.txt"):
        with pytest.raises(PrismError) as caught:
            endpoint_key(api_key_file=str(bad))
        assert caught.value.param == "api_key_file" and str(bad) in str(caught.value)
