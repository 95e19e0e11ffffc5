"""The curation pages with streamlit's AppTest: Subsets (selectors, filters, set operations,
rename/delete/undo, record membership, export) and Compare (the table, the budget curves).

Every number the pages show is checked against the engine (core.select.selectors, core.workspace.subsets,
core.workspace.compare, core.workspace.export) computed independently here.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_app
from app_workspaces import make_workspace
from streamlit.testing.v1 import AppTest
from test_app import app, assert_clean, errors, texts, values

from core.measures.curves import random_budget_sizes, random_equivalent, summarise_curves
from core.select import filters
from core.select.selectors import select
from core.workspace.compare import (
    WHOLE_SET,
    budget_curves,
    compare_subsets,
    curve_budgets,
    curve_settings,
)
from core.workspace.export import read_export
from core.workspace.selector_runs import selector_pool
from core.workspace.store import Workspace
from core.workspace.subsets import save_subset, subset_record
from ui import state
from ui.panels import curves, export, textspace

# The fixtures of the other app tests: an empty $PRISM_HOME, a finished workspace in it, and
# every run routed by app.py alone.
home = test_app.home
ready = test_app.ready
router_only = test_app.router_only
N = test_app.N


def subsets_of(ws: Workspace) -> dict:
    return Workspace.open(ws.path).subsets()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def submit(at: AppTest, label: str):
    found = [b for b in at.get("button") if getattr(b, "label", None) == label]
    assert found, f"no button {label!r}: {[b.label for b in at.button]}"
    return found[0]


def work_with(at: AppTest):
    """The Subsets page's picker of the subset to work with."""
    return next(s for s in at.selectbox if s.label == "Work with")


def mode(at: AppTest, name: str) -> None:
    at.segmented_control(key="subset_mode").set_value(name)
    at.run()
    assert_clean(at)


# ------------------------------------------------------------------------------------------
# Both pages render


@pytest.mark.parametrize("page", ["subsets", "compare"])
def test_new_pages_without_workspace_show_what_to_do(home: Path, page: str) -> None:
    at = app(page)
    assert_clean(at)
    assert [t.value for t in at.title] == [page.title()]
    assert "No data yet" in texts(at)


@pytest.mark.parametrize("page", ["subsets", "compare"])
def test_new_pages_with_workspace_render(ready: Workspace, page: str) -> None:
    from ui.widgets import PAGES

    assert PAGES[page] == f"pages/{page}.py"
    at = app(page)
    assert_clean(at)
    assert [t.value for t in at.title] == [page.title()]
    if page == "subsets":
        assert "None yet" in texts(at)
        assert any(b.label == "Run selector" for b in at.button)
    else:
        assert any(b.label == "Compute the curves" for b in at.button)


# ------------------------------------------------------------------------------------------
# Subsets: selectors


def test_selector_makes_the_subset_core_makes(ready: Workspace) -> None:
    at = app("subsets")
    assert "None yet" in texts(at)
    at.selectbox(key="selector_method").select("vendi_greedy")
    at.run()
    at.number_input(key="budget_rows").set_value(30)
    at.number_input(key="selector_seed").set_value(3)
    at.text_input(key="selector_name").input("greedy thirty")
    button(at, "Run selector").click()
    at.run()
    assert_clean(at)
    stored = subsets_of(ready)["greedy thirty"]
    expected = select("vendi_greedy", selector_pool(ready), budget=30, seed=3)
    assert list(stored.ids) == [str(i) for i in expected]  # ids are row numbers here
    assert stored.how["method"] == "vendi_greedy"
    assert stored.how["k"] == 30 and stored.how["seed"] == 3
    assert any("Saved “greedy thirty”" in s.value.replace("\\", "") for s in at.success)
    assert any("30 samples" in s.value for s in at.success)
    # the new subset is listed and picked
    listing = next(d for d in at.dataframe if "Made by" in d.value.columns).value
    assert listing["Name"].tolist() == ["greedy thirty"]
    assert listing["Samples"].tolist() == [30]
    assert work_with(at).value == "greedy thirty"


