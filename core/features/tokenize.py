"""Tokenise a sample the way its loss reads it: chat template, prompt/response split, padded width.

- `encode` (`encode_many` for a list, batched) turns a chat (its last turn from the assistant) or a plain text into an `Encoded`:
  token ids and the number of prompt tokens (positions from there on carry loss). A chat goes
  through the tokenizer's chat template (a plain `### User` / `### Assistant` template when it has
  none); a plain text is all response after its first token. `max_length` truncation keeps the
  response and the end of the prompt right before it.
- `padded_width` is the sequence width a sample is computed at (a multiple of `PAD_MULTIPLE`).
- `pack` lays a batch's samples one after another in a single row with no pad token (`Packed`):
  positions restart at 0 for each sample, and the attention stays within a sample
  (``core.features.kernels.packed_attention``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import PrismError

Conversation = list[dict[str, str]]


PAD_MULTIPLE = 64


_FALLBACK_TEMPLATE = "### User:\n{prompt}\n\n### Assistant:\n"


@dataclass(frozen=True)
class Encoded:
    """Token ids of one sample; positions ≥ ``n_prompt`` are response (loss) tokens."""

    input_ids: tuple[int, ...]
    n_prompt: int
    truncated: bool = False

    @property
    def n_response(self) -> int:
        return len(self.input_ids) - self.n_prompt


def _chat_texts(tokenizer: Any, sample: Conversation) -> tuple[str, str]:
    """The prompt text (through the generation prompt) and the response text of a chat."""
    if not sample or sample[-1].get("role") != "assistant":
        raise PrismError("A chat sample must end with an assistant message (the response).")
    context, response = sample[:-1], sample[-1]["content"]
    if getattr(tokenizer, "chat_template", None):
        prefix = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(sample, tokenize=False)
        tail = (
            full[len(prefix) :]
            if full.startswith(prefix)
            else response + (tokenizer.eos_token or "")
        )
        return prefix, tail
    prompt = "\n\n".join(m["content"] for m in context)
    return _FALLBACK_TEMPLATE.format(prompt=prompt), response + (tokenizer.eos_token or "")


def _text_ids(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids[:1], ids[1:]


def _encoded(prompt_ids: list[int], response_ids: list[int], max_length: int | None) -> Encoded:
    if not response_ids:
        raise PrismError("A sample has no response tokens after tokenisation.")
    truncated = False
    if max_length is not None and len(prompt_ids) + len(response_ids) > max_length:
        # Keep the response (what the loss is about) and the end of the prompt right before it.
        truncated = True
        keep_prompt = min(len(prompt_ids), max(1, max_length - len(response_ids)))
        prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :]
        response_ids = response_ids[: max_length - keep_prompt]
    return Encoded(tuple(prompt_ids + response_ids), len(prompt_ids), truncated)


def encode_many(
    tokenizer: Any, samples: Sequence[Conversation | str], *, max_length: int | None = None
) -> list[Encoded]:
    """``encode`` of each sample; the chats' texts go through the tokenizer in two batched calls
    (the same ids as one at a time, without a Python round trip per text)."""
    chats = [i for i, s in enumerate(samples) if not isinstance(s, str)]
    texts = [_chat_texts(tokenizer, samples[i]) for i in chats]  # type: ignore[arg-type]
    ids: dict[int, tuple[list[int], list[int]]] = {}
    if texts:
        prefixes, tails = (
            tokenizer([t[part] for t in texts], add_special_tokens=False)["input_ids"]
            for part in (0, 1)
        )
        ids = {i: (list(p), list(t)) for i, p, t in zip(chats, prefixes, tails, strict=True)}
    return [
        _encoded(*(ids[i] if i in ids else _text_ids(tokenizer, s)), max_length)  # type: ignore[arg-type]
        for i, s in enumerate(samples)
    ]


def encode(tokenizer: Any, sample: Conversation | str, *, max_length: int | None = None) -> Encoded:
    """Tokenise one sample: a chat (last turn from the assistant) or a plain text."""
    return encode_many(tokenizer, [sample], max_length=max_length)[0]


def padded_width(length: int, *, spare_column: bool = True) -> int:
    """The sequence width a sample of ``length`` tokens is computed at: a multiple of PAD_MULTIPLE.

    With ``spare_column`` (on a CPU) at least one pad column is always added: with an all-ones mask
    the attention takes another kernel path, so a sample would go through other kernels depending
    on whether a neighbour needed padding (keeping shapes alike keeps rounding differences small; it
    does not promise bits, which BLAS libraries choose per processor). On a GPU a batch of equal
    lengths needs no pad column and no mask (the fused causal kernel).
    """
    if spare_column:
        return (length // PAD_MULTIPLE + 1) * PAD_MULTIPLE
    return -(-length // PAD_MULTIPLE) * PAD_MULTIPLE


@dataclass(frozen=True)
class Packed:
    """A batch of samples laid one after another in one row (T tokens in all, no padding)."""

    input_ids: np.ndarray  # (T,) int64
    position_ids: np.ndarray  # (T,) int64, restarting at 0 for each sample
    sample: np.ndarray  # (T,) int64, the sample each token belongs to
    offsets: np.ndarray  # (n + 1,) int64, sample i holds tokens offsets[i]:offsets[i + 1]

    @property
    def max_length(self) -> int:
        return int(np.diff(self.offsets).max())


def pack(batch: Sequence[Encoded]) -> Packed:
    """Lay ``batch`` out as one packed row."""
    lengths = np.array([len(e.input_ids) for e in batch], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    sample = np.repeat(np.arange(len(batch), dtype=np.int64), lengths)
    return Packed(
        input_ids=np.concatenate([np.asarray(e.input_ids, dtype=np.int64) for e in batch]),
        position_ids=np.arange(offsets[-1], dtype=np.int64) - offsets[sample],
        sample=sample,
        offsets=offsets,
    )
