"""Which parameters the gradient is taken by: the parameter scope of a proxy model.

``all`` is every Linear weight, the output head included; ``last:K`` the Linear weights of the
last K transformer blocks (the blocks are the model's longest ModuleList). GPT-2 style ``Conv1D``
layers count as Linear.
"""

from __future__ import annotations

import re
from typing import cast

import torch
from torch import nn

from core.errors import PrismError


def parse_scope(scope: str) -> int | None:
    """``all`` → None (every Linear incl. the output head); ``last:K`` → K (last K blocks only)."""
    if scope == "all":
        return None
    match = re.fullmatch(r"last:(\d+)", scope or "")
    if match and int(match.group(1)) >= 1:
        return int(match.group(1))
    raise PrismError(
        f"scope must be 'all' (every Linear weight, output head included) or 'last:K' "
        f"(the Linear weights of the last K transformer blocks, K ≥ 1); got {scope!r}.",
        param="scope",
    )


def _decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer's list of blocks: the longest ModuleList in the model."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise PrismError(
            "Could not find the transformer blocks of this model (no ModuleList).", param="model"
        )
    return max(lists, key=len)


def _is_linear(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")  # GPT-2 style


def layer_shape(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    n_in, n_out = cast(torch.Tensor, module.weight).shape  # Conv1D stores (in, out)
    return n_out, n_in


def scope_layers(model: nn.Module, scope: str) -> tuple[dict[str, nn.Module], nn.Module]:
    """Linear layers in scope (name → module, in model order) and the first block in scope.

    ``all`` takes every Linear (blocks and output head); ``last:K`` the Linears of the last K blocks.
    """
    last_k = parse_scope(scope)
    blocks = _decoder_blocks(model)
    if last_k is not None and last_k > len(blocks):
        raise PrismError(
            f"scope last:{last_k} asks for more blocks than the model has ({len(blocks)}).",
            param="scope",
        )
    first = 0 if last_k is None else len(blocks) - last_k
    names = {id(module): name for name, module in model.named_modules()}
    prefixes = [f"{names[id(block)]}." for block in blocks]
    in_scope = tuple(prefixes[first:])
    layers: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not _is_linear(module):
            continue
        outside_blocks = not name.startswith(tuple(prefixes))
        if name.startswith(in_scope) or (last_k is None and outside_blocks):
            layers[name] = module
    if not layers:
        raise PrismError(f"scope {scope!r} holds no Linear layers in this model.", param="scope")
    return layers, blocks[first]
