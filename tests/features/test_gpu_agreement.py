"""CPU and GPU compute the same features: real rows, the tiny model, float32, one seed.

Kept out of the default run by the ``gpu`` marker (``pytest -m gpu`` on a CUDA machine); it fails,
rather than skips, where no CUDA device is present, so a GPU run cannot pass by not running.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.dataset import load_dataset
from core.data.text import conversations
from core.features import kernels
from core.features.extract import FeatureConfig, FeatureExtractor
from core.features.proxy import load_proxy

N_ROWS = 12
# Same bound as the batch-shape agreement in test_gradients (float32; observed ~1e-7).
FEATURE_ATOL = 1e-5

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("scope", ["all", "last:1"])
def test_cpu_and_cuda_features_agree(scope: str) -> None:
    assert torch.cuda.is_available(), "the gpu marker needs a CUDA device"
    dataset = load_dataset("demo:gsm8k", limit=N_ROWS)
    samples = conversations(dataset.samples, dataset.columns)
    runs = {}
    for device in ("cpu", "cuda"):
        proxy = load_proxy("tiny", dtype="float32", device=device)
        config = FeatureConfig(model="tiny", scope=scope, seed=3, batch_size=4, device=device)
        extractor = FeatureExtractor(proxy, config)
        runs[device] = extractor.compute(extractor.encode(samples))
    # On the GPU the fused kernels (loss, SiLU·up, rotary) ran compiled, not their eager fallback.
    assert not kernels._COMPILE_FAILED
    cpu, cuda = runs["cpu"], runs["cuda"]
    assert cpu.features.shape == cuda.features.shape == (N_ROWS, 1024)
    assert np.abs(cpu.features - cuda.features).max() <= FEATURE_ATOL
    np.testing.assert_allclose(cpu.loss, cuda.loss, rtol=1e-5)
    np.testing.assert_allclose(cpu.grad_norm, cuda.grad_norm, rtol=1e-4)
