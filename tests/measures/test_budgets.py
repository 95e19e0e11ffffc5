"""The budgets of the curves span the set: log-spaced from a few rows to the largest budget, with
the workspace's subsets' sizes, so a small set can be read at a quarter of its rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from app_workspaces import make_workspace

from core.measures.curves import budget_sizes, random_budget_sizes
from core.workspace.compare import curve_budgets, curve_settings, workspace_curves
from core.workspace.subsets import save_subset


def test_budgets_span_a_small_set_and_keep_twenty_as_the_floor_of_a_large_one() -> None:
    small = budget_sizes(24)
    assert small[0] <= 3 and small[-1] == 24
    assert any(5 <= s <= 7 for s in small)  # a 25 % subset is on the curve
    assert small == sorted(set(small)) and len(small) >= 7
    assert budget_sizes(1319, largest=2000) == budget_sizes(1319)
    big = budget_sizes(10**6, largest=2000)
    assert big[0] == 20 and big[-1] == 2000 and len(big) == 10
    assert budget_sizes(1) == [1] and budget_sizes(2) == [2]
    # the sizes of stored subsets join the grid when they lie in its range
    with_subsets = budget_sizes(24, extra=[7, 11, 500, 0])
    assert {7, 11} <= set(with_subsets) and max(with_subsets) == 24 and 0 not in with_subsets
    # random runs from one row to all of them, over the same range
    assert set(small) <= set(random_budget_sizes(24))


def test_a_small_workspace_is_read_below_a_quarter_of_its_rows(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", n=24, dim=16, seed=1)
    save_subset(ws, "quarter", [str(i) for i in range(0, 24, 4)], how={"method": "hand"})
    save_subset(ws, "eleven", [str(i) for i in range(11)], how={"method": "hand"})
    settings = curve_settings(ws, methods=["k_center", "vendi_greedy"], seeds=2)
    budgets = curve_budgets(ws, settings)
    assert budgets[0] <= 3 and budgets[-1] == 24 and {6, 11} <= set(budgets)
    summary = workspace_curves(ws, settings, by="a test")
    for method in ("k_center", "vendi_greedy"):
        sizes = summary.loc[summary["method"] == method, "size"].tolist()
        assert sizes == budgets
    # at a quarter of the rows the selectors are told apart from random: not all 1.0×
    quarter = summary[(summary["size"] == 6) & (summary["method"] != "random")]
    ratios = quarter["random_equivalent"].fillna(np.inf) / 6
    assert (np.abs(ratios - 1) > 0.1).any(), quarter
