"""Packed batches (samples one after another in one row, no pad token) give the padded features.

Tiny model on real GSM8K rows, float32 on the CPU, where the packed attention is one causal SDPA
call per sample (on a GPU it is the variable-length flash kernel; bench/peers.py checks it there).
"""

import numpy as np
import pytest
import torch

from core.data.dataset import load_dataset
from core.data.text import conversations
from core.features.extract import FeatureConfig, FeatureExtractor
from core.features.kernels import packed_attention
from core.features.proxy import load_proxy
from core.features.tokenize import Encoded, encode_many, pack

# Largest absolute difference allowed between the packed and the padded computation of the same
# unit feature row (float32; observed ~2e-7).
FEATURE_ATOL = 1e-5


@pytest.fixture(scope="module")
def tiny_proxy():
    return load_proxy("tiny")


@pytest.fixture(scope="module")
def encoded(tiny_proxy):
    dataset = load_dataset("demo:gsm8k", limit=8)
    rows = conversations(dataset.samples, dataset.columns)
    extractor = FeatureExtractor(tiny_proxy, FeatureConfig(model="tiny"))
    return extractor.encode(rows)


def _extractor(proxy, *, packed: bool, batch_tokens: int = 1024):
    extractor = FeatureExtractor(proxy, FeatureConfig(model="tiny", batch_tokens=batch_tokens))
    extractor.pack = packed
    return extractor


@pytest.fixture(scope="module")
def padded_and_packed(tiny_proxy, encoded):
    padded = _extractor(tiny_proxy, packed=False).compute(encoded)
    packer = _extractor(tiny_proxy, packed=True)
    assert max(len(b) for b in packer.batches(encoded)) > 1  # several samples share a row
    return padded, packer.compute(encoded)


def test_packed_features_equal_padded(padded_and_packed):
    padded, packed = padded_and_packed
    assert np.abs(packed.features - padded.features).max() <= FEATURE_ATOL
    np.testing.assert_allclose(packed.loss, padded.loss, rtol=1e-5)
    np.testing.assert_allclose(packed.grad_norm, padded.grad_norm, rtol=1e-5)
    np.testing.assert_array_equal(packed.n_tokens, padded.n_tokens)


def test_packed_rows_keep_the_order_given(tiny_proxy, encoded, padded_and_packed):
    _, straight = padded_and_packed
    order = np.random.default_rng(0).permutation(len(encoded))
    shuffled = _extractor(tiny_proxy, packed=True).compute([encoded[i] for i in order])
    assert np.abs(shuffled.features - straight.features[order]).max() <= FEATURE_ATOL
    np.testing.assert_allclose(shuffled.loss, straight.loss[order], rtol=1e-5)


def test_a_neighbour_in_the_row_does_not_change_a_sample(tiny_proxy, encoded):
    extractor = _extractor(tiny_proxy, packed=True, batch_tokens=4096)
    first, second = encoded[0], encoded[1]
    other = Encoded(tuple(reversed(first.input_ids)), first.n_prompt)
    together = extractor.compute([first, second]).features
    changed = extractor.compute([other, second]).features
    assert len(extractor.batches([first, second])) == 1
    assert np.abs(changed[1] - together[1]).max() <= FEATURE_ATOL
    assert np.abs(changed[0] - together[0]).max() > 1e-2


def test_packed_batches_cover_rows_once_within_the_token_budget(tiny_proxy, encoded):
    budget = 700
    extractor = _extractor(tiny_proxy, packed=True, batch_tokens=budget)
    batches = extractor.batches(encoded)
    assert sorted(i for b in batches for i in b) == list(range(len(encoded)))
    for batch in batches:
        tokens = sum(len(encoded[i].input_ids) for i in batch)
        assert tokens <= budget or len(batch) == 1
    lengths = [len(encoded[i].input_ids) for b in batches for i in b]
    assert lengths == sorted(lengths, reverse=True)


def test_pack_layout():
    batch = [Encoded((5, 6, 7), 1), Encoded((8, 9), 1), Encoded((1, 2, 3, 4), 2)]
    packed = pack(batch)
    np.testing.assert_array_equal(packed.input_ids, [5, 6, 7, 8, 9, 1, 2, 3, 4])
    np.testing.assert_array_equal(packed.position_ids, [0, 1, 2, 0, 1, 0, 1, 2, 3])
    np.testing.assert_array_equal(packed.sample, [0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(packed.offsets, [0, 3, 5, 9])
    assert packed.max_length == 4


def test_packed_attention_equals_each_sample_alone():
    generator = torch.Generator().manual_seed(0)
    lengths = [5, 9, 3]
    query = torch.randn(1, 4, sum(lengths), 8, generator=generator)
    key = torch.randn(1, 2, sum(lengths), 8, generator=generator)
    value = torch.randn(1, 2, sum(lengths), 8, generator=generator)
    offsets = torch.tensor([0, 5, 14, 17])
    out, _ = packed_attention(
        torch.nn.Module(), query, key, value, None, prism_cu_seqlens=offsets, prism_max_length=9
    )
    assert out.shape == (1, 17, 4, 8)
    for lo, hi in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        # Grouped-query attention by hand: each key/value head serves two query heads.
        k = key[:, :, lo:hi].repeat_interleave(2, dim=1)
        v = value[:, :, lo:hi].repeat_interleave(2, dim=1)
        scores = query[:, :, lo:hi] @ k.transpose(-1, -2) / np.sqrt(8)
        causal = torch.ones(hi - lo, hi - lo, dtype=torch.bool).tril()
        alone = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v
        torch.testing.assert_close(out[0, lo:hi], alone[0].transpose(0, 1), atol=1e-6, rtol=1e-5)


def test_batched_tokenisation_equals_one_at_a_time(tiny_proxy):
    dataset = load_dataset("demo:gsm8k", limit=24)
    rows = conversations(dataset.samples, dataset.columns)
    samples = [*rows[:12], "plain text, all of it response", *rows[12:]]
    batched = encode_many(tiny_proxy.tokenizer, samples, max_length=96)
    alone = [encode_many(tiny_proxy.tokenizer, [s], max_length=96)[0] for s in samples]
    assert batched == alone
    assert any(e.truncated for e in batched) and not all(e.truncated for e in batched)
    assert len({len(e.input_ids) for e in batched}) > 1
