"""Fused GPU pieces of the feature computation; on a CPU none of them runs.

- `nll_and_delta` (through ``compiled``): the loss over the head's logits and its
  gradient as one ``torch.compile``d function, two passes over the logits.
- `fused_rms_norms`: a plain model's RMSNorms run as PyTorch's fused kernel for the duration.
- `fused_mlps`: a plain model's SiLU·up and rotary embeddings run as ``torch.compile``d kernels (one
  pass forward, one backward, nothing but the two inputs kept for the backward) for the duration.
- `packed_attention` (through `packed_attention_of`): causal attention within each sample of a
  packed row (several samples one after another, no pad token): variable-length flash attention
  (``torch.nn.attention.varlen``) on a GPU in bf16/fp16, one causal SDPA call per sample elsewhere.

See bench/README.md for what each bought on a GPU.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SiLU(gate) · up, the gated MLP's activation (written for ``torch.compile``)."""
    return nn.functional.silu(gate) * up


# Names whose compile failed in this process (no compiler, an unsupported GPU): eager from then on.
_COMPILE_FAILED: set[str] = set()


@functools.cache
def _compiled_cached(function: Callable) -> Callable:
    return torch.compile(function, dynamic=True)


def compiled(name: str, function: Callable) -> Callable | None:
    """``function`` ``torch.compile``d (filed under ``name``), or None once that failed here."""
    return None if name in _COMPILE_FAILED else _compiled_cached(function)


def disable_compiled(name: str, error: BaseException) -> None:
    """Use the eager ``name`` for the rest of the process: compiling or running it failed."""
    warnings.warn(f"torch.compile of {name} failed ({error!r:.200}); using eager.", stacklevel=3)
    _COMPILE_FAILED.add(name)


