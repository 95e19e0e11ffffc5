"""Generators: what writes new candidate samples, behind one ``Generator`` interface.

- ``LocalGenerator``: a causal LM run in this process — the embedded SmolLM2-135M-Instruct
  (``"default"``, offline and small: its samples are simple), ``"tiny"`` (random weights, for
  tests) or any Hugging Face causal LM name or local directory, loaded by
  ``core.features.proxy.load_proxy``. Chats are batched with left padding through the model's chat
  template. Sampling is done per chat with its own seeded ``torch.Generator``, so chat i's text
  depends on ``seeds[i]`` and not on the other chats of its batch.
- ``EndpointGenerator``: any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama,
  ``transformers serve``, hosted APIs) through the ``openai`` client, a few requests at a time; the
  API key is read from an environment variable and never stored or shown. Note that
  ``transformers serve`` samples only when the model's ``generation_config.json`` sets
  ``do_sample``; otherwise it decodes greedily whatever the temperature.

``make_generator`` picks one from the options the CLI and the app pass through.

Failures: anything that would fail every request (a model that does not load, a server that cannot
be reached, a refused key, an unknown model, a malformed response) raises ``PrismError``. A request
that fails on its own (the server rejected this one chat, e.g. too long; an empty or filtered
completion) yields ``""`` at its position and the reason in ``generator.failures[position]``, so a
round goes on; when every request of a call fails that way, the call raises instead.
"""

from __future__ import annotations

import copy
import math
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from core.errors import PrismError
from core.features.proxy import load_proxy
from core.validate import check_int, check_seed

Chat = list[dict[str, str]]

DEFAULT_GENERATOR = "default"
# Sent as the key to servers that need none (most local ones reject an empty one).
_NO_KEY = "no-key-needed"
_LOCAL_LABELS = {
    "default": "SmolLM2-135M-Instruct, embedded",
    "tiny": "random 2-layer Llama, for tests",
}