def test_selector_with_a_fraction_within_a_subset_and_an_automatic_name(
    ready: Workspace,
) -> None:
    save_subset(ready, "first half", [str(i) for i in range(120)], how={"method": "hand"})
    at = app("subsets")
    at.selectbox(key="selector_method").select("random")
    at.run()
    at.segmented_control(key="budget_mode_False").set_value("Fraction")
    at.run()
    at.number_input(key="budget_fraction").set_value(0.05)
    at.selectbox(key="selector_within").select("first half")
    button(at, "Run selector").click()
    at.run()
    assert_clean(at)
    saved = subsets_of(ready)
    assert "random 5%" in saved  # the automatic name says what it is
    ids = [int(i) for i in saved["random 5%"].ids]
    assert len(ids) == round(0.05 * N) and all(i < 120 for i in ids)
    assert saved["random 5%"].how["within"] == "first half"


def test_filter_selector_keeps_everything_that_passes(ready: Workspace) -> None:
    at = app("subsets")
    at.selectbox(key="selector_method").select("sparse_clusters")
    at.run()
    assert at.segmented_control(key="budget_mode_True").value == "All that pass"
    button(at, "Run selector").click()
    at.run()
    assert_clean(at)
    (name,) = subsets_of(ready)
    expected = select("sparse_clusters", selector_pool(ready), budget=None, seed=0)
    assert sorted(subsets_of(ready)[name].ids) == sorted(str(i) for i in expected)


def test_quality_selector_runs_from_the_form_with_its_defaults(ready: Workspace) -> None:
    at = app("subsets")
    at.selectbox(key="selector_method").select("quality_diverse")
    at.run()
    assert at.number_input(key="selector_threshold_quality_diverse").value == 0.5
    button(at, "Run selector").click()
    at.run()
    assert_clean(at)
    (name,) = subsets_of(ready)
    expected = select("quality_diverse", selector_pool(ready), budget=None, seed=0)
    assert list(subsets_of(ready)[name].ids) == [str(i) for i in expected]
    at.selectbox(key="selector_method").select("quality_blend")
    at.run()
    at.text_input(key="selector_beta").input("lots")
    button(at, "Run selector").click()
    at.run()
    assert any("beta must be float" in e for e in errors(at)), errors(at)


def test_selector_bad_input_is_a_clear_message(ready: Workspace) -> None:
    save_subset(ready, "big start", [str(i) for i in range(50)], how={"method": "hand"})
    at = app("subsets")
    at.number_input(key="budget_rows").set_value(10)
    at.selectbox(key="selector_start").select("big start")
    button(at, "Run selector").click()
    at.run()
    assert_clean(at)
    assert any("more than the budget" in e for e in errors(at)), errors(at)
    assert list(subsets_of(ready)) == ["big start"]
    # a name that is taken is refused too
    at.selectbox(key="selector_start").select("(nothing)")
    at.text_input(key="selector_name").input("big start")
    button(at, "Run selector").click()
    at.run()
    assert_clean(at)
    assert any("already exists" in e for e in errors(at))


# ------------------------------------------------------------------------------------------
# Subsets: filters


def test_filters_on_values_range_and_text(ready: Workspace) -> None:
    frame = ready.samples()
    at = app("subsets")
    mode(at, "Filters")
    at.multiselect(key="filter_columns_demo-gsm8k").set_value(["difficulty", "steps", "question"])
    at.run()
    assert_clean(at)
    at.multiselect(key="filter_demo-gsm8k_difficulty").set_value(["hard", "medium"])
    at.slider(key="filter_demo-gsm8k_steps").set_value((2, 6))
    at.text_input(key="filter_demo-gsm8k_question_text").input("how many")
    at.run()
    assert_clean(at)
    expected = (
        frame["difficulty"].isin(["hard", "medium"])
        & frame["steps"].between(2, 6)
        & frame["question"].str.contains("how many", case=False, regex=False)
    )
    assert next(m.value for m in at.metric if m.label == "Matching samples") == (
        f"{int(expected.sum()):,}"
    )
    form_name = next(t for t in at.text_input if t.label == "Subset name")
    form_name.input("hard counting")
    submit(at, "Save as subset").click()
    at.run()
    assert_clean(at)
    stored = subsets_of(ready)["hard counting"]
    assert list(stored.ids) == frame["id"][expected].tolist()
    assert stored.how["method"] == "filter"
    assert "difficulty in {hard, medium}" in stored.how["where"]


