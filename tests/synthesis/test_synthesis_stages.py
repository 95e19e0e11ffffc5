"""The synthesis stages on arrays: targets, prompts and the keep/reject filter."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.synthesis.filter import judge, max_cosine, text_key
from core.synthesis.prompts import Example, clean_reply, prompt_chat, response_chat, text_chat
from core.synthesis.targets import Target, parse_target, plan_requests, smallest_clusters


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


# -- targets ----------------------------------------------------------------------------------


def test_parse_target_reads_every_kind_and_refuses_the_rest() -> None:
    assert parse_target("sparse") == Target("sparse")
    assert parse_target("random") == Target("random")
    assert parse_target("cluster:12") == Target("cluster", cluster=12)
    assert parse_target("subset:hard maths") == Target("subset", subset="hard maths")
    for bad in ("dense", "cluster:x", "cluster:-1", "subset:", "sparse:3", "", None):
        with pytest.raises(PrismError) as error:
            parse_target(bad)
        assert error.value.param == "target"


def test_smallest_clusters_are_the_smallest_tenth_of_non_empty_ones() -> None:
    sizes = np.array([50, 0, 3, 40, 3, 9, 30, 20, 10, 12, 11, 2])
    # 11 non-empty clusters → ceil(1.1) = 2 smallest: sizes 2 (id 11) and 3 (id 2, the lower id)
    assert smallest_clusters(sizes).tolist() == [11, 2]
    assert smallest_clusters(sizes, fraction=1.0).tolist()[:3] == [11, 2, 4]


def test_requests_draw_few_shot_examples_from_their_own_target_cluster() -> None:
    labels = np.repeat(np.arange(10), [40, 30, 20, 12, 10, 9, 8, 6, 3, 2])
    requests = plan_requests(
        labels, n_clusters=10, target=Target("sparse"), n_requests=30, few_shot=5, seed=7
    )
    assert len(requests) == 30
    for request in requests:
        assert request.target_cluster == 9  # the smallest 10% of 10 clusters is one cluster
        assert len(request.example_rows) == 2  # it has only two members: both are shown
        assert set(labels[list(request.example_rows)]) == {9}
    spread = plan_requests(
        labels, n_clusters=10, target=Target("random"), n_requests=200, few_shot=5, seed=7
    )
    assert len({r.target_cluster for r in spread}) == 10
    for request in spread:
        rows = list(request.example_rows)
        assert len(set(rows)) == len(rows) == min(5, int((labels == request.target_cluster).sum()))
        assert set(labels[rows]) == {request.target_cluster}
    again = plan_requests(
        labels, n_clusters=10, target=Target("random"), n_requests=200, few_shot=5, seed=7
    )
    assert again == spread


def test_cluster_and_subset_targets() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    one = plan_requests(
        labels, n_clusters=4, target=parse_target("cluster:1"), n_requests=4, few_shot=2, seed=0
    )
    assert all(r.target_cluster == 1 and set(labels[list(r.example_rows)]) == {1} for r in one)
    with pytest.raises(PrismError, match="cluster 3 is not a non-empty cluster"):
        plan_requests(
            labels, n_clusters=4, target=parse_target("cluster:3"), n_requests=1, few_shot=2, seed=0
        )
    subset = plan_requests(
        labels,
        n_clusters=4,
        target=parse_target("subset:s"),
        n_requests=5,
        few_shot=3,
        seed=0,
        subset_rows=np.array([5, 0]),
    )
    assert all(r.target_cluster is None and set(r.example_rows) == {0, 5} for r in subset)


# -- prompts ----------------------------------------------------------------------------------


def test_chats_carry_the_examples() -> None:
    examples = [Example(prompt=f"Q{i}", response=f"A{i}") for i in range(3)]
    asked = prompt_chat(examples)[-1]["content"]
    assert all(f"Q{i}" in asked for i in range(3)) and "A0" not in asked
    chat = response_chat("New Q", examples)
    assert [m["role"] for m in chat] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert chat[-1]["content"] == "New Q" and chat[2]["content"] == "A0"
    assert "T1" in text_chat([Example(text="T0"), Example(text="T1")])[-1]["content"]


def test_clean_reply_strips_labels_and_refuses_malformed_replies() -> None:
    assert clean_reply("New question: How many apples are left?") == "How many apples are left?"
    assert clean_reply('**Problem 2:** "A train leaves at 3pm."') == "A train leaves at 3pm."
    for bad in (None, "", "   ", "Sure!", "Question:", "42"):
        assert clean_reply(bad) is None
    assert clean_reply("Tom has 3 apples.", ["Tom has 3 apples."]) is None  # copied an example


# -- the filter -------------------------------------------------------------------------------


def test_filter_keeps_exactly_the_candidates_whose_nearest_centroid_is_sparse() -> None:
    rng = np.random.default_rng(0)
    centroids = _unit(np.eye(6, 16) + 0.01)
    sizes = np.array([30, 25, 20, 4, 3, 2])  # median 12: clusters 3, 4, 5 are sparse
    # One candidate planted near each centroid, twice over.
    nearest = np.tile(np.arange(6), 2)
    candidates = _unit(centroids[nearest] + 0.05 * rng.standard_normal((12, 16)))
    pool = _unit(rng.standard_normal((50, 16)))
    texts = [f"candidate {i} text" for i in range(12)]
    verdict = judge(
        candidates,
        texts,
        centroids=centroids,
        sizes=sizes,
        pool_features=pool,
        duplicate_cosine=0.999,
    )
    assert verdict.nearest.tolist() == nearest.tolist()
    kept = verdict.reason == "kept"
    assert kept.tolist() == (sizes[nearest] < np.median(sizes)).tolist()
    assert set(verdict.reason[~kept]) == {"dense"}
    assert verdict.counts() == {
        "malformed": 0,
        "duplicate": 0,
        "low_quality": 0,
        "dense": 6,
        "kept": 6,
    }
    # Without the filter (the published ablation) every candidate is kept.
    loose = judge(
        candidates,
        texts,
        centroids=centroids,
        sizes=sizes,
        pool_features=pool,
        duplicate_cosine=0.999,
        sparse_only=False,
    )
    assert (loose.reason == "kept").all()


def test_filter_names_malformed_and_duplicates_first() -> None:
    centroids = _unit(np.eye(3, 8))
    sizes = np.array([10, 1, 1])
    pool = _unit(np.eye(3, 8)[[0, 0, 0]] + np.array([0, 0, 0, 1, 0, 0, 0, 0]))
    base = _unit(np.eye(3, 8)[[1, 1, 2, 2, 2]])
    features = base.copy()
    features[4] = pool[0]  # a copy of a pool row's features
    texts = [None, "twin text", "Twin  TEXT", "pool prompt", "new"]
    verdict = judge(
        features,
        texts,
        centroids=centroids,
        sizes=sizes,
        pool_features=pool,
        pool_keys=[text_key("pool prompt")],
        duplicate_cosine=0.99,
    )
    # 0: no sample; 1: new, but its cluster (size 1) is not below the median (1): dense;
    # 2: 1's text again (case and spaces folded); 3: a pool row's text; 4: a pool row's features.
    assert verdict.reason.tolist() == ["malformed", "dense", "duplicate", "duplicate", "duplicate"]
    assert verdict.nearest[0] == -1 and np.isnan(verdict.pool_cosine[0])
    assert verdict.pool_cosine[4] == pytest.approx(1.0, abs=1e-6)


def test_max_cosine_reads_the_pool_in_blocks() -> None:
    rng = np.random.default_rng(1)
    pool, queries = _unit(rng.standard_normal((300, 8))), _unit(rng.standard_normal((7, 8)))
    expected = (pool @ queries.T).max(axis=0)
    np.testing.assert_allclose(max_cosine(pool, queries, chunk_rows=64), expected, atol=1e-6)
    assert np.isneginf(max_cosine(pool[:0], queries)).all()
