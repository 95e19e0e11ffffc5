"""Vendi scores: known values, the N×N kernel and the vendi-score package as references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from vendi_score import vendi

from core.errors import PrismError
from core.measures.vendi import (
    QS_DEFAULT,
    cluster_vendi,
    covariance,
    covariance_from_npy,
    gram,
    gram_from_npy,
    subset_vendi,
    vendi_from_covariance,
    vendi_from_eigenvalues,
    vendi_score,
    vendi_scores,
)

QS = (0.5, 1.0, 2.0, math.inf, 3.7)


def unit_rows(n: int, d: int, *, seed: int = 0, n_directions: int = 8) -> np.ndarray:
    """Mildly structured unit rows (a few directions plus noise), float32."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n_directions, d))
    rows = directions[rng.integers(0, n_directions, n)] + 0.8 * rng.standard_normal((n, d))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32)


def kernel_scores(features: np.ndarray, qs=QS) -> dict[float, float]:
    """Reference: eigenvalues of the N×N cosine kernel K/N in float64."""
    rows = features.astype(np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    eigenvalues = np.linalg.eigvalsh(rows @ rows.T / rows.shape[0])
    # K/N has N − rank zero eigenvalues at ±1e-17; their square roots would add ~1e-7 to VS_0.5
    eigenvalues = np.where(eigenvalues > 1e-12 * eigenvalues.max(), eigenvalues, 0.0)
    eigenvalues /= eigenvalues.sum()
    out = {}
    for q in qs:
        lam = eigenvalues[eigenvalues > 0]
        if q == 1:
            entropy = -(lam * np.log(lam)).sum()
        elif math.isinf(q):
            entropy = -np.log(lam.max())
        else:
            entropy = np.log((lam**q).sum()) / (1 - q)
        out[q] = float(np.exp(entropy))
    return out


@pytest.mark.parametrize("n", [1, 5, 300])
def test_identical_rows_give_one(n):
    row = unit_rows(1, 64)[0]
    features = np.tile(row, (n, 1))
    for q, value in vendi_scores(features, qs=(*QS, 0.0)).items():
        assert value == pytest.approx(1.0, abs=1e-6), q


@pytest.mark.parametrize("n, d", [(7, 7), (5, 32), (40, 64)])
def test_orthonormal_rows_give_n(n, d):
    q_matrix, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((d, n)))
    features = q_matrix.T.astype(np.float32)
    for q, value in vendi_scores(features, qs=(*QS, 0.0)).items():
        assert value == pytest.approx(n, rel=1e-6), q


@pytest.mark.parametrize("n, d", [(50, 64), (64, 64), (400, 48)])
def test_matches_kernel_eigenvalues(n, d):
    """Both branches (N ≤ d uses K/N, N > d the covariance) equal the kernel computation."""
    features = unit_rows(n, d, seed=n)
    ours = vendi_scores(features, qs=QS)
    reference = kernel_scores(features)
    for q in QS:
        assert ours[q] == pytest.approx(reference[q], rel=1e-6), q
        assert vendi_score(features, q=q) == pytest.approx(ours[q], rel=1e-12)
        assert 1.0 <= ours[q] <= min(n, d)


@pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")
@pytest.mark.parametrize("n, d", [(40, 64), (500, 32)])
def test_matches_vendi_score_package(n, d):
    features = unit_rows(n, d, seed=3)
    rows = features.astype(np.float64)
    kernel = rows @ rows.T
    for q in (0.5, 1.0, 2.0, math.inf):
        theirs = vendi.score_K(kernel, q="inf" if math.isinf(q) else q, normalize=True)
        assert vendi_score(features, q=q) == pytest.approx(theirs, rel=1e-6), q


