"""Tokenise a sample the way its loss reads it: chat template, prompt/response split, padded width.

- `encode` turns a chat (its last turn from the assistant) or a plain text into an `Encoded`:
  token ids and the number of prompt tokens (positions from there on carry loss). A chat goes
  through the tokenizer's chat template (a plain `### User` / `### Assistant` template when it has
  none); a plain text is all response after its first token. `max_length` truncation keeps the
  response and the end of the prompt right before it.
- `padded_width` is the sequence width a sample is computed at (a multiple of `PAD_MULTIPLE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode(tokenizer: Any, sample: Conversation | str, *, max_length: int | None = None) -> Encoded:
    """Tokenise one sample: a chat (last turn from the assistant) or a plain text."""
    if isinstance(sample, str):
        ids = list(tokenizer(sample, add_special_tokens=True)["input_ids"])
        bos = tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        prompt_ids, response_ids = ids[:1], ids[1:]
    else:
        if not sample or sample[-1].get("role") != "assistant":
            raise PrismError("A chat sample must end with an assistant message (the response).")
        context, response = sample[:-1], sample[-1]["content"]
        if getattr(tokenizer, "chat_template", None):
            prefix = tokenizer.apply_chat_template(
                context, tokenize=False, add_generation_prompt=True
            )
            full = tokenizer.apply_chat_template(sample, tokenize=False)
            tail = (
                full[len(prefix) :]
                if full.startswith(prefix)
                else response + (tokenizer.eos_token or "")
            )
        else:
            prompt = "\n\n".join(m["content"] for m in context)
            prefix = _FALLBACK_TEMPLATE.format(prompt=prompt)
            tail = response + (tokenizer.eos_token or "")
        prompt_ids, response_ids = _ids(tokenizer, prefix), _ids(tokenizer, tail)
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