def test_a_bad_regular_expression_is_a_message(ready: Workspace) -> None:
    at = app("subsets")
    mode(at, "Filters")
    at.multiselect(key="filter_columns_demo-gsm8k").set_value(["question"])
    at.run()
    at.segmented_control(key="filter_demo-gsm8k_question_mode").set_value("regex")
    at.run()
    at.text_input(key="filter_demo-gsm8k_question_text").input("(unclosed")
    at.run()
    assert_clean(at)
    assert any("not a valid regular expression" in e for e in errors(at)), errors(at)


def test_filter_helpers() -> None:
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "score": [0.5, 1.5, np.nan, 3.0],
            "label": ["x", "y", "x", None],
            "chat": [[{"role": "user", "content": "Hello there"}], [], [], []],
            "cluster": [0, 1, 1, 2],
        }
    )
    kinds = filters.column_kinds(frame)
    assert kinds == {
        "id": "text",
        "score": "range",
        "label": "values",
        "chat": "text",
        "cluster": "values",
    }
    mask = filters.filter_mask(
        frame,
        [
            filters.Condition("score", "range", low=0, high=2),
            filters.Condition("label", "values", values=("x", "y")),
        ],
    )
    assert mask.tolist() == [True, True, False, False]
    hello = filters.Condition("chat", "text", pattern="hello")
    assert hello.matches(frame).tolist() == [True, False, False, False]
    assert not filters.Condition("chat", "text", pattern="hello", case=True).matches(frame).any()
    assert filters.Condition("id", "text", pattern="^[ab]$", mode="regex").matches(
        frame
    ).tolist() == [True, True, False, False]
    assert filters.filter_mask(frame, [filters.Condition("label", "values")]).all()  # inactive
    with pytest.raises(Exception, match="range of “score” is empty"):
        filters.Condition("score", "range", low=3, high=1)
    assert filters.describe([]) == "every row"


# ------------------------------------------------------------------------------------------
# Subsets: set operations, rename, delete and undo


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("union", [str(i) for i in range(0, 30)]),
        ("intersection", [str(i) for i in range(10, 20)]),
        ("difference", [str(i) for i in range(0, 10)]),
        ("complement", [str(i) for i in range(20, N)]),
    ],
)
def test_set_operations(ready: Workspace, operation: str, expected: list[str]) -> None:
    save_subset(ready, "A", [str(i) for i in range(0, 20)], how={"method": "hand"})
    save_subset(ready, "B", [str(i) for i in range(10, 30)], how={"method": "hand"})
    at = app("subsets")
    mode(at, "Set operation")
    at.segmented_control(key="combine_operation").set_value(operation)
    at.run()
    if operation == "complement":
        at.selectbox(key="combine_one").select("A")
    elif operation == "difference":
        at.selectbox(key="combine_first").select("A")
        at.run()
        at.multiselect(key="combine_rest").set_value(["B"])
    else:
        at.multiselect(key=f"combine_{operation}").set_value(["A", "B"])
    at.run()
    assert_clean(at)
    assert f"Result: **{len(expected):,} samples**" in texts(at).replace("\\", "")
    submit(at, f"Save the {operation}").click()
    at.run()
    assert_clean(at)
    saved = subsets_of(ready)
    (new,) = [n for n in saved if n not in ("A", "B")]
    assert sorted(saved[new].ids, key=int) == expected
    assert saved[new].how["method"] == operation
    sign = {"union": "A ∪ B", "intersection": "A ∩ B", "difference": "A − B", "complement": "not A"}
    assert new == sign[operation]


def test_set_operation_that_is_empty_cannot_be_saved(ready: Workspace) -> None:
    save_subset(ready, "A", ["1", "2"], how={"method": "hand"})
    save_subset(ready, "B", ["3"], how={"method": "hand"})
    at = app("subsets")
    mode(at, "Set operation")
    at.segmented_control(key="combine_operation").set_value("intersection")
    at.run()
    at.multiselect(key="combine_intersection").set_value(["A", "B"])
    at.run()
    assert_clean(at)
    assert "Result: **0 samples**" in texts(at)
    assert submit(at, "Save the intersection").disabled


