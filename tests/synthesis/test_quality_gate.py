"""The quality gate before joining (``core.synthesis.quality``): the safe arithmetic parser, the
self-consistency check on the packaged GSM8K answers and on planted wrong ones, and the loss band."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from core.errors import PrismError
from core.synthesis.filter import judge, text_key
from core.synthesis.quality import answer_problem, arithmetic, assess, checkable, loss_band
from core.workspace.demo import SHIPPED

GOOD = "She buys 3+4=<<3+4=7>>7 pens, then 7 x 2 = 14 more.\n#### 14"


@pytest.fixture(scope="module")
def gsm8k() -> list[str]:
    return [
        str(a) for a in pd.read_parquet(SHIPPED / "samples.parquet", columns=["answer"])["answer"]
    ]


def test_arithmetic_reads_numbers_and_operators_and_runs_nothing() -> None:
    assert arithmetic("80,000+50,000") == 130_000
    assert arithmetic("$2.50 * 4 - (1/2)") == pytest.approx(9.5)
    assert arithmetic("20% * 50") == pytest.approx(10)
    assert arithmetic("3 x 4 ÷ 2 – 1") == pytest.approx(5)
    assert arithmetic("-.5*-4") == pytest.approx(2)
    for bad in ("__import__('os')", "2**64", "x", "(1).real", "1 if 1 else 2", "[1]", "1/0", ""):
        with pytest.raises(ValueError):
            arithmetic(bad)


def test_every_packaged_gsm8k_answer_is_consistent_but_the_one_with_a_real_typo(
    gsm8k: list[str],
) -> None:
    """1,318 of the 1,319 GSM8K test answers pass; the one that does not has a typo in its
    working ("$32 - $20 = $300" for $320 - $20), which the check names."""
    assert len(gsm8k) == 1319 and checkable(gsm8k)
    problems = {i: answer_problem(a) for i, a in enumerate(gsm8k)}
    failing = {i: p for i, p in problems.items() if p}
    assert list(failing.values()) == ["the calculation 32 - $20 = 300 is wrong (it is 12)"]
    assert "$32 - $20 = $300 left" in gsm8k[next(iter(failing))]


def test_planted_wrong_answers_fail_with_their_reason(gsm8k: list[str]) -> None:
    annotated = [a for a in gsm8k[:200] if not answer_problem(a) and "<<" in a][:60]
    assert len(annotated) == 60
    for answer in annotated:
        final = re.search(r"#### (.+)$", answer).group(1)  # type: ignore[union-attr]
        wrong_final = re.sub(r"#### .+$", f"#### {float(final.replace(',', '')) + 7:g}", answer)
        assert "follows from no line of the working" in answer_problem(wrong_final), answer
        # The first calculator annotation's result off by one.
        match = re.search(r"<<([^=<>]+)=([^<>]+)>>", answer)
        value = arithmetic(match.group(1))  # type: ignore[union-attr]
        bad = answer.replace(match.group(0), f"<<{match.group(1)}={value + 1:g}>>", 1)  # type: ignore[union-attr]
        assert "is wrong" in answer_problem(bad), bad
        assert answer_problem(answer[: answer.rfind("####")]) == "no '#### N' final answer line"
    assert "is wrong" in answer_problem("He has 3 + 4 = 8 apples.\n#### 8")
    assert "not a number" in answer_problem("He has 7 apples.\n#### seven")
    assert answer_problem(GOOD) == ""


def test_the_gate_rejects_out_of_band_losses_and_wrong_answers_and_keeps_good_ones() -> None:
    rng = np.random.default_rng(0)
    source_losses = rng.normal(1.0, 0.1, 500)
    low, high = loss_band(source_losses)
    assert (low, high) == pytest.approx(tuple(np.percentile(source_losses, [5, 95])))
    source = [GOOD] * 50
    responses = [GOOD, GOOD, GOOD, GOOD.replace("#### 14", "#### 15"), None, "a statement."]
    losses = np.array([1.0, low - 0.01, high + 0.5, 1.0, 0.0, 1.0])
    quality = assess(responses, losses, source_losses=source_losses, source_responses=source)
    assert quality.checked and quality.band == pytest.approx((low, high))
    problems = list(quality.problem)
    assert problems[0] == "" and problems[4] == ""  # good; malformed is not judged here
    assert "below the source band" in problems[1] and "above the source band" in problems[2]
    assert "follows from no line" in problems[3]
    assert problems[5] == "no '#### N' final answer line"
    assert quality.passed.tolist() == [True, False, False, False, True, False]
    # Source answers without a '#### N' line are not checkable: only the loss band applies.
    plain = assess(responses, losses, source_losses=source_losses, source_responses=["Yes."] * 9)
    assert not plain.checked and plain.passed.tolist() == [True, False, False, True, True, True]
    with pytest.raises(PrismError, match="losses has 2 values for 6"):
        assess(responses, losses[:2], source_losses=source_losses, source_responses=source)


def test_judge_records_low_quality_after_duplicates_and_before_dense() -> None:
    features = np.eye(5, dtype=np.float32)[:4]
    centroids = np.eye(5, dtype=np.float32)[[0, 1, 2, 3]]
    pool = np.eye(5, dtype=np.float32)[4:]
    verdict = judge(
        features,
        ["a", "b", "c", "d"],
        centroids=centroids,
        sizes=np.array([1, 1, 5, 5]),
        pool_features=pool,
        pool_keys=[text_key("a")],
        quality=["too high", "the calculation 1+1 = 3 is wrong (it is 2)", "", ""],
    )
    assert verdict.reason.tolist() == ["duplicate", "low quality", "dense", "dense"]
    assert verdict.counts()["low_quality"] == 1
    with pytest.raises(PrismError, match="quality has 1 verdicts for 4"):
        judge(features, ["a", "b", "c", "d"], centroids=centroids, sizes=np.array([1, 1, 5, 5]),
              pool_features=pool, quality=[""])  # fmt: skip
