"""Per-sample loss gradients of a proxy LM, sketched to ``dim`` numbers and unit-normalised.

The loss of a sample is the mean token negative log-likelihood over its response tokens
(``core.features.loss``) after the proxy's chat template (``core.features.tokenize``). The gradient
is taken with respect to the Linear weights in the chosen scope (``core.features.scope``) and
sketched by ``core.features.sketch.KroneckerSketch`` from forward/backward hooks
(``core.features.hooks``), so no per-sample gradient is ever materialised and no weight gradient
is ever computed (parameters stay frozen; the backward pass only carries activation gradients
down to the first block in scope).

Batching is exact: sequences are right-padded and attention-masked, so a sample's loss depends
only on its own tokens, and the backward of the summed per-sample losses hands each sample exactly
its own output gradients. Packed batches (``FeatureExtractor.pack``, on by default on a GPU for
plain bf16/fp16 models) instead lay the samples one after another in one row with no pad token: positions
restart per sample, the attention stays within a sample (``core.features.kernels.packed_attention``)
and each sample's Kronecker block is the segment sum of its own tokens, so nothing computed is
padding and the features are the padded ones up to float rounding (tested at 1e-5 on a CPU).

On a GPU (see bench/README.md for what each step bought): a bf16 model's sketch projections run in
bf16 on the tensor cores; a batch of equal lengths runs without pad column or mask (the fused
causal attention kernel); the head's loss, RMSNorms, SiLU·up and rotary embeddings run fused
(``core.features.kernels``). On a CPU the computation is what it always was. Across batch sizes, processors and devices a sample's
features agree to float32 rounding (~1e-7 on unit rows, tested at 1e-5), not bit for bit: math
libraries pick kernels by shape and processor.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from contextlib import closing, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from core.devices import to_device
from core.errors import PrismError
from core.features.hooks import SketchHooks
from core.features.kernels import fused_mlps, fused_rms_norms, packed_attention_of, packed_rows
from core.features.loss import (
    LossRows,
    head_chunk_rows,
    head_loss_backward,
    plain_head,
    response_loss,
)
from core.features.proxy import DTYPES, Proxy
from core.features.scope import layer_shape, parse_scope, scope_layers
from core.features.sketch import STAGE1_K, KroneckerSketch, validate_dim
from core.features.tokenize import Conversation, Encoded, Packed, encode_many, pack, padded_width
from core.validate import check_choice, check_int, check_seed


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the features, plus how to compute them (batch size, device)."""

    model: str = "default"
    scope: str = "all"
    dim: int = 1024
    seed: int = 0
    batch_size: int | None = None  # None: 8 on a CPU, 128 on a GPU (batch_tokens caps both)
    batch_tokens: int | None = None
    max_length: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    stage1_k: int = STAGE1_K
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        parse_scope(self.scope)
        validate_dim(self.dim, stage1_k=self.stage1_k)
        # Stored as plain ints: the settings go to the manifest as JSON.
        object.__setattr__(self, "seed", check_seed(self.seed))
        for name, minimum in (("batch_size", 1), ("batch_tokens", 1), ("max_length", 2)):
            if getattr(self, name) is not None:
                value = check_int(getattr(self, name), param=name, minimum=minimum)
                object.__setattr__(self, name, value)
        check_choice(self.dtype, DTYPES, param="dtype")
        if not self.model or not isinstance(self.model, str):
            raise PrismError(
                "model must be 'default', a Hugging Face name or a local path.", param="model"
            )

    def settings(self) -> dict[str, Any]:
        """The fields that determine the feature values (batch sizes and device do not)."""
        values = asdict(self)
        for key in ("batch_size", "batch_tokens", "device"):
            values.pop(key)
        return values


def default_batch_size(device: Any) -> int:
    """Samples per batch: a GPU needs many rows to fill its matrix units (MFU 32% at 8 rows of
    1,024 tokens, 50% at 32 on an H100); a CPU gains nothing from more than a few."""
    return 128 if torch.device(device).type == "cuda" else 8


