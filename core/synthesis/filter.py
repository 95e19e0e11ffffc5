"""Which candidates are kept, and the reason each other one is not.

A candidate is judged in this order (the first reason that applies is recorded):

1. ``malformed``: its reply gave no usable sample (``core.synthesis.prompts.clean_reply``);
2. ``duplicate``: its text is already in the pool or earlier in the round (after whitespace and
   case folding), or its features' cosine to a pool row or to an earlier candidate of the round
   reaches ``duplicate_cosine``;
3. ``low quality``: it fails the quality gate (``core.synthesis.quality``: response loss outside
   the source band, or an answer that does not follow from its own working), its reason given;
4. ``dense``: its nearest centroid (cosine) is not a sparse cluster, i.e. that cluster's size is
   not strictly below the median cluster size (skipped when ``sparse_only`` is off, the published
   ablation);
5. ``kept``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import PrismError
from core.measures.clusters import nearest_cluster, sparse_clusters
from core.measures.neighbours import nearest_in_pool
from core.validate import check_number

REASONS = ("malformed", "duplicate", "low quality", "dense", "kept")
DUPLICATE_COSINE = 0.98


def text_key(text: str) -> str:
    """What two texts share when they are the same sample: case and whitespace folded, hashed."""
    folded = re.sub(r"\s+", " ", text).strip().casefold()
    return hashlib.blake2b(folded.encode("utf-8"), digest_size=16).hexdigest()


def max_cosine(pool: np.ndarray, queries: np.ndarray, *, chunk_rows: int = 65_536) -> np.ndarray:
    """For each query row, its largest cosine to any pool row (unit rows; the pool may be a
    memory map, read in blocks). -inf for every query when the pool is empty."""
    _, cosines = nearest_in_pool(pool, queries, 1, chunk_rows=chunk_rows)
    if cosines.shape[1] == 0:
        return np.full(len(queries), -np.inf, dtype=np.float32)
    return cosines[:, 0]


@dataclass(frozen=True)
class Judgement:
    """Per candidate (M,): ``reason`` (one of REASONS), ``nearest`` cluster (-1 when malformed),
    ``nearest_cosine`` and ``pool_cosine`` (largest cosine to the pool; NaN when malformed)."""

    reason: np.ndarray
    nearest: np.ndarray
    nearest_cosine: np.ndarray
    pool_cosine: np.ndarray

    def counts(self) -> dict[str, int]:
        """Candidates per reason, keyed by ``count_key`` of the reason."""
        return {count_key(r): int((self.reason == r).sum()) for r in REASONS}


def count_key(reason: str) -> str:
    """The key of a reason's count in a round record ("low quality" → "low_quality")."""
    return reason.replace(" ", "_")


def judge(
    features: np.ndarray,
    texts: Sequence[str | None],
    *,
    centroids: np.ndarray,
    sizes: np.ndarray,
    pool_features: np.ndarray,
    pool_keys: Iterable[str] = (),
    duplicate_cosine: float = DUPLICATE_COSINE,
    sparse_only: bool = True,
    quality: Sequence[str] | None = None,
) -> Judgement:
    """Judge M candidates: ``features`` (M×d unit rows; rows of malformed candidates are ignored),
    ``texts`` (M; None = malformed) against the pool's clustering (``centroids`` k×d, ``sizes``
    k) and the pool itself (``pool_features`` N×d, ``pool_keys`` = ``text_key`` of its texts);
    ``quality`` (M; "" = passes) is the quality gate's problem with each candidate."""
    m = len(texts)
    if features.shape[0] != m:
        raise PrismError(
            f"features has {features.shape[0]} rows for {m} candidates.", param="features"
        )
    check_number(duplicate_cosine, param="duplicate_cosine", above=0, maximum=1)
    sizes = np.asarray(sizes)
    if len(centroids) != len(sizes):
        raise PrismError(
            f"{len(centroids)} centroids but {len(sizes)} cluster sizes.", param="sizes"
        )
    if quality is not None and len(quality) != m:
        raise PrismError(
            f"quality has {len(quality)} verdicts for {m} candidates.", param="quality"
        )
    reason = np.array(["kept"] * m, dtype=object)
    nearest = np.full(m, -1, dtype=np.int64)
    nearest_cos = np.full(m, np.nan, dtype=np.float32)
    pool_cos = np.full(m, np.nan, dtype=np.float32)
    formed = np.array([t is not None for t in texts], dtype=bool)
    reason[~formed] = "malformed"
    rows = np.flatnonzero(formed)
    if rows.size:
        unit = np.asarray(features[rows], dtype=np.float32)
        nearest[rows], nearest_cos[rows] = nearest_cluster(unit, centroids)
        pool_cos[rows] = max_cosine(pool_features, unit)
        sparse = sparse_clusters(sizes)
        seen = set(pool_keys)
        earlier: list[int] = []  # positions in ``unit`` of this round's non-duplicates so far
        for j, i in enumerate(rows):
            key = text_key(str(texts[int(i)]))
            near_earlier = (
                bool(earlier) and float((unit[earlier] @ unit[j]).max()) >= duplicate_cosine
            )
            if key in seen or pool_cos[i] >= duplicate_cosine or near_earlier:
                reason[i] = "duplicate"
                continue
            seen.add(key)
            earlier.append(j)
            if quality is not None and quality[int(i)]:
                reason[i] = "low quality"
            elif sparse_only and not sparse[nearest[i]]:
                reason[i] = "dense"
    return Judgement(
        reason=reason, nearest=nearest, nearest_cosine=nearest_cos, pool_cosine=pool_cos
    )
