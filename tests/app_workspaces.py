"""Prepared workspaces for the app's tests and benchmark, written directly (no model, no UMAP).

``make_workspace`` writes what ``prism features`` + ``prism cluster`` + ``prism map`` would: the
dataset and features sections, unit features, scores, clusters and 2-D coordinates, in the same
schema. Features are a seeded mixture of directions, so clusters, sparse clusters and the map
all have real structure; the text is GSM8K (the demo data) or generated word problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.measures.clusters import cluster_sizes, default_n_clusters, sparse_clusters
from core.measures.vendi import covariance, vendi_from_covariance
from core.workspace.manifest import EmbeddingSection, scores_record
from core.workspace.store import Workspace, write_npy

_TOPICS = [
    "apples",
    "trains",
    "tickets",
    "marbles",
    "savings",
    "recipes",
    "gardens",
    "bicycles",
    "paint",
    "books",
    "cookies",
    "fences",
    "salaries",
    "tanks",
    "chickens",
    "rent",
]


def _texts(n: int, *, gsm8k: bool, seed: int) -> pd.DataFrame:
    if gsm8k:
        from core.data.read import read_table

        table = read_table("demo:gsm8k").head(n).reset_index(drop=True)
        if len(table) == n:
            return table[["question", "answer"]]
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, len(_TOPICS), size=n)
    numbers = rng.integers(2, 99, size=(n, 2))
    question = [
        f"Sam has {a} {_TOPICS[t]} and buys {b} more. How many {_TOPICS[t]} does Sam have now?"
        for t, (a, b) in zip(topics, numbers, strict=True)
    ]
    answer = [f"{a} + {b} = {a + b}\n#### {a + b}" for a, b in numbers]
    return pd.DataFrame({"question": question, "answer": answer})


def make_workspace(
    path: str | Path,
    *,
    n: int = 240,
    dim: int = 64,
    n_clusters: int | None = None,
    seed: int = 0,
    gsm8k: bool = True,
    extra_columns: bool = True,
    text_space: bool = False,
) -> Workspace:
    """A finished workspace of ``n`` samples (features, scores, clusters, map) at ``path``."""
    rng = np.random.default_rng(seed)
    k = n_clusters or default_n_clusters(n)
    # Zipf-like cluster sizes, so that about half the clusters are sparse.
    weights = 1.0 / np.arange(1, k + 1) ** 0.8
    labels = np.sort(rng.choice(k, size=n, p=weights / weights.sum()))
    labels[:k] = np.arange(k)  # every cluster has a member
    labels = np.sort(labels)
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    features = centres[labels] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    # The map: each cluster at its own spot, its samples scattered around it.
    spots = rng.uniform(-10, 10, size=(k, 2))
    coords = spots[labels] + rng.normal(scale=0.7, size=(n, 2))
    # Relabel so that 0 is the largest cluster, as core.measures.clusters does.
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    relabel = np.empty(k, dtype=np.int64)
    relabel[order] = np.arange(k)
    labels = relabel[labels].astype(np.int32)

    samples = _texts(n, gsm8k=gsm8k, seed=seed)
    samples.insert(0, "id", [str(i) for i in range(n)])
    if extra_columns:
        samples["difficulty"] = np.array(["easy", "medium", "hard"])[rng.integers(0, 3, n)]
        samples["steps"] = rng.integers(1, 9, n)
    samples["loss"] = rng.gamma(2.0, 0.6, n).astype(np.float32)
    samples["grad_norm"] = rng.gamma(3.0, 1.0, n).astype(np.float32)
    samples["n_tokens"] = rng.integers(40, 400, n)
    samples["n_response_tokens"] = rng.integers(10, 200, n)
    samples["truncated"] = np.zeros(n, dtype=bool)
    samples["cluster"] = labels
    samples["umap_x"] = coords[:, 0].astype(np.float32)
    samples["umap_y"] = coords[:, 1].astype(np.float32)

    sizes = cluster_sizes(labels, n_clusters=k)
    sparse = sparse_clusters(sizes)
    manifest: dict[str, Any] = {
        "dataset": {
            "source": "demo:gsm8k" if gsm8k else "synthetic",
            "fingerprint": f"test{seed:012d}",
            "columns": {
                "prompt": "question",
                "response": "answer",
                "messages": None,
                "text": None,
                "id": None,
            },
            "n_samples": n,
            "n_total": n,
            "n_skipped": 0,
            "renamed": {},
        },
        "features": {
            "settings": {
                "model": "synthetic",
                "scope": "all",
                "dim": dim,
                "seed": seed,
                "max_length": None,
                "dtype": "float32",
                "stage1_k": 128,
                "trust_remote_code": False,
            },
            "status": "complete",
            "n_samples": n,
            "dim": dim,
            "n_truncated": 0,
        },
        "scores": scores_record(
            vendi_from_covariance(covariance(features)), n=n, dim=dim
        ).to_dict(),
        "clusters": {
            "n_clusters": int(k),
            "seed": 0,
            "sizes": [int(s) for s in sizes],
            "median_size": float(np.median(sizes)),
            "sparse": [int(c) for c in np.flatnonzero(sparse)],
            "n_sparse": int(sparse.sum()),
            "n_in_sparse": int(sizes[sparse].sum()),
            "objective": 0.0,
            "method": "synthetic mixture labels",
        },
        "layout": {"method": "synthetic", "seed": seed},
    }
    workspace = Workspace.create(path, manifest, samples)
    write_npy(workspace.features_path, features)
    if text_space:
        add_text_space(workspace, labels, seed=seed)
    return workspace


def add_text_space(workspace: Workspace, labels: np.ndarray, *, seed: int = 0) -> None:
    """What `prism embed` adds, with synthetic embeddings: text clusters that only partly follow
    the gradient clusters, their own 2-D map, neighbourhood agreement and the lexical section."""
    from core.measures.neighbours import compare_spaces
    from core.measures.vendi import vendi_score
    from core.workspace.analyses import lexical_workspace

    rng = np.random.default_rng(seed + 1)
    n = len(labels)
    k = int(labels.max()) + 1
    text_labels = np.where(rng.random(n) < 0.5, labels, rng.integers(0, k, n)).astype(np.int32)
    centres = rng.standard_normal((k, 32)).astype(np.float32)
    embeddings = centres[text_labels] + 0.8 * rng.standard_normal((n, 32)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    coords = rng.uniform(-10, 10, size=(k, 2))[text_labels] + rng.normal(scale=0.8, size=(n, 2))
    comparison = compare_spaces(
        workspace.features(mmap=False), embeddings, n_neighbors=10, seed=seed
    )
    workspace.write_embeddings(embeddings)
    workspace.add_columns(
        {
            "emb_cluster": text_labels,
            "emb_umap_x": coords[:, 0].astype(np.float32),
            "emb_umap_y": coords[:, 1].astype(np.float32),
            "nbr_agreement": comparison.agreement,
        }
    )
    lexical_workspace(workspace)
    workspace.set_section(
        EmbeddingSection(
            model="synthetic",
            dim=32,
            n=n,
            seed=seed,
            fingerprint=workspace.dataset.fingerprint,
            embedding_vendi=vendi_score(embeddings),
            neighbours={
                "k": comparison.n_neighbors,
                "mean_agreement": comparison.mean_agreement,
                "chance": comparison.chance,
                "rank_correlation": comparison.rank_correlation,
                "n_pairs": comparison.n_pairs,
            },
        )
    )
