"""Ordinary data that is a little odd must load; odd data must get a message, before any work.

Mixed-type, huge-integer, dict and map columns; ids 1 and "1"; gzip; semicolon CSVs; links that
loop, pipes, giant cells; what loading did silently (`Dataset.notes`); `--sample` and `--split`;
a workspace path that is a file; and a failed run leaves no folder behind.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_support import TINY, invoke, run_subprocess, sample_records, write_jsonl

from core.data.columns import ColumnMap, restore_json_columns
from core.data.dataset import load_dataset
from core.data.limits import MAX_CELL_CHARS
from core.data.read import read_table
from core.errors import DataError, WorkspaceError
from core.features.extract import FeatureConfig
from core.workspace import derived as samples_writer
from core.workspace.jobs.extraction import prepare_workspace
from core.workspace.store import SAMPLES

ODD_RECORDS = [
    {
        "question": "What is 2+2?",
        "answer": "4",
        "meta": 1,
        "big": 2**64 + 5,
        "info": {"source": "a", "n": 1},
        "tags": {},
    },
    {
        "question": "Name a colour.",
        "answer": "blue",
        "meta": "two",
        "big": 7,
        "info": {"source": "b", "extra": [1, "x"]},
        "tags": {},
    },
    {
        "question": "Say hi.",
        "answer": "hi",
        "meta": None,
        "big": None,
        "info": None,
        "tags": {},
    },
]


def _said(run) -> str:
    """A process's stderr on one line (rich wraps long messages at the terminal width)."""
    return " ".join(run.stderr.split())


def _prism(*args) -> tuple[int, str]:
    """An in-process `prism` call: (exit code, stderr on one line)."""
    code, _, stderr = invoke(*args)
    return code, " ".join(stderr.split())


def _stored_samples(tmp_path: Path, dataset) -> pd.DataFrame:
    """Write the dataset into a workspace as `prism features` does and read the table back."""
    ws = prepare_workspace(tmp_path / "ws", dataset, FeatureConfig(model="tiny", dim=64))
    return pd.read_parquet(ws.path / SAMPLES)


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_mixed_types_big_ints_and_dicts_load_and_round_trip(tmp_path, fmt):
    path = tmp_path / f"odd.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, ODD_RECORDS)
    else:
        path.write_text(json.dumps(ODD_RECORDS), encoding="utf-8")
    dataset = load_dataset(path)
    assert set(dataset.json_columns) == {"meta", "big", "info", "tags"}
    for col in dataset.json_columns:
        assert any(repr(col) in note and "JSON text" in note for note in dataset.notes)
    stored = _stored_samples(tmp_path, dataset)
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text())
    assert set(manifest["dataset"]["json_columns"]) == set(dataset.json_columns)
    back = restore_json_columns(stored, manifest["dataset"]["json_columns"])
    for col in ("question", "answer", "meta", "big", "info", "tags"):
        assert back[col].tolist() == [r[col] for r in ODD_RECORDS], col


def test_parquet_map_and_struct_columns_load_and_round_trip(tmp_path):
    maps = [[("k", 1)], [("j", 2), ("k", 3)]]
    table = pa.table(
        {
            "prompt": ["p1", "p2"],
            "response": ["r1", "r2"],
            "attrs": pa.array(maps, type=pa.map_(pa.string(), pa.int64())),
            "pos": pa.array([{"x": 1, "y": 2}, {"x": 3, "y": None}]),
            "big": pa.array([2**64 - 1, 5], type=pa.uint64()),
        }
    )
    pq.write_table(table, tmp_path / "maps.parquet")
    dataset = load_dataset(tmp_path / "maps.parquet")
    assert dataset.json_columns == ("attrs",)  # the struct and uint64 columns stay typed
    stored = _stored_samples(tmp_path, dataset)
    assert pq.read_schema(tmp_path / "ws" / SAMPLES).field("big").type == pa.uint64()
    back = restore_json_columns(stored, dataset.json_columns)
    assert back["attrs"].tolist() == [dict(m) for m in maps]
    assert back["big"].tolist() == [2**64 - 1, 5]
    assert back["pos"].tolist()[0] == {"x": 1, "y": 2}


def test_mixed_content_column_becomes_the_text_the_model_reads(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"prompt": "p1", "response": 4}, {"prompt": "p2", "response": "four"}],
    )
    dataset = load_dataset(path)
    assert dataset.json_columns == ()
    assert _stored_samples(tmp_path, dataset)["response"].tolist() == ["4", "four"]


def test_ids_1_and_text_1_collide(tmp_path):
    """Ids are compared as text: 1 and "1" are one id."""
    records = [
        {"id": 1, "prompt": "p1", "response": "r1"},
        {"id": "1", "prompt": "p2", "response": "r2"},
    ]
    path = write_jsonl(tmp_path / "ids.jsonl", records)
    dataset = load_dataset(path)  # id column auto-picked: passed over, rows numbered
    assert dataset.samples["id"].tolist() == ["0", "1"]
    (note,) = [n for n in dataset.notes if "sample id" in n]
    assert "'id'" in note and "rows 1, 2" in note and "numbered" in note
    back = restore_json_columns(_stored_samples(tmp_path, dataset), dataset.json_columns)
    assert back["id_orig"].tolist() == [1, "1"]
    explicit = ColumnMap(prompt="prompt", response="response", id="id")
    with pytest.raises(DataError, match=r"'id'.*'1' \(rows 1, 2\).*compared as text"):
        load_dataset(path, columns=explicit)


