"""Tests for the text-space baseline: the packaged sentence-embedding model (offline), sample texts,
``prism embed`` on a tiny-model workspace, and ``text_scores`` for diversity tables."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import N_SAMPLES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from core.data.columns import ColumnMap  # noqa: E402
from core.errors import PrismError  # noqa: E402
from core.measures import embed as embed_module  # noqa: E402 — after the offline switches
from core.measures.embed import EmbedConfig, embed_texts, packaged_model_dir  # noqa: E402
from core.measures.lexical import distinct_n, ngram_vendi  # noqa: E402
from core.measures.textspace import sample_texts  # noqa: E402
from core.measures.vendi import vendi_score  # noqa: E402
from core.workspace.analyses import embed_workspace, text_scores, workspace_texts  # noqa: E402
from core.workspace.store import Workspace  # noqa: E402

TEXTS = [
    "A cat sits on the mat.",
    "A kitten is sitting on a rug.",
    "Quarterly tax filings are due in April.",
    "Natalia sold clips to 48 of her friends in April, and then half as many in May.",
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_packaged_model_ships_inside_site_packages() -> None:
    path = packaged_model_dir()
    assert "site-packages" in path.parts
    assert (path / "model.safetensors").is_file() and (path / "modules.json").is_file()


def test_embeddings_are_unit_deterministic_and_offline(no_network: None) -> None:
    embed_module._load.cache_clear()  # load from disk here, with the network closed
    features = embed_texts(TEXTS, device="cpu", batch_size=2)
    assert features.shape == (len(TEXTS), 384) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    # the same texts and settings give the same numbers; another batch size nearly so
    np.testing.assert_array_equal(embed_texts(TEXTS, device="cpu", batch_size=2), features)
    np.testing.assert_allclose(embed_texts(TEXTS, device="cpu", batch_size=3), features, atol=1e-5)
    # each text's row does not depend on its neighbours in the list
    np.testing.assert_allclose(embed_texts(TEXTS[::-1], device="cpu"), features[::-1], atol=1e-5)


def test_embeddings_put_paraphrases_together() -> None:
    features = embed_texts(TEXTS, device="cpu")
    cosines = features @ features.T
    assert cosines[0, 1] > 0.5 > cosines[0, 2]
    assert cosines[0, 1] > cosines[0, 3]


def test_bad_settings_are_named() -> None:
    with pytest.raises(PrismError, match=r"batch_size must be an integer ≥ 1") as error:
        EmbedConfig(batch_size=0)
    assert error.value.param == "batch_size"  # the CLI names --batch-size, the app its field
    with pytest.raises(PrismError, match="device"):
        EmbedConfig(device="tpu")
    with pytest.raises(PrismError, match="cannot load the sentence-transformers model"):
        embed_texts(["x"], model="/nonexistent/model/dir", device="cpu")
    with pytest.raises(PrismError, match="texts must be a sequence of strings"):
        embed_texts("one string", device="cpu")


def test_sample_texts_use_what_the_model_sees() -> None:
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "q": ["What is 2+2?", "Name a colour."],
            "r": ["4", "Blue"],
            "chat": [
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                [{"from": "human", "value": "Ping"}, {"from": "gpt", "value": "Pong"}],
            ],
            "body": ["plain one", "plain two"],
        }
    )
    pairs = sample_texts(frame, ColumnMap(prompt="q", response="r"))
    assert pairs == ["What is 2+2?\n\n4", "Name a colour.\n\nBlue"]
    assert sample_texts(frame, ColumnMap(messages="chat")) == ["Hi\n\nHello", "Ping\n\nPong"]
    assert sample_texts(frame, ColumnMap(text="body")) == ["plain one", "plain two"]


# --------------------------------------------------------------------------------------------
# prism embed on a workspace


def test_prism_embed_adds_columns_and_the_manifest_section(
    run_cli: Any, copy_built: Path, no_network: None
) -> None:
    before = Workspace.open(copy_built).samples()
    code, out, err = run_cli("embed", copy_built, "--device", "cpu", "--k", "3", "--seed", "0")
    assert code == 0, err
    assert "embedding Vendi" in out and "neighbourhood agreement (k = 10)" in out

    ws = Workspace.open(copy_built)
    assert ws.has_embeddings
    embeddings = ws.embeddings()
    assert embeddings.shape == (N_SAMPLES, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # the stored rows are the embeddings of the workspace's own sample texts, in row order
    np.testing.assert_allclose(
        embeddings, embed_texts(workspace_texts(ws), device="cpu"), atol=1e-5
    )

    samples = ws.samples()
    assert sorted(set(samples["emb_cluster"])) == [0, 1, 2]
    assert samples["emb_cluster"].dtype == np.int32
    coords = samples[["emb_umap_x", "emb_umap_y"]].to_numpy()
    assert np.all(np.isfinite(coords)) and coords.std() > 0
    agreement = samples["nbr_agreement"].to_numpy()
    assert np.all((agreement >= 0) & (agreement <= 1))
    np.testing.assert_allclose(agreement * 10, np.round(agreement * 10), atol=1e-5)
    # the gradient-space columns are left as they were
    pd.testing.assert_frame_equal(samples[list(before.columns)], before)
    assert set(samples.columns) - set(before.columns) == {
        "emb_cluster",
        "emb_umap_x",
        "emb_umap_y",
        "nbr_agreement",
    }

    section = ws.manifest["embedding"]
    assert section["model"] == "default" and section["model_name"].endswith("all-MiniLM-L6-v2")
    assert (section["dim"], section["n"], section["seed"]) == (384, N_SAMPLES, 0)
    assert section["embedding_vendi"] == pytest.approx(vendi_score(embeddings))
    assert 1.0 < section["embedding_vendi"] < N_SAMPLES
    assert section["vendi"]["1"] == pytest.approx(section["embedding_vendi"])
    assert section["clusters"]["n_clusters"] == 3 and sum(section["clusters"]["sizes"]) == 16
    assert section["seconds"] > 0 and section["created"]
    near = section["neighbours"]
    assert near["k"] == 10 and near["chance"] == pytest.approx(10 / 15)
    assert near["mean_agreement"] == pytest.approx(float(agreement.mean()), abs=1e-6)
    assert -1.0 <= near["rank_correlation"] <= 1.0

    lexical = ws.manifest["lexical"]
    texts = workspace_texts(ws)
    assert lexical["ngram_vendi"] == pytest.approx(ngram_vendi(texts))
    assert lexical["distinct_2"] == pytest.approx(distinct_n(texts, n=2))

    # `prism score` shows the text-space numbers beside G-Vendi
    code, out, err = run_cli("score", copy_built, "--json")
    assert code == 0, err
    text = json.loads(out)["text"]
    assert text["embedding_vendi"] == pytest.approx(section["embedding_vendi"])
    assert text["ngram_vendi"] == pytest.approx(lexical["ngram_vendi"])
    code, out, err = run_cli("score", copy_built)
    assert code == 0, err
    assert "embedding Vendi (text space)" in out and "distinct-2" in out


def test_text_scores_of_rows(copy_built: Path) -> None:
    ws = Workspace.open(copy_built)
    rows = np.array([0, 3, 5, 9])
    texts = [workspace_texts(ws)[i] for i in rows]
    scores = text_scores(ws, rows)
    assert set(scores.to_dict()) == {"embedding_vendi", "ngram_vendi", "distinct_2"}
    assert scores.embedding_vendi is None  # no `prism embed` yet
    assert scores.ngram_vendi == pytest.approx(ngram_vendi(texts))
    assert scores.distinct_2 == pytest.approx(distinct_n(texts, n=2))

    embed_workspace(ws, device="cpu", n_clusters=2)
    scores = text_scores(ws, rows)
    assert scores.embedding_vendi == pytest.approx(vendi_score(ws.embeddings()[rows]))
    # one row repeated is one point: every Vendi score is 1
    same = text_scores(ws, np.array([2, 2, 2]))
    assert same.embedding_vendi == pytest.approx(1.0)
    assert same.ngram_vendi == pytest.approx(1.0)
    with pytest.raises(PrismError, match="rows must lie in"):
        text_scores(ws, np.array([0, N_SAMPLES]))


def test_embed_without_gradient_features(tmp_path: Path) -> None:
    samples = pd.DataFrame({"id": [str(i) for i in range(6)], "text": TEXTS + TEXTS[:2]})
    manifest = {
        "dataset": {
            "n_samples": 6,
            "fingerprint": "f" * 16,
            "columns": ColumnMap(text="text").to_dict(),
        }
    }
    ws = Workspace.create(tmp_path / "ws", manifest, samples)
    section = embed_workspace(ws, device="cpu", n_neighbors=3)
    assert section.neighbours is None
    columns = set(Workspace.open(ws.path).samples().columns)
    assert {"emb_cluster", "emb_umap_x", "emb_umap_y"} <= columns
    assert "nbr_agreement" not in columns
    # duplicated texts embed to the same point
    embeddings = Workspace.open(ws.path).embeddings()
    np.testing.assert_allclose(embeddings[4], embeddings[0], atol=1e-6)
    # embeddings of another dataset's rows are not this dataset's
    ws.manifest["dataset"]["fingerprint"] = "0" * 16
    assert not ws.has_embeddings
    with pytest.raises(PrismError, match="prism embed"):
        ws.embeddings()