def test_repeated_orthonormal_directions_give_their_count():
    """N > d (the float32 covariance branch) on a rank-deficient set: round-off is not diversity."""
    q_matrix, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((32, 5)))
    features = np.repeat(q_matrix.T.astype(np.float32), 40, axis=0)
    for q, value in vendi_scores(features, qs=(*QS, 0.0)).items():
        assert value == pytest.approx(5.0, rel=1e-6), q


def test_orders_decrease_with_q():
    scores = vendi_scores(unit_rows(200, 32), qs=(0.0, 0.5, 1.0, 2.0, 3.7, math.inf))
    values = list(scores.values())
    assert values == sorted(values, reverse=True)
    assert scores[0.0] == 32  # rank of 200 generic rows in 32 dimensions


def test_default_orders_and_keys():
    scores = vendi_scores(unit_rows(30, 16))
    assert tuple(scores) == QS_DEFAULT
    assert all(isinstance(key, float) for key in scores)


def test_float64_features_and_no_mutation():
    features = unit_rows(120, 16).astype(np.float64)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    before = features.copy()
    ours = vendi_scores(features, qs=QS)
    reference = kernel_scores(features)
    assert np.array_equal(features, before)
    for q in QS:
        assert ours[q] == pytest.approx(reference[q], rel=1e-10)


def test_vendi_from_eigenvalues():
    assert vendi_from_eigenvalues([0.25] * 4) == pytest.approx(4.0)
    assert vendi_from_eigenvalues([0.5, 0.5, 0.0, -1e-17], q=2) == pytest.approx(2.0)
    assert vendi_from_eigenvalues([0.7, 0.2, 0.1, 0.0], q=0) == 3.0
    assert vendi_from_eigenvalues([0.7, 0.3], q=math.inf) == pytest.approx(1 / 0.7)
    lam = np.array([0.6, 0.3, 0.1])
    assert vendi_from_eigenvalues(lam, q=1) == pytest.approx(np.exp(-(lam * np.log(lam)).sum()))
    # extreme orders neither underflow nor overflow
    assert vendi_from_eigenvalues(lam, q=500.0) == pytest.approx(1 / 0.6, rel=1e-2)
    assert np.isfinite(vendi_from_eigenvalues(np.full(1000, 1e-3), q=1e4))


@pytest.mark.parametrize("q", [-1, -0.5, float("nan"), "2", None, True])
def test_bad_q_raises(q):
    features = unit_rows(10, 8)
    with pytest.raises(PrismError, match="q"):
        vendi_score(features, q=q)
    with pytest.raises(PrismError, match="q"):
        vendi_from_eigenvalues([1.0], q=q)
    with pytest.raises(PrismError, match="q"):
        vendi_scores(features, qs=(1.0, q))