def test_rename_delete_and_undo(ready: Workspace) -> None:
    save_subset(ready, "keep", ["1", "2", "3"], how={"method": "hand"})
    save_subset(ready, "tail", ["5", "6", "200"], how={"method": "lasso"})
    original = subset_record(ready, "tail")
    at = app("subsets")
    work_with(at).select("tail")
    at.run()
    next(t for t in at.text_input if t.label == "New name").input("the tail")
    submit(at, "Rename").click()
    at.run()
    assert_clean(at)
    assert list(subsets_of(ready)) == ["keep", "the tail"]  # the order of the file is kept
    assert work_with(at).value == "the tail"
    # a taken name is refused, with a message
    next(t for t in at.text_input if t.label == "New name").input("keep")
    submit(at, "Rename").click()
    at.run()
    assert_clean(at)
    assert any("already exists" in e for e in errors(at))

    button(at, "Delete").click()
    at.run()
    assert_clean(at)
    assert list(subsets_of(ready)) == ["keep"]
    assert "Deleted subset “the tail” (3 samples)" in texts(at)
    assert work_with(at).options == ["keep"] and work_with(at).value == "keep"
    button(at, "Undo").click()
    at.run()
    assert_clean(at)
    restored = subsets_of(ready)
    assert list(restored) == ["keep", "the tail"]
    assert restored["the tail"] == original  # ids, how and creation time, exactly
    assert work_with(at).value == "the tail"  # the restored subset is picked again
    assert "Deleted subset" not in texts(at)


def test_undo_after_the_name_is_taken_again_is_a_message(ready: Workspace) -> None:
    save_subset(ready, "gone", ["1", "2"], how={"method": "hand"})
    at = app("subsets")
    button(at, "Delete").click()
    at.run()
    save_subset(ready, "gone", ["7"], how={"method": "hand"})
    at.run()
    button(at, "Undo").click()
    at.run()
    assert_clean(at)
    assert any("exists again" in e for e in errors(at))
    assert list(subsets_of(ready)["gone"].ids) == ["7"]


def test_delete_on_the_map_can_be_undone(ready: Workspace) -> None:
    save_subset(ready, "tail", ["5", "6", "200"], how={"method": "hand"})
    at = app()
    button(at, "Delete").click()
    at.run()
    assert_clean(at)
    assert not subsets_of(ready)
    button(at, "Undo").click()
    at.run()
    assert_clean(at)
    assert list(subsets_of(ready)["tail"].ids) == ["5", "6", "200"]


def test_map_selection_can_be_saved_from_the_subsets_page(ready: Workspace) -> None:
    at = app("subsets")
    mode(at, "Map selection")
    assert "Nothing is selected on the map" in texts(at)
    at.session_state[state.SELECTION] = {
        "workspace": str(ready.path),
        "rows": [4, 8, 15, 16, 23, 42],
        "how": {"method": "clusters", "clusters": [3]},
    }
    at.run()
    assert "6 samples" in texts(at)
    next(t for t in at.text_input if t.label == "Subset name").input("numbers")
    submit(at, "Save as subset").click()
    at.run()
    assert_clean(at)
    stored = subsets_of(ready)["numbers"]
    assert list(stored.ids) == ["4", "8", "15", "16", "23", "42"]
    assert stored.how == {"method": "clusters", "clusters": [3]}


def _membership_script(path: str, row: int) -> None:
    import streamlit as st  # noqa: F401

    from core.workspace.store import Workspace
    from ui import cache
    from ui.panels import records

    ws = Workspace.open(path)
    records.membership(ws, cache.samples(ws), row)


def test_record_can_be_added_to_and_taken_out_of_a_subset(ready: Workspace) -> None:
    save_subset(ready, "A", ["1", "2"], how={"method": "hand"})
    save_subset(ready, "B", ["9"], how={"method": "hand"})
    at = AppTest.from_function(_membership_script, args=(str(ready.path), 9), default_timeout=30)
    at.run()
    assert_clean(at)
    assert "In “B”" in texts(at)
    at.selectbox(key="member_pick_9").select("A")
    at.run()
    at.button(key="member_add_9").click()
    at.run()
    assert_clean(at)
    assert list(subsets_of(ready)["A"].ids) == ["1", "2", "9"]
    assert subsets_of(ready)["A"].how["edits"] == 1
    at.button(key="member_remove_9").click()
    at.run()
    assert list(subsets_of(ready)["A"].ids) == ["1", "2"]
    # the only record of a subset cannot be taken out (delete the subset instead)
    at.selectbox(key="member_pick_9").select("B")
    at.run()
    assert at.button(key="member_remove_9").disabled


