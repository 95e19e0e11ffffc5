"""Text files that are not UTF-8: an `encoding` to read them, and a message that names the
encoding a file looks like (charset-normalizer's guess) when it is not given.

Also: content columns named by the user still get the id column detected unless one is named.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.columns import ColumnMap
from core.data.dataset import load_dataset
from core.data.read import read_head
from core.errors import DataError

# Varied French prose: enough text for a detector to judge (a few repeated words are not).
PROSE = (
    "Il était une fois, dans un petit village de Provence, un boulanger qui se levait chaque "
    "matin à quatre heures. Son pain était célèbre dans toute la région : croûte dorée, mie "
    "légère, une odeur qui réveillait les voisins. Les enfants passaient devant sa boutique en "
    "rêvant des croissants. Un jour, un étranger arriva, vêtu d'un manteau trop grand ; il "
    "demanda s'il pouvait échanger une histoire contre un morceau de brioche. « Volontiers », "
    "répondit le boulanger, « mais qu'elle soit vraie ! » Ça m'a coûté 12 € — déjà payé."
)


def _records(n: int = 40) -> list[dict[str, str]]:
    return [
        {"id": f"t{i}", "question": PROSE[i * 5 : i * 5 + 90], "answer": PROSE[i * 7 :][:60]}
        for i in range(n)
    ]


def _expected() -> pd.DataFrame:
    return pd.DataFrame(_records())


def _write(path: Path, encoding: str) -> Path:
    """The records in `path`'s format (CSV, TSV, JSON, JSON Lines; `.gz` too) and `encoding`."""
    if ".jsonl" in path.name:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _records())
    elif ".json" in path.name:
        text = json.dumps(_records(), ensure_ascii=False)
    else:
        text = _expected().to_csv(index=False, sep="\t" if ".tsv" in path.name else ",")
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("tweets.csv", "cp1252"),
        ("tweets.tsv", "iso8859-15"),
        ("rows.jsonl", "cp1252"),
        ("rows.jsonl.gz", "utf-16"),  # two bytes per character: lines split after decoding
        ("rows.csv.gz", "utf-16"),
        ("rows.json", "cp1252"),
    ],
)
def test_an_encoding_reads_the_text_as_written(tmp_path: Path, name: str, encoding: str) -> None:
    path = _write(tmp_path / name, encoding)
    dataset = load_dataset(path, encoding=encoding)
    got = dataset.samples[["id", "question", "answer"]]
    assert got.to_dict("records") == _records()
    # the same rows, ids and fingerprint as the file saved as UTF-8
    assert load_dataset(_write(tmp_path / f"utf8-{name}", "utf-8")).fingerprint == (
        dataset.fingerprint
    )
    assert (
        read_head(path, encoding=encoding)["question"].tolist() == _expected()["question"].tolist()
    )


@pytest.mark.parametrize(
    ("name", "encoding"),
    [("tweets.csv", "cp1252"), ("rows.jsonl", "shift_jis"), ("rows.jsonl.gz", "utf-16")],
)
def test_undecodable_text_names_the_encoding_it_looks_like(
    tmp_path: Path, name: str, encoding: str
) -> None:
    path = tmp_path / name
    if encoding == "shift_jis":
        rows = [
            {"question": f"これは質問です {i}。日本語のテキストを読みます。", "answer": f"答え {i}"}
            for i in range(30)
        ]
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding=encoding
        )
    else:
        _write(path, encoding)
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    error = caught.value
    message = str(error)
    assert error.param == "encoding"
    assert "is not valid UTF-8" in message and "charset-normalizer" in message
    named = message.split("It looks like ")[1].split(",")[0].split(" ")[0]
    # the first encoding named reads the file without an error, to the same rows
    if encoding in ("utf-16", "shift_jis"):
        assert named in ("utf-16", "cp932", "shift_jis")
    assert f"pass the encoding {named}" in message
    assert (
        load_dataset(path, encoding=named).n_samples
        == load_dataset(path, encoding=encoding).n_samples
    )


def test_a_wrong_encoding_is_named_and_a_guess_given(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.jsonl", "utf-16")
    with pytest.raises(DataError, match=r"cannot be read as ascii .*It looks like utf-16") as e:
        load_dataset(path, encoding="ascii")
    assert e.value.param == "encoding"


@pytest.mark.parametrize("bad", ["no-such-codec", "base64", "rot13"])
def test_an_unknown_or_binary_encoding_is_refused(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path / "tweets.csv", "cp1252")
    with pytest.raises(DataError, match=rf"encoding must be a text encoding .*got '{bad}'") as e:
        load_dataset(path, encoding=bad)
    assert e.value.param == "encoding"


def test_utf8_spelled_out_is_the_default_and_parquet_refuses_another(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records()), encoding="utf-8")
    assert load_dataset(path, encoding="UTF-8").fingerprint == load_dataset(path).fingerprint
    parquet = tmp_path / "rows.parquet"
    pd.DataFrame(_records()).to_parquet(parquet)
    assert load_dataset(parquet, encoding="utf-8").n_samples == 40
    with pytest.raises(DataError, match="stores text as UTF-8") as e:
        load_dataset(parquet, encoding="cp1252")
    assert e.value.param == "encoding"


# ------------------------------------------------------------------------------------------
# The id column with named content columns


def test_named_content_columns_keep_the_detected_id(tmp_path: Path) -> None:
    rows = [{"problem": f"p{i}", "solution": f"s{i}", "id": f"m{100 - i}"} for i in range(12)]
    path = tmp_path / "math.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    given = ColumnMap(prompt="problem", response="solution")
    detected = load_dataset(path, columns=given, detect_ids=True)
    assert detected.columns.id == "id"
    assert detected.samples["id"].tolist() == [f"m{100 - i}" for i in range(12)]
    assert load_dataset(path).columns == detected.columns  # what full detection finds
    # without detection (the app's "row number"), rows are numbered
    plain = load_dataset(path, columns=given)
    assert plain.columns.id is None and plain.samples["id"].tolist()[:2] == ["0", "1"]


def test_a_repeated_id_column_is_passed_over_with_a_note(tmp_path: Path) -> None:
    rows = [{"q": f"p{i}", "a": f"s{i}", "uid": f"u{i % 5}"} for i in range(12)]
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = load_dataset(path, columns=ColumnMap(prompt="q", response="a"), detect_ids=True)
    assert dataset.columns.id is None
    assert dataset.samples["id"].tolist() == [str(i) for i in range(12)]
    assert any("'uid'" in n and "not used as the sample id" in n for n in dataset.notes)


def test_a_content_column_named_id_is_not_also_the_id(tmp_path: Path) -> None:
    rows = [{"id": f"text {i}", "other": f"x{i}"} for i in range(6)]
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = load_dataset(path, columns=ColumnMap(text="id"), detect_ids=True)
    assert dataset.columns.id is None
    assert np.array_equal(dataset.samples["id"].to_numpy(), np.arange(6).astype(str))
