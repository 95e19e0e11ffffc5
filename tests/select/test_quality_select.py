"""The quality selectors: quality_diverse's cosine rule, the blend's two ends, and the reasons
for every row left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import invoke

from core.errors import PrismError
from core.select.quality import REASONS
from core.select.selectors import Pool, explain, select

N, DIM = 300, 16


@pytest.fixture(scope="module")
def pool() -> Pool:
    """Rows around 10 directions (many close pairs), a continuous loss with planted extremes."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((10, DIM))
    raw = centres[rng.integers(0, 10, N)] + 0.6 * rng.standard_normal((N, DIM))
    features = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    loss = np.exp(rng.normal(0.3, 0.25, N))
    loss[[5, 6]] = [60.0, 0.001]  # a broken row and a memorised one
    loss[9] = np.nan  # no score
    return Pool(features, columns={"loss": loss, "ifd": rng.uniform(0.5, 1.2, N)})


def _covers_every_left_out_row(pool: Pool, rows: np.ndarray, left_out: object) -> None:
    left = np.setdiff1d(np.arange(pool.n), rows)
    assert sorted(left_out.rows.tolist()) == left.tolist()  # type: ignore[attr-defined]
    assert set(left_out.reasons) <= set(REASONS)  # type: ignore[attr-defined]


@pytest.mark.parametrize("threshold", [0.6, 0.8])
def test_quality_diverse_keeps_no_close_pair_and_says_why(pool: Pool, threshold: float) -> None:
    rows, left_out = explain("quality_diverse", pool, budget=None, seed=0, threshold=threshold)
    again = select("quality_diverse", pool, budget=None, seed=7, threshold=threshold)
    np.testing.assert_array_equal(rows, again)  # deterministic, whatever the seed
    cosines = pool.features[rows] @ pool.features[rows].T
    assert (cosines[~np.eye(len(rows), dtype=bool)] < threshold).all()
    quality = -pool.columns["loss"]
    assert (np.diff(quality[rows]) <= 0).all()  # best first
    _covers_every_left_out_row(pool, rows, left_out)
    reasons = dict(zip(left_out.rows.tolist(), left_out.reasons, strict=True))
    assert reasons[5] == "high_loss_outlier" and reasons[6] == "low_loss_outlier"
    assert reasons[9] == "no_score"
    position = {r: i for i, r in enumerate(rows.tolist())}
    for i, row in enumerate(left_out.rows.tolist()):
        if left_out.reasons[i] == "too_similar":
            twin = int(left_out.other[i])
            # Its twin is a kept row of better quality, as close as the reason says.
            assert twin in position and quality[twin] >= quality[row]
            cos = float(pool.features[row] @ pool.features[twin])
            assert cos == pytest.approx(float(left_out.cosine[i]), abs=1e-5)
            assert cos >= threshold - 1e-6
    assert "too_similar" in left_out.reasons


def test_quality_diverse_budget_is_a_prefix_and_the_rest_is_below_the_cut(pool: Pool) -> None:
    everything = select("quality_diverse", pool, budget=None, seed=0, threshold=0.7)
    rows, left_out = explain("quality_diverse", pool, budget=20, seed=0, threshold=0.7)
    np.testing.assert_array_equal(rows, everything[:20])
    _covers_every_left_out_row(pool, rows, left_out)
    cut = (-pool.columns["loss"])[rows].min()
    below = [
        r for r, why in zip(left_out.rows, left_out.reasons, strict=True) if why == "below_cut"
    ]
    assert below and (-pool.columns["loss"][below] <= cut).all()
    by_ifd = select("quality_diverse", pool, budget=20, seed=0, threshold=0.7, score="ifd")
    assert not np.array_equal(by_ifd, rows)
    with pytest.raises(PrismError, match="'grad_norm'") as caught:
        select("quality_diverse", pool, budget=20, seed=0, score="grad_norm")
    assert caught.value.param == "options"


def test_blend_at_beta_zero_is_vendi_greedy_and_at_large_beta_follows_quality(pool: Pool) -> None:
    for seed in (0, 3):
        blend = select("quality_blend", pool, budget=25, seed=seed, beta=0.0, outliers="keep")
        np.testing.assert_array_equal(blend, select("vendi_greedy", pool, budget=25, seed=seed))
    rows, left_out = explain("quality_blend", pool, budget=25, seed=0, beta=1e6)
    quality = -pool.columns["loss"]
    usable = np.flatnonzero(np.isfinite(quality) & ~np.isin(np.arange(N), [5, 6]))
    best = usable[np.argsort(-quality[usable], kind="stable")[:25]]
    np.testing.assert_array_equal(rows, best)
    _covers_every_left_out_row(pool, rows, left_out)
    assert {"lower_gain", "high_loss_outlier", "low_loss_outlier", "no_score"} <= set(
        left_out.reasons
    )
    # In between, diversity and quality trade: more β, better mean quality.
    means = [
        quality[select("quality_blend", pool, budget=25, seed=0, beta=b)].mean()
        for b in (0.0, 1.0, 1e6)
    ]
    assert means[0] < means[1] < means[2]


def test_only_the_quality_selectors_explain(pool: Pool) -> None:
    with pytest.raises(PrismError, match="quality_diverse, quality_blend") as caught:
        explain("vendi_greedy", pool, budget=10, seed=0)
    assert caught.value.param == "explain"
    with pytest.raises(PrismError, match="beta must be a number ≥ 0"):
        select("quality_blend", pool, budget=10, seed=0, beta=-1.0)


def test_cli_explains_every_row_left_out_and_prints_the_blend_curve(copy_built: Path) -> None:
    code, out, err = invoke(
        "select", copy_built, "--method", "quality_diverse", "--option", "threshold=0.2",
        "--name", "best", "--explain", "--json",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(out)
    ids = {r["id"] for r in record["left_out"]}
    assert record["size"] + len(ids) == 16 and len(ids) == len(record["left_out"])
    assert all(r["why"] for r in record["left_out"])
    code, out, err = invoke(
        "select", copy_built, "--method", "quality_diverse", "--k", "3", "--name", "b3",
        "--option", "threshold=0.999", "--explain",
    )  # fmt: skip
    assert code == 0 and "left out 13 rows" in out and "below_cut" in out, (out, err)
    code, out, err = invoke("select", copy_built, "--method", "random", "--k", "3",
                            "--name", "r3", "--explain")  # fmt: skip
    assert code == 2 and "--explain" in err
    code, out, err = invoke("quality", copy_built, "--blend-curve", "--k", "5", "--betas", "0,100",
                            "--json")  # fmt: skip
    assert code == 0, err
    points = json.loads(out)["blend_curve"]["points"]
    assert [p["beta"] for p in points] == [0.0, 100.0, None] and all(p["size"] == 5 for p in points)
    assert points[1]["mean_loss"] <= points[0]["mean_loss"]
