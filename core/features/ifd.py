"""The response alone and its loss: the extra forward pass that IFD needs (no backward).

IFD (Cherry LLM's Instruction-Following Difficulty) divides the loss of the response given its
prompt — the ``loss`` features already store — by the loss of the response alone. Here "alone"
is ``response_alone``: the response as the assistant turn after one **empty user turn**, through
the proxy's own chat template (every earlier turn, a system turn included, removed). An empty
user turn rather than no user turn, because some chat templates refuse a chat that opens with the
assistant, and because the response's tokens (the assistant turn's tail) are then the very tokens
the prompted loss was taken on.

``response_losses`` computes the mean NLL over response tokens of encoded samples, forward only,
batched (right-padded and masked like the features' pass, so a sample's loss depends only on its
own tokens; longest first, rows of one padded width per batch); for a model whose head is plain
(``core.features.loss.plain_head``) the head runs at the loss positions only, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from core.devices import to_device
from core.features.loss import LossRows, head_chunk_rows, plain_head, response_loss
from core.features.proxy import Proxy
from core.features.tokenize import Conversation, Encoded, padded_width


def response_alone(chat: Conversation) -> Conversation:
    """The chat's last (assistant) turn after one empty user turn."""
    return [{"role": "user", "content": ""}, dict(chat[-1])]


def loss_batches(
    encoded: Sequence[Encoded], *, batch_size: int, batch_tokens: int, spare_column: bool
) -> list[list[int]]:
    """Index batches of samples sharing a padded width, longest first, at most ``batch_size``
    rows and about ``batch_tokens`` tokens (pad included) each."""
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i].input_ids), i))
    groups: dict[int, list[int]] = {}
    for i in order:
        width = padded_width(len(encoded[i].input_ids), spare_column=spare_column)
        groups.setdefault(width, []).append(i)
    batches = []
    for width, members in sorted(groups.items(), reverse=True):
        size = max(1, min(batch_size, batch_tokens // width))
        batches += [members[j : j + size] for j in range(0, len(members), size)]
    return batches


def _batch_losses(proxy: Proxy, batch: Sequence[Encoded], spare_column: bool) -> torch.Tensor:
    device = proxy.device
    lengths = [len(e.input_ids) for e in batch]
    width = padded_width(max(lengths), spare_column=spare_column)
    input_ids = torch.full((len(batch), width), proxy.tokenizer.pad_token_id or 0)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        input_ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        attention[row, : len(e.input_ids)] = 1
    input_ids = to_device(input_ids, device)
    mask = to_device(attention, device) if min(lengths) < width else None
    model = proxy.model
    head = plain_head(model)
    if head is None:
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
        return response_loss(
            logits,
            input_ids,
            torch.tensor([e.n_prompt for e in batch], device=device),
            torch.tensor(lengths, device=device),
        ).float()
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=mask, use_cache=False
    ).last_hidden_state
    rows = LossRows.of(batch, hidden.device)
    at_rows = hidden[rows.sample, rows.position]
    chunk = head_chunk_rows(head.weight.shape[0], hidden.device)
    nll = torch.cat(
        [
            torch.log_softmax(at_rows[lo : lo + chunk] @ head.weight.T, dim=1, dtype=torch.float32)
            .gather(1, rows.target[lo : lo + chunk, None])[:, 0]
            .neg()
            for lo in range(0, len(at_rows), chunk)
        ]
    )
    losses = torch.zeros(len(batch), dtype=torch.float32, device=hidden.device)
    return losses.index_add_(0, rows.sample, nll) / rows.counts


def response_losses(
    proxy: Proxy, encoded: Sequence[Encoded], *, batch_size: int, batch_tokens: int
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Per batch: (indices into ``encoded``, (n,) float32 mean NLL over the response tokens)."""
    spare_column = torch.device(proxy.device).type != "cuda"
    batches = loss_batches(
        encoded, batch_size=batch_size, batch_tokens=batch_tokens, spare_column=spare_column
    )
    with torch.no_grad():
        for batch in batches:
            losses = _batch_losses(proxy, [encoded[i] for i in batch], spare_column)
            yield batch, losses.cpu().numpy().astype(np.float32)


def losses_of(proxy: Proxy, encoded: Sequence[Encoded], **batching: Any) -> np.ndarray:
    """``response_losses`` of every sample, in the order given."""
    out = np.zeros(len(encoded), dtype=np.float32)
    for batch, losses in response_losses(proxy, encoded, **batching):
        out[batch] = losses
    return out
