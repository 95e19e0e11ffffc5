"""Tests for core.measures.lexical: distinct-n by hand, and the n-gram Vendi score against a direct N×N kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from vendi_score.vendi import score_K

from core.errors import PrismError
from core.measures.lexical import TOKEN_PATTERN, distinct_n, distinct_ns, ngram_counts, ngram_vendi


def _sklearn_counts(texts: list[str], ngram_range: tuple[int, int] = (1, 2)) -> np.ndarray:
    vectoriser = CountVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=ngram_range)
    return vectoriser.fit_transform(texts).toarray().astype(np.float64)


def _direct_ngram_vendi(texts: list[str]) -> float:
    """Reference: scikit-learn's CountVectorizer counts, the dense N×N cosine kernel, scored by
    the Vendi-Score package's own formula (exp of the entropy of the eigenvalues of K/N)."""
    counts = _sklearn_counts(texts)
    unit = counts / np.linalg.norm(counts, axis=1, keepdims=True)
    return float(score_K(unit @ unit.T, q=1))


def _zipf_texts(n: int, *, seed: int, vocab: int = 3000, exponent: float = 0.9) -> list[str]:
    """Texts of Zipf-distributed words: a few common words shared by all, a long tail."""
    rng = np.random.default_rng(seed)
    p = np.arange(1, vocab + 1, dtype=np.float64) ** -exponent
    p /= p.sum()
    lengths = rng.integers(20, 80, size=n)
    words = rng.choice(vocab, size=int(lengths.sum()), p=p)
    ends = np.cumsum(lengths)
    return [
        " ".join(f"w{w}" for w in words[e - length : e])
        for e, length in zip(ends, lengths, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# distinct-n


def test_distinct_n_by_hand() -> None:
    texts = ["The cat sat.", "the cat ran"]
    # tokens: the cat sat | the cat ran → unigrams 6 total, 4 unique (the cat sat ran)
    assert distinct_n(texts, n=1) == pytest.approx(4 / 6)
    # bigrams: the-cat, cat-sat | the-cat, cat-ran → 4 total, 3 unique
    assert distinct_n(texts, n=2) == pytest.approx(3 / 4)
    # trigrams: the-cat-sat | the-cat-ran → 2 total, 2 unique; no n-gram spans two texts
    assert distinct_n(texts, n=3) == pytest.approx(1.0)
    assert distinct_n(texts, n=4) == 0.0  # no text has four tokens


def test_distinct_n_tokenisation_keeps_single_characters_and_digits() -> None:
    # "It's 5 p.m." → it s 5 p m: five tokens, all distinct; "IT" lower-cases to "it"
    assert distinct_n(["It's 5 p.m.", "IT"], n=1) == pytest.approx(5 / 6)


def test_distinct_n_of_repeated_text_falls_with_copies() -> None:
    text = "one two three four five"
    assert distinct_n([text], n=2) == 1.0
    assert distinct_n([text] * 4, n=2) == pytest.approx(0.25)


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 3)])
def test_counts_match_scikit_learn(ngram_range: tuple[int, int]) -> None:
    """The vectorised n-gram counts equal CountVectorizer's up to the order of the columns."""
    texts = _zipf_texts(40, seed=1, vocab=50) + ["", "One", "It's 5 p.m."]
    ours = ngram_counts(texts, ngram_range=ngram_range).toarray()
    theirs = _sklearn_counts(texts, ngram_range)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours @ ours.T, theirs @ theirs.T)
    np.testing.assert_array_equal(np.sort(ours.sum(axis=0)), np.sort(theirs.sum(axis=0)))
    # distinct-n of the highest order, from scikit-learn's vocabulary of that order alone
    n = ngram_range[1]
    only = _sklearn_counts(texts, (n, n))
    assert distinct_n(texts, n=n) == pytest.approx(only.shape[1] / only.sum())


