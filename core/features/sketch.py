"""Seeded, device-independent random projections of per-sample gradients.

- ``KroneckerSketch``: the two-stage sketch of DESIGN.md. For a linear layer with weight W (out×in)
  the per-sample gradient is G = Σ_t δ_t a_tᵀ; stage one maps it to R_out G R_inᵀ (k×k) computed as
  Σ_t (R_out δ_t)(R_in a_t)ᵀ from hooked activations and output gradients, never materialising G.
  The k×k blocks of all layers (independent matrices per layer) are summed, flattened to k² numbers
  and mapped by one dense seeded matrix to ``dim`` numbers (stage two).
- ``gaussian_matrix``: the seeded generator behind every projection matrix.

All matrices are drawn on the CPU from numpy's PCG64 keyed by (seed, layer name, role), then moved
to the compute device, so the same seed, model and scope give the same map on any device and run.
Entries are N(0, 1/rows), so E‖sketch(g)‖² = ‖g‖² and the sketch norm estimates the gradient norm.
A ``compute_dtype`` of bfloat16 (for a bf16 model) runs the stage-one projections on bf16 copies of
the same matrices with float32 accumulation; the matrices themselves are always the float32 ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import torch

from core.errors import PrismError

STAGE1_K = 128
MAX_DIM = STAGE1_K * STAGE1_K


def validate_dim(dim: int, *, stage1_k: int = STAGE1_K) -> int:
    """Check that the sketch can produce ``dim`` numbers: 1 ≤ dim ≤ k²."""
    limit = stage1_k * stage1_k
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= limit:
        raise PrismError(
            f"dim (--dim) must be an integer from 1 to {limit:,} (the first sketch stage gives "
            f"{stage1_k}×{stage1_k} = {limit:,} numbers); got {dim!r}. 1024 is the default."
        )
    return dim


def _key(seed: int, name: str, role: str) -> np.random.SeedSequence:
    digest = hashlib.sha256(f"{name}\x00{role}".encode()).digest()
    return np.random.SeedSequence([seed, *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])


def gaussian_matrix(rows: int, cols: int, *, seed: int, name: str, role: str) -> np.ndarray:
    """A (rows×cols) float32 matrix with i.i.d. N(0, 1/rows) entries, fixed by (seed, name, role)."""
    rng = np.random.Generator(np.random.PCG64(_key(seed, name, role)))
    matrix = rng.standard_normal((rows, cols), dtype=np.float32)
    matrix *= np.float32(1.0 / np.sqrt(rows))
    return matrix


class KroneckerSketch:
    """Two-stage Kronecker sketch over a fixed set of linear layers.

    Args:
        layer_shapes: layer name → (out_features, in_features), in a stable order.
        dim: output size d (1 ≤ d ≤ k²); d == k² skips stage two.
    """

    def __init__(
        self,
        layer_shapes: Mapping[str, tuple[int, int]],
        *,
        dim: int,
        seed: int,
        stage1_k: int = STAGE1_K,
        device: str | torch.device = "cpu",
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        validate_dim(dim, stage1_k=stage1_k)
        if not layer_shapes:
            raise PrismError("The parameter scope holds no linear layers; choose another --scope.")
        self.dim = dim
        self.seed = seed
        self.k = stage1_k
        self.device = torch.device(device)
        self.compute_dtype = compute_dtype
        self.r_out: dict[str, torch.Tensor] = {}
        self.r_in: dict[str, torch.Tensor] = {}
        for name, (n_out, n_in) in layer_shapes.items():
            self.r_out[name] = self._tensor(
                gaussian_matrix(stage1_k, n_out, seed=seed, name=name, role="out")
            )
            self.r_in[name] = self._tensor(
                gaussian_matrix(stage1_k, n_in, seed=seed, name=name, role="in")
            )
        self._r_out_c = {name: m.to(compute_dtype) for name, m in self.r_out.items()}
        self._r_in_c = {name: m.to(compute_dtype) for name, m in self.r_in.items()}
        self.stage2: torch.Tensor | None = None
        if dim != stage1_k * stage1_k:
            # Stored transposed (k² × d) so that finishing a batch is one (B×k²)·(k²×d) product.
            stage2 = gaussian_matrix(
                dim, stage1_k * stage1_k, seed=seed, name="__stage2__", role="dense"
            )
            self.stage2 = self._tensor(np.ascontiguousarray(stage2.T))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def project_inputs(self, name: str, activations: torch.Tensor) -> torch.Tensor:
        """(…, in) → (…, k): R_in a_t for every token, in ``compute_dtype``."""
        return torch.matmul(activations.to(self.compute_dtype), self._r_in_c[name].T)

    def project_output_grads(self, name: str, grads: torch.Tensor) -> torch.Tensor:
        """(…, out) → (…, k): R_out δ_t for every token, in ``compute_dtype``."""
        return torch.matmul(grads.to(self.compute_dtype), self._r_out_c[name].T)

    def finish(self, blocks: torch.Tensor) -> torch.Tensor:
        """(B, k, k) summed stage-one blocks → (B, dim) sketched gradients (not normalised)."""
        flat = blocks.reshape(blocks.shape[0], self.k * self.k)
        if self.stage2 is None:
            return flat
        return torch.matmul(flat, self.stage2)
