"""Seeded, device-independent random projections of per-sample gradients.

- ``KroneckerSketch``: the two-stage sketch of DESIGN.md. For a linear layer with weight W (out×in)
  the per-sample gradient is G = Σ_t δ_t a_tᵀ; stage one maps it to R_out G R_inᵀ (k×k) computed as
  Σ_t (R_out δ_t)(R_in a_t)ᵀ from hooked activations and output gradients, never materialising G.
  The k×k blocks of all layers (independent matrices per layer) are summed, flattened to k² numbers
  and mapped by one dense seeded matrix to ``dim`` numbers (stage two).
- ``DenseSketch``: the reference of DESIGN.md to validate against on small parameter scopes: one
  dense seeded Rademacher (or Gaussian) matrix applied to a whole materialised gradient
  (``core.features.loss.exact_gradients``), drawn a chunk of columns at a time.
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
from typing import Literal

import numpy as np
import torch

from core.errors import PrismError
from core.validate import check_int

STAGE1_K = 128
MAX_DIM = STAGE1_K * STAGE1_K


def validate_dim(dim: int, *, stage1_k: int = STAGE1_K) -> int:
    """Check that the sketch can produce ``dim`` numbers: 1 ≤ dim ≤ k²."""
    limit = stage1_k * stage1_k
    try:
        return check_int(
            dim,
            param="dim",
            minimum=1,
            maximum=limit,
            why=f" (the first sketch stage gives {stage1_k}×{stage1_k} = {limit:,} numbers)",
        )
    except PrismError as error:
        raise PrismError(f"{error} 1024 is the default.", param="dim") from None


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
            raise PrismError(
                "The parameter scope holds no linear layers; choose another scope.", param="scope"
            )
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


class DenseSketch:
    """The dense reference sketch: R g for one seeded (dim × n_in) matrix R and a flat gradient g.

    Entries are ±1/√dim (``kind="rademacher"``) or N(0, 1/dim) (``"gaussian"``), so E‖R g‖² = ‖g‖².
    R is drawn ``chunk_cols`` columns at a time, chunk j keyed by (seed, kind, j): memory stays at
    dim × chunk_cols whatever n_in, and the whole matrix is kept once drawn when it holds at most
    ``cache_entries`` numbers. With ``draw="numpy"`` the chunks come from numpy's PCG64 on the CPU,
    the same map on every device; ``draw="device"`` draws them with torch on the compute device
    (another map per kind of device; fast enough to time a naive baseline on a GPU).
    """

    def __init__(
        self,
        n_in: int,
        *,
        dim: int,
        seed: int,
        kind: Literal["rademacher", "gaussian"] = "rademacher",
        device: str | torch.device = "cpu",
        chunk_cols: int = 1 << 16,
        draw: Literal["numpy", "device"] = "numpy",
        cache_entries: int = 1 << 26,
    ) -> None:
        if kind not in ("rademacher", "gaussian"):
            raise PrismError(f"kind must be rademacher or gaussian, got {kind!r}.", param="kind")
        if draw not in ("numpy", "device"):
            raise PrismError(f"draw must be numpy or device, got {draw!r}.", param="draw")
        for name, value in (("n_in", n_in), ("dim", dim), ("chunk_cols", chunk_cols)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PrismError(f"{name} must be an integer ≥ 1, got {value!r}.", param=name)
        self.n_in, self.dim, self.seed, self.kind = n_in, dim, seed, kind
        self.device = torch.device(device)
        self.chunk_cols, self.draw = chunk_cols, draw
        self._cache: dict[int, torch.Tensor] | None = {} if dim * n_in <= cache_entries else None

    @property
    def n_chunks(self) -> int:
        return -(-self.n_in // self.chunk_cols)

    def chunk(self, j: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Columns [j·chunk_cols, (j+1)·chunk_cols) of R, (dim × cols) on the device."""
        if self._cache is not None and j in self._cache:
            return self._cache[j].to(dtype)
        cols = min(self.chunk_cols, self.n_in - j * self.chunk_cols)
        scale = 1.0 / np.sqrt(self.dim)
        if self.draw == "numpy":
            rng = np.random.Generator(
                np.random.PCG64(_key(self.seed, "__dense__", f"{self.kind}:{j}"))
            )
            if self.kind == "rademacher":
                array = rng.integers(0, 2, size=(self.dim, cols), dtype=np.int8).astype(np.float32)
                array = (2 * array - 1) * np.float32(scale)
            else:
                array = rng.standard_normal((self.dim, cols), dtype=np.float32) * np.float32(scale)
            matrix = torch.from_numpy(array).to(self.device)
        else:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.seed * (1 << 20) + j)
            if self.kind == "rademacher":
                bits = torch.randint(
                    0, 2, (self.dim, cols), generator=generator, device=self.device
                )
                matrix = (2 * bits - 1).to(torch.float32) * scale
            else:
                matrix = (
                    torch.randn((self.dim, cols), generator=generator, device=self.device) * scale
                )
        if self._cache is not None:
            self._cache[j] = matrix
        return matrix.to(dtype)

    def project(self, flat: torch.Tensor) -> torch.Tensor:
        """(n_in,) or (B, n_in) gradients → (dim,) or (B, dim) float32 sketches, not normalised."""
        if flat.shape[-1] != self.n_in:
            raise PrismError(
                f"flat must have {self.n_in:,} numbers per row, got {flat.shape[-1]:,}.",
                param="flat",
            )
        out = torch.zeros((*flat.shape[:-1], self.dim), dtype=torch.float32, device=flat.device)
        for j in range(self.n_chunks):
            piece = flat[..., j * self.chunk_cols : (j + 1) * self.chunk_cols]
            out += (piece @ self.chunk(j, piece.dtype).to(piece.device).T).float()
        return out