# ------------------------------------------------------------------------------------------
# Export


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf"])
def test_download_builds_the_subset_in_every_format(
    ready: Workspace, tmp_path: Path, fmt: str
) -> None:
    ids = ["3", "1", "200", "57"]
    save_subset(ready, "four rows", ids, how={"method": "hand"})
    data = export.export_file(str(ready.path), "four rows", fmt, False)
    name = export.download_name("four rows", fmt)
    target = tmp_path / name
    target.write_bytes(data)
    if fmt == "hf":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(tmp_path)
            assert "four_rows.manifest.json" in archive.namelist()
        target = tmp_path / "four_rows"
    back = read_export(target, fmt)
    frame = ready.samples()
    wanted = frame.iloc[sorted(int(i) for i in ids)]  # the original row order
    assert back["question"].tolist() == wanted["question"].tolist()
    assert "cluster" not in back.columns
    manifest = json.loads(export.manifest_file(str(ready.path), "four rows", fmt, True))
    assert sorted(manifest["subset"]["ids"]) == sorted(ids)
    assert manifest["n_rows"] == 4 and "cluster" in manifest["columns"]


def test_export_panel_offers_downloads(ready: Workspace) -> None:
    save_subset(ready, "few", ["1", "2"], how={"method": "hand"})
    at = app("subsets")
    assert_clean(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download JSON Lines", "Download manifest (JSON)"]
    at.segmented_control(key="export_format").set_value("hf")
    at.checkbox(key="export_derived").check()
    at.run()
    assert_clean(at)
    assert [b.proto.label for b in at.get("download_button")][0] == "Download HF dataset (zip)"
    assert "prism_id" in texts(at)  # the derived columns are listed


def test_a_subset_rebuilt_from_a_manifest_says_so(ready: Workspace, tmp_path: Path) -> None:
    from cli_support import invoke

    code, _, err = invoke("select", ready.path, "--method", "k_center", "--k", "9", "--name", "kc")
    assert code == 0, err
    out = tmp_path / "kc.jsonl"
    code, _, err = invoke("export", ready.path, "--subset", "kc", "--out", out)
    assert code == 0, err
    manifest = tmp_path / "kc.jsonl.manifest.json"
    code, _, err = invoke("select", ready.path, "--from-manifest", manifest, "--name", "kc again")
    assert code == 0, err
    at = app("subsets")
    assert_clean(at)
    listed = next(d.value for d in at.dataframe if "Made by" in d.value.columns)
    made = dict(zip(listed["Name"], listed["Made by"], strict=True))
    assert made["kc"] == "k_center (k=9, seed=0)"
    assert made["kc again"].startswith("k_center (k=9, seed=0); rebuilt from " + str(manifest))
    assert made["kc again"].endswith("(same ids as the export)")
    # picked, its whole recipe is under its name
    next(b for b in at.selectbox if b.label == "Work with").set_value("kc again")
    at.run()
    assert_clean(at)
    assert any(f"rebuilt from {manifest}" in c.value.replace("\\", "") for c in at.caption)


def test_write_to_a_path_never_overwrites_without_asking(ready: Workspace, tmp_path: Path) -> None:
    save_subset(ready, "few", ["1", "2", "3"], how={"method": "hand"})
    target = tmp_path / "out.jsonl"
    at = app("subsets")
    next(t for t in at.text_input if t.label == "File to write").input(str(target))
    submit(at, "Write").click()
    at.run()
    assert_clean(at)
    assert len(target.read_text().splitlines()) == 3
    assert (tmp_path / "out.jsonl.manifest.json").is_file()
    assert any("Wrote 3 rows" in s.value for s in at.success)
    # again: a question, not an overwrite
    target.write_text("mine\n")
    next(t for t in at.text_input if t.label == "File to write").input(str(target))
    submit(at, "Write").click()
    at.run()
    assert_clean(at)
    assert any("already exists" in w.value for w in at.warning)
    assert target.read_text() == "mine\n"
    button(at, "Cancel").click()
    at.run()
    assert target.read_text() == "mine\n" and not at.warning
    next(t for t in at.text_input if t.label == "File to write").input(str(target))
    submit(at, "Write").click()
    at.run()
    button(at, "Replace").click()
    at.run()
    assert_clean(at)
    assert len(target.read_text().splitlines()) == 3
    # a relative path is refused with a message
    next(t for t in at.text_input if t.label == "File to write").input("out.csv")
    submit(at, "Write").click()
    at.run()
    assert any("not an absolute path" in e for e in errors(at))


# ------------------------------------------------------------------------------------------
# Compare


def test_compare_table_shows_what_compare_subsets_computes(ready: Workspace) -> None:
    frame = ready.samples()
    save_subset(ready, "cluster 0", frame["id"][frame["cluster"] == 0].tolist(), how={})
    save_subset(ready, "evens", [str(i) for i in range(0, N, 2)], how={"method": "hand"})
    at = app("compare")
    assert_clean(at)
    shown = at.dataframe[0].value
    expected = compare_subsets(ready, ["cluster 0", "evens"])
    assert shown["subset"].tolist() == [WHOLE_SET, "cluster 0", "evens"]
    for column in ("size", "g_vendi", "vendi_q0.5", "vendi_q2", "vendi_qinf", "cluster_entropy"):
        assert np.allclose(shown[column], expected[column]), column
    for column in ("coverage", "coverage_weighted"):  # shown as percentages
        assert np.allclose(shown[column], 100 * expected[column]), column
    assert np.allclose(shown["mean_loss"], expected["mean_loss"])
    assert shown["how"].tolist() == expected["how"].tolist()
    # the random equivalent of the whole set is the whole set
    assert shown["random_at"].iloc[0] == f"{N:,}" and shown["efficiency"].iloc[0] == "1.0×"
    # choosing fewer subsets
    at.multiselect[0].set_value(["evens"])
    at.run()
    assert at.dataframe[0].value["subset"].tolist() == [WHOLE_SET, "evens"]


def test_compare_text_space_measures(ready: Workspace) -> None:
    scorer = textspace.text_scorer()
    # The text space is part of every install (requirements.txt): a missing one is a failure.
    assert scorer is not None, "the text-space measures cannot be imported"
    save_subset(ready, "few", [str(i) for i in range(40)], how={"method": "hand"})
    at = app("compare")
    at.toggle[0].set_value(True)
    at.run()
    assert_clean(at)
    shown = at.dataframe[0].value
    expected = scorer(ready, np.arange(40))
    assert shown.loc[shown["subset"] == "few", "distinct_2"].item() == pytest.approx(
        expected.distinct_2
    )
    assert "embedding_vendi" not in shown.columns  # no embeddings yet: the column is left out


def test_compare_curves_read_against_random(ready: Workspace) -> None:
    save_subset(ready, "evens", [str(i) for i in range(0, N, 2)], how={"method": "hand"})
    at = app("compare")
    at.multiselect(key="curve_methods_demo-gsm8k").set_value(["vendi_greedy", "k_center"])
    at.number_input(key="curve_seeds_demo-gsm8k").set_value(2)
    at.run()
    button(at, "Compute the curves").click()
    at.run()
    for _ in range(120):  # the curves run in a background thread
        if at.get("plotly_chart"):
            break
        import time

        time.sleep(0.5)
        at.run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name") for t in spec["data"]]
    assert {"random (baseline)", "vendi_greedy", "k_center", "whole set", "evens"} <= set(names)
    assert spec["layout"]["xaxis"]["type"] == "log"

    pool = selector_pool(ready)
    summary = summarise_curves(
        budget_curves(
            pool,
            methods=["random", "vendi_greedy", "k_center"],
            sizes=curve_budgets(ready, curve_settings(ready)),  # the app's budgets
            seeds=range(2),
            random_sizes=random_budget_sizes(N),
        )
    )
    size = curves.default_budget(curves.budget_choices(summary), N)
    at_size = summary[summary["size"] == size]
    best = at_size[at_size["method"] != "random"].sort_values("mean").iloc[-1]
    equal = random_equivalent(summary, float(best["mean"]))
    callout = next(s.value for s in at.success).replace("\\", "")
    assert f"{best['method']}** at **{size:,} rows**" in callout
    assert f"G-Vendi **{best['mean']:,.1f}**" in callout
    if equal is None:
        assert "more diverse than random subsets of every size" in callout
    else:
        assert f"random at {equal:,.0f} rows" in callout
    table = next(d for d in at.dataframe if "ratio" in d.value.columns).value
    assert table["method"].tolist() == ["random", "k_center", "vendi_greedy"]
    # the subsets table now reads its equivalents off these curves
    shown = at.dataframe[0].value
    evens = shown.loc[shown["subset"] == "evens"]
    expected = random_equivalent(summary, float(evens["g_vendi"].item()))
    assert evens["random_at"].item() == f"{expected:,.0f}"


def test_compare_on_a_workspace_without_subsets(home: Path) -> None:
    make_workspace(home / "workspaces" / "demo-gsm8k", n=60, dim=16, seed=2)
    at = app("compare")
    assert_clean(at)
    assert "No saved subsets yet" in texts(at)
    assert at.dataframe[0].value["subset"].tolist() == [WHOLE_SET]


def test_selector_budget_above_the_data_is_refused_not_clamped(ready: Workspace) -> None:
    at = app("subsets")
    at.selectbox(key="selector_method").select("random")
    at.run()
    at.number_input(key="budget_rows").set_value(N + 50)
    at.run()
    button(at, "Run selector").click()
    at.run()
    assert_clean(at)
    said = " ".join(errors(at))
    assert "budget" in said and f"{N + 50:,}" in said and f"{N:,} rows" in said, errors(at)
    assert subsets_of(ready) == {}  # nothing was stored, in particular no clamped subset


def test_running_the_same_selector_again_reuses_the_stored_subset(ready: Workspace) -> None:
    at = app("subsets")
    at.selectbox(key="selector_method").select("k_center")
    at.run()
    at.number_input(key="budget_rows").set_value(20)
    for name in ("first", "second"):
        at.text_input(key="selector_name").input(name)
        button(at, "Run selector").click()
        at.run()
        assert_clean(at)
    assert list(subsets_of(ready)) == ["first"]
    assert any("Same as stored subset “first”" in s.value.replace("\\", "") for s in at.success)


def test_compare_says_above_every_random_size_in_words(ready: Workspace) -> None:
    pool = selector_pool(ready)
    greedy = select("vendi_greedy", pool, budget=N // 2, seed=0)
    save_subset(ready, "greedy half", [str(i) for i in greedy], how={"method": "hand"})
    at = app("compare")
    assert_clean(at)
    shown = at.dataframe[0].value
    row = shown.loc[shown["subset"] == "greedy half"].iloc[0]
    whole = shown.loc[shown["subset"] == WHOLE_SET].iloc[0]
    assert row["g_vendi"] > 1.05 * whole["g_vendi"]  # more diverse than all rows together
    assert row["random_at"] == "above every random size"
    assert row["efficiency"] == f"> {N / (N // 2):.1f}×"
    assert "None" not in shown.astype(str).to_numpy().ravel().tolist()


def test_compare_page_shows_the_curves_the_cli_computed(ready: Workspace) -> None:

    from cli_support import invoke

    code, out, err = invoke(
        "compare", ready.path, "--curves", "--seeds", "2", "--method", "k_center", "--json"
    )
    assert code == 0, err
    computed = json.loads(out)["curves"]
    at = app("compare")
    assert_clean(at)
    # no "Compute the curves" click and no settings to match by hand: the page starts at the
    # stored curves' settings and says when and how they were made
    assert not any(b.label == "Compute the curves" for b in at.button)
    assert at.multiselect(key="curve_methods_demo-gsm8k").value == ["k_center"]
    assert at.number_input(key="curve_seeds_demo-gsm8k").value == 2
    made = Workspace.open(ready.path).curves
    assert made is not None and made.by == "prism compare --curves" and made.computed
    note = " ".join(c.value for c in at.caption)
    assert "computed by `prism compare --curves` on " + made.computed[:10] in note
    assert "selectors k_center and random; 2 seeds" in note
    # other settings: the stored curves are named, and these can be computed
    at.number_input(key="curve_seeds_demo-gsm8k").set_value(3)
    at.run()
    assert any(b.label == "Compute the curves" for b in at.button)
    assert "Choose those settings above" in " ".join(c.value for c in at.caption)
    at.number_input(key="curve_seeds_demo-gsm8k").set_value(2)
    at.run()
    assert len(at.get("plotly_chart")) == 1
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    random_trace = next(t for t in spec["data"] if t.get("name") == "random (baseline)")
    shown = values(random_trace["y"])  # plotly sends arrays as base64 typed data
    expected = [c["mean"] for c in computed if c["method"] == "random"]
    assert list(shown) == pytest.approx(expected)