def _check_real(value: object, *, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PrismError(f"{param} must be a finite number; got {value!r}.", param=param)
    return float(value)


@dataclass(frozen=True)
class GenerationSettings:
    """How candidates are sampled (the published loop: temperature 1.0, top-p 0.95)."""

    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 384
    timeout_s: float = 120.0  # per request, endpoint only

    def __post_init__(self) -> None:
        temperature = _check_real(self.temperature, param="temperature")
        if not 0 <= temperature <= 2:
            raise PrismError(
                f"temperature must be from 0 (greedy) to 2; got {self.temperature!r}.",
                param="temperature",
            )
        top_p = _check_real(self.top_p, param="top_p")
        if not 0 < top_p <= 1:
            raise PrismError(
                f"top_p must be above 0 and at most 1; got {self.top_p!r}.", param="top_p"
            )
        check_int(self.max_new_tokens, param="max_new_tokens", minimum=1)
        if not _check_real(self.timeout_s, param="timeout_s") > 0:
            raise PrismError(
                f"timeout_s must be a number of seconds above 0; got {self.timeout_s!r}.",
                param="timeout_s",
            )


class Generator(Protocol):
    """Writes one assistant reply per chat; ``label`` says which generator did (provenance)."""

    label: str
    failures: dict[int, str]

    def generate(
        self, chats: Sequence[Chat], *, settings: GenerationSettings, seeds: Sequence[int]
    ) -> list[str]:
        """One completion per chat, in order; ``seeds[i]`` makes chat i reproducible where the
        backend allows it. Per-request failures give ``""`` and a reason in ``failures``."""
        ...


def _check_request(chats: Sequence[Chat], seeds: Sequence[int]) -> list[int]:
    for position, chat in enumerate(chats):
        if (
            not isinstance(chat, list)
            or not chat
            or not all(
                isinstance(turn, dict)
                and isinstance(turn.get("role"), str)
                and isinstance(turn.get("content"), str)
                for turn in chat
            )
        ):
            raise PrismError(
                f"chat {position} must be a non-empty list of {{'role': str, 'content': str}} "
                f"turns; got {chat!r:.200}.",
                param="chats",
            )
    if len(seeds) != len(chats):
        raise PrismError(
            f"seeds must hold one seed per chat ({len(chats)}); got {len(seeds)}.", param="seeds"
        )
    return [check_seed(seed, param="seeds") for seed in seeds]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


class _SeededSampler:
    """A logits processor that samples each row with its own ``torch.Generator``.

    It returns scores that are ``-inf`` except at the sampled token, so greedy decoding then picks
    that token: one row's draws never depend on the other rows of the batch.
    """

    def __init__(self, generators: list[Any], settings: GenerationSettings):
        # heavy: transformers, only for a local model
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.generators = generators
        self.warpers: list[Any] = [TemperatureLogitsWarper(settings.temperature)]
        if settings.top_p < 1:
            self.warpers.append(TopPLogitsWarper(settings.top_p))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        # heavy: torch, only for a local model
        import torch

        logits = scores.float()
        for warper in self.warpers:
            logits = warper(input_ids, logits)
        probs = torch.softmax(logits, dim=-1)
        chosen = torch.stack(
            [
                torch.multinomial(probs[row], 1, generator=generator)
                for row, generator in enumerate(self.generators)
            ]
        )
        out = torch.full_like(scores, -math.inf)
        return out.scatter_(1, chosen, 0.0)


class LocalGenerator:
    """A causal LM run in this process (see the module docstring)."""

    def __init__(self, proxy: Any, *, label: str, batch_size: int = 8):
        self.proxy = proxy
        self.label = label
        self.batch_size = check_int(batch_size, param="batch_size", minimum=1)
        self.failures: dict[int, str] = {}
        if not getattr(proxy.tokenizer, "chat_template", None):
            raise PrismError(
                f"Generator {proxy.name!r} has no chat template, so it cannot be asked for new "
                "samples. Use an instruction-tuned (chat) model, or 'default'.",
                param="generator",
            )

    def generate(
        self, chats: Sequence[Chat], *, settings: GenerationSettings, seeds: Sequence[int]
    ) -> list[str]:
        seeds = _check_request(chats, seeds)
        self.failures = {}
        texts = [
            self.proxy.tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=False
            )
            for chat in chats
        ]
        # Similar lengths share a batch (less padding); results go back to their positions.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        replies = [""] * len(texts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            outputs = self._generate_batch(
                [texts[i] for i in batch], [seeds[i] for i in batch], settings
            )
            for position, reply in zip(batch, outputs, strict=True):
                replies[position] = reply
                if not reply.strip():
                    self.failures[position] = "the model returned an empty completion"
        return replies

    def _generate_batch(
        self, texts: list[str], seeds: list[int], settings: GenerationSettings
    ) -> list[str]:
        # heavy: torch and transformers, only for a local model
        import torch
        from transformers import LogitsProcessorList

        model, tokenizer = self.proxy.model, self.proxy.tokenizer
        device = self.proxy.device
        inputs = tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,  # the chat template already wrote them
        ).to(device)
        config = copy.deepcopy(model.generation_config)
        # Greedy over the sampler's one-hot scores; the model's own sampling defaults are replaced.
        config.update(do_sample=False, temperature=None, top_p=None, top_k=None, min_p=None)
        config.max_new_tokens = settings.max_new_tokens
        config.pad_token_id = tokenizer.pad_token_id
        processors = LogitsProcessorList()
        if settings.temperature > 0:
            generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
            processors.append(_SeededSampler(generators, settings))
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=config, logits_processor=processors)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [
            text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ]


