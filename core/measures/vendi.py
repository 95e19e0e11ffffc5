"""Vendi scores of unit-length features: the whole set, any subset, per cluster, streamed from disk.

With unit rows U (N×d) the cosine kernel is K = U Uᵀ, and K/N has the same nonzero eigenvalues as
the covariance C = UᵀU / N (d×d, trace 1). VS_q = exp(H_q(λ)) with H_1 = −Σ λ log λ,
H_q = log(Σ λ^q)/(1−q), H_∞ = −log λ_max (and H_0 = log #{λ > 0}). G-Vendi is VS_1 of gradient
features; it lies between 1 and min(N, d).

- ``covariance`` / ``covariance_from_npy``: C accumulated chunk by chunk (float32 BLAS per chunk,
  summed in float64), so a memory-mapped ``features.npy`` is never loaded whole and shards merge
  by adding their unnormalised sums.
- ``gram`` / ``gram_from_npy``: the smaller of C (d×d) and K/N (N×N), which have the same nonzero
  eigenvalues: what a score of the whole set needs, with no d×d matrix when N < d (12 rows of
  d = 16,384 make a 12×12 matrix, not 2 GiB).
- ``vendi_from_eigenvalues``: the entropy of a spectrum, one order q.
- ``vendi_score`` / ``vendi_scores``: one or several orders from one eigendecomposition of the
  smaller of C (d×d) and K/N (N×N).
- ``subset_vendi``, ``cluster_vendi``, ``vendi_from_covariance``: the same on a row subset, per
  cluster label, and from an already accumulated covariance or kernel (any PSD Gram matrix).
- ``q_label`` / ``parse_q`` / ``vendi_column``: the one spelling of an order q ("0.5", "inf") in
  manifests and in table columns (``vendi_q0.5``; ``g_vendi`` for q = 1).

This is the only implementation of the Vendi score in Prism: prefix curves, the map's selection
scores, the greedy selector and the n-gram Vendi score all call it.
Scores are keyed by ``float(q)``; ``QS_DEFAULT`` holds the orders shown in the app.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.errors import PrismError
from core.validate import check_features, check_indices, check_int

QS_DEFAULT: tuple[float, ...] = (0.5, 1.0, 2.0, math.inf)
CHUNK_ROWS = 65536
# A spectrum whose most negative eigenvalue exceeds this fraction of the largest is not PSD.
_MAX_NEGATIVE = 1e-3


def _check_q(q: object) -> float:
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or math.isnan(float(q)) or q < 0:
        raise PrismError(
            f"q (the Vendi order) must be a number ≥ 0 (0.5, 1, 2 and inf are usual); got {q!r}.",
            param="q",
        )
    return float(q)


def _check_qs(qs: Iterable[object]) -> list[float]:
    if isinstance(qs, (str, bytes)) or not isinstance(qs, Iterable):
        raise PrismError(
            f"qs must be a sequence of Vendi orders such as (0.5, 1, 2, inf); got {qs!r}.",
            param="qs",
        )
    checked = [_check_q(q) for q in qs]
    if not checked:
        raise PrismError(
            "qs must name at least one Vendi order; got an empty sequence.", param="qs"
        )
    return checked


def q_label(q: float) -> str:
    """The one spelling of a Vendi order: "0.5", "1", "2", "inf" (manifest keys, column names)."""
    return "inf" if math.isinf(q) else f"{float(q):g}"


def parse_q(label: str) -> float:
    """The order q spelled by ``q_label`` (also "∞" and "infinity"), as a float."""
    text = str(label).strip().lower()
    return math.inf if text in ("inf", "infinity", "∞") else float(text)


def vendi_column(q: float) -> str:
    """The table column of the order-q Vendi score: ``g_vendi`` for q = 1, else ``vendi_q<q>``."""
    return "g_vendi" if q == 1.0 else f"vendi_q{q_label(q)}"


def _gram_sum(features: np.ndarray, *, chunk_rows: int) -> np.ndarray:
    """Σ_i u_i u_iᵀ (d×d float64), one BLAS product per chunk of rows."""
    n, d = features.shape
    # float64 input keeps float64 products; anything else is multiplied in float32 (the features'
    # own precision): ~2× faster, and summed per chunk into float64 the entries are good to ~1e-6
    # relative (the round-off that _positive_spectrum removes from rank-deficient spectra).
    work_dtype = np.float64 if features.dtype == np.float64 else np.float32
    total = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, chunk_rows):
        chunk: npt.NDArray[np.floating] = np.ascontiguousarray(
            features[start : start + chunk_rows], dtype=work_dtype
        )
        # chunk.T @ chunk on one buffer is dispatched to BLAS syrk by numpy (measured faster here
        # than scipy's ssyrk, which links another OpenBLAS build).
        total += chunk.T @ chunk
    return total


def covariance(features: np.ndarray, *, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """C = UᵀU / N as float64 (d×d), accumulated over chunks of rows; works on ``np.memmap``."""
    features = check_features(features)
    chunk_rows = check_int(chunk_rows, param="chunk_rows", minimum=1)
    n = features.shape[0]
    if n == 0:
        raise PrismError(
            "features has no rows; the covariance of an empty set is undefined.", param="features"
        )
    total = _gram_sum(features, chunk_rows=chunk_rows)
    total /= n
    return total


def _kernel_sum(features: np.ndarray, *, block_values: int = 2**24) -> np.ndarray:
    """U Uᵀ (N×N float64), summed over blocks of columns so that only about ``block_values``
    numbers are converted to float64 at a time."""
    n, d = features.shape
    step = max(1, block_values // max(n, 1))
    total = np.zeros((n, n), dtype=np.float64)
    for start in range(0, d, step):
        block = np.asarray(features[:, start : start + step], dtype=np.float64)
        total += block @ block.T
    return total


def gram(features: np.ndarray, *, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The smaller of C = UᵀU/N (d×d) and K/N = UUᵀ/N (N×N) as float64: both have the same
    nonzero eigenvalues, so ``vendi_from_covariance`` gives the same scores from either."""
    features = check_features(features)
    n, d = features.shape
    if n == 0:
        raise PrismError(
            "features has no rows; the Vendi score of an empty set is undefined.", param="features"
        )
    if n > d:
        return covariance(features, chunk_rows=chunk_rows)
    total = _kernel_sum(features)
    total /= n
    return total


