"""Analyses of a whole workspace, stored back into it under the one result schema.

Per-sample results become derived columns (``cluster``, ``umap_x``, ``umap_y``; which analysis
writes which is declared in ``core.workspace.schema``); global results become a typed manifest
section (``ClustersSection``, ``LayoutSection``); scores handed back are frozen dataclasses
(``ClusterScore``, ``TextScores``). The CLI and the app both call these, so a map built in one is
the map seen in the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.data.columns import ColumnMap
from core.devices import resolve_device
from core.errors import PrismError
from core.measures.clusters import (
    cluster_sizes,
    default_n_clusters,
    sparse_clusters,
    spherical_kmeans,
)
from core.measures.embed import (
    DEFAULT_MODEL,
    PACKAGED_MODEL_NAME,
    EmbedConfig,
    count_truncated,
    embed_texts,
    load_encoder,
)
from core.measures.layout import FIT_SAMPLE, SAMPLED_METHOD, fit_rows, umap_layout
from core.measures.lexical import NGRAM_RANGE, lexical_summary
from core.measures.textspace import lexical_scores, sample_texts
from core.measures.vendi import (
    QS_DEFAULT,
    cluster_vendi,
    gram_from_npy,
    q_label,
    subset_vendi,
    vendi_from_covariance,
)
from core.validate import check_indices
from core.workspace.manifest import (
    ClustersSection,
    EmbeddingSection,
    LayoutSection,
    LexicalSection,
    Scores,
    scores_record,
)
from core.workspace.store import Workspace

if TYPE_CHECKING:
    from core.measures.embed import EmbedConfig


def cluster_workspace(
    workspace: Workspace, *, n_clusters: int | None = None, seed: int = 0
) -> ClustersSection:
    """Spherical k-means of the features; stores ``cluster`` and the manifest ``clusters`` section."""
    features = workspace.features(mmap=False)
    n = len(features)
    k = default_n_clusters(n) if n_clusters is None else n_clusters
    if not 1 <= k <= n:
        raise PrismError(
            f"n_clusters must be between 1 and the number of samples ({n:,}); got {k}.",
            param="n_clusters",
        )
    result = spherical_kmeans(features, n_clusters=k, seed=seed)
    section = clusters_section(
        result.labels, result.objective, n_clusters=k, seed=seed, method=result.method
    )
    with workspace.lock():  # labels and their section are written together
        workspace.add_columns({"cluster": result.labels.astype(np.int32)})
        workspace.set_section(section)
    return section


def clusters_section(
    labels: np.ndarray, objective: float, *, n_clusters: int, seed: int, method: str = "exact"
) -> ClustersSection:
    """The one summary of a clustering (sizes, median, sparse clusters), for any space."""
    sizes = cluster_sizes(labels, n_clusters=n_clusters)
    sparse = sparse_clusters(sizes)
    return ClustersSection(
        n_clusters=int(n_clusters),
        seed=int(seed),
        sizes=tuple(int(s) for s in sizes),
        median_size=float(np.median(sizes)),
        sparse=tuple(int(c) for c in np.flatnonzero(sparse)),
        n_sparse=int(sparse.sum()),
        n_in_sparse=int(sizes[sparse].sum()),
        objective=float(objective),
        method="spherical k-means (cosine), k-means++ init"
        + ("" if method == "exact" else f", {method}"),
    )


def layout_workspace(
    workspace: Workspace,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    fit_sample: int | None = FIT_SAMPLE,
) -> np.ndarray:
    """UMAP (cosine) 2-D coordinates; stores ``umap_x``/``umap_y`` and the ``layout`` section.

    Above ``FIT_SAMPLE`` rows UMAP is fit on a seeded sample and the rest transformed, reading the
    memory-mapped features block by block; ``fit_rows`` in the section says how many it was fit on.
    """
    features = workspace.features(mmap=True)
    n = int(features.shape[0])
    n_fit = fit_rows(n, fit_sample)
    sampled = n_fit < n
    if not sampled:  # small enough: read into memory, as UMAP on all rows reads them all anyway
        features = np.array(features)
    coords = umap_layout(
        features, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist, fit_sample=fit_sample
    )
    with workspace.lock():  # coordinates and their section are written together
        workspace.add_columns({"umap_x": coords[:, 0], "umap_y": coords[:, 1]})
        workspace.set_section(
            LayoutSection(
                method=SAMPLED_METHOD if sampled else "umap",
                metric="cosine",
                seed=int(seed),
                n_neighbors=int(n_neighbors),
                min_dist=float(min_dist),
                fit_rows=n_fit,
            )
        )
    return coords


def workspace_scores(
    workspace: Workspace, *, rows: np.ndarray | None = None, qs: tuple[float, ...] | None = None
) -> Scores:
    """G-Vendi and order-q Vendi of the whole set (streamed from ``features.npy``) or of ``rows``.

    The record is the manifest's ``scores`` section; q = 1 is always included. Nothing is
    written.
    """

    orders = QS_DEFAULT if qs is None else tuple(sorted({1.0, *qs}))
    section = workspace.feature_section
    dim = int(section.dim or 0) if section is not None and workspace.has_features else 0
    if rows is None:
        workspace.features()  # raises a clear message when features are missing
        gram, n = gram_from_npy(workspace.features_path)
        return scores_record(vendi_from_covariance(gram, qs=orders), n=n, dim=dim)
    scores = subset_vendi(workspace.features(), rows, qs=orders)
    return scores_record(scores, n=len(rows), dim=dim)


@dataclass(frozen=True)
class ClusterScore:
    """One cluster of ``prism cluster``: its size, whether it is sparse, its Vendi per order q."""

    cluster: int
    size: int
    sparse: bool
    vendi: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "vendi": dict(self.vendi)}


def cluster_scores(
    workspace: Workspace, *, qs: tuple[float, ...] | None = None
) -> list[ClusterScore]:
    """Per cluster of ``prism cluster``: its size, whether it is sparse and its order-q Vendi."""
    if "cluster" not in workspace.samples(columns=None).columns:
        raise PrismError(
            f"{workspace.path} has no clusters yet; run `prism cluster {workspace.path}` first."
        )
    labels = workspace.samples(columns=["cluster"])["cluster"].to_numpy()
    orders = QS_DEFAULT if qs is None else tuple(sorted({1.0, *qs}))
    scores = cluster_vendi(workspace.features(), labels, qs=orders)
    sizes = np.bincount(labels)
    sparse = set((workspace.clusters or ClustersSection()).sparse)
    return [
        ClusterScore(
            cluster=int(c),
            size=int(sizes[c]),
            sparse=int(c) in sparse,
            vendi={q_label(q): float(v) for q, v in scores[c].items()},
        )
        for c in sorted(scores)
    ]


# -- text space: sample texts, lexical scores, sentence embeddings ---------------------------
# (the pure parts live in core.measures.textspace, core.measures.lexical, core.measures.embed)

EMBEDDING_COLUMNS = ("emb_cluster", "emb_umap_x", "emb_umap_y", "nbr_agreement")


def workspace_texts(workspace: Workspace) -> list[str]:
    """``sample_texts`` of every sample of a workspace, in row order (cached per file version)."""

    columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
    path = workspace.samples_path
    stat = path.stat()
    return list(_texts(str(path), stat.st_mtime_ns, stat.st_size, columns))


@lru_cache(maxsize=4)
def _texts(path: str, mtime_ns: int, size: int, columns: Any) -> tuple[str, ...]:
    # Every diversity table asks for the texts of each of its subsets: read them once.
    wanted = ["id", *columns.content_columns]
    return tuple(sample_texts(pd.read_parquet(path, columns=wanted), columns))


def _fingerprint(workspace: Workspace) -> str | None:
    value = workspace.dataset.fingerprint
    return None if value is None else str(value)


def lexical_workspace(workspace: Workspace, *, texts: list[str] | None = None) -> LexicalSection:
    """distinct-1…4 and the n-gram Vendi score of the whole set; stored as section ``lexical``."""
    texts = workspace_texts(workspace) if texts is None else texts
    start = time.perf_counter()
    record: dict[str, Any] = {
        "n": len(texts),
        "fingerprint": _fingerprint(workspace),
        "tokens": "lower-cased word tokens (runs of letters, digits, underscore)",
        "ngram_range": list(NGRAM_RANGE),
        **lexical_summary(texts),
    }
    record["seconds"] = round(time.perf_counter() - start, 3)
    section = LexicalSection.from_dict(record)
    workspace.set_section(section)
    return section


def has_lexical(workspace: Workspace) -> bool:
    """True when the section ``lexical`` was computed for this workspace's current samples."""
    cached = workspace.lexical
    return (
        cached is not None
        and cached.n == workspace.n_samples
        and cached.fingerprint == _fingerprint(workspace)
    )


