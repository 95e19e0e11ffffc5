"""What the CLI prints for people: tables that fit a 100-column terminal, `prism info` in sections
with rounded numbers (`--json` keeps every digit), user text printed as text (never as markup),
and the curation commands saying what they did (budgets above the data, a selector run again).

Tables are printed by a real process with ``COLUMNS=100``, as in a narrow terminal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from app_workspaces import make_workspace
from cli_support import invoke, run_subprocess

from core.measures.curves import ABOVE_RANDOM
from core.workspace.compare import curve_settings, load_curves
from core.workspace.store import Workspace
from core.workspace.subsets import save_subset

WIDTH = 100
N = 120
MARKUP_NAMES = ("[/]", "[b]x[/b]")


def narrow(*args: object) -> tuple[int, str, str]:
    """``prism *args`` in a real process on a 100-column terminal: (status, stdout, stderr)."""
    done = run_subprocess(*args, env={"COLUMNS": str(WIDTH), "NO_COLOR": "1"}, timeout=240)
    return done.returncode, done.stdout, done.stderr


def assert_fits(text: str) -> None:
    lines = text.splitlines()
    assert lines, "nothing was printed"
    too_long = [line for line in lines if len(line.rstrip()) > WIDTH]
    assert not too_long, too_long
    assert "…" not in text, text  # no cell was cut short


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    workspace = make_workspace(tmp_path_factory.mktemp("out") / "ws", n=N, dim=16, seed=1)
    save_subset(workspace, "evens", [str(i) for i in range(0, N, 2)], how={"method": "hand"})
    for i, name in enumerate(MARKUP_NAMES):
        save_subset(workspace, name, [str(i), str(i + 10)], how={"method": "hand"})
    save_subset(
        workspace,
        "a subset with a long and descriptive name about word problems",
        [str(i) for i in range(30)],
        how={"method": "union", "of": ["evens", "[/]"]},
    )
    return workspace


def test_compare_with_curves_fits_100_columns_and_stores_the_curves(ws: Workspace) -> None:
    code, out, err = narrow("compare", ws.path, "--curves", "--seeds", "2", "--largest", "60")
    assert code == 0, err
    assert_fits(out)
    code, raw, err = invoke(
        "compare", ws.path, "--curves", "--seeds", "2", "--largest", "60", "--json"
    )
    assert code == 0, err
    record = json.loads(raw)  # valid JSON: no NaN
    for row in record["subsets"]:  # every G-Vendi is shown in full, and every name as typed
        assert f"{row['g_vendi']:.2f}" in out
    for name in MARKUP_NAMES:
        assert name in out
    above = [
        c for c in record["curves"] if c["method"] != "random" and c["random_equivalent"] is None
    ]
    if above:
        assert ABOVE_RANDOM in out
    assert "None" not in out and "nan" not in out.lower()
    # the curves are kept for the app, under the settings its Compare page asks for by default
    stored = load_curves(Workspace.open(ws.path), curve_settings(ws, seeds=2, largest=60))
    assert stored is not None
    assert stored["mean"].tolist() == pytest.approx([c["mean"] for c in record["curves"]])
    assert (stored.loc[stored["size"] == 1, "mean"] == 1.0).all()  # random from one row on


def test_compare_wide_keeps_every_measure_in_100_columns(ws: Workspace) -> None:
    code, out, err = narrow("compare", ws.path, "--wide")
    assert code == 0, err
    assert_fits(out)
    for header in ("G-Vendi", "q=2", "q=∞", "q=0.5", "entropy", "cover (w)"):
        assert header in out


def test_subset_list_prints_names_that_look_like_markup(ws: Workspace) -> None:
    code, out, err = invoke("info", ws.path)
    assert code == 0, err
    assert "[/]" in out
    code, out, err = narrow("subset", "list", ws.path)
    assert code == 0, err
    assert_fits(out)
    for name in MARKUP_NAMES:
        assert name in out
    assert "[/]" in out


def test_info_is_for_people_and_json_for_machines(ws: Workspace) -> None:
    code, out, err = narrow("info", ws.path)
    assert code == 0, err
    assert_fits(out)
    for heading in ("Dataset", "Features", "Scores", "Clusters"):
        assert re.search(rf"^{heading}\b", out, re.MULTILINE), heading
    assert not re.search(r"\d\.\d{5,}", out), out  # no 15-digit floats
    assert not re.search(r"[{}]", out)  # no raw dicts
    g_vendi = ws.manifest["scores"]["g_vendi"]
    assert f"{g_vendi:.3g}"[:4] in out
    assert f"{N:,}" in out
    code, raw, err = invoke("info", ws.path, "--json")
    assert code == 0, err
    record = json.loads(raw)
    assert record["scores"]["g_vendi"] == g_vendi  # every digit
    assert record["subsets"]["evens"] == N // 2


def test_select_refuses_a_budget_above_the_data_and_reuses_a_stored_run(tmp_path: Path) -> None:
    path = make_workspace(tmp_path / "ws", n=40, dim=8, seed=0).path
    code, out, err = invoke("select", path, "--method", "random", "--k", "500", "--name", "big")
    assert code == 2
    assert "budget" in err and "500" in err and "40 rows" in err
    assert "Traceback" not in err
    assert Workspace.open(path).subsets() == {}
    code, out, err = invoke("select", path, "--method", "k_center", "--k", "10", "--name", "one")
    assert code == 0 and "stored subset “one”" in out, err
    code, out, err = invoke("select", path, "--method", "k_center", "--k", "10", "--name", "two")
    assert code == 0, err
    assert "same as stored subset “one”" in out
    assert list(Workspace.open(path).subsets()) == ["one"]
    # another seed is another run: stored
    code, out, err = invoke(
        "select", path, "--method", "k_center", "--k", "10", "--seed", "1", "--name", "two"
    )
    assert code == 0 and "stored subset “two”" in out, err
    save_subset(Workspace.open(path), "pool", [str(i) for i in range(12)], how={"method": "hand"})
    code, out, err = invoke(
        "select", path, "--method", "random", "--k", "20", "--within", "pool", "--name", "x"
    )
    assert code == 2 and "budget" in err and "12 rows" in err, err
