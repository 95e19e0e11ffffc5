"""Relevance to a target: equal to the direct cosine computation, for both aggregations, whitened
or not, streamed in blocks over a memory map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import PrismError
from core.measures.relevance import WHITEN_RIDGE, group_relevance, nearest_rows, relevance

TOL = 2e-6  # float32 products of unit rows


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def direct(pool: np.ndarray, target: np.ndarray, groups: np.ndarray, agg: str, whiten: bool):
    """The definition, in float64: cosines (whitened by (C + λI)^-½ first), mean or max per
    group, then the best group."""
    p, t = pool.astype(np.float64), target.astype(np.float64)
    if whiten:
        c = p.T @ p / len(p)
        lam = WHITEN_RIDGE * np.trace(c) / c.shape[0]
        values, vectors = np.linalg.eigh(c + lam * np.eye(c.shape[0]))
        w = vectors @ np.diag(values**-0.5) @ vectors.T
        p, t = p @ w, t @ w
    cos = unit(p) @ unit(t).T
    pick = np.mean if agg == "mean-max" else np.max
    per_group = np.stack([pick(cos[:, groups == g], axis=1) for g in np.unique(groups)], axis=1)
    return per_group, per_group.max(axis=1)


@pytest.mark.parametrize("agg", ["mean-max", "max"])
@pytest.mark.parametrize("whiten", [False, True])
def test_relevance_equals_the_direct_computation(agg: str, whiten: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pool = unit(rng.standard_normal((150, 20)) + 2.0 * rng.standard_normal(20)).astype(np.float32)
    target = unit(rng.standard_normal((9, 20))).astype(np.float32)
    groups = np.array([0, 0, 1, 2, 1, 0, 2, 2, 2])
    path = tmp_path / "features.npy"
    np.save(path, pool, allow_pickle=False)
    mapped = np.load(path, mmap_mode="r")
    want_groups, want = direct(pool, target, groups, agg, whiten)
    got = group_relevance(mapped, target, groups=groups, agg=agg, whiten=whiten, block_rows=32)
    assert got.dtype == np.float32 and got.shape == (150, 3)
    np.testing.assert_allclose(got, want_groups, atol=TOL * (50 if whiten else 1))
    np.testing.assert_allclose(
        relevance(mapped, target, groups=groups, agg=agg, whiten=whiten),
        want,
        atol=TOL * (50 if whiten else 1),
    )
    assert isinstance(mapped, np.memmap)  # read in blocks, never replaced by a copy


def test_nearest_rows_and_bad_input() -> None:
    rng = np.random.default_rng(5)
    pool = unit(rng.standard_normal((60, 8))).astype(np.float32)
    target = unit(rng.standard_normal((4, 8))).astype(np.float32)
    rows, cosines = nearest_rows(pool, target, top=3, block_rows=7)
    full = pool @ target.T
    for j in range(4):
        np.testing.assert_array_equal(rows[j], np.argsort(-full[:, j], kind="stable")[:3])
        np.testing.assert_allclose(cosines[j], full[rows[j], j], atol=TOL)
    with pytest.raises(PrismError) as error:
        relevance(pool, target, agg="mean")
    assert error.value.param == "agg"
    with pytest.raises(PrismError) as error:
        relevance(pool, target[:, :4])
    assert error.value.param == "target"
    with pytest.raises(PrismError) as error:
        relevance(pool, target, groups=np.array([0, 2, 2, 0]))
    assert error.value.param == "groups"