@dataclass(frozen=True)
class TextScores:
    """Text-space measures of some rows: embedding Vendi (None without embeddings), n-gram Vendi
    (None when no text has a word token) and distinct-2."""

    embedding_vendi: float | None = None
    ngram_vendi: float | None = None
    distinct_2: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        """Every measure by name, None included (``prism score --json``'s ``text``)."""
        return asdict(self)


def text_scores(workspace: Workspace, rows: np.ndarray) -> TextScores:
    """Embedding Vendi, n-gram Vendi and distinct-2 of the samples at ``rows`` (row positions).

    Repeated rows count repeatedly, as in ``core.measures.vendi.subset_vendi``. ``embedding_vendi``
    is None while the workspace has no embeddings; ``ngram_vendi`` is None when no selected text
    has a word token. For the whole set, the values stored by ``lexical_workspace`` are reused.
    """
    texts = workspace_texts(workspace)
    positions = check_indices(rows, len(texts), param="rows")
    embedding = None
    if workspace.has_embeddings:
        embedding = subset_vendi(workspace.embeddings(), positions, qs=(1.0,))[1.0]
    whole = positions.size == len(texts) and np.array_equal(
        np.sort(positions), np.arange(len(texts))
    )
    cached = workspace.lexical
    if whole and cached is not None and has_lexical(workspace):
        return TextScores(embedding, cached.ngram_vendi, cached.distinct_2)
    lexical = lexical_scores([texts[i] for i in positions])
    return TextScores(embedding, lexical["ngram_vendi"], lexical["distinct_2"])