def public_url(url: str) -> str:
    """The endpoint URL without credentials or query (safe to show and to store)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class _Fatal(Exception):
    """An endpoint error that would fail every request: stop the call."""


class EndpointGenerator:
    """An OpenAI-compatible chat-completions server (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        *,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        max_retries: int = 2,
    ):
        # heavy: openai, only for an endpoint
        from openai import OpenAI

        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise PrismError(
                f"endpoint must be an http(s) URL of an OpenAI-compatible server, such as "
                f"http://127.0.0.1:8000/v1; got {endpoint!r}.",
                param="endpoint",
            )
        if not isinstance(api_key_env, str) or not re.fullmatch(
            r"[A-Za-z_][A-Za-z0-9_]*", api_key_env
        ):
            raise PrismError(
                f"api_key_env must name an environment variable; got {api_key_env!r}.",
                param="api_key_env",
            )
        self.endpoint = public_url(endpoint)
        self.api_key_env = api_key_env
        self.concurrency = check_int(concurrency, param="batch_size", minimum=1)
        self.failures: dict[int, str] = {}
        self._client = OpenAI(
            base_url=endpoint,
            api_key=os.environ.get(api_key_env) or _NO_KEY,
            max_retries=check_int(max_retries, param="max_retries", minimum=0),
        )
        self.model = model if model is not None else self._only_model()
        if not isinstance(self.model, str) or not self.model.strip():
            raise PrismError(
                f"endpoint_model must be a model name; got {model!r}.", param="endpoint_model"
            )
        self.label = f"endpoint:{self.endpoint} model={self.model}"

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
        return _first_line(error)

    def generate(
        self, chats: Sequence[Chat], *, settings: GenerationSettings, seeds: Sequence[int]
    ) -> list[str]:
        seeds = _check_request(chats, seeds)
        self.failures = {}
        if not chats:
            return []
        client = self._client.with_options(timeout=settings.timeout_s)
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chats))) as pool:
            futures = [
                pool.submit(self._request, client, chat, seed, settings, stop)
                for chat, seed in zip(chats, seeds, strict=True)
            ]
            try:
                results = [future.result() for future in futures]
            except _Fatal as fatal:
                stop.set()
                pool.shutdown(cancel_futures=True)
                raise PrismError(str(fatal), param="endpoint") from None
        replies = []
        for position, (reply, failure) in enumerate(results):
            replies.append(reply)
            if failure:
                self.failures[position] = failure
        if len(self.failures) == len(chats):
            raise PrismError(
                f"{self.endpoint} (model {self.model}) failed every request; the first: "
                f"{self.failures[0]}. Check the endpoint's logs, the model name and max_new_tokens.",
                param="endpoint",
            )
        return replies

    def _request(
        self,
        client: Any,
        chat: Chat,
        seed: int,
        settings: GenerationSettings,
        stop: threading.Event,
    ) -> tuple[str, str | None]:
        """(completion, failure reason or None) for one chat; ``_Fatal`` if no request can work."""
        # heavy: openai, only for an endpoint
        import openai

        if stop.is_set():
            return "", "cancelled"
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
                f"set the environment variable {self.api_key_env} to a valid key"
                if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError)
                else "check that the server is running and the URL (including /v1) is right"
            )
            raise _Fatal(f"{self.endpoint}: {self._describe(error)}; {advice}.") from None
        except openai.NotFoundError as error:
            raise _Fatal(
                f"{self.endpoint} does not know model {self.model!r} ({_first_line(error)}); pass "
                "a model the server serves (endpoint_model)."
            ) from None
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            return "", f"the server rejected the request: {_first_line(error)}"
        except openai.APIStatusError as error:
            raise _Fatal(
                f"{self.endpoint} answered HTTP {error.status_code}: {_first_line(error)}. Is it an "
                "OpenAI-compatible server (a URL ending in /v1)? Its logs say more."
            ) from None
        except openai.APIError as error:
            raise _Fatal(
                f"{self.endpoint} sent a malformed response ({_first_line(error)}); is it an "
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
            return "", "the server's content filter withheld the completion"
        if not content or not content.strip():
            return "", "the server returned an empty completion"
        return content.strip(), None


def make_generator(
    name: str = DEFAULT_GENERATOR,
    *,
    endpoint: str | None = None,
    endpoint_model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    device: str = "auto",
    trust_remote_code: bool = False,
    batch_size: int = 8,
    max_retries: int = 2,
) -> Generator:
    """The generator the options name: ``endpoint`` (a URL) if given, else the local model ``name``.

    ``batch_size`` is the batch of a local model, or the number of concurrent endpoint requests;
    ``max_retries`` applies to endpoint requests (connection errors, 429 and 5xx answers).
    """
    if endpoint is not None:
        if name != DEFAULT_GENERATOR:
            raise PrismError(
                f"Pass either a local generator ({name!r}) or an endpoint, not both.",
                param="endpoint",
            )
        return EndpointGenerator(
            endpoint,
            model=endpoint_model,
            api_key_env=api_key_env,
            concurrency=batch_size,
            max_retries=max_retries,
        )
    if endpoint_model is not None:
        raise PrismError(
            "endpoint_model names a model on an endpoint; pass endpoint too.",
            param="endpoint_model",
        )
    if not isinstance(name, str) or not name.strip():
        raise PrismError(
            f"generator must be a model name or path; got {name!r}.", param="generator"
        )
    try:
        proxy = load_proxy(name, device=device, trust_remote_code=trust_remote_code)
    except PrismError as error:
        if error.param != "model":
            raise
        raise type(error)(str(error).replace("--model", "--generator"), param="generator") from None
    description = _LOCAL_LABELS.get(name.split(":", 1)[0])
    label = f"local:{name}" + (f" ({description})" if description else "")
    return LocalGenerator(proxy, label=label, batch_size=batch_size)
