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
from core.measures.vendi import vendi_scores
from core.workspace.imported import MAX_IMPORT_DIM, import_features
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


def _imported(tmp_path: Path, data: Path) -> Path:
    source = tmp_path / "feats.npy"
    np.save(source, raw_features().astype(np.float32))
    return import_features(tmp_path / "ws", load_dataset(str(data)), source).path


def test_complex_and_garbage_feature_files_are_refused(tmp_path: Path, data: Path) -> None:
    dataset = load_dataset(str(data))
    waves = tmp_path / "complex.npy"
    np.save(waves, raw_features() + 1j * raw_features(1))
    with pytest.raises(PrismError, match="real numbers; got dtype complex128") as caught:
        import_features(tmp_path / "a", dataset, waves)
    assert "Complex values are refused" in str(caught.value) and caught.value.param == "features"
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"these bytes were never a numpy file" * 10)
    with pytest.raises(PrismError, match="not a .npy file") as caught:
        import_features(tmp_path / "b", dataset, garbage)
    assert "pickled" not in str(caught.value) and "unsafe" not in str(caught.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_few_rows_of_many_numbers_use_the_small_gram_matrix(tmp_path: Path) -> None:
    """12 rows × d = 16,384: G-Vendi from the 12×12 kernel (the d×d matrix would be 2 GiB);
    d above the limit is refused with the limit and how to project down."""
    import tracemalloc

    data = write_jsonl(tmp_path / "twelve.jsonl", sample_records(12))
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((12, MAX_IMPORT_DIM)).astype(np.float32)
    np.save(tmp_path / "wide.npy", wide)
    tracemalloc.start()
    try:
        ws = import_features(tmp_path / "ws", load_dataset(str(data)), tmp_path / "wide.npy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20, peak  # a d×d float64 matrix alone is 2 GiB
    unit = wide.astype(np.float64) / np.linalg.norm(wide, axis=1, keepdims=True)
    expected = vendi_scores(unit, qs=(1.0,))[1.0]  # 12 near-orthogonal rows: about 12
    assert ws.scores is not None and ws.scores.g_vendi == pytest.approx(expected, rel=1e-6)
    assert 11 < expected <= 12
    too_wide = tmp_path / "too-wide.npy"
    np.save(too_wide, np.ones((12, MAX_IMPORT_DIM + 1), dtype=np.float16))
    with pytest.raises(PrismError, match=f"d = {MAX_IMPORT_DIM + 1:,} .* more than the 16,384"):
        import_features(tmp_path / "ws2", load_dataset(str(data)), too_wide)
    assert not (tmp_path / "ws2").exists()


def test_synthesis_on_imported_features_is_refused_up_front(tmp_path: Path, data: Path) -> None:
    from core.workspace.synthesis.loop import SynthesisConfig, start

    ws = _imported(tmp_path, data)
    manifest = (ws / "manifest.json").read_bytes()
    code, _, err = invoke("synthesize", ws, "--rounds", 1)
    message = " ".join(err.split())
    assert code == 2, message
    assert "imported from" in message and "own feature space" in message
    assert f"prism features {data}" in message and "unexpected" not in message
    with pytest.raises(PrismError, match="own feature space"):
        start(ws, SynthesisConfig())  # the app's Start: refused before a job is made
    assert not (ws / "jobs" / "synthesis.json").exists()  # no failed job left behind
    assert (ws / "manifest.json").read_bytes() == manifest


@pytest.mark.parametrize("damage", ["garbage", "deleted"])
def test_a_damaged_imported_workspace_is_told_to_import_again(
    tmp_path: Path, data: Path, damage: str
) -> None:
    ws = _imported(tmp_path, data)
    if damage == "garbage":
        (ws / "features.npy").write_bytes(b"not an array at all" * 100)
    else:
        (ws / "features.npy").unlink()
    commands = [("cluster", ws, "--k", 4), ("score", ws)]
    if damage == "deleted":
        commands.append(("resume", ws))  # resume cannot compute imported features either
    for command in commands:
        code, _, err = invoke(*command)
        message = " ".join(err.split())
        assert code == 2, message
        if command[0] != "resume":
            assert "features.npy" in message, message
            assert ("not a .npy file" if damage == "garbage" else "is missing") in message
        assert f"prism import-features {data} {tmp_path / 'feats.npy'}" in message
        for wrong in ("prism features", "prism resume", "pickled", "unsafe"):
            assert wrong not in message, message
