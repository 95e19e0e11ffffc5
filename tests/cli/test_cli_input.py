"""The dataset options of `prism import-features` (the same as `prism features`): `--encoding`
for text that is not UTF-8, and the id column detected unless `--id-col` names one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FRENCH = (
    "Il était une fois, dans un petit village de Provence, un boulanger qui se levait chaque "
    "matin à quatre heures. Son pain était célèbre dans toute la région : croûte dorée, mie "
    "légère. « Volontiers », répondit-il. Ça m'a coûté 12 € — déjà payé."
)


def _rows(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"tw{i}" for i in range(n)],
            "tweet": [FRENCH[i * 3 : i * 3 + 80] for i in range(n)],
            "reply": [FRENCH[i * 5 :][:40] for i in range(n)],
        }
    )


def _features(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "features.npy"
    np.save(path, np.random.default_rng(0).normal(size=(n, 6)))
    return path


def _manifest(ws: Path) -> dict[str, Any]:
    return json.loads((ws / "manifest.json").read_text())


def test_encoding_option_reads_a_cp1252_csv(run_cli: Any, tmp_path: Path) -> None:
    source = tmp_path / "tweets.csv"
    source.write_bytes(_rows().to_csv(index=False).encode("cp1252"))
    args = ["import-features", source, _features(tmp_path), "--prompt-col", "tweet"]
    args += ["--response-col", "reply"]
    code, _, err = run_cli(*args, "-w", tmp_path / "refused")
    assert code == 2
    assert "--encoding:" in err and "is not valid UTF-8" in err
    assert "as detected by charset-normalizer: pass the encoding " in err
    assert not (tmp_path / "refused").exists()
    code, _, err = run_cli(*args, "-w", tmp_path / "ws", "--encoding", "cp1252")
    assert code == 0, err
    samples = pd.read_parquet(tmp_path / "ws" / "samples.parquet")
    assert samples["tweet"].tolist() == _rows()["tweet"].tolist()  # é, «, € as written
    # named content columns, no --id-col: the id column is still detected
    assert _manifest(tmp_path / "ws")["dataset"]["columns"]["id"] == "id"
    assert samples["id"].tolist() == _rows()["id"].tolist()


def test_id_col_still_wins_and_a_bad_encoding_names_the_flag(run_cli: Any, tmp_path: Path) -> None:
    rows = _rows().assign(key=[f"k{i}" for i in range(20)])
    source = tmp_path / "rows.jsonl"
    source.write_text(rows.to_json(orient="records", lines=True, force_ascii=False))
    base = ["import-features", source, _features(tmp_path), "--prompt-col", "tweet"]
    base += ["--response-col", "reply"]
    code, _, err = run_cli(*base, "-w", tmp_path / "ws", "--id-col", "key")
    assert code == 0, err
    samples = pd.read_parquet(tmp_path / "ws" / "samples.parquet")
    assert samples["id"].tolist() == rows["key"].tolist()
    code, _, err = run_cli(*base, "-w", tmp_path / "ws2", "--encoding", "klingon")
    assert code == 2 and "--encoding" in err and "'klingon'" in err