def default_batch_tokens(device: Any) -> int:
    """Tokens per batch (pad included; a packed row has none): small on a CPU (memory, no speed
    gain), large on a GPU (26.8 GiB peak with the Qwen2.5-0.5B architecture in bf16, packed;
    bench/peers.py)."""
    return 32768 if torch.device(device).type == "cuda" else 1024


@dataclass
class FeatureBatch:
    """Results for a list of samples, in the order given."""

    features: np.ndarray  # (n, dim) float32, unit rows
    loss: np.ndarray  # (n,) float32
    n_tokens: np.ndarray  # (n,) int32
    n_response_tokens: np.ndarray  # (n,) int32
    grad_norm: np.ndarray  # (n,) float32, estimated from the sketch (JL), not exact
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class _Landing:
    """A batch's sketches and losses on their way to the host: on a GPU, an asynchronous copy
    into pinned memory and an event that marks its end; on a CPU, the tensors themselves."""

    def __init__(self, sketches: torch.Tensor, losses: torch.Tensor) -> None:
        self.event = None
        if sketches.is_cuda:
            sketches, losses = (
                torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
                for t in (sketches, losses)
            )
            self.event = torch.cuda.Event()
            self.event.record()
        self.sketches, self.losses = sketches, losses

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(sketches, losses) as numpy arrays, once the copy is done."""
        if self.event is not None:
            self.event.synchronize()
        return self.sketches.numpy(), self.losses.numpy()


def _unit_rows(
    batch: list[int], landing: _Landing
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """(indices, unit features, sketch norms, losses) of one landed batch."""
    sketches, losses = landing.arrays()
    norms = np.linalg.norm(sketches, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    return batch, (sketches / safe[:, None]).astype(np.float32), norms.astype(np.float32), losses


class FeatureExtractor:
    """Computes sketched, unit-normalised per-sample gradients with one proxy and one sketch.

    ``fused_head`` (on when the model's head is plain, see ``plain_head``) computes the head and
    the loss at loss positions only; off, the model's full logits go through ``response_loss``.
    Both give the same features up to float rounding.
    """

    def __init__(self, proxy: Proxy, config: FeatureConfig):
        self.proxy = proxy
        self.config = config
        self.layers, self.first_block = scope_layers(proxy.model, config.scope)
        shapes = {name: layer_shape(module) for name, module in self.layers.items()}
        # A bf16 model's activations and gradients are bf16 already: project them on the tensor
        # cores too (float32 accumulation); a float32 model keeps float32 projections.
        model_dtype = next(proxy.model.parameters()).dtype
        self.sketch = KroneckerSketch(
            shapes,
            dim=config.dim,
            seed=config.seed,
            stage1_k=config.stage1_k,
            device=proxy.device,
            compute_dtype=model_dtype if model_dtype == torch.bfloat16 else torch.float32,
        )
        self.n_params = sum(a * b for a, b in shapes.values())
        self.head = plain_head(proxy.model)
        self.fused_head = self.head is not None
        self.fused_norms = True  # only acts on a GPU, see fused_rms_norms
        self.fused_mlps = True  # likewise, see fused_mlps
        self.spare_column = torch.device(proxy.device).type != "cuda"
        # Packed rows need the fused head (loss rows are gathered by hand) and a plain attention;
        # on by default where the variable-length flash kernel runs (a GPU, bf16/fp16 weights).
        self.pack = (
            self.fused_head
            and packed_attention_of(proxy.model)
            and torch.device(proxy.device).type == "cuda"
            and model_dtype in (torch.bfloat16, torch.float16)
        )

    def encode(self, samples: Sequence[Conversation | str]) -> list[Encoded]:
        return encode_many(self.proxy.tokenizer, samples, max_length=self.config.max_length)

    def width(self, length: int) -> int:
        return padded_width(length, spare_column=self.spare_column)

    def batches(self, encoded: Sequence[Encoded]) -> list[list[int]]:
        """Index batches of samples that share a padded width (longest first).

        Every sample is padded to its own length rounded up to ``PAD_MULTIPLE``, and only samples
        of equal padded width share a batch, so each sample goes through alike shapes whatever the
        batch size or neighbours; its features agree across batch sizes to float32 rounding.
        """
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i].input_ids), i))
        budget = self.config.batch_tokens or default_batch_tokens(self.proxy.device)
        if self.pack:
            return self._packed_batches(encoded, order, budget)
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(self.width(len(encoded[i].input_ids)), []).append(i)
        batches = []
        for width, members in sorted(groups.items(), reverse=True):
            # Activation memory grows with tokens per batch, so long samples go in fewer at a time.
            most = self.config.batch_size or default_batch_size(self.proxy.device)
            size = max(1, min(most, budget // width))
            batches += [members[j : j + size] for j in range(0, len(members), size)]
        return batches

    def _packed_batches(
        self, encoded: Sequence[Encoded], order: list[int], budget: int
    ) -> list[list[int]]:
        """Longest first, as many samples as fit ``budget`` real tokens (at least one) per batch;
        similar lengths share a batch, which keeps the segment sums' zero rows few."""
        most = self.config.batch_size or len(encoded)
        batches: list[list[int]] = []
        tokens = 0
        for i in order:
            length = len(encoded[i].input_ids)
            if not batches or tokens + length > budget or len(batches[-1]) >= most:
                batches.append([])
                tokens = 0
            batches[-1].append(i)
            tokens += length
        return batches

    def compute(
        self,
        encoded: Sequence[Encoded],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> FeatureBatch:
        """Features and per-sample columns of ``encoded``, in the order given."""
        n = len(encoded)
        out = FeatureBatch(
            features=np.zeros((n, self.config.dim), dtype=np.float32),
            loss=np.zeros(n, dtype=np.float32),
            n_tokens=np.array([len(e.input_ids) for e in encoded], dtype=np.int32),
            n_response_tokens=np.array([e.n_response for e in encoded], dtype=np.int32),
            grad_norm=np.zeros(n, dtype=np.float32),
            truncated=np.array([e.truncated for e in encoded], dtype=bool),
        )
        with closing(self.iter_batches(encoded)) as batches:
            for batch, features, norms, losses in batches:
                out.features[batch] = features
                out.grad_norm[batch] = norms
                out.loss[batch] = losses
                if on_batch is not None:
                    on_batch(len(batch))
        return out

    def iter_batches(
        self, encoded: Sequence[Encoded]
    ) -> Generator[tuple[list[int], np.ndarray, np.ndarray, np.ndarray], None, None]:
        """Per batch: (indices into ``encoded``, unit features, sketch norms, losses).

        Lets a caller keep what is finished at any batch boundary (``core.workspace.jobs.record`` closes a shard
        by time as well as by size). Close the iterator when stopping early.
        """
        hooked = {
            name: module
            for name, module in self.layers.items()
            if not (self.fused_head and module is self.head)
        }
        hooks = SketchHooks(self.sketch, hooked, self.first_block)
        try:
            with (
                fused_rms_norms(self.proxy.model) if self.fused_norms else nullcontext(),
                fused_mlps(self.proxy.model) if self.fused_mlps else nullcontext(),
                packed_rows(self.proxy.model) if self.pack else nullcontext(),
            ):
                # Batch i is handed over once batch i + 1 is launched, so the GPU is never idle
                # while the host reads a result back or prepares the next batch.
                landing: tuple[list[int], _Landing] | None = None
                for batch in self.batches(encoded):
                    launched = _Landing(*self._run_batch([encoded[i] for i in batch], hooks))
                    if landing is not None:
                        yield _unit_rows(*landing)
                    landing = (batch, launched)
                if landing is not None:
                    yield _unit_rows(*landing)
        finally:
            hooks.remove()

    def _run_batch(
        self, batch: Sequence[Encoded], hooks: SketchHooks
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Launch one batch: (n, dim) float64 sketches and (n,) float32 losses, on the device."""
        device = self.proxy.device
        if self.pack and self.head is not None:
            with torch.enable_grad():
                losses = self._packed_pass(self.head, batch, pack(batch), hooks)
            return self._finish(hooks, len(batch)), losses.detach().float()
        pad = self.proxy.tokenizer.pad_token_id or 0
        lengths = [len(e.input_ids) for e in batch]
        width = self.width(max(lengths))
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            input_ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
            attention[row, : len(e.input_ids)] = 1
        input_ids = to_device(input_ids, device)
        # Without padding no mask is needed, and none lets the attention use its causal kernel.
        mask = to_device(attention, device) if min(lengths) < width else None
        with torch.enable_grad():
            if self.fused_head and self.head is not None:
                losses = self._fused_head_pass(self.head, batch, input_ids, mask, hooks)
            else:
                logits = self.proxy.model(
                    input_ids=input_ids, attention_mask=mask, use_cache=False
                ).logits
                losses = response_loss(
                    logits,
                    input_ids,
                    torch.tensor([e.n_prompt for e in batch], device=device),
                    torch.tensor(lengths, device=device),
                )
                # Σ of per-sample losses: its gradient at sample i's outputs is exactly ∇ loss_i.
                losses.sum().backward()
        return self._finish(hooks, len(batch)), losses.detach().float()

    def _finish(self, hooks: SketchHooks, n: int) -> torch.Tensor:
        blocks = hooks.take()
        # One row at a time: a (1×k²)·(k²×d) product rounds the same whatever the batch size.
        sketches = torch.cat([self.sketch.finish(blocks[i : i + 1]) for i in range(n)])
        return sketches.double()

    def _packed_pass(
        self, head: nn.Linear, batch: Sequence[Encoded], packed: Packed, hooks: SketchHooks
    ) -> torch.Tensor:
        """The fused head pass over one packed row: the same loss rows, at packed positions."""
        device = self.proxy.device
        to = lambda array: to_device(array, device)  # noqa: E731
        offsets = to(packed.offsets)
        slot = packed.sample.astype(np.int64) * packed.max_length + packed.position_ids
        hooks.segments = (to(slot), len(batch), packed.max_length)
        try:
            hidden = self.proxy.model.base_model(
                input_ids=to(packed.input_ids)[None],
                position_ids=to(packed.position_ids)[None],
                use_cache=False,
                prism_cu_seqlens=offsets,
                prism_max_length=packed.max_length,
            ).last_hidden_state
            rows = LossRows.of(batch, device)
            return self._head_rows(
                head,
                hidden,
                rows,
                torch.zeros_like(rows.sample),
                offsets[rows.sample] + rows.position,
                hooks,
            )
        finally:
            hooks.segments = None

    def _fused_head_pass(
        self,
        head: nn.Linear,
        batch: Sequence[Encoded],
        input_ids: torch.Tensor,
        mask: torch.Tensor | None,
        hooks: SketchHooks,
    ) -> torch.Tensor:
        """Forward to the last hidden state, head + loss at the loss rows by hand, then backward."""
        hidden = self.proxy.model.base_model(
            input_ids=input_ids, attention_mask=mask, use_cache=False
        ).last_hidden_state
        rows = LossRows.of(batch, hidden.device)
        return self._head_rows(head, hidden, rows, rows.sample, rows.position, hooks)

    def _head_rows(
        self,
        head: nn.Linear,
        hidden: torch.Tensor,
        rows: LossRows,
        row: torch.Tensor,
        column: torch.Tensor,
        hooks: SketchHooks,
    ) -> torch.Tensor:
        """Head + loss at ``hidden[row, column]`` (one per loss row) by hand, then backward."""
        at_rows = hidden[row, column]
        head_name = next((n for n, m in self.layers.items() if m is head), None)
        with torch.no_grad():
            nll, grad, projected_rows = head_loss_backward(
                at_rows.detach(),
                head.weight,
                rows,
                chunk_rows=head_chunk_rows(head.weight.shape[0], hidden.device),
                project=(
                    None
                    if head_name is None
                    else lambda delta: self.sketch.project_output_grads(head_name, delta)
                ),
            )
            if head_name is not None and projected_rows is not None:
                # The head's block, shaped like every other layer's: (B, T, k) with δ = 0 off rows.
                projected_grads = projected_rows.new_zeros((*hidden.shape[:2], self.sketch.k))
                projected_grads[row, column] = projected_rows
                hooks.add(projected_grads, self.sketch.project_inputs(head_name, hidden.detach()))
        at_rows.backward(grad)
        losses = torch.zeros(len(rows.counts), dtype=torch.float32, device=hidden.device)
        return losses.index_add_(0, rows.sample, nll) / rows.counts