def test_bad_inputs_raise():
    with pytest.raises(PrismError, match="no rows"):
        vendi_score(np.zeros((0, 8), dtype=np.float32))
    with pytest.raises(PrismError, match="zero"):
        vendi_score(np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(PrismError, match="2-D"):
        vendi_score(np.ones(8, dtype=np.float32))
    with pytest.raises(PrismError, match="eigenvalues"):
        vendi_from_eigenvalues([])
    with pytest.raises(PrismError, match="positive semi-definite"):
        vendi_from_eigenvalues([1.0, -0.5])
    with pytest.raises(PrismError, match="cov"):
        vendi_from_covariance(np.ones((3, 4)))


def test_single_row_is_one():
    assert vendi_scores(unit_rows(1, 16)) == dict.fromkeys(QS_DEFAULT, 1.0)


def test_covariance_chunks_and_npy_stream(tmp_path):
    features = unit_rows(1000, 24)
    expected = features.astype(np.float64).T @ features.astype(np.float64) / len(features)
    whole = covariance(features)
    chunked = covariance(features, chunk_rows=77)
    assert whole.dtype == np.float64 and whole.shape == (24, 24)
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert np.trace(whole) == pytest.approx(1.0, abs=1e-5)

    path = tmp_path / "features.npy"
    np.save(path, features, allow_pickle=False)
    streamed, n = covariance_from_npy(path, chunk_rows=128)
    assert n == 1000
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    mapped = np.load(path, mmap_mode="r")
    np.testing.assert_allclose(covariance(mapped, chunk_rows=100), whole, atol=1e-6)

    from_cov = vendi_from_covariance(streamed, qs=QS)
    reference = kernel_scores(features)
    for q in QS:
        assert from_cov[q] == pytest.approx(reference[q], rel=1e-6)
    # scaling the covariance (an unnormalised shard sum) does not change the scores
    assert vendi_from_covariance(streamed * n, qs=QS) == pytest.approx(from_cov, rel=1e-9)


def test_covariance_bad_inputs(tmp_path):
    with pytest.raises(PrismError, match="chunk_rows"):
        covariance(unit_rows(4, 4), chunk_rows=0)
    with pytest.raises(PrismError, match="does not exist"):
        covariance_from_npy(tmp_path / "missing.npy")


def test_subset_vendi_matches_scratch():
    features = unit_rows(300, 32, seed=5)
    indices = np.random.default_rng(0).choice(300, size=120, replace=False)
    # float32 sums depend on row order, hence 1e-7 rather than exact equality
    expected = vendi_scores(features[indices], qs=QS)
    assert subset_vendi(features, indices, qs=QS) == pytest.approx(expected, rel=1e-7)
    mask = np.zeros(300, dtype=bool)
    mask[indices] = True
    assert subset_vendi(features, mask, qs=QS) == pytest.approx(expected, rel=1e-7)
    small = subset_vendi(features, indices[:10], qs=QS)  # N ≤ d branch
    assert small == pytest.approx(kernel_scores(features[indices[:10]]), rel=1e-6)
    with pytest.raises(PrismError, match="indices"):
        subset_vendi(features, [])
    with pytest.raises(PrismError, match="indices"):
        subset_vendi(features, [0, 300])
    with pytest.raises(PrismError, match="indices"):
        subset_vendi(features, np.zeros(300, dtype=bool))


def test_cluster_vendi_matches_scratch():
    features = unit_rows(400, 16, seed=7)
    labels = np.random.default_rng(2).integers(0, 5, 400)
    labels[labels == 3] = 9  # labels need not be contiguous
    labels[0] = 11  # a singleton cluster scores 1
    per_cluster = cluster_vendi(features, labels, qs=QS)
    assert sorted(per_cluster) == sorted(set(labels.tolist()))
    for label, scores in per_cluster.items():
        expected = vendi_scores(features[labels == label], qs=QS)
        assert scores == pytest.approx(expected, rel=1e-7)
    assert per_cluster[11] == dict.fromkeys(QS, 1.0)
    with pytest.raises(PrismError, match="labels"):
        cluster_vendi(features, labels[:-1])


def test_gram_path_equals_covariance_path_when_n_is_below_d(tmp_path):
    """12 rows of d = 300: the 12×12 kernel has C's nonzero eigenvalues, so the scores agree."""
    features = unit_rows(12, 300, n_directions=4)
    small = gram(features)
    assert small.shape == (12, 12) and small.dtype == np.float64
    large = covariance(features)
    nonzero = np.sort(np.linalg.eigvalsh(large))[-12:]
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(small)), nonzero, atol=1e-7)
    from_gram, from_cov = vendi_from_covariance(small, qs=QS), vendi_from_covariance(large, qs=QS)
    for q in QS:
        assert from_gram[q] == pytest.approx(from_cov[q], rel=1e-6)
    path = tmp_path / "features.npy"
    np.save(path, features, allow_pickle=False)
    streamed, n = gram_from_npy(path)
    assert n == 12
    np.testing.assert_allclose(streamed, small, atol=1e-12)
    # above d rows it is the covariance itself
    many = unit_rows(40, 6)
    np.testing.assert_allclose(gram(many), covariance(many), atol=1e-12)