# progress(done, total, stage): stage is "embedding", then "clusters", "map", "neighbours",
# "lexical" (each reported once with done == total when it finishes).
EmbedProgress = Callable[[int, int, str], None]


def embed_workspace(
    workspace: Workspace,
    config: EmbedConfig | None = None,
    *,
    progress: EmbedProgress | None = None,
    **settings: Any,
) -> EmbeddingSection:
    """Embed a workspace's samples and run the text-space analyses; returns the ``embedding`` section.

    ``config`` (or the same settings as keywords: model, batch_size, device, seed, n_clusters,
    n_neighbors) says how (``core.measures.embed.EmbedConfig``). Writes ``embeddings.npy``,
    clusters them (spherical k-means) and lays them out (UMAP) exactly as the gradient features
    are, compares their neighbourhoods with the gradient features' when those exist, and stores
    the columns ``EMBEDDING_COLUMNS`` and the manifest sections ``embedding`` and ``lexical``.
    ``seed`` seeds k-means, UMAP and the pair sample of the rank correlation; ``n_clusters``
    defaults to ≈ N/10 as for gradient features; ``n_neighbors`` is the neighbourhood size of
    ``nbr_agreement``. Without gradient features ``nbr_agreement`` is not written (a stale one
    is dropped) and the section's ``neighbours`` is None.
    """
    # heavy: sentence-transformers and torch, only when embedding texts
    from core.measures.embed import (
        EmbedConfig,
    )
    from core.measures.neighbours import compare_spaces
    from core.measures.vendi import q_label, vendi_scores
    from core.workspace.store import now

    if config is None:
        config = EmbedConfig(**settings)
    elif settings:
        raise TypeError("pass either an EmbedConfig or its settings as keywords, not both")
    texts = workspace_texts(workspace)
    n = len(texts)
    if n < 2:
        raise PrismError(f"{workspace.path} has {n} sample; embeddings need at least 2.")
    n_clusters = default_n_clusters(n) if config.n_clusters is None else int(config.n_clusters)
    if n_clusters > n:
        raise PrismError(
            f"n_clusters must be between 1 and the number of samples ({n:,}); got {n_clusters}.",
            param="n_clusters",
        )
    if config.n_neighbors > n - 1:
        raise PrismError(
            f"n_neighbors must be at most n − 1 = {n - 1}; got {config.n_neighbors}.",
            param="n_neighbors",
        )

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
    n_truncated = count_truncated(encoder, texts)

    clustering = spherical_kmeans(embeddings, n_clusters=n_clusters, seed=config.seed)
    report(1, 1, "clusters")
    coords = umap_layout(embeddings, seed=config.seed)
    report(1, 1, "map")

    columns: dict[str, np.ndarray] = {
        "emb_cluster": clustering.labels.astype(np.int32),
        "emb_umap_x": coords[:, 0],
        "emb_umap_y": coords[:, 1],
    }
    neighbours: dict[str, Any] | None = None
    device_used = resolve_device(config.device)
    if workspace.has_features:
        comparison = compare_spaces(
            workspace.features(mmap=False),
            embeddings,
            n_neighbors=config.n_neighbors,
            seed=config.seed,
            device=device_used if device_used.startswith("cuda") else "cpu",
        )
        columns["nbr_agreement"] = comparison.agreement
        neighbours = {
            "k": comparison.n_neighbors,
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
    workspace.drop_sections(EmbeddingSection, save=False)
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
        "fingerprint": _fingerprint(workspace),
        "text": "prompt and response (or every message) joined by a blank line",
        "max_seq_length": int(getattr(encoder, "max_seq_length", 0) or 0),
        "n_truncated": n_truncated,
        "created": now(),
        "seconds": round(embed_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "device": device_used,
        "batch_size": config.batch_size,
        "embedding_vendi": float(vendi[1.0]),
        "vendi": {q_label(q): float(v) for q, v in vendi.items()},
        "clusters": clusters_section(
            clustering.labels, clustering.objective, n_clusters=n_clusters, seed=config.seed
        ).to_dict(),
        "layout": {"method": "umap", "metric": "cosine", "seed": config.seed, "n_neighbors": 15},
        "neighbours": neighbours,
        "settings": asdict(config),
    }
    stored = EmbeddingSection.from_dict(section)
    workspace.set_section(stored)
    return stored
