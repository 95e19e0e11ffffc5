"""core.workspace.find and `prism find`: text search and conditions equal pandas on the shared
workspace; unsafe conditions are refused with a message naming the bad part."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from cli_support import invoke

from core.errors import PrismError
from core.workspace import find as find_module
from core.workspace.compare import describe_how
from core.workspace.find import find_text, find_where, previews, rows_of_samples
from core.workspace.store import Workspace


@pytest.fixture(scope="module")
def ws(built: dict[str, Any]) -> Workspace:
    return Workspace.open(built["path"])


@pytest.fixture(scope="module")
def frame(ws: Workspace) -> pd.DataFrame:
    return ws.samples()


def _rows(mask: pd.Series) -> list[int]:
    return np.flatnonzero(mask.to_numpy()).tolist()


def _contains(frame: pd.DataFrame, pattern: str, *, regex: bool, case: bool) -> pd.Series:
    prompt = frame["prompt"].str.contains(pattern, case=case, regex=regex)
    return prompt | frame["response"].str.contains(pattern, case=case, regex=regex)


@pytest.mark.parametrize(
    ("pattern", "regex", "case"),
    [
        ("APPLES", False, False),
        ("fact 1", False, False),
        ("Fact 1", False, True),
        ("fact 1", False, True),
        ("(", False, False),  # a substring, not a pattern
        (r"fact \d+ about (?:trains|rivers)", True, False),
        (r"^Question 1\d", True, True),
        (r"interesting\. it", True, False),
    ],
)
def test_text_search_equals_pandas(
    ws: Workspace, frame: pd.DataFrame, pattern: str, regex: bool, case: bool
) -> None:
    found = find_text(ws, pattern, regex=regex, case_sensitive=case)
    expected = _rows(_contains(frame, pattern, regex=regex, case=case))
    assert found.rows.tolist() == expected
    assert found.how["regex" if regex else "text"] == pattern


def test_text_search_streams_in_batches(
    ws: Workspace, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row positions stay right across record batches (batches of 3 rows here)."""
    monkeypatch.setattr(find_module, "BATCH_ROWS", 3)
    found = find_text(ws, "trains")
    assert found.rows.tolist() == _rows(_contains(frame, "trains", regex=False, case=False))


def test_conditions_equal_pandas(ws: Workspace, frame: pd.DataFrame) -> None:
    median = float(frame["loss"].median())
    cases = {
        f"loss > {median}": frame["loss"] > median,
        f"loss <= {median} AND prompt ILIKE '%apples%'": (frame["loss"] <= median)
        & frame["prompt"].str.contains("apples", case=False),
        "n_tokens BETWEEN 10 AND 30 OR id IN ('s001', 's005')": frame["n_tokens"].between(10, 30)
        | frame["id"].isin(["s001", "s005"]),
        "length(response) > 60 AND NOT truncated": (frame["response"].str.len() > 60)
        & ~frame["truncated"].astype(bool),
        "regexp_matches(prompt, 'Question 1[0-9]')": frame["prompt"].str.contains(
            "Question 1[0-9]", regex=True
        ),
        "CAST(grad_norm AS DOUBLE) >= 0": frame["grad_norm"] >= 0,
        "id IS DISTINCT FROM 's003'": frame["id"] != "s003",
    }
    for condition, expected in cases.items():
        assert find_where(ws, condition).rows.tolist() == _rows(expected), condition


@pytest.mark.parametrize(
    ("condition", "named"),
    [
        ("loss > 1; DROP TABLE samples", "';'"),
        ("loss > (SELECT max(loss) FROM samples)", "SELECT"),
        ("read_csv('/etc/hostname') IS NOT NULL", "read_csv()"),
        ("length(read_text('/etc/hostname')) > 0", "read_text()"),
        ("getenv('HOME') = ''", "getenv()"),
        ("loss > 1 -- the rest", "comments"),
        ("loss > 1) OR (1 = 1", "parenthesis"),
        ("difficulty >= 4", "difficulty, which is not a column"),
        ("loss + 1", "true or false"),
        ("", "empty"),
        ("loss > 1 UNION ALL SELECT 1", "UNION"),
        ("loss > (FROM samples)", "FROM only in IS [NOT] DISTINCT FROM"),
    ],
)
def test_unsafe_or_wrong_conditions_are_refused(ws: Workspace, condition: str, named: str) -> None:
    with pytest.raises(PrismError, match=re.escape(named)) as raised:
        find_where(ws, condition)
    assert raised.value.param == "where"


def test_the_view_reads_no_other_file(ws: Workspace, tmp_path: Path) -> None:
    """Past the check, DuckDB itself refuses files other than the workspace's, and its settings
    cannot be changed back."""
    other = tmp_path / "other.csv"
    other.write_text("a\n1\n")
    connection = duckdb.connect(":memory:")
    find_module._view(ws, connection)
    assert connection.execute("SELECT count(*) FROM samples").fetchone() == (ws.n_samples,)
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        connection.execute(f"SELECT * FROM read_csv('{other}')").fetchall()
    with pytest.raises(duckdb.Error, match="locked"):
        connection.execute("SET enable_external_access = true")


def test_bad_regex_names_the_parameter(ws: Workspace) -> None:
    with pytest.raises(PrismError, match="not a valid pattern") as raised:
        find_text(ws, "fact (", regex=True)
    assert raised.value.param == "regex"


def test_rows_of_samples_reads_rows_in_the_order_asked(ws: Workspace, frame: pd.DataFrame) -> None:
    rows = np.array([9, 0, 15, 9])
    assert (
        rows_of_samples(ws, rows, ["id"]).column("id").to_pylist()
        == frame["id"].iloc[rows].tolist()
    )
    assert previews(ws, rows[:1], max_chars=20)[0].startswith("Question 9")


def test_find_cli_stores_the_rows_as_a_subset(copy_built: Path) -> None:
    code, out, err = invoke(
        "find", copy_built, "--where", "prompt LIKE '%trains%'", "--name", "trains", "--json"
    )
    assert code == 0, err
    record = json.loads(out)
    frame = Workspace.open(copy_built).samples(columns=["id", "prompt"])
    expected = frame["id"][frame["prompt"].str.contains("trains")].tolist()
    assert record["ids"] == expected and record["subset"] == "trains"
    saved = Workspace.open(copy_built).subsets()["trains"]
    assert list(saved.ids) == expected and saved.how["where"] == "prompt LIKE '%trains%'"
    assert describe_how(saved.how) == "find where \"prompt LIKE '%trains%'\""
    code, out, err = invoke("find", copy_built, "--text", "x", "--where", "loss > 1")
    assert code == 2 and "exactly one of --text, --regex, --where" in " ".join(err.split())
    code, out, err = invoke("find", copy_built, "--where", "nope > 1")
    assert code == 2 and "--where" in err and "nope" in err