def run_compiled(name: str, function: Callable, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` through its compiled copy; eager once compiling failed."""
    fused = compiled(name, function)
    if fused is not None:
        try:
            return fused(*args, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any compiler failure: stay correct, go eager
            disable_compiled(name, error)
    return function(*args, **kwargs)


@contextmanager
def _forwards(replacements: list[tuple[nn.Module, Callable]]) -> Iterator[int]:
    """Give each module its replacement forward for the duration; yields how many."""
    for module, forward in replacements:
        module.forward = forward
    try:
        yield len(replacements)
    finally:
        for module, _ in replacements:
            del module.forward


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
    replacements: list[tuple[nn.Module, Callable]] = []
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
                replacements.append((module, functools.partial(_rms_norm, weight=weight, eps=eps)))
    with _forwards(replacements) as n_replaced:
        yield n_replaced


def _gated_mlp(x: torch.Tensor, *, mlp: Any) -> torch.Tensor:
    """A gated SiLU MLP's forward with SiLU·up as one compiled kernel (eager if compiling fails)."""
    return mlp.down_proj(run_compiled("silu_mul", silu_mul, mlp.gate_proj(x), mlp.up_proj(x)))


def _rotary(modeling: Any, *args: Any, **kwargs: Any) -> Any:
    """The model's own ``apply_rotary_pos_emb``, compiled (eager if compiling fails)."""
    eager = modeling.__dict__["_prism_eager_rotary"]
    return run_compiled(f"rotary:{modeling.__name__}", eager, *args, **kwargs)


@contextmanager
def fused_mlps(model: nn.Module) -> Iterator[int]:
    """On a GPU, run a plain model's SiLU·up and rotary embeddings as compiled kernels.

    Eager, SiLU·up is two element-wise kernels forward and three backward over (tokens ×
    intermediate) tensors, and it keeps SiLU(gate) for the backward: 7.6 GB at 32,768 tokens of
    the Qwen2.5-0.5B architecture. Compiled, it is one kernel each way and keeps only its inputs.
    The rotary embedding (a half-rotation, two products and a sum for q and for k) is likewise
    one kernel each way. The gate, up and down projections stay the model's own modules, so their
    hooks fire as before; results differ only by rounding. Yields the number of MLPs replaced.
    """
    config = getattr(model, "config", None)
    replacements: list[tuple[nn.Module, Callable]] = []
    rotary_of: list[Any] = []
    if (
        getattr(config, "model_type", None) in _PLAIN_RMSNORM_MODEL_TYPES
        and getattr(config, "hidden_act", None) == "silu"
        and next(model.parameters()).is_cuda
    ):
        for module in model.modules():
            if all(
                isinstance(getattr(module, name, None), nn.Linear)
                for name in ("gate_proj", "up_proj", "down_proj")
            ):
                replacements.append((module, functools.partial(_gated_mlp, mlp=module)))
        modeling = sys.modules.get(type(model.base_model).__module__)
        if (
            modeling is not None
            and callable(getattr(modeling, "apply_rotary_pos_emb", None))
            and "_prism_eager_rotary" not in modeling.__dict__  # not patched already
        ):
            names = modeling.__dict__
            names["_prism_eager_rotary"] = names["apply_rotary_pos_emb"]
            names["apply_rotary_pos_emb"] = functools.partial(_rotary, modeling)
            rotary_of.append(modeling)
    try:
        with _forwards(replacements) as n_replaced:
            yield n_replaced
    finally:
        for modeling in rotary_of:
            names = modeling.__dict__
            names["apply_rotary_pos_emb"] = names.pop("_prism_eager_rotary")


# Models whose attention goes through transformers' attention interface with (B, H, T, D) inputs
# and whose mask is the plain causal one: a packed row needs only a per-sample causal attention.
PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
PACKED_ATTENTION = "prism_packed"


def _varlen_attn() -> Callable | None:
    try:
        # optional: a torch build without varlen attention gets None
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def _varlen_causal(
    varlen_attn: Callable,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_length: int,
    scale: float | None,
) -> torch.Tensor:
    """(T, H, D) packed q/k/v → (T, H, D), through the flash kernel's variable-length entry."""
    params = inspect.signature(varlen_attn).parameters
    options: dict[str, Any] = {}
    # Its keyword names moved between torch releases: causal is a window (-1, 0) since 2.12.
    if "window_size" in params:
        options["window_size"] = (-1, 0)
    else:
        options["is_causal"] = True
    if scale is not None and "scale" in params:
        options["scale"] = scale
    if key.shape[1] != query.shape[1]:
        if "enable_gqa" in params:
            options["enable_gqa"] = True
        else:
            groups = query.shape[1] // key.shape[1]
            key = key.repeat_interleave(groups, dim=1)
            value = value.repeat_interleave(groups, dim=1)
    cu = cu_seqlens.to(torch.int32)
    out = varlen_attn(query, key, value, cu, cu, max_length, max_length, **options)
    return out[0] if isinstance(out, tuple) else out


def packed_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    prism_cu_seqlens: torch.Tensor,
    prism_max_length: int,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each sample of one packed row: (1, H, T, D) → (1, T, H, D).

    ``prism_cu_seqlens`` (n + 1,) holds the samples' start offsets and the total length; no
    position attends across a boundary, so a sample's output is what it would be alone.
    """
    # The flash kernel takes bf16/fp16 only; float32 goes one sample at a time.
    half = query.dtype in (torch.bfloat16, torch.float16)
    varlen_attn = _varlen_attn() if query.is_cuda and half else None
    if varlen_attn is not None:
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
        out = _varlen_causal(varlen_attn, q, k, v, prism_cu_seqlens, prism_max_length, scaling)
        return out[None], None
    bounds = prism_cu_seqlens.tolist()
    gqa = key.shape[1] != query.shape[1]
    parts = [
        nn.functional.scaled_dot_product_attention(
            query[:, :, lo:hi],
            key[:, :, lo:hi],
            value[:, :, lo:hi],
            is_causal=True,
            scale=scaling,
            enable_gqa=gqa,
        )
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return torch.cat(parts, dim=2).transpose(1, 2), None


def packed_attention_of(model: nn.Module) -> bool:
    """Whether ``model`` can run packed rows through ``packed_attention`` (see ``packed_rows``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return model_type in PACKABLE_MODEL_TYPES and model.base_model is not model


@contextmanager
def packed_rows(model: nn.Module) -> Iterator[None]:
    """Route the model's attention through ``packed_attention`` for the duration.

    The attention interface is transformers' own (``AttentionInterface``); an implementation with
    no registered mask function gets no mask at all, which is what a packed row wants.
    """
    # heavy: transformers, only once a model is loaded (import-features never is)
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    configs: dict[int, Any] = {
        id(m.config): m.config for m in model.modules() if hasattr(m, "config")
    }
    before = {key: config._attn_implementation for key, config in configs.items()}
    for config in configs.values():
        config._attn_implementation = PACKED_ATTENTION
    try:
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = before[key]
