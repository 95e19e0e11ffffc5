"""`prism import-features`: a workspace from a dataset and features computed elsewhere."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_support import invoke, sample_records, write_jsonl

from core.data.dataset import load_dataset
from core.errors import PrismError
from core.workspace.imported import import_features
from core.workspace.store import Workspace

N, D = 40, 12


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data.jsonl", sample_records(N))


def raw_features(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, D))
    return (3.0 * centres[np.arange(N) % 4] + rng.standard_normal((N, D))).astype(np.float64)


def test_npy_round_trip_and_provenance(tmp_path: Path, data: Path) -> None:
    features = raw_features()
    source = tmp_path / "feats.npy"
    np.save(source, features, allow_pickle=False)
    ws = import_features(tmp_path / "ws", load_dataset(str(data)), source)
    reopened = Workspace.open(ws.path)
    stored = np.asarray(reopened.features())
    expected = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert stored.dtype == np.float32 and stored.shape == (N, D)
    np.testing.assert_allclose(stored, expected, atol=1e-6)
    section = reopened.feature_section
    assert section is not None and section.complete
    assert section.settings["model"] == "imported"
    assert section.settings["source"] == str(source.absolute())
    assert section.settings["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert section.settings["original_dim"] == D
    assert reopened.scores is not None and 1.0 <= (reopened.scores.g_vendi or 0) <= D


def test_parquet_list_column(tmp_path: Path, data: Path) -> None:
    features = raw_features(1).astype(np.float32)
    source = tmp_path / "feats.parquet"
    table = pa.table({"id": [f"s{i:03d}" for i in range(N)], "emb": list(features)})
    pq.write_table(table, source)
    ws = import_features(tmp_path / "ws", load_dataset(str(data)), source)
    expected = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(ws.features()), expected, atol=1e-6)
    with pytest.raises(PrismError, match="no list column 'vec'"):
        import_features(tmp_path / "ws2", load_dataset(str(data)), source, column="vec")


def test_bad_features_are_refused_with_messages(tmp_path: Path, data: Path) -> None:
    dataset = load_dataset(str(data))
    short = tmp_path / "short.npy"
    np.save(short, raw_features()[:-3])
    with pytest.raises(PrismError, match="37 feature rows but the dataset has 40 samples"):
        import_features(tmp_path / "a", dataset, short)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.ones(N))
    with pytest.raises(PrismError, match=r"2-D numeric array .* shape \(40,\)"):
        import_features(tmp_path / "b", dataset, flat)
    nan = raw_features()
    nan[[3, 17]] = np.nan
    nan[5, 0] = np.inf
    bad = tmp_path / "nan.npy"
    np.save(bad, nan)
    with pytest.raises(PrismError, match="3 feature rows hold NaN .* 's003', 's005', 's017'"):
        import_features(tmp_path / "c", dataset, bad)
    zero = raw_features()
    zero[9] = 0
    np.save(tmp_path / "zero.npy", zero)
    with pytest.raises(PrismError, match="all zero .* 's009'") as caught:
        import_features(tmp_path / "d", dataset, tmp_path / "zero.npy")
    assert caught.value.param == "features"
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}] * N, dtype=object), allow_pickle=True)
    with pytest.raises(PrismError, match="pickled .* never loads"):
        import_features(tmp_path / "e", dataset, pickled)
    for name in "abcde":  # nothing half-written is left behind
        assert not (tmp_path / name).exists()


def test_cli_import_then_cluster_select_export(tmp_path: Path, data: Path) -> None:
    source = tmp_path / "feats.npy"
    np.save(source, raw_features().astype(np.float32))
    ws = tmp_path / "ws"
    code, _, err = invoke("import-features", data, source, "--workspace", ws)
    assert code == 0, err
    assert "40 samples × d 12 imported" in err
    code, _, err = invoke("cluster", ws, "--k", 4)
    assert code == 0, err
    labels = Workspace.open(ws).samples()["cluster"].to_numpy()
    assert sorted(np.bincount(labels).tolist()) == [10, 10, 10, 10]  # the 4 planted clusters
    code, out, err = invoke("select", ws, "--method", "k_center", "--k", 8, "--name", "spread")
    assert code == 0, err
    out_file = tmp_path / "spread.jsonl"
    code, _, err = invoke("export", ws, "--subset", "spread", "--out", out_file)
    assert code == 0, err
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 8 and all(r["id"].startswith("s") for r in rows)
    code, _, err = invoke("import-features", data, tmp_path / "missing.npy", "--workspace", ws)
    assert code == 2 and "not empty" in err