def _read_features(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise PrismError(f"features file {str(path)!r} does not exist.", param="path") from None
    except ValueError as exc:
        raise PrismError(
            f"features file {str(path)!r} is not a readable .npy array: {exc}", param="path"
        ) from exc


def covariance_from_npy(
    path: str | Path, *, chunk_rows: int = CHUNK_ROWS
) -> tuple[np.ndarray, int]:
    """Stream a ``.npy`` file of features (N×d) from disk; returns (C as float64 d×d, N)."""
    features = _read_features(path)
    return covariance(features, chunk_rows=chunk_rows), int(features.shape[0])


def gram_from_npy(path: str | Path, *, chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, int]:
    """``gram`` of a ``.npy`` file of features (N×d), streamed; returns (the matrix, N)."""
    features = _read_features(path)
    return gram(features, chunk_rows=chunk_rows), int(features.shape[0])


def _positive_spectrum(eigenvalues: object) -> np.ndarray:
    """Eigenvalues with round-off removed, scaled to sum 1 (float64, 1-D).

    The spectrum of a PSD matrix computed in floating point carries noise of both signs. The
    negative eigenvalues measure it, so every eigenvalue up to twice the largest negative one
    (and up to matrix_rank's float64 tolerance) is set to 0. Without this, float32 products give
    a rank-one set ~10⁻⁶ noise eigenvalues, enough to move VS_0.5 of identical rows to 1.02.
    """
    values = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if values.size == 0:
        raise PrismError(
            "eigenvalues is empty; a Vendi score needs at least one eigenvalue.",
            param="eigenvalues",
        )
    if not np.all(np.isfinite(values)):
        raise PrismError(
            "eigenvalues contains NaN or infinite values; check the features.", param="eigenvalues"
        )
    lam_max = float(values.max())
    if lam_max <= 0.0:
        raise PrismError(
            "eigenvalues has no positive value (all features are zero vectors?); the Vendi score "
            "is undefined.",
            param="eigenvalues",
        )
    noise = max(-float(values.min()), 0.0)
    if noise > _MAX_NEGATIVE * lam_max:
        raise PrismError(
            f"eigenvalues must come from a positive semi-definite matrix; got {-noise:.3g} next to "
            f"a largest eigenvalue of {lam_max:.3g}.",
            param="eigenvalues",
        )
    floor = max(2.0 * noise, values.size * np.finfo(np.float64).eps * lam_max)
    values = np.where(values > floor, values, 0.0)
    return values / values.sum()


def _vendi_of_spectrum(values: np.ndarray, q: float) -> float:
    """exp(H_q) of a clipped, sum-1 spectrum, clamped to the exact bounds [1, len(values)]."""
    lam_max = float(values.max())
    if q == 0.0:
        value = float(np.count_nonzero(values))
    elif q == 1.0:
        nonzero = values[values > 0.0]
        value = math.exp(float(-(nonzero * np.log(nonzero)).sum()))
    elif math.isinf(q):
        value = 1.0 / lam_max
    else:
        # log Σ λ^q = q log λ_max + log Σ (λ/λ_max)^q, which neither underflows nor overflows
        log_sum = q * math.log(lam_max) + math.log(float(((values / lam_max) ** q).sum()))
        value = math.exp(log_sum / (1.0 - q))
    return min(max(value, 1.0), float(values.size))


def vendi_from_eigenvalues(eigenvalues: object, *, q: float = 1.0) -> float:
    """exp(H_q) of a PSD spectrum (round-off noise set to 0, rescaled to sum 1).

    q = 0 gives the number of nonzero eigenvalues; q must be ≥ 0.
    """
    q = _check_q(q)
    return _vendi_of_spectrum(_positive_spectrum(eigenvalues), q)


def _spectrum(features: np.ndarray) -> np.ndarray:
    """Eigenvalues (float64) of the smaller of C = UᵀU/N and K/N = UUᵀ/N; same nonzero values."""
    return _trace_normalised_eigenvalues(gram(features))


def _trace_normalised_eigenvalues(matrix: np.ndarray) -> np.ndarray:
    trace = float(np.trace(matrix))
    if not math.isfinite(trace):
        raise PrismError(
            "the features contain NaN or infinite values; the Vendi score is undefined.",
            param="features",
        )
    if trace <= 0.0:
        raise PrismError(
            "the features are all zero vectors (trace 0); the Vendi score is undefined.",
            param="features",
        )
    # Unit rows give trace 1 already; dividing keeps float drift in row norms out of the score.
    return np.linalg.eigvalsh(matrix / trace)


def _scores(values: np.ndarray, qs: list[float]) -> dict[float, float]:
    values = _positive_spectrum(values)
    return {q: _vendi_of_spectrum(values, q) for q in qs}


def vendi_score(features: np.ndarray, *, q: float = 1.0) -> float:
    """Order-q Vendi score of unit rows (N×d); 1 for one row, between 1 and min(N, d)."""
    q = _check_q(q)
    return vendi_scores(features, qs=(q,))[q]


def vendi_scores(features: np.ndarray, *, qs: Iterable[float] = QS_DEFAULT) -> dict[float, float]:
    """Vendi scores for several orders from one eigendecomposition; keys are ``float(q)``."""
    checked = _check_qs(qs)
    features = check_features(features)
    return _scores(_spectrum(features), checked)


def subset_vendi(
    features: np.ndarray, indices: object, *, qs: Iterable[float] = QS_DEFAULT
) -> dict[float, float]:
    """Vendi scores of the rows ``features[indices]`` (integer rows or a boolean mask).

    Repeated indices count repeatedly, exactly as ``vendi_scores(features[indices])``.
    """
    checked = _check_qs(qs)
    features = check_features(features)
    rows = check_indices(indices, features.shape[0])
    # Sorted reads are sequential on a memmap; the score does not depend on row order.
    return vendi_scores(features[np.sort(rows)], qs=checked)


def cluster_vendi(
    features: np.ndarray, labels: object, *, qs: Iterable[float] = QS_DEFAULT
) -> dict[int, dict[float, float]]:
    """Vendi scores of each cluster's rows: {label: {q: score}} for every label present."""
    checked = _check_qs(qs)
    features = check_features(features)
    label_array = np.asarray(labels)
    if label_array.shape != (features.shape[0],) or not np.issubdtype(
        label_array.dtype, np.integer
    ):
        raise PrismError(
            f"labels must be a 1-D integer array with one label per row (N={features.shape[0]}); "
            f"got dtype {label_array.dtype} and shape {label_array.shape}.",
            param="labels",
        )
    order = np.argsort(label_array, kind="stable")
    sorted_labels = label_array[order]
    unique, starts = np.unique(sorted_labels, return_index=True)
    ends = np.append(starts[1:], sorted_labels.size)
    return {
        int(label): vendi_scores(features[order[start:end]], qs=checked)
        for label, start, end in zip(unique, starts, ends, strict=True)
    }


def vendi_from_covariance(
    cov: np.ndarray, *, qs: Iterable[float] = QS_DEFAULT
) -> dict[float, float]:
    """Vendi scores from a PSD Gram matrix: a covariance C (d×d, any scale: an unnormalised shard
    sum works) or a kernel UUᵀ (N×N); divided by its trace, so only its shape matters."""
    checked = _check_qs(qs)
    matrix = np.asarray(cov, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise PrismError(f"cov must be a square d×d matrix; got shape {matrix.shape}.", param="cov")
    return _scores(_trace_normalised_eigenvalues(matrix), checked)