def test_distinct_ns_agree_with_distinct_n() -> None:
    texts = _zipf_texts(30, seed=2, vocab=40)
    together = distinct_ns(texts)
    assert list(together) == [1, 2, 3, 4]
    for n, value in together.items():
        assert value == distinct_n(texts, n=n)
    assert together[1] < together[2] < together[3] <= together[4] <= 1.0


def test_distinct_n_rejects_bad_n() -> None:
    with pytest.raises(PrismError, match="n must be an integer ≥ 1"):
        distinct_n(["a b"], n=0)
    with pytest.raises(PrismError, match="texts must be a sequence of strings"):
        distinct_n("a b", n=1)


# --------------------------------------------------------------------------------------------
# n-gram Vendi, exact


def test_identical_texts_score_one() -> None:
    assert ngram_vendi(["the same words here"] * 9) == pytest.approx(1.0, abs=1e-9)


def test_disjoint_vocabularies_score_n() -> None:
    texts = [f"alpha{i} beta{i} gamma{i}" for i in range(12)]
    assert ngram_vendi(texts) == pytest.approx(12.0, rel=1e-9)


def test_case_and_punctuation_do_not_make_texts_different() -> None:
    assert ngram_vendi(["Hello, world!", "hello world", "HELLO   WORLD."]) == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")
def test_agrees_with_a_direct_kernel_computation() -> None:
    texts = _zipf_texts(60, seed=3)
    expected = _direct_ngram_vendi(texts)
    assert 1.0 < expected < 60.0
    assert ngram_vendi(texts) == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")
def test_vocabulary_side_is_exact_too() -> None:
    # More texts than n-grams: the V×V covariance is decomposed instead of the N×N kernel.
    texts = ["a b", "b c", "a c", "c a b"] * 10
    assert ngram_counts(texts).shape[1] < len(texts)
    assert ngram_vendi(texts, max_exact=8) == pytest.approx(_direct_ngram_vendi(texts), rel=1e-9)


def test_texts_without_words_are_left_out() -> None:
    texts = ["red green", "blue yellow", "?!"]
    assert ngram_vendi(texts) == pytest.approx(2.0)
    with pytest.raises(PrismError, match="no text has a word token"):
        ngram_vendi(["...", "!!"])


def test_bad_input_is_named() -> None:
    with pytest.raises(PrismError, match="texts is empty"):
        ngram_vendi([])
    with pytest.raises(PrismError, match="ngram_range"):
        ngram_vendi(["a b"], ngram_range=(2, 1))
    with pytest.raises(PrismError, match=r"texts\[1\] must be a string"):
        ngram_vendi(["a", 3])  # type: ignore[list-item]


# --------------------------------------------------------------------------------------------
# n-gram Vendi, estimated (large N)


def test_estimate_is_within_five_percent_of_exact() -> None:
    """The estimator used above ``max_exact`` texts, forced here on 1,500 texts (measured errors
    0.1–0.4 % at this size and up to 3 % at 1,000 texts over four seeds)."""
    texts = _zipf_texts(1500, seed=0)
    exact = ngram_vendi(texts)
    assert 100 < exact < 1000  # a spectrum neither trivial nor flat
    for seed in (0, 1):
        assert ngram_vendi(texts, max_exact=0, seed=seed) == pytest.approx(exact, rel=0.05)


def test_estimate_of_the_extremes() -> None:
    assert ngram_vendi(["same words"] * 50, max_exact=0) == pytest.approx(1.0, rel=1e-6)
    disjoint = [f"alpha{i} beta{i}" for i in range(80)]
    assert ngram_vendi(disjoint, max_exact=0) == pytest.approx(80.0, rel=0.02)
    assert math.isfinite(ngram_vendi(disjoint, max_exact=0, n_probes=1))
    # deterministic for a seed, and the seed matters
    texts = _zipf_texts(300, seed=2)
    first = ngram_vendi(texts, max_exact=0, seed=3)
    assert ngram_vendi(texts, max_exact=0, seed=3) == first
    assert ngram_vendi(texts, max_exact=0, seed=4) != first