def test_unique_id_column_gives_no_note(tmp_path):
    dataset = load_dataset(write_jsonl(tmp_path / "d.jsonl", sample_records(3)))
    assert dataset.samples["id"].tolist() == ["s000", "s001", "s002"] and dataset.notes == ()


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json.gz", ".csv.gz", ".tsv.gz"])
def test_gzip_files_read_like_plain_ones(tmp_path, suffix):
    records = sample_records(4)
    frame = pd.DataFrame(records)
    plain = tmp_path / ("plain" + suffix[:-3])
    if suffix.startswith(".jsonl"):
        write_jsonl(plain, records)
    elif suffix.startswith(".json"):
        plain.write_text(json.dumps(records))
    else:
        frame.to_csv(plain, index=False, sep="\t" if "tsv" in suffix else ",")
    packed = tmp_path / ("packed" + suffix)
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_dataset(packed).fingerprint == load_dataset(plain).fingerprint
    broken = tmp_path / ("broken" + suffix)
    broken.write_bytes(gzip.compress(plain.read_bytes())[:-12])
    with pytest.raises(DataError, match="not a complete gzip file"):
        read_table(broken)


def test_semicolon_csv_gets_a_message(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("prompt;response\nHello, you;hi, there\nmore;text\n")
    with pytest.raises(DataError, match=r"semi\.csv.*looks semicolon-delimited"):
        read_table(path)


def test_duplicate_csv_headers_renamed_and_said(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text("prompt,response,tag,tag\np,r,a,b\n")
    dataset = load_dataset(path)
    assert list(dataset.samples.columns) == ["id", "prompt", "response", "tag", "tag.1"]
    assert any("'tag' → 'tag.1'" in note for note in dataset.notes)


def test_symlink_loop_and_dangling_link(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(DataError, match="loops back on itself"):
        read_table(a)
    gone = tmp_path / "gone.jsonl"
    gone.symlink_to(tmp_path / "nowhere.jsonl")
    with pytest.raises(DataError, match="symbolic link to .*nowhere.jsonl.*does not exist"):
        read_table(gone)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_fifo_gets_a_message_not_a_hang(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    run = run_subprocess("features", fifo, *TINY, "--workspace", tmp_path / "ws", timeout=60)
    assert run.returncode == 2, run.stderr
    assert "named pipe (FIFO), not a regular file" in _said(run)
    assert "Traceback" not in run.stderr and not (tmp_path / "ws").exists()


def test_giant_cell_is_refused_naming_row_and_column(tmp_path):
    records = sample_records(3)
    records[1]["response"] = "x" * (MAX_CELL_CHARS + 1)
    path = write_jsonl(tmp_path / "big.jsonl", records)
    with pytest.raises(DataError, match=r"row 2 \(id 's001'\): column 'response'.*1,000,000"):
        load_dataset(path)
    chat = [
        {"role": "user", "content": "a" * (MAX_CELL_CHARS // 2 + 1)},
        {"role": "assistant", "content": "b" * (MAX_CELL_CHARS // 2 + 1)},
    ]
    chats = write_jsonl(tmp_path / "chat.jsonl", [{"messages": chat}])
    with pytest.raises(DataError, match=r"row 1.*'messages'.*characters per content cell"):
        load_dataset(chats)
    records[1]["response"] = "x" * MAX_CELL_CHARS  # at the limit is fine
    assert load_dataset(write_jsonl(tmp_path / "ok.jsonl", records)).n_samples == 3


def test_sample_is_seeded_random_and_in_file_order(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", sample_records(40, n_empty=3))
    full = load_dataset(path).samples["id"].tolist()
    first = load_dataset(path, sample=10).samples["id"].tolist()
    again = load_dataset(path, sample=10, sample_seed=0).samples["id"].tolist()
    other = load_dataset(path, sample=10, sample_seed=1).samples["id"].tolist()
    assert first == again and first != other
    assert len(set(first)) == 10 and set(first) <= set(full)
    assert first == sorted(first, key=full.index)  # file order kept
    assert first != full[:10]  # not the head
    everything = load_dataset(path, sample=100)
    assert everything.samples["id"].tolist() == full
    assert any("only 40 rows" in n for n in everything.notes)
    with pytest.raises(DataError, match="not both"):
        load_dataset(path, sample=3, limit=3)
    for bad in (0, -2, True):
        with pytest.raises(DataError, match="sample must be a positive"):
            load_dataset(path, sample=bad)
    with pytest.raises(DataError, match="sample_seed"):
        load_dataset(path, sample=3, sample_seed=-1)


def test_cli_sample_recorded_in_manifest_and_notes_printed(tmp_path):
    records = [dict(r, id="same") for r in sample_records(12)]  # auto-picked id, not unique
    path = write_jsonl(tmp_path / "d.jsonl", records)
    ws = tmp_path / "ws"
    code, said = _prism(
        "features", path, *TINY, "--workspace", ws, "--sample", "5", "--sample-seed", "3",
        "--quiet", "--max-length", "8",
    )  # fmt: skip
    assert code == 0, said
    dataset = json.loads((ws / "manifest.json").read_text())["dataset"]
    assert dataset["sample"] == 5 and dataset["sample_seed"] == 3 and dataset["n_samples"] == 5
    expected = load_dataset(path, sample=5, sample_seed=3)
    stored = pd.read_parquet(ws / SAMPLES)
    assert stored["prompt"].tolist() == expected.samples["prompt"].tolist()
    assert "note:" in said and "numbered from 0" in said
    # Every sample is longer than 8 tokens: the run summary says they were truncated.
    assert "5 of 5 samples were longer than --max-length 8 tokens" in said


def test_split_names_outside_the_folder_are_refused(tmp_path):
    outside = tmp_path / "secret"
    datasets.Dataset.from_list([{"text": "private"}]).save_to_disk(str(outside))
    folder = tmp_path / "root" / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "public"}])}).save_to_disk(
        str(folder)
    )
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["../../secret"]}))
    with pytest.raises(DataError, match="outside the dataset folder"):
        read_table(folder, split="../../secret")
    with pytest.raises(DataError, match="outside the dataset folder"):
        read_table(folder)  # the only split, named in the file
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    state = json.loads((folder / "train" / "state.json").read_text())
    arrow = next((outside).glob("*.arrow")).name
    state["_data_files"] = [{"filename": f"../../../secret/{arrow}"}]
    (folder / "train" / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match="data file .*outside the dataset folder"):
        read_table(folder)
    (folder / "train" / "link.arrow").symlink_to(outside / arrow)
    state["_data_files"] = [{"filename": "link.arrow"}]
    (folder / "train" / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match="outside the dataset folder"):
        read_table(folder)


def test_split_on_a_file_or_unknown_split(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", sample_records(2))
    with pytest.raises(DataError, match="Leave `split` unset"):
        load_dataset(path, split="train")
    folder = tmp_path / "dd"
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"text": "t"}])}).save_to_disk(
        str(folder)
    )
    with pytest.raises(DataError, match="no split 'train'; its splits are 'test'"):
        load_dataset(folder, split="train")
    only = load_dataset(folder)
    assert only.split == "test" and any("only split" in n for n in only.notes)


