"""How far two feature spaces of the same rows agree on who is near whom.

- ``nearest_neighbours``: the k = ``n_neighbors`` nearest rows of every row by cosine, self
  excluded (exact, in blocks of rows, so 100,000 × 1,024 features fit in a few hundred MB; on a
  GPU with ``device="cuda"``).
- ``neighbourhood_agreement``: per row, |kNN_a(i) ∩ kNN_b(i)| / k — 1 when both spaces give a row
  the same k neighbours, 0 when they share none. Low values mark samples that read alike but
  teach the model different things (or the reverse).
- ``chance_agreement``: k/(n−1), the expected agreement of two unrelated spaces.
- ``similarity_rank_correlation``: the rank correlation of the two neighbourhood structures —
  Spearman's ρ between the cosine of a pair of rows in space a and in space b, over a seeded
  sample of distinct pairs (all pairs when there are few). This is a sampled Mantel-style
  statistic: 1 when one space's similarities are a monotone function of the other's, ~0 for
  unrelated spaces. Random pairs are mostly far apart, so it describes the global structure;
  the agreement above describes the closest neighbours.
- ``compare_spaces``: all of these at once, as a ``SpaceComparison``.
- ``nearest_in_pool``: the k rows of a (memory-mapped) pool nearest each of a few query rows,
  read block by block (what placing and judging new rows needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.devices import resolve_device
from core.errors import PrismError
from core.measures.clusters import unit_rows
from core.validate import check_features, check_int, check_seed

N_NEIGHBORS_DEFAULT = 10
N_PAIRS_DEFAULT = 200_000
# Rows per block keep the (block × N) float32 similarity matrix near this many bytes.
_BLOCK_BYTES = 256 * 2**20


def _unit_features(features: object, *, name: str) -> np.ndarray:
    """float32 copy with unit rows (a zero row stays zero); checks shape and values."""
    rows = unit_rows(check_features(features, param=name))
    if not np.all(np.isfinite(rows)):
        raise PrismError(f"{name} contains NaN or infinite values.", param=name)
    return rows


def _check_pair(a: object, b: object) -> tuple[np.ndarray, np.ndarray]:
    ua, ub = _unit_features(a, name="a"), _unit_features(b, name="b")
    if ua.shape[0] != ub.shape[0]:
        raise PrismError(
            f"a and b must hold the same rows; got {ua.shape[0]:,} rows in a and "
            f"{ub.shape[0]:,} in b.",
            param="b",
        )
    return ua, ub


def _check_n_neighbors(n_neighbors: object, n: int) -> int:
    if n < 2:
        raise PrismError(f"neighbours need at least 2 rows; got {n}.", param="features")
    k = check_int(n_neighbors, param="n_neighbors", minimum=1)
    if k > n - 1:
        raise PrismError(
            f"n_neighbors must be at most n − 1 = {n - 1} (self is excluded); got {k}.",
            param="n_neighbors",
        )
    return k


def _knn(unit: np.ndarray, k: int) -> np.ndarray:
    n = unit.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    step = max(1, min(n, _BLOCK_BYTES // (4 * n)))
    unit_t = np.ascontiguousarray(unit.T)
    for start in range(0, n, step):
        stop = min(n, start + step)
        sims = unit[start:stop] @ unit_t
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top = np.argpartition(sims, n - k, axis=1)[:, n - k :]
        top_sims = np.take_along_axis(sims, top, axis=1)
        # most similar first; equal similarities by row number, so the order is reproducible
        order = np.lexsort((top, -top_sims), axis=1)
        out[start:stop] = np.take_along_axis(top, order, axis=1)
    return out


def _knn_torch(unit: np.ndarray, k: int, device: str) -> np.ndarray:
    """``_knn`` with the products and the top-k on a torch device (a GPU)."""
    # heavy: torch, only for a search on a device
    import torch

    n = unit.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    features = torch.from_numpy(unit).to(device)
    step = max(1, min(n, 4 * _BLOCK_BYTES // (4 * n)))
    with torch.inference_mode():
        for start in range(0, n, step):
            stop = min(n, start + step)
            sims = features[start:stop] @ features.T
            rows = torch.arange(stop - start, device=sims.device)
            sims[rows, rows + start] = -torch.inf
            out[start:stop] = torch.topk(sims, k, dim=1).indices.cpu().numpy()
    return out


def _neighbours(unit: np.ndarray, k: int, device: str) -> np.ndarray:
    return _knn(unit, k) if device == "cpu" else _knn_torch(unit, k, device)


def nearest_neighbours(
    features: np.ndarray, *, n_neighbors: int = N_NEIGHBORS_DEFAULT, device: str = "cpu"
) -> np.ndarray:
    """Indices (n × k, int64) of each row's k most cosine-similar other rows, nearest first.

    Exact (every pair is compared) in blocks of rows; O(n² d) time, O(n·k) memory besides one
    block of similarities. ``device`` "cuda" runs the products on a GPU through torch. Among rows
    exactly as similar as the k-th, which ones are kept is unspecified.
    """
    unit = _unit_features(features, name="features")
    k = _check_n_neighbors(n_neighbors, unit.shape[0])
    return _neighbours(unit, k, resolve_device(device))


def _overlap(idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
    n, k = idx_a.shape
    shared = np.empty(n, dtype=np.int64)
    step = max(1, 2**24 // (k * k))
    for start in range(0, n, step):
        a = idx_a[start : start + step]
        b = idx_b[start : start + step]
        shared[start : start + step] = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    return shared


def neighbourhood_agreement(
    a: np.ndarray, b: np.ndarray, *, n_neighbors: int = N_NEIGHBORS_DEFAULT, device: str = "cpu"
) -> np.ndarray:
    """Per row, the share of its k nearest neighbours (cosine, self excluded) found in both spaces.

    ``a`` (n × d_a) and ``b`` (n × d_b) hold the same rows in the same order. Returns (n,)
    float32 values in {0, 1/k, …, 1}; their mean is ``chance_agreement(n, k)`` for unrelated
    spaces.
    """
    ua, ub = _check_pair(a, b)
    k = _check_n_neighbors(n_neighbors, ua.shape[0])
    device = resolve_device(device)
    shared = _overlap(_neighbours(ua, k, device), _neighbours(ub, k, device))
    return (shared / k).astype(np.float32)


def chance_agreement(n: int, n_neighbors: int = N_NEIGHBORS_DEFAULT) -> float:
    """k/(n−1) for k = ``n_neighbors``: the expected agreement of two unrelated spaces."""
    n = check_int(n, param="n", minimum=2)
    return _check_n_neighbors(n_neighbors, n) / (n - 1)


def _pairs(n: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j when there are at most ``n_pairs``; else a seeded sample of pairs i ≠ j."""
    if n * (n - 1) // 2 <= n_pairs:
        first, second = np.triu_indices(n, k=1)
        return first.astype(np.int64), second.astype(np.int64)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, size=n_pairs)
    # j = i + offset (mod n) with offset in [1, n−1] is uniform over the rows other than i
    second = (first + rng.integers(1, n, size=n_pairs)) % n
    return first, second


