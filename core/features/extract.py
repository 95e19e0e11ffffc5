"""Per-sample loss gradients of a proxy LM, sketched to ``dim`` numbers and unit-normalised.

The loss of a sample is the mean token negative log-likelihood over its response tokens (prompt
tokens masked) after the proxy's chat template; a plain-text sample uses all of its tokens. The
gradient is taken with respect to the Linear weights in the chosen scope and sketched by
``core.features.sketch.KroneckerSketch`` from forward/backward hooks, so no per-sample gradient is ever
materialised and no weight gradient is ever computed (parameters stay frozen; the backward pass
only carries activation gradients down to the first block in scope).

Batching is exact: sequences are right-padded and attention-masked, so a sample's loss depends
only on its own tokens, and the backward of the summed per-sample losses hands each sample exactly
its own output gradients.

For models whose logits are plainly ``lm_head(last hidden state)`` (Llama, Mistral, Qwen2/3, GPT-2)
the output head and the loss are computed only at the positions that carry loss, in chunks of rows,
with the head's backward done by hand: the full (batch × length × vocabulary) logits are never held,
and the features are the same (the head's weight gradient only involves those positions).

On a GPU (see bench/README.md for what each step bought on an H100): a bf16 model's sketch
projections run in bf16 on the tensor cores; a batch of equal lengths runs without pad column or
mask (the fused causal attention kernel); the loss over the head's logits is one ``torch.compile``d
function; RMSNorms run as PyTorch's fused kernel. On a CPU the computation is what it always was.
Across batch sizes, processors and devices a sample's features agree to float32 rounding (~1e-7 on
unit rows, tested at 1e-5), not bit for bit: math libraries pick kernels by shape and processor.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from core.errors import PrismError
from core.features.proxy import DTYPES, Proxy
from core.features.sketch import STAGE1_K, KroneckerSketch, validate_dim

Conversation = list[dict[str, str]]
PAD_MULTIPLE = 64
# Models whose logits are exactly lm_head(base_model(...).last_hidden_state): no scale, no capping.
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt2"})
_FALLBACK_TEMPLATE = "### User:\n{prompt}\n\n### Assistant:\n"


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
        if not isinstance(self.seed, int) or self.seed < 0:
            raise PrismError(f"seed (--seed) must be a non-negative integer, got {self.seed!r}.")
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise PrismError(f"batch_size (--batch-size) must be ≥ 1, got {self.batch_size!r}.")
        if self.batch_tokens is not None and (
            not isinstance(self.batch_tokens, int) or self.batch_tokens < 1
        ):
            raise PrismError(
                f"batch_tokens (--batch-tokens) must be ≥ 1, got {self.batch_tokens!r}."
            )
        if self.max_length is not None and (
            not isinstance(self.max_length, int) or self.max_length < 2
        ):
            raise PrismError(
                f"max_length (--max-length) must be ≥ 2 tokens, got {self.max_length!r}."
            )
        if self.dtype not in DTYPES:
            raise PrismError(
                f"dtype (--dtype) must be one of {', '.join(DTYPES)}, got {self.dtype!r}."
            )
        if not self.model or not isinstance(self.model, str):
            raise PrismError(
                "model (--model) must be 'default', a Hugging Face name or a local path."
            )

    def settings(self) -> dict[str, Any]:
        """The fields that determine the feature values (batch sizes and device do not)."""
        values = asdict(self)
        for key in ("batch_size", "batch_tokens", "device"):
            values.pop(key)
        return values


def parse_scope(scope: str) -> int | None:
    """``all`` → None (every Linear incl. the output head); ``last:K`` → K (last K blocks only)."""
    if scope == "all":
        return None
    match = re.fullmatch(r"last:(\d+)", scope or "")
    if match and int(match.group(1)) >= 1:
        return int(match.group(1))
    raise PrismError(
        f"scope (--scope) must be 'all' (every Linear weight, output head included) or 'last:K' "
        f"(the Linear weights of the last K transformer blocks, K ≥ 1); got {scope!r}."
    )


# --------------------------------------------------------------------------------------------
# Tokenisation


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


# --------------------------------------------------------------------------------------------
# Loss


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


# --------------------------------------------------------------------------------------------
# Scope


def _decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer's list of blocks: the longest ModuleList in the model."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise PrismError("Could not find the transformer blocks of this model (no ModuleList).")
    return max(lists, key=len)


def _is_linear(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")  # GPT-2 style


def _shape(module: nn.Module) -> tuple[int, int]:
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
            f"scope last:{last_k} asks for more blocks than the model has ({len(blocks)})."
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
        raise PrismError(f"scope {scope!r} holds no Linear layers in this model.")
    return layers, blocks[first]


# --------------------------------------------------------------------------------------------
# Extraction


def default_batch_size(device: Any) -> int:
    """Samples per batch: a GPU needs many rows to fill its matrix units (MFU 32% at 8 rows of
    1,024 tokens, 50% at 32 on an H100); a CPU gains nothing from more than a few."""
    return 128 if torch.device(device).type == "cuda" else 8


def default_batch_tokens(device: Any) -> int:
    """Padded tokens per batch: small on a CPU (memory, no speed gain), large on a GPU."""
    return 32768 if torch.device(device).type == "cuda" else 1024


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


def head_chunk_rows(vocab_size: int, device: Any) -> int:
    """Loss positions whose logits are held at once: about 2²⁸ logits on a GPU, 2²⁴ on a CPU."""
    budget = 1 << 28 if torch.device(device).type == "cuda" else 1 << 24
    return max(1, budget // vocab_size // PAD_MULTIPLE) * PAD_MULTIPLE


def plain_head(model: nn.Module) -> nn.Linear | None:
    """The output head if the model's logits are exactly ``head(base_model(...)[0])``, else None."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if model_type in PLAIN_HEAD_MODEL_TYPES and get_head else None
    if isinstance(head, nn.Linear) and head.bias is None and model.base_model is not model:
        return head
    return None


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
        return cls(**{k: torch.from_numpy(v).to(device) for k, v in arrays.items()})


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
    fused = _compiled_nll_and_delta() if h.is_cuda else None
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
            except Exception as error:  # noqa: BLE001 - any compiler failure: stay correct, go eager
                warnings.warn(
                    f"torch.compile of the loss failed ({error!r:.200}); using eager.",
                    stacklevel=2,
                )
                _COMPILE_FAILED.add("nll_and_delta")
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