# ------------------------------------------------------------------------------ workspaces


def test_workspace_that_is_a_file_gets_a_message_before_work(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", sample_records(3))
    target = tmp_path / "taken.txt"
    target.write_text("my notes")
    for ws in (target, target / "sub"):
        code, said = _prism("features", data, *TINY, "--workspace", ws, "--quiet")
        assert code == 2 and "is not a directory" in said and "Traceback" not in said, said
    assert target.read_text() == "my notes"
    with pytest.raises(WorkspaceError, match="not a directory"):
        prepare_workspace(target, load_dataset(data), FeatureConfig(model="tiny", dim=64))


def test_failed_prepare_leaves_no_folder_it_created(tmp_path, monkeypatch):
    dataset = load_dataset(write_jsonl(tmp_path / "d.jsonl", sample_records(3)))

    def broken(path, frame):
        Path(path).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(samples_writer, "write_parquet", broken)  # samples.parquet's writer
    config = FeatureConfig(model="tiny", dim=64)
    with pytest.raises(OSError):
        prepare_workspace(tmp_path / "new" / "deeper" / "ws", dataset, config)
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError):
        prepare_workspace(empty, dataset, config)
    assert empty.is_dir() and list(empty.iterdir()) == []  # kept, as it was


def test_failed_run_removes_the_parent_folders_it_made(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", sample_records(3))
    ws = tmp_path / "made" / "by" / "run"
    code, said = _prism(
        "features", data, "--model", tmp_path / "no-such-model", "--dim", "64",
        "--workspace", ws, "--quiet", "--device", "cpu",
    )  # fmt: skip
    assert code == 2, said
    assert not (tmp_path / "made").exists()


def test_odd_metadata_round_trips_through_a_jsonl_export(tmp_path):
    """Columns kept as JSON text in the workspace come back as values in a JSONL export."""
    data = write_jsonl(tmp_path / "odd.jsonl", ODD_RECORDS)
    ws = tmp_path / "ws"
    code, err = _prism("features", data, *TINY, "--workspace", ws, "--quiet")
    assert code == 0, err
    out = tmp_path / "all.jsonl"
    code, err = _prism("export", ws, "--out", out)
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for col in ("question", "answer", "meta", "big", "info", "tags"):
        assert [r[col] for r in rows] == [r[col] for r in ODD_RECORDS], col