def _pair_cosines(unit: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    out = np.empty(first.size, dtype=np.float64)
    step = 65536
    for start in range(0, first.size, step):
        i, j = first[start : start + step], second[start : start + step]
        out[start : start + step] = np.einsum("ij,ij->i", unit[i], unit[j])
    return out


def similarity_rank_correlation(
    a: np.ndarray, b: np.ndarray, *, n_pairs: int = N_PAIRS_DEFAULT, seed: int = 0
) -> float:
    """Spearman's ρ between pairwise cosines in space a and in space b over sampled row pairs.

    Uses every pair when n(n−1)/2 ≤ ``n_pairs``, else ``n_pairs`` pairs drawn with ``seed``
    (standard error about 1/√n_pairs).
    """
    # heavy: scipy.stats, only for the rank correlation
    from scipy.stats import spearmanr

    ua, ub = _check_pair(a, b)
    n = ua.shape[0]
    if n < 3:
        raise PrismError(
            f"a rank correlation of pairs needs at least 3 rows; got {n}.", param="features"
        )
    n_pairs = check_int(n_pairs, param="n_pairs", minimum=2)
    seed = check_seed(seed)
    first, second = _pairs(n, n_pairs, seed)
    cos_a = _pair_cosines(ua, first, second)
    cos_b = _pair_cosines(ub, first, second)
    if np.ptp(cos_a) == 0 or np.ptp(cos_b) == 0:
        raise PrismError(
            "every sampled pair is equally similar in one of the spaces; the rank correlation is "
            "undefined."
        )
    return float(spearmanr(cos_a, cos_b).statistic)


@dataclass(frozen=True)
class SpaceComparison:
    """Two feature spaces of the same rows, compared.

    agreement: (n,) per-row kNN overlap; mean_agreement: its mean; chance: k/(n−1) for
    k = n_neighbors;
    rank_correlation: Spearman's ρ of pairwise cosines (``similarity_rank_correlation``).
    """

    agreement: np.ndarray
    n_neighbors: int
    mean_agreement: float
    chance: float
    rank_correlation: float
    n_pairs: int
    seed: int


def compare_spaces(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_neighbors: int = N_NEIGHBORS_DEFAULT,
    n_pairs: int = N_PAIRS_DEFAULT,
    seed: int = 0,
    device: str = "cpu",
) -> SpaceComparison:
    """Neighbourhood agreement, its chance level and the similarity rank correlation of a and b."""
    ua, ub = _check_pair(a, b)
    n = ua.shape[0]
    k = _check_n_neighbors(n_neighbors, n)
    agreement = neighbourhood_agreement(ua, ub, n_neighbors=k, device=device)
    n_pairs = check_int(n_pairs, param="n_pairs", minimum=2)
    return SpaceComparison(
        agreement=agreement,
        n_neighbors=k,
        mean_agreement=float(agreement.mean()),
        chance=chance_agreement(n, k),
        rank_correlation=similarity_rank_correlation(ua, ub, n_pairs=n_pairs, seed=seed),
        n_pairs=min(n_pairs, n * (n - 1) // 2),
        seed=int(seed),
    )


def nearest_in_pool(
    pool: np.ndarray, queries: np.ndarray, k: int, *, chunk_rows: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` pool rows of largest cosine to each query (unit rows; ``pool`` may be a memory
    map, never read whole): (rows (m×k) int64, cosines (m×k) float32), best first. With an empty
    pool both have no columns."""
    k = min(int(k), len(pool))
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    best_cos = np.zeros((len(queries), 0), dtype=np.float32)
    if k == 0 or len(queries) == 0:
        return best_rows, best_cos
    q = np.ascontiguousarray(queries, dtype=np.float32).T
    for start in range(0, len(pool), chunk_rows):
        block = np.asarray(pool[start : start + chunk_rows], dtype=np.float32) @ q  # (b×m)
        top = np.argpartition(-block, min(k, len(block)) - 1, axis=0)[:k].T
        best_rows = np.concatenate([best_rows, top + start], axis=1)
        best_cos = np.concatenate([best_cos, np.take_along_axis(block.T, top, axis=1)], axis=1)
        if best_rows.shape[1] > k:
            keep = np.argsort(-best_cos, axis=1, kind="stable")[:, :k]
            best_rows = np.take_along_axis(best_rows, keep, axis=1)
            best_cos = np.take_along_axis(best_cos, keep, axis=1)
    order = np.argsort(-best_cos, axis=1, kind="stable")
    return np.take_along_axis(best_rows, order, axis=1), np.take_along_axis(best_cos, order, axis=1)
