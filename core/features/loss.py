"""The loss of a sample (mean NLL over its response tokens) and the output head's fused backward.

- `response_loss`: per-sample mean NLL over response tokens from full (B, T, V) logits.
- `LossRows`, `head_loss_backward`: for models whose logits are plainly ``lm_head(last hidden
  state)`` (`plain_head`), the head, the loss and the head's backward computed by hand at the
  positions that carry loss only, a chunk of rows at a time (`head_chunk_rows`): the full
  (batch × length × vocabulary) logits are never held.
- `exact_gradients`: the materialised per-sample gradient, one sample at a time: the reference
  that sketched features are tested and benchmarked against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.devices import to_device
from core.features.kernels import compiled, disable_compiled, nll_and_delta
from core.features.tokenize import PAD_MULTIPLE, Encoded

# Models whose logits are exactly lm_head(base_model(...).last_hidden_state): no scale, no capping.
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt2"})


def response_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, n_prompt: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Mean NLL over response tokens, per sample.

    Args:
        logits: (B, T, V); input_ids: (B, T) right-padded; n_prompt, lengths: (B,).
    Returns:
        (B,) float32 losses.
    """
    targets = input_ids[:, 1:]
    positions = torch.arange(1, input_ids.shape[1], device=input_ids.device)
    mask = (positions[None, :] >= n_prompt[:, None]) & (positions[None, :] < lengths[:, None])
    # Rows of (B·T, V): with the vocabulary as the class dimension of a (B, V, T) view, CUDA runs
    # a strided reduction that made a 1,024-token training step of a 151,936-token vocabulary 4×
    # slower on an H100 (3.1 against 12.5 samples/s at batch 1).
    vocab = logits.shape[-1]
    nll = nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, vocab), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    mask_f = mask.to(nll.dtype)
    return (nll * mask_f).sum(dim=1) / mask_f.sum(dim=1)


def plain_head(model: nn.Module) -> nn.Linear | None:
    """The output head if the model's logits are exactly ``head(base_model(...)[0])``, else None."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if model_type in PLAIN_HEAD_MODEL_TYPES and get_head else None
    if isinstance(head, nn.Linear) and head.bias is None and model.base_model is not model:
        return head
    return None


def head_chunk_rows(vocab_size: int, device: Any) -> int:
    """Loss positions whose logits are held at once: about 2²⁸ logits on a GPU, 2²⁴ on a CPU."""
    budget = 1 << 28 if torch.device(device).type == "cuda" else 1 << 24
    return max(1, budget // vocab_size // PAD_MULTIPLE) * PAD_MULTIPLE


@dataclass(frozen=True)
class LossRows:
    """The positions that carry loss in a right-padded batch, one row each (N rows in all).

    Position ``position`` of batch row ``sample`` predicts token ``target``; ``weight`` is
    1 / (the sample's number of loss tokens), the derivative of its mean NLL by that token's NLL.
    """

    sample: torch.Tensor  # (N,) int64
    position: torch.Tensor  # (N,) int64
    target: torch.Tensor  # (N,) int64
    weight: torch.Tensor  # (N,) float32
    counts: torch.Tensor  # (B,) float32, loss tokens per sample

    @classmethod
    def of(cls, batch: Sequence[Encoded], device: Any) -> LossRows:
        starts = [max(1, e.n_prompt) for e in batch]  # token 0 has no prediction
        counts = np.array([len(e.input_ids) - s for e, s in zip(batch, starts, strict=True)])
        arrays = {
            "sample": np.repeat(np.arange(len(batch)), counts),
            "position": np.concatenate(
                [np.arange(s - 1, len(e.input_ids) - 1) for e, s in zip(batch, starts, strict=True)]
            ),
            "target": np.concatenate(
                [e.input_ids[s:] for e, s in zip(batch, starts, strict=True)]
            ).astype(np.int64),
            "weight": np.repeat(1.0 / counts, counts).astype(np.float32),
            "counts": counts.astype(np.float32),
        }
        return cls(**{k: to_device(v, device) for k, v in arrays.items()})


def head_loss_backward(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    rows: LossRows,
    *,
    chunk_rows: int,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The output head's forward and backward at the loss rows only, a chunk of rows at a time.

    For hidden states h (N, H) and head weight W (V, H): logits = h Wᵀ, NLL from a float32
    log-softmax, δ = weight · (softmax − onehot(target)) (the gradient of the per-sample mean
    losses by the logits) and h's gradient δ W. The row count is padded to a multiple of
    PAD_MULTIPLE (pad rows weigh 0), so that every product runs at alike shapes whatever the batch.

    Returns:
        nll (N,) float32; grad (N, H) in h's dtype; ``project(δ)`` (N, k) float32 when
        ``project`` is given, else None.
    """
    n = hidden.shape[0]
    extra = -n % PAD_MULTIPLE
    h = nn.functional.pad(hidden, (0, 0, 0, extra))
    targets = nn.functional.pad(rows.target, (0, extra))[:, None]
    scale = nn.functional.pad(rows.weight, (0, extra))[:, None]
    nll = torch.empty(n + extra, dtype=torch.float32, device=h.device)
    grad = torch.empty_like(h)
    projected = []
    fused = compiled("nll_and_delta", nll_and_delta) if h.is_cuda else None
    for lo in range(0, n + extra, chunk_rows):
        hi = min(n + extra, lo + chunk_rows)
        t = targets[lo:hi]
        logits = h[lo:hi] @ weight.T
        if fused is not None:
            try:
                nll[lo:hi], delta = fused(logits, t, scale[lo:hi])
                grad[lo:hi] = delta @ weight
                if project is not None:
                    projected.append(project(delta).float())
                continue
            except torch.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 - any compiler failure: stay correct, go eager
                disable_compiled("nll_and_delta", error)
                fused = None
        # Each of these reads the (rows × V) logits once and computes in float32: the NLL from
        # an exact log-softmax, and softmax − onehot rounded once to the logits' dtype. The
        # per-row weight goes onto the small (rows × H) and (rows × k) products instead.
        nll[lo:hi] = torch.log_softmax(logits, dim=1, dtype=torch.float32).gather(1, t)[:, 0].neg()
        delta = torch.softmax(logits, dim=1)
        del logits
        delta.scatter_add_(1, t, torch.full_like(t, -1, dtype=delta.dtype))
        grad[lo:hi] = ((delta @ weight).float() * scale[lo:hi]).to(h.dtype)
        if project is not None:
            projected.append(project(delta).float() * scale[lo:hi])
    return nll[:n], grad[:n], torch.cat(projected)[:n] if project is not None else None


def exact_gradients(
    model: nn.Module, encoded: Sequence[Encoded], params: Sequence[torch.Tensor]
) -> Iterator[tuple[list[torch.Tensor], float]]:
    """Per sample, one at a time: the gradient of its response loss by ``params``, and the loss.

    The reference computation (a full weight gradient per sample, materialised): what the
    sketched features are tested against and what the benchmarks' naive baselines time.
    ``params`` require grad only while the iterator runs.
    """
    device = params[0].device
    for param in params:
        param.requires_grad_(True)
    try:
        for e in encoded:
            ids = torch.tensor([e.input_ids], device=device)
            logits = model(input_ids=ids, use_cache=False).logits
            loss = response_loss(
                logits,
                ids,
                torch.tensor([e.n_prompt], device=device),
                torch.tensor([len(e.input_ids)], device=device),
            )[0]
            yield list(torch.autograd.grad(loss, list(params))), float(loss.detach())
    finally:
        for param in params:
            param.requires_grad_(False)
