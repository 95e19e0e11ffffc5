"""Fused GPU pieces of the feature computation; on a CPU none of them runs.

- `nll_and_delta` (through `compiled_nll_and_delta`): the loss over the head's logits and its
  gradient as one ``torch.compile``d function, two passes over the logits.
- `fused_rms_norms`: a plain model's RMSNorms run as PyTorch's fused kernel for the duration.

See bench/README.md for what each bought on a GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


def nll_and_delta(
    logits: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, V) logits → NLL (rows,) float32 and δ = scale · (softmax − onehot) in logits' dtype.

    Written for ``torch.compile``, which fuses it into two passes over the logits (GPU only).
    """
    log_probs = torch.log_softmax(logits.float(), dim=1)
    nll = -log_probs.gather(1, targets)[:, 0]
    hit = torch.arange(logits.shape[1], device=logits.device)[None, :] == targets
    return nll, ((log_probs.exp() - hit.float()) * scale).to(logits.dtype)


_COMPILE_FAILED: set[str] = set()


@functools.cache
def _compiled_nll_and_delta_cached() -> Callable:
    return torch.compile(nll_and_delta, dynamic=True)


def compiled_nll_and_delta() -> Callable | None:
    """The ``torch.compile``d ``nll_and_delta``, or None once compiling it failed in this process."""
    return None if "nll_and_delta" in _COMPILE_FAILED else _compiled_nll_and_delta_cached()


def disable_compiled_nll_and_delta() -> None:
    """Stop using the compiled loss for the rest of the process (its compile failed)."""
    _COMPILE_FAILED.add("nll_and_delta")


# RMSNorm classes computing weight · (x / rms(x)) exactly like torch.nn.functional.rms_norm.
_PLAIN_RMSNORM_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def _rms_norm(hidden_states: torch.Tensor, *, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return nn.functional.rms_norm(hidden_states, (weight.shape[0],), weight, eps)


@contextmanager
def fused_rms_norms(model: nn.Module) -> Iterator[int]:
    """On a GPU, run a plain model's RMSNorms as PyTorch's fused kernel for the duration.

    Hugging Face's RMSNorm is five float32 element-wise kernels forward and more backward; on an
    H100 they took 1.46 ms per (32,768 × 896) norm against 0.12 ms fused, a quarter of the whole
    extraction. The result differs only by rounding (the fused kernel rounds once, at the end).
    Yields the number of norms replaced; the model's own forward comes back on exit.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    patched = []
    if model_type in _PLAIN_RMSNORM_MODEL_TYPES and next(model.parameters()).is_cuda:
        for module in model.modules():
            weight = getattr(module, "weight", None)
            eps = getattr(module, "variance_epsilon", None)
            if (
                type(module).__name__.endswith("RMSNorm")
                and isinstance(weight, torch.Tensor)
                and weight.dim() == 1
                and isinstance(eps, float)
            ):
                module.forward = functools.partial(_rms_norm, weight=weight, eps=eps)
                patched.append(module)
    try:
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
