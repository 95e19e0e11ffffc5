"""The OpenAI-compatible endpoint generator: any server that speaks chat completions (vLLM,
SGLang, llama.cpp server, Ollama, ``transformers serve``, hosted APIs), through the ``openai``
client, a few requests at a time, each with its seed.

The key is read at every run, resumed runs included, from the environment variable
``api_key_env`` or the first line of ``api_key_file`` (``endpoint_key``); it is never stored or
shown, and labels keep the URL without user, password or query (``public_url``). Requests run in
daemon threads that the caller's thread waits on in short steps (``_run_abandonable``), so a
Cancel (SIGTERM) or Ctrl-C stops a call at once even while a server hangs: the unanswered
requests are abandoned, not waited out. Replies over the caps (``reply_problem``: characters,
and tokens where the server reports them) become failures. Note that ``transformers serve``
samples only when the model's ``generation_config.json`` sets ``do_sample``; otherwise it
decodes greedily whatever the temperature.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.errors import PrismError
from core.synthesis.generation import (
    DEFAULT_KEY_ENV,
    Chat,
    GenerationSettings,
    check_request,
    first_line,
    reply_problem,
)
from core.validate import check_int, check_url

# Sent as the key to servers that need none (most local ones reject an empty one).
_NO_KEY = "no-key-needed"
# How often a caller waiting on endpoint requests wakes up, so that a signal handler runs.
_WAIT_STEP_S = 0.2


def public_url(url: str) -> str:
    """The endpoint URL without credentials or query (safe to show and to store)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def check_key_source(api_key_env: object, api_key_file: object) -> None:
    """Refuse an ``api_key_env`` that is not a variable name, or an ``api_key_file`` that is not
    a path string (whether the file holds a key is checked when it is read)."""
    if not isinstance(api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise PrismError(
            f"api_key_env must name an environment variable, such as {DEFAULT_KEY_ENV}; got "
            f"{api_key_env!r}.",
            param="api_key_env",
        )
    if api_key_file is not None and (not isinstance(api_key_file, str) or not api_key_file):
        raise PrismError(
            f"api_key_file must be the path of a file holding the key; got {api_key_file!r}.",
            param="api_key_file",
        )


def endpoint_key(api_key_env: str = DEFAULT_KEY_ENV, api_key_file: str | None = None) -> str | None:
    """The endpoint's key: the first line of ``api_key_file`` when one is named, else the value of
    the environment variable ``api_key_env``; None when there is none. Never stored."""
    check_key_source(api_key_env, api_key_file)
    if api_key_file is None:
        return os.environ.get(api_key_env) or None
    try:
        lines = Path(api_key_file).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PrismError(
            f"api_key_file {api_key_file!r} cannot be read ({type(error).__name__}); name a text "
            "file holding the key on its first line.",
            param="api_key_file",
        ) from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise PrismError(
            f"api_key_file {api_key_file!r} is empty; its first line must be the key.",
            param="api_key_file",
        )
    return key


class _Fatal(Exception):
    """An endpoint error that would fail every request: stop the call."""


def _run_abandonable(
    tasks: Sequence[Callable[[], Any]], *, workers: int, stop: threading.Event
) -> list[Any]:
    """Each task's result, in order, from ``workers`` daemon threads; the first exception a task
    raises is raised here.

    The calling thread waits in short steps, so a signal handler that raises (SIGTERM's ``Stop``,
    Ctrl-C) ends the wait at once; ``stop`` is then set and requests still in flight are abandoned
    (daemon threads never hold up the process's exit), where a thread pool would wait them out.
    """
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(tasks)):
        todo.put(index)
    done: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()

    def work() -> None:
        while not stop.is_set():
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((index, True, tasks[index]()))
            except BaseException as error:  # handed to the caller
                done.put((index, False, error))

    for _ in range(min(workers, len(tasks))):
        threading.Thread(target=work, name="prism-endpoint", daemon=True).start()
    results: list[Any] = [None] * len(tasks)
    try:
        for _ in tasks:
            while True:
                try:
                    index, ok, value = done.get(timeout=_WAIT_STEP_S)
                    break
                except queue.Empty:
                    continue
            if not ok:
                raise value
            results[index] = value
    finally:
        stop.set()  # workers take no new request; one in flight is abandoned
    return results