def _compiled_nll_and_delta() -> Callable | None:
    return None if "nll_and_delta" in _COMPILE_FAILED else _compiled_nll_and_delta_cached()


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


@dataclass
class FeatureBatch:
    """Results for a list of samples, in the order given."""

    features: np.ndarray  # (n, dim) float32, unit rows
    loss: np.ndarray  # (n,) float32
    n_tokens: np.ndarray  # (n,) int32
    n_response_tokens: np.ndarray  # (n,) int32
    grad_norm: np.ndarray  # (n,) float32, estimated from the sketch (JL), not exact
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _block(projected_grads: torch.Tensor, projected_inputs: torch.Tensor) -> torch.Tensor:
    """(B, T, k) × (B, T, k) → (B, k, k) float32: Σ_t g_t a_tᵀ."""
    g, a = projected_grads.transpose(1, 2), projected_inputs
    if g.is_cuda and g.dtype == a.dtype == torch.bfloat16:
        # On the tensor cores with a float32 result, where this torch has it (CUDA, ≥ 2.8).
        try:
            return torch.bmm(g, a, out_dtype=torch.float32)
        except (TypeError, RuntimeError, NotImplementedError):
            pass
    return torch.matmul(g.float(), a.float())


class _Hooks:
    """Forward hooks that project activations; tensor hooks that fold in output gradients."""

    def __init__(
        self, sketch: KroneckerSketch, layers: dict[str, nn.Module], first_block: nn.Module
    ):
        self.sketch = sketch
        self.blocks: torch.Tensor | None = None
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
        """Fold Σ_t (R_out δ_t)(R_in a_t)ᵀ of one layer, (B, T, k) each, into the (B, k, k) sum."""
        block = _block(projected_grads, projected_inputs)
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
            raise PrismError("No gradient reached the layers in scope; check --scope.")
        return blocks

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


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
        shapes = {name: _shape(module) for name, module in self.layers.items()}
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
        self.spare_column = torch.device(proxy.device).type != "cuda"

    def encode(self, samples: Sequence[Conversation | str]) -> list[Encoded]:
        return [encode(self.proxy.tokenizer, s, max_length=self.config.max_length) for s in samples]

    def width(self, length: int) -> int:
        return padded_width(length, spare_column=self.spare_column)

    def batches(self, encoded: Sequence[Encoded]) -> list[list[int]]:
        """Index batches of samples that share a padded width (longest first).

        Every sample is padded to its own length rounded up to ``PAD_MULTIPLE``, and only samples
        of equal padded width share a batch, so each sample goes through alike shapes whatever the
        batch size or neighbours; its features agree across batch sizes to float32 rounding.
        """
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i].input_ids), i))
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(self.width(len(encoded[i].input_ids)), []).append(i)
        budget = self.config.batch_tokens or default_batch_tokens(self.proxy.device)
        batches = []
        for width, members in sorted(groups.items(), reverse=True):
            # Activation memory grows with tokens per batch, so long samples go in fewer at a time.
            most = self.config.batch_size or default_batch_size(self.proxy.device)
            size = max(1, min(most, budget // width))
            batches += [members[j : j + size] for j in range(0, len(members), size)]
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

        Lets a caller keep what is finished at any batch boundary (``core.workspace.jobs`` closes a shard
        by time as well as by size). Close the iterator when stopping early.
        """
        hooked = {
            name: module
            for name, module in self.layers.items()
            if not (self.fused_head and module is self.head)
        }
        hooks = _Hooks(self.sketch, hooked, self.first_block)
        try:
            with fused_rms_norms(self.proxy.model) if self.fused_norms else nullcontext():
                for batch in self.batches(encoded):
                    sketches, losses = self._run_batch([encoded[i] for i in batch], hooks)
                    norms = np.linalg.norm(sketches.astype(np.float64), axis=1)
                    safe = np.where(norms > 0, norms, 1.0)
                    features = (sketches / safe[:, None]).astype(np.float32)
                    yield batch, features, norms.astype(np.float32), losses
        finally:
            hooks.remove()

    def _run_batch(self, batch: Sequence[Encoded], hooks: _Hooks) -> tuple[np.ndarray, np.ndarray]:
        device = self.proxy.device
        pad = self.proxy.tokenizer.pad_token_id or 0
        lengths = [len(e.input_ids) for e in batch]
        width = self.width(max(lengths))
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            input_ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
            attention[row, : len(e.input_ids)] = 1
        input_ids = input_ids.to(device)
        # Without padding no mask is needed, and none lets the attention use its causal kernel.
        mask = attention.to(device) if min(lengths) < width else None
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
        blocks = hooks.take()
        # One row at a time: a (1×k²)·(k²×d) product rounds the same whatever the batch size.
        sketches = torch.cat([self.sketch.finish(blocks[i : i + 1]) for i in range(len(batch))])
        return sketches.double().cpu().numpy(), losses.detach().float().cpu().numpy()

    def _fused_head_pass(
        self,
        head: nn.Linear,
        batch: Sequence[Encoded],
        input_ids: torch.Tensor,
        mask: torch.Tensor | None,
        hooks: _Hooks,
    ) -> torch.Tensor:
        """Forward to the last hidden state, head + loss at the loss rows by hand, then backward."""
        hidden = self.proxy.model.base_model(
            input_ids=input_ids, attention_mask=mask, use_cache=False
        ).last_hidden_state
        rows = LossRows.of(batch, hidden.device)
        at_rows = hidden[rows.sample, rows.position]
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
                projected_grads[rows.sample, rows.position] = projected_rows
                hooks.add(projected_grads, self.sketch.project_inputs(head_name, hidden.detach()))
        at_rows.backward(grad)
        losses = torch.zeros(len(batch), dtype=torch.float32, device=hidden.device)
        return losses.index_add_(0, rows.sample, nll) / rows.counts


def is_finite_features(features: np.ndarray) -> bool:
    return bool(np.isfinite(features).all())


def expected_jl_error(dim: int) -> float:
    """Typical absolute error of a sketched cosine, ≈ 1/√dim (for reporting)."""
    return 1.0 / math.sqrt(dim)
