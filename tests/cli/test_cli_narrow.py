"""Every table the CLI prints is readable on an 80-column terminal: no line is wider, no number
is broken over two lines, and a column that does not fit is left out and named.

Each table is rendered in this process on an 80-column console, and `prism compare --curves` by
a real process with ``COLUMNS=80``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from typing import Any

import pytest
from app_workspaces import make_workspace
from cli_support import invoke, run_subprocess
from rich.cells import cell_len

from core.cli import render
from core.workspace.store import Workspace
from core.workspace.subsets import save_subset

WIDTH = 80
LONG_NAME = "a subset with a long and descriptive name about word problems"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    workspace = make_workspace(tmp_path_factory.mktemp("narrow") / "ws", n=24, dim=16, seed=1)
    save_subset(workspace, "quarter", [str(i) for i in range(0, 24, 4)], how={"method": "hand"})
    save_subset(
        workspace,
        LONG_NAME,
        [str(i) for i in range(10)],
        how={"method": "union", "of": ["quarter", "a second subset with a long name"]},
    )
    return workspace


def at_80(*args: Any) -> str:
    """``prism *args`` in this process with an 80-column console; its stdout."""
    from core import cli

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, render.console.width
    sys.argv, render.console.width = ["prism", *map(str, args)], WIDTH
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exit_:
                assert not exit_.code, err.getvalue()
    finally:
        sys.argv, render.console.width = saved
    return out.getvalue()


def assert_readable(text: str, numbers: list[str]) -> None:
    """No line wider than 80 cells, and every number in ``numbers`` whole on one line."""
    lines = text.splitlines()
    assert lines, "nothing was printed"
    wide = [line for line in lines if cell_len(line.rstrip()) > WIDTH]
    assert not wide, wide
    missing = [n for n in numbers if not any(n in line for line in lines)]
    assert not missing, (missing, text)


def assert_no_tower(text: str, name: str = LONG_NAME, most: int = 3) -> None:
    """``name`` printed with every word whole, over at most ``most`` lines."""
    lines = text.splitlines()
    words = name.split()
    assert all(any(re.search(rf"(^|\s){w}(\s|$)", line) for line in lines) for w in words), text
    first = next(i for i, line in enumerate(lines) if " ".join(words[:2]) in line)
    last = next(i for i, line in enumerate(lines) if i >= first and words[-1] in line)
    assert last - first < most, text


def _subset_numbers(record: dict[str, Any]) -> list[str]:
    return [f"{r['g_vendi']:.2f}" for r in record["subsets"]] + [
        f"{r['size']:,}" for r in record["subsets"]
    ]


def test_compare_with_curves_in_a_real_80_column_terminal(ws: Workspace) -> None:
    done = run_subprocess(
        "compare", ws.path, "--curves", "--seeds", "2",
        env={"COLUMNS": str(WIDTH), "NO_COLOR": "1"}, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    code, raw, err = invoke("compare", ws.path, "--curves", "--seeds", "2", "--json")
    assert code == 0, err
    record = json.loads(raw)
    budgets = {c["size"] for c in record["curves"] if c["method"] == "k_center"}
    shown = [c for c in record["curves"] if c["method"] != "random" or c["size"] in budgets]
    assert_readable(done.stdout, _subset_numbers(record) + [f"{c['mean']:,.2f}" for c in shown])
    # names and recipes fold onto a few lines, not into towers of two-letter pieces
    assert "how" in done.stdout and "union of" in done.stdout and " hand" in done.stdout
    assert_no_tower(done.stdout)
    assert not re.search(r"^\s*\S{1,3}\s*$", done.stdout, re.MULTILINE), done.stdout
    # the curves start at a few rows: a quarter of the set (6 rows) is a budget
    assert min(budgets) <= 3 and 6 in budgets
    assert "not shown at 80 columns:" in done.stdout  # what a narrow terminal leaves out


@pytest.mark.parametrize("wide", [False, True])
def test_compare_tables_fit_80_columns(ws: Workspace, wide: bool) -> None:
    out = at_80("compare", ws.path, *(["--wide"] if wide else []))
    code, raw, err = invoke("compare", ws.path, "--json")
    assert code == 0, err
    assert_readable(out, _subset_numbers(json.loads(raw)))
    assert_no_tower(out)
    assert " hand" in out  # the recipe column is not squeezed
    if wide:
        assert "More measures" in out and "distinct-2" in out


def test_subset_list_info_and_scores_fit_80_columns(ws: Workspace) -> None:
    out = at_80("subset", "list", ws.path)
    assert_readable(out, ["6", "10"])
    assert_no_tower(out)
    assert "union of" in out and "created" in out
    out = at_80("info", ws.path)
    assert_readable(out, [f"{ws.n_samples:,}"])
    out = at_80("score", ws.path, "--per-cluster")
    record = ws.manifest["scores"]
    assert_readable(out, [f"{record['g_vendi']:.2f}", f"d = {record['dim']}"])
    # the title stays on one line, with its numbers
    assert f"Vendi scores (n = {ws.n_samples}, d = {record['dim']})" in out


def test_a_table_drops_its_least_needed_columns_and_says_so() -> None:
    columns = [
        render.Column("name", numeric=False, fold=20),
        render.Column("count"),
        render.Column("score", drop=1),
        render.Column("extra", drop=2),
    ]
    rows = [
        [f"row {i} " + "word " * 6, f"{10**9 + i:,}", f"{i / 3:.4f}", "x" * 30] for i in range(3)
    ]
    for width, left_out in ((120, []), (60, ["extra"]), (40, ["extra", "score"])):
        table, dropped = render.fitted("Rows", columns, rows, width=width)
        console = render.Console(width=width, file=io.StringIO(), no_color=True)
        console.print(table)
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert dropped == left_out
        assert_readable_at(text, width, [r[1] for r in rows])
        assert ("score" in text) == ("score" not in left_out)


def assert_readable_at(text: str, width: int, numbers: list[str]) -> None:
    lines = text.splitlines()
    assert all(cell_len(line.rstrip()) <= width for line in lines), text
    assert all(any(n in line for line in lines) for n in numbers), text