class EndpointGenerator:
    """An OpenAI-compatible chat-completions server (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        *,
        model: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        api_key_file: str | None = None,
        concurrency: int = 8,
        max_retries: int = 2,
    ):
        # heavy: openai, only for an endpoint
        from openai import OpenAI

        check_url(endpoint, param="endpoint")
        key = endpoint_key(api_key_env, api_key_file)
        self.endpoint = public_url(endpoint)
        self.api_key_env = api_key_env
        self.api_key_file = api_key_file
        self.concurrency = check_int(concurrency, param="batch_size", minimum=1)
        self.failures: dict[int, str] = {}
        self._client = OpenAI(
            base_url=endpoint,
            api_key=key or _NO_KEY,
            max_retries=check_int(max_retries, param="max_retries", minimum=0),
        )
        self.model = model if model is not None else self._only_model()
        if not isinstance(self.model, str) or not self.model.strip():
            raise PrismError(
                f"endpoint_model must be a model name; got {model!r}.", param="endpoint_model"
            )
        self.label = f"endpoint:{self.endpoint} model={self.model}"

    @property
    def _key_advice(self) -> str:
        if self.api_key_file is not None:
            return f"put a valid key on the first line of {self.api_key_file} (api_key_file)"
        return f"set the environment variable {self.api_key_env} to a valid key (api_key_env)"

    def _only_model(self) -> str:
        """The model a server serves, when it serves exactly one."""
        try:
            names = sorted(model.id for model in self._client.models.list())
        except Exception as error:  # every failure gets the same advice
            raise PrismError(
                f"Could not list the models of {self.endpoint} "
                f"({self._describe(error)}). Pass the model name (endpoint_model).",
                param="endpoint_model",
            ) from None
        if len(names) != 1:
            shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
            raise PrismError(
                f"{self.endpoint} serves {len(names)} models ({shown or 'none'}); pass the one to "
                "use (endpoint_model).",
                param="endpoint_model",
            )
        return names[0]

    def _describe(self, error: BaseException) -> str:
        # heavy: openai, only for an endpoint
        import openai

        if isinstance(error, openai.APITimeoutError):
            return "no answer within the timeout"
        if isinstance(error, openai.APIConnectionError):
            return "the server cannot be reached"
        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            # Hosted APIs echo part of the key in this message; never repeat it.
            return f"the key was refused (HTTP {error.status_code})"
        return first_line(error)

    def generate(
        self, chats: Sequence[Chat], *, settings: GenerationSettings, seeds: Sequence[int]
    ) -> list[str]:
        seeds = check_request(chats, seeds)
        self.failures = {}
        if not chats:
            return []
        client = self._client.with_options(timeout=settings.timeout_s)
        stop = threading.Event()
        tasks = [
            functools.partial(self._request, client, chat, seed, settings, stop)
            for chat, seed in zip(chats, seeds, strict=True)
        ]
        try:
            results = _run_abandonable(tasks, workers=self.concurrency, stop=stop)
        except _Fatal as fatal:
            raise PrismError(str(fatal), param="endpoint") from None
        if all(failure for _, failure, _ in results):
            raise PrismError(
                f"{self.endpoint} (model {self.model}) failed every request; the first: "
                f"{results[0][1]}. Check the endpoint's logs, the model name and max_new_tokens.",
                param="endpoint",
            )
        replies = []
        for position, (reply, failure, n_tokens) in enumerate(results):
            problem = failure or reply_problem(reply, settings, n_tokens=n_tokens)
            replies.append("" if problem else reply)
            if problem:
                self.failures[position] = problem
        return replies

    def _request(
        self,
        client: Any,
        chat: Chat,
        seed: int,
        settings: GenerationSettings,
        stop: threading.Event,
    ) -> tuple[str, str | None, int | None]:
        """(completion, failure reason or None, completion tokens if the server says) for one
        chat; ``_Fatal`` if no request can work."""
        # heavy: openai, only for an endpoint
        import openai

        if stop.is_set():
            return "", "cancelled", None
        try:
            response = client.chat.completions.create(
                model=self.model,
                messages=chat,
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_tokens=settings.max_new_tokens,
                seed=seed,
            )
        except (
            openai.APIConnectionError,
            openai.AuthenticationError,
            openai.PermissionDeniedError,
        ) as error:
            advice = (
                self._key_advice
                if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError)
                else "check that the server is running and the URL (including /v1) is right"
            )
            raise _Fatal(f"{self.endpoint}: {self._describe(error)}; {advice}.") from None
        except openai.NotFoundError as error:
            raise _Fatal(
                f"{self.endpoint} does not know model {self.model!r} ({first_line(error)}); pass "
                "a model the server serves (endpoint_model)."
            ) from None
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            return "", f"the server rejected the request: {first_line(error)}", None
        except openai.APIStatusError as error:
            raise _Fatal(
                f"{self.endpoint} answered HTTP {error.status_code}: {first_line(error)}. Is it an "
                "OpenAI-compatible server (a URL ending in /v1)? Its logs say more."
            ) from None
        except openai.APIError as error:
            raise _Fatal(
                f"{self.endpoint} sent a malformed response ({first_line(error)}); is it an "
                "OpenAI-compatible chat-completions server?"
            ) from None
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise _Fatal(
                f"{self.endpoint} sent a malformed response (no choices); is it an "
                "OpenAI-compatible chat-completions server?"
            )
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        if content is not None and not isinstance(content, str):
            raise _Fatal(f"{self.endpoint} sent a malformed response (content is not text).")
        if choices[0].finish_reason == "content_filter":
            return "", "the server's content filter withheld the completion", None
        if not content or not content.strip():
            return "", "the server returned an empty completion", None
        usage = getattr(response, "usage", None)
        n_tokens = getattr(usage, "completion_tokens", None)
        return content.strip(), None, n_tokens if isinstance(n_tokens, int) else None
