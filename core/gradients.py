"""Per-sample loss gradients of a proxy LM, sketched to ``dim`` numbers and unit-normalised.

The loss of a sample is the mean token negative log-likelihood over its response tokens (prompt
tokens masked) after the proxy's chat template; a plain-text sample uses all of its tokens. The
gradient is taken with respect to the Linear weights in the chosen scope and sketched by
``core.sketch.KroneckerSketch`` from forward/backward hooks, so no per-sample gradient is ever
materialised and no weight gradient is ever computed (parameters stay frozen; the backward pass
only carries activation gradients down to the first block in scope).

Batching is exact: sequences are right-padded and attention-masked, so a sample's loss depends
only on its own tokens, and the backward of the summed per-sample losses hands each sample exactly
its own output gradients.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import PrismError
from core.proxy import DTYPES, Proxy
from core.sketch import STAGE1_K, KroneckerSketch, validate_dim

Conversation = list[dict[str, str]]
PAD_MULTIPLE = 64
_FALLBACK_TEMPLATE = "### User:\n{prompt}\n\n### Assistant:\n"


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the features, plus how to compute them (batch size, device)."""

    model: str = "default"
    scope: str = "all"
    dim: int = 1024
    seed: int = 0
    batch_size: int = 8
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
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
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
    nll = nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), targets, reduction="none"
    )
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
    n_in, n_out = module.weight.shape  # Conv1D stores (in, out)
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


def default_batch_tokens(device: Any) -> int:
    """Padded tokens per batch: small on a CPU (memory, no speed gain), large on a GPU."""
    return 32768 if torch.device(device).type == "cuda" else 1024


def padded_width(length: int) -> int:
    """The sequence width a sample of ``length`` tokens is computed at.

    At least one pad column is always added: with an all-ones mask the attention takes another
    kernel path, which would make a sample's bits depend on whether a neighbour needed padding.
    """
    return (length // PAD_MULTIPLE + 1) * PAD_MULTIPLE


@dataclass
class FeatureBatch:
    """Results for a list of samples, in the order given."""

    features: np.ndarray  # (n, dim) float32, unit rows
    loss: np.ndarray  # (n,) float32
    n_tokens: np.ndarray  # (n,) int32
    n_response_tokens: np.ndarray  # (n,) int32
    grad_norm: np.ndarray  # (n,) float32, estimated from the sketch (JL), not exact
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


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

    def _make_hook(self, name: str) -> Callable:
        sketch = self.sketch

        def forward_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not output.requires_grad:
                return
            with torch.no_grad():
                projected_inputs = sketch.project_inputs(name, inputs[0].detach())

            def backward_hook(grad: torch.Tensor) -> None:
                with torch.no_grad():
                    projected_grads = sketch.project_output_grads(name, grad)
                    block = torch.matmul(projected_grads.transpose(1, 2), projected_inputs)
                    self.blocks = block if self.blocks is None else self.blocks.add_(block)

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
    """Computes sketched, unit-normalised per-sample gradients with one proxy and one sketch."""

    def __init__(self, proxy: Proxy, config: FeatureConfig):
        self.proxy = proxy
        self.config = config
        self.layers, self.first_block = scope_layers(proxy.model, config.scope)
        shapes = {name: _shape(module) for name, module in self.layers.items()}
        self.sketch = KroneckerSketch(
            shapes, dim=config.dim, seed=config.seed, stage1_k=config.stage1_k, device=proxy.device
        )
        self.n_params = sum(a * b for a, b in shapes.values())

    def encode(self, samples: Sequence[Conversation | str]) -> list[Encoded]:
        return [encode(self.proxy.tokenizer, s, max_length=self.config.max_length) for s in samples]

    def batches(self, encoded: Sequence[Encoded]) -> list[list[int]]:
        """Index batches of samples that share a padded width (longest first).

        Every sample is padded to its own length rounded up to ``PAD_MULTIPLE``, and only samples
        of equal padded width share a batch. Each sample then goes through the same shapes
        whatever the batch size or neighbours, which makes features bit-identical across batch
        sizes on the CPU (BLAS row results do not depend on the row count at these sizes).
        """
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i].input_ids), i))
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(padded_width(len(encoded[i].input_ids)), []).append(i)
        budget = self.config.batch_tokens or default_batch_tokens(self.proxy.device)
        batches = []
        for width, members in sorted(groups.items(), reverse=True):
            # Activation memory grows with tokens per batch, so long samples go in fewer at a time.
            size = max(1, min(self.config.batch_size, budget // width))
            batches += [members[j : j + size] for j in range(0, len(members), size)]
        return batches

    def compute(
        self,
        encoded: Sequence[Encoded],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> FeatureBatch:
        n = len(encoded)
        dim = self.config.dim
        out = FeatureBatch(
            features=np.zeros((n, dim), dtype=np.float32),
            loss=np.zeros(n, dtype=np.float32),
            n_tokens=np.array([len(e.input_ids) for e in encoded], dtype=np.int32),
            n_response_tokens=np.array([e.n_response for e in encoded], dtype=np.int32),
            grad_norm=np.zeros(n, dtype=np.float32),
            truncated=np.array([e.truncated for e in encoded], dtype=bool),
        )
        hooks = _Hooks(self.sketch, self.layers, self.first_block)
        try:
            for batch in self.batches(encoded):
                sketches, losses = self._run_batch([encoded[i] for i in batch], hooks)
                norms = np.linalg.norm(sketches.astype(np.float64), axis=1)
                safe = np.where(norms > 0, norms, 1.0)
                out.features[batch] = (sketches / safe[:, None]).astype(np.float32)
                out.grad_norm[batch] = norms.astype(np.float32)
                out.loss[batch] = losses
                if on_batch is not None:
                    on_batch(len(batch))
        finally:
            hooks.remove()
        return out

    def _run_batch(self, batch: Sequence[Encoded], hooks: _Hooks) -> tuple[np.ndarray, np.ndarray]:
        device = self.proxy.device
        pad = self.proxy.tokenizer.pad_token_id or 0
        width = padded_width(max(len(e.input_ids) for e in batch))
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            input_ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
            attention[row, : len(e.input_ids)] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        lengths = attention.sum(dim=1)
        n_prompt = torch.tensor([e.n_prompt for e in batch], device=device)
        with torch.enable_grad():
            logits = self.proxy.model(
                input_ids=input_ids, attention_mask=attention, use_cache=False
            ).logits
            losses = response_loss(logits, input_ids, n_prompt, lengths)
            # Σ of per-sample losses: its gradient at sample i's outputs is exactly ∇ loss_i.
            losses.sum().backward()
        blocks = hooks.take()
        # One row at a time: a (1×k²)·(k²×d) product rounds the same whatever the batch size.
        sketches = torch.cat([self.sketch.finish(blocks[i : i + 1]) for i in range(len(batch))])
        return sketches.double().cpu().numpy(), losses.detach().float().cpu().numpy()


def is_finite_features(features: np.ndarray) -> bool:
    return bool(np.isfinite(features).all())


def expected_jl_error(dim: int) -> float:
    """Typical absolute error of a sketched cosine, ≈ 1/√dim (for reporting)."""
    return 1.0 / math.sqrt(dim)
