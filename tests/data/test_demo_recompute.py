"""The shipped demo is what Prism computes: a few rows recomputed on the CPU, and its scores.

The demo's features were computed on a GPU (see its manifest); on the CPU the same settings give
the same unit rows up to float32 rounding, checked here as a cosine ≥ 0.999 on three real rows with
the embedded model. Its stored Vendi scores are recomputed from its ``features.npy``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import load_dataset
from core.data.text import conversations
from core.features.extract import FeatureConfig, FeatureExtractor
from core.features.proxy import load_proxy
from core.measures.vendi import vendi_scores
from core.workspace.demo import SHIPPED

N_ROWS = 3


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((SHIPPED / "manifest.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def stored() -> np.ndarray:
    return np.load(SHIPPED / "features.npy", allow_pickle=False, mmap_mode="r")


def test_three_demo_rows_recomputed_on_the_cpu(manifest: dict, stored: np.ndarray) -> None:
    dataset = load_dataset(manifest["dataset"]["source"])
    assert dataset.fingerprint == manifest["dataset"]["fingerprint"]
    ids = pd.read_parquet(SHIPPED / "samples.parquet", columns=["id"])["id"].tolist()
    assert ids == dataset.samples["id"].tolist()
    # The three shortest rows (the cheapest to recompute), wherever they lie in the file.
    lengths = [len(json.dumps(c)) for c in conversations(dataset.samples, dataset.columns)]
    rows = sorted(np.argsort(lengths, kind="stable")[:N_ROWS].tolist())
    settings = manifest["features"]["settings"]
    config = FeatureConfig(**settings, device="cpu")
    proxy = load_proxy(config.model, dtype=config.dtype, device="cpu")
    assert proxy.fingerprint == manifest["features"]["model_fingerprint"]
    extractor = FeatureExtractor(proxy, config)
    samples = conversations(dataset.samples.iloc[rows], dataset.columns)
    features = extractor.compute(extractor.encode(samples)).features.astype(np.float64)
    want = np.asarray(stored[rows], dtype=np.float64)
    cosines = np.sum(features * want, axis=1) / (
        np.linalg.norm(features, axis=1) * np.linalg.norm(want, axis=1)
    )
    assert np.all(cosines >= 0.999), f"cosines with the shipped features: {cosines}"


def test_demo_scores_recomputed_from_its_features(manifest: dict, stored: np.ndarray) -> None:
    scores = manifest["scores"]
    assert scores["n"] == stored.shape[0] and scores["dim"] == stored.shape[1]
    qs = {key: math.inf if key == "inf" else float(key) for key in scores["vendi"]}
    got = vendi_scores(np.asarray(stored), qs=tuple(qs.values()))
    for key, q in qs.items():
        assert got[q] == pytest.approx(scores["vendi"][key], rel=1e-6), f"Vendi q={key}"
    assert got[1.0] == pytest.approx(scores["g_vendi"], rel=1e-6)
