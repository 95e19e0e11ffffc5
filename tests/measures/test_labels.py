"""core.measures.words: the words that name a cluster."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.measures.words import top_words


def test_each_cluster_is_named_by_its_own_recurring_words() -> None:
    texts = [
        "The train left the station late",
        "A train waits at the station",
        "The station has one train and a clock",
        "Trains and stations and a penguin",
        "Apples grow on apple trees in the orchard",
        "The orchard sells apples by the basket",
        "Apples from the orchard are sweet",
        "An orchard of apples and one penguin",
    ]
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    words = top_words(texts, labels, n_words=2)
    assert set(words[0]) == {"station", "train"}
    assert set(words[1]) == {"apples", "orchard"}
    assert "penguin" not in words[0] + words[1]  # in one sample of each: names neither


def test_empty_clusters_and_stop_words_only() -> None:
    assert top_words(["the and of", "is it"], np.array([0, 2]), n_clusters=3) == [[], [], []]
    words = top_words(["rivers flow", "rivers bend", "deserts"], np.array([1, 1, 2]), n_clusters=4)
    assert words[0] == [] and words[3] == []
    assert "rivers" in words[1] and words[2] == ["deserts"]
    # a word in every sample tells the clusters apart from nothing
    assert top_words(["sea coral", "sea kelp"], np.array([0, 1])) == [["coral"], ["kelp"]]


def test_bad_input_is_a_message() -> None:
    with pytest.raises(PrismError, match="one cluster per text"):
        top_words(["a", "b"], np.array([0]))
    with pytest.raises(PrismError, match="n_words"):
        top_words(["a"], np.array([0]), n_words=0)
