"""The hooks that sketch per-sample gradients while a batch runs forward and backward.

A forward hook on each Linear layer in scope projects its inputs (R_in a_t); a tensor hook on its
output folds the projected output gradients (R_out δ_t) into each sample's k × k block,
Σ_t (R_out δ_t)(R_in a_t)ᵀ, so no per-sample gradient is materialised. A packed row (several
samples in one row) is spread to (samples × longest) first, so each block sums its own tokens.
A pre-hook on the first block in scope detaches its input, so the backward pass stops there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core.errors import PrismError
from core.features.sketch import KroneckerSketch


def block_sum(projected_grads: torch.Tensor, projected_inputs: torch.Tensor) -> torch.Tensor:
    """(B, T, k) × (B, T, k) → (B, k, k) float32: Σ_t g_t a_tᵀ."""
    g, a = projected_grads.transpose(1, 2), projected_inputs
    if g.is_cuda and g.dtype == a.dtype == torch.bfloat16:
        # On the tensor cores with a float32 result, where this torch has it (CUDA, ≥ 2.8).
        try:
            return torch.bmm(g, a, out_dtype=torch.float32)
        except (TypeError, RuntimeError, NotImplementedError):
            pass
    return torch.matmul(g.float(), a.float())


class SketchHooks:
    """Forward hooks that project activations; tensor hooks that fold in output gradients."""

    def __init__(
        self, sketch: KroneckerSketch, layers: dict[str, nn.Module], first_block: nn.Module
    ):
        self.sketch = sketch
        self.blocks: torch.Tensor | None = None
        # For a packed row: each token's row in (samples × longest), samples, longest.
        self.segments: tuple[torch.Tensor, int, int] | None = None
        self.handles = [first_block.register_forward_pre_hook(self._cut_graph, with_kwargs=True)]
        for name, module in layers.items():
            self.handles.append(module.register_forward_hook(self._make_hook(name)))

    @staticmethod
    def _cut_graph(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        # The backward pass starts here: nothing below the first block in scope is differentiated.
        if args:
            args = (args[0].detach().requires_grad_(True), *args[1:])
        else:
            kwargs = {
                **kwargs,
                "hidden_states": kwargs["hidden_states"].detach().requires_grad_(True),
            }
        return args, kwargs

    def add(self, projected_grads: torch.Tensor, projected_inputs: torch.Tensor) -> None:
        """Fold Σ_t (R_out δ_t)(R_in a_t)ᵀ of one layer, (B, T, k) each, into the (B, k, k) sum.

        A packed row (1, T, k) is first spread to (samples, longest, k), zeros after each sample's
        end, so the sum runs over each sample's own tokens (a segment sum).
        """
        if self.segments is not None:
            slot, n, longest = self.segments
            spread = []
            for projected in (projected_grads, projected_inputs):
                rows = projected.new_zeros((n * longest, projected.shape[-1]))
                spread.append(rows.index_copy_(0, slot, projected[0]).view(n, longest, -1))
            projected_grads, projected_inputs = spread
        block = block_sum(projected_grads, projected_inputs)
        self.blocks = block if self.blocks is None else self.blocks.add_(block)

    def _make_hook(self, name: str) -> Callable:
        sketch = self.sketch

        def forward_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not output.requires_grad:
                return
            with torch.no_grad():
                projected_inputs = sketch.project_inputs(name, inputs[0].detach())

            def backward_hook(grad: torch.Tensor) -> None:
                with torch.no_grad():
                    self.add(sketch.project_output_grads(name, grad), projected_inputs)

            output.register_hook(backward_hook)

        return forward_hook

    def take(self) -> torch.Tensor:
        blocks, self.blocks = self.blocks, None
        if blocks is None:
            raise PrismError(
                "No gradient reached the layers in scope; check the scope.", param="scope"
            )
        return blocks

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
