"""Generators: what writes new candidate samples, behind one ``Generator`` interface.

- ``LocalGenerator``: a causal LM run in this process — the embedded SmolLM2-135M-Instruct
  (``"default"``, offline and small: its samples are simple), ``"tiny"`` (random weights, for
  tests) or any Hugging Face causal LM name or local directory, loaded by
  ``core.features.proxy.load_proxy``. Chats are batched with left padding through the model's chat
  template. Sampling is done per chat with its own seeded ``torch.Generator``, so chat i's text
  depends on ``seeds[i]`` and not on the other chats of its batch.
- ``EndpointGenerator`` (``core.synthesis.endpoint``; the vocabulary both share is ``core.synthesis.generation``): any OpenAI-compatible server (vLLM,
  SGLang, llama.cpp server, Ollama, ``transformers serve``, hosted APIs) through the ``openai``
  client, its key from an environment variable or a file, never stored.

``make_generator`` picks one from the options the CLI and the app pass through.

Failures: anything that would fail every request (a model that does not load, a server that cannot
be reached, a refused key, an unknown model, a malformed response) raises ``PrismError``. A request
that fails on its own (the server rejected this one chat, e.g. too long; an empty or filtered
completion) yields ``""`` at its position and the reason in ``generator.failures[position]``, so a
round goes on; when every request of a call fails that way, the call raises instead.

Replies are capped (``GenerationSettings.max_reply_chars``, default ``MAX_REPLY_CHARS``, and
``max_new_tokens`` where a server reports its token count, since a server may ignore it): an
over-long reply yields ``""`` and its size in ``failures``, so it counts as malformed, never as a
candidate whose features would cost gigabytes. The cap is ``core.data.text.over_limit``, the one
that bounds dataset cells.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

from core.errors import PrismError
from core.features.proxy import load_proxy
from core.synthesis.endpoint import EndpointGenerator
from core.synthesis.generation import (
    DEFAULT_GENERATOR,
    DEFAULT_KEY_ENV,
    Chat,
    GenerationSettings,
    Generator,
    check_request,
    reply_problem,
)
from core.validate import check_int

_LOCAL_LABELS = {
    "default": "SmolLM2-135M-Instruct, embedded",
    "tiny": "random 2-layer Llama, for tests",
}


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
        seeds = check_request(chats, seeds)
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
                problem = reply_problem(reply, settings)
                replies[position] = "" if problem else reply
                if problem or not reply.strip():
                    self.failures[position] = problem or "the model returned an empty completion"
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


def make_generator(
    name: str = DEFAULT_GENERATOR,
    *,
    endpoint: str | None = None,
    endpoint_model: str | None = None,
    api_key_env: str = DEFAULT_KEY_ENV,
    api_key_file: str | None = None,
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
            api_key_file=api_key_file,
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
        raise type(error)(str(error), param="generator") from None
    description = _LOCAL_LABELS.get(name.split(":", 1)[0])
    label = f"local:{name}" + (f" ({description})" if description else "")
    return LocalGenerator(proxy, label=label, batch_size=batch_size)
