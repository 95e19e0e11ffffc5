"""The Data page as a newcomer meets it (AppTest): finding and opening workspaces wherever they
were built, damaged workspaces, columns that could not be detected, and one record in full.

Workspaces are written by ``app_workspaces.make_workspace`` (no model); what the page shows is
checked against the files: the folders on disk, ``app.json``, ``core.workspace.store.problems``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_app
from app_workspaces import make_workspace
from streamlit.testing.v1 import AppTest
from test_app import app, assert_clean, errors, metric, texts

from core.workspace.store import Workspace, problems
from ui import state

# The fixtures of the other app tests: an empty $PRISM_HOME, a finished workspace in it, and
# every run routed by app.py alone.
home = test_app.home
ready = test_app.ready
router_only = test_app.router_only


def open_buttons(at: AppTest) -> list[str]:
    """The workspace paths that have an Open button on the page (keys are open_<path>)."""
    return [b.key[len("open_") :] for b in at.button if str(b.key).startswith("open_/")]


def open_folder(at: AppTest, text: str) -> None:
    at.text_input(key="open_folder").input(text)
    at.button(key="open_folder_button").click()
    at.run()


# ------------------------------------------------------------------------------------------
# Finding and opening workspaces


def test_workspace_built_under_ws_in_the_working_directory_is_listed_and_opens(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    monkeypatch.chdir(project.parent)
    built = make_workspace(project / "ws" / "math", n=50, dim=16, seed=3, gsm8k=False)
    monkeypatch.chdir(project)  # as after `prism features … --workspace ws/math` there
    at = app("data")
    assert_clean(at)
    assert open_buttons(at) == [str(built.path)]
    at.button(key=f"open_{built.path}").click()
    at.run()
    assert_clean(at)
    assert [t.value for t in at.title] == ["Map"]
    assert metric(at, "Samples") == "50"


def test_open_a_workspace_folder_by_its_path_then_it_is_remembered(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("PRISM_DATA_ROOTS", str(elsewhere))
    mine = make_workspace(elsewhere / "mine", n=40, dim=16, seed=1, gsm8k=False)
    at = app("data")
    assert open_buttons(at) == []  # not under $PRISM_HOME/workspaces nor ./ws
    open_folder(at, str(mine.path))
    assert_clean(at)
    assert [t.value for t in at.title] == ["Map"]
    assert metric(at, "Samples") == "40"
    remembered = json.loads((home / "app.json").read_text())
    assert remembered["recent_workspaces"] == [str(mine.path)]
    # A new session lists it, and the sidebar offers it too.
    again = app("data")
    assert_clean(again)
    assert str(mine.path) in open_buttons(again)
    assert "mine · 40 rows" in again.sidebar.selectbox[0].options
    # Once the folder is gone, it is no longer listed (nor kept in the recent list).
    shutil.rmtree(mine.path)
    gone = app("data")
    assert_clean(gone)
    assert str(mine.path) not in open_buttons(gone)
    assert state.recent_workspaces() == []


@pytest.fixture
def local_app(request: pytest.FixtureRequest) -> None:
    """The app listens on 127.0.0.1 (as `make run` starts it), not on every interface."""
    from streamlit import config

    saved = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    request.addfinalizer(lambda: config.set_option("server.address", saved))


def test_a_workspace_made_by_the_cli_anywhere_is_listed_and_opens(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_app: None
) -> None:
    """`prism import-features` in a folder the app does not look in: the registry lists it."""
    from cli_support import invoke, sample_records, write_jsonl

    monkeypatch.setenv("PRISM_DATA_ROOTS", str(tmp_path / "roots"))
    project = tmp_path / "their-project"
    project.mkdir()
    write_jsonl(project / "data.jsonl", sample_records(12))
    np.save(project / "f.npy", np.random.default_rng(0).normal(size=(12, 8)))
    monkeypatch.chdir(project)
    code, _, err = invoke("import-features", "data.jsonl", "f.npy", "--workspace", "ws/x")
    assert code == 0, err
    made = str((project / "ws" / "x").resolve())
    monkeypatch.chdir(tmp_path)  # the app runs from another folder
    at = app("data")
    assert_clean(at)
    assert made in open_buttons(at)
    at.button(key=f"open_{made}").click()
    at.run()
    assert_clean(at)
    assert [t.value for t in at.title] == ["Map"]
    assert at.sidebar.selectbox[0].value == made  # the current workspace
    # Typed as the user typed it, ws/x names the app's folder: the page says which folder.
    back = app("data")
    back.text_input(key="open_folder").input("ws/x")
    back.run()
    note = " ".join(c.value for c in back.caption)
    assert f"Opens `{tmp_path / 'ws' / 'x'}`" in note and "relative path starts from" in note
    back.button(key="open_folder_button").click()
    back.run()
    assert [t.value for t in back.title] == ["Data"]
    assert any(str(tmp_path / "ws" / "x") in e for e in errors(back)), errors(back)
    # Typed as an absolute path, it opens: a registered workspace is readable on a local app.
    typed = app("data")
    open_folder(typed, made)
    assert_clean(typed)
    assert [t.value for t in typed.title] == ["Map"]


@pytest.mark.parametrize("case", ["not a workspace", "outside the roots", "damaged"])
def test_opening_a_folder_that_cannot_be_opened_says_why(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    allowed = tmp_path / "allowed"
    monkeypatch.setenv("PRISM_DATA_ROOTS", str(allowed))
    if case == "not a workspace":
        target = allowed / "just-a-folder"
        target.mkdir(parents=True)
        expected = "is not a Prism workspace"
    elif case == "outside the roots":
        target = make_workspace(tmp_path / "outside" / "w", n=30, dim=8, gsm8k=False).path
        expected = "outside the folders"
    else:
        target = make_workspace(allowed / "broken", n=30, dim=8, gsm8k=False).path
        (target / "samples.parquet").write_bytes(b"not parquet at all")
        expected = "samples.parquet"
    at = app("data")
    open_folder(at, str(target))
    assert_clean(at)
    assert [t.value for t in at.title] == ["Data"]  # it stays here and says why
    assert any(expected in e for e in errors(at)), errors(at)
    assert not (home / "app.json").exists() or str(target) not in (home / "app.json").read_text()


def test_every_workspace_can_be_reached_and_the_page_says_how_many(home: Path) -> None:
    made = sorted(
        str(make_workspace(home / "workspaces" / f"set-{i:02d}", n=20, dim=8, gsm8k=False).path)
        for i in range(19)
    )
    at = app("data")
    assert_clean(at)
    assert "Showing 1–8 of 19." in texts(at)
    seen = list(open_buttons(at))
    for page in (2, 3):
        at.number_input(key="ws_page").set_value(page)
        at.run()
        assert_clean(at)
        seen += open_buttons(at)
    assert sorted(seen) == made  # each once, none left out
    assert "Showing 17–19 of 19." in texts(at)
    # Finding one by name.
    at.text_input(key="ws_find").input("set-07")
    at.run()
    assert open_buttons(at) == [str(home / "workspaces" / "set-07")]
    assert "matching “set-07” (19 in all)" in texts(at)


def test_recent_workspaces_newest_first_at_most_the_cap_missing_dropped(
    home: Path,
) -> None:
    paths = [
        str(make_workspace(home / "elsewhere" / f"w{i:02d}", n=12, dim=4, gsm8k=False).path)
        for i in range(state.RECENT_MAX + 3)
    ]
    for path in paths:
        state.remember_workspace(path)
    state.remember_workspace(paths[5])  # opened again: moves to the front, not listed twice
    recent = state.recent_workspaces()
    expected = [paths[5], *[p for p in reversed(paths) if p != paths[5]]][: state.RECENT_MAX]
    assert recent == expected
    shutil.rmtree(paths[-1])
    assert state.recent_workspaces() == [p for p in expected if p != paths[-1]]
    stored = json.loads((home / "app.json").read_text())
    assert stored["last_workspace"] == paths[5]


# ------------------------------------------------------------------------------------------
# Damaged workspaces


def _damage(path: Path, kind: str) -> str:
    """Damage one file of the workspace at ``path``; returns the file's name."""
    if kind == "samples":
        (path / "samples.parquet").write_bytes(b"garbage, not parquet")
        return "samples.parquet"
    if kind == "features":
        data = (path / "features.npy").read_bytes()
        (path / "features.npy").write_bytes(data[: len(data) // 2])
        return "features.npy"
    if kind == "manifest":
        (path / "manifest.json").write_text("[1, 2, 3]\n")
        return "manifest.json"
    (path / "subsets.json").write_text("{ not json")
    return "subsets.json"


@pytest.mark.parametrize("kind", ["samples", "features", "manifest", "subsets"])
def test_damaged_workspace_is_marked_with_its_message(
    ready: Workspace, home: Path, kind: str
) -> None:
    broken = make_workspace(home / "workspaces" / "broken", n=30, dim=8, gsm8k=False)
    name = _damage(broken.path, kind)
    expected = problems(broken.path)
    assert expected and name in expected[0]
    at = app("data")
    assert_clean(at)
    shown = [e for e in errors(at) if name in e]
    assert len(shown) == 1 and expected[0].replace("\\", "") in shown[0]
    assert at.button(key=f"open_{broken.path}").disabled
    assert not at.button(key=f"open_{ready.path}").disabled  # the healthy one stays open-able
    # The sidebar says so, and opening it (as the remembered workspace) shows the message.
    (home / "app.json").write_text(json.dumps({"last_workspace": str(broken.path)}))
    for page in ("map", "diversity"):
        opened = app(page)
        assert_clean(opened)
        assert any(name in e for e in errors(opened)), errors(opened)
        assert "broken · damaged" in opened.sidebar.selectbox[0].options


# ------------------------------------------------------------------------------------------
# Columns that could not be detected


def test_undetected_columns_start_empty_and_continue_waits(home: Path) -> None:
    source = home / "problems.csv"  # $PRISM_HOME is one of the folders the app may read
    pd.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(6)],
            "statement": [f"What is {i} + {i}?" for i in range(6)],
            "worked_solution": [f"{i} + {i} = {2 * i}" for i in range(6)],
        }
    ).to_csv(source, index=False)
    at = app("data")
    at.segmented_control(key="data_origin").set_value("Path on the server")
    at.run()
    at.text_input(key="server_path").input(str(source))
    at.run()
    assert_clean(at)
    prompt = next(s for s in at.selectbox if s.label == "Prompt column")
    response = next(s for s in at.selectbox if s.label == "Response column")
    assert prompt.value is None and response.value is None
    assert prompt.placeholder == "choose a column"
    go = next(b for b in at.button if b.label == "Continue: compute features")
    assert go.disabled
    assert not at.success  # no row count for columns nobody chose
    prompt.select("statement")
    at.run()
    assert next(b for b in at.button if b.label == "Continue: compute features").disabled
    next(s for s in at.selectbox if s.label == "Response column").select("worked_solution")
    at.run()
    assert_clean(at)
    assert any("6 usable rows" in s.value for s in at.success)
    assert not next(b for b in at.button if b.label == "Continue: compute features").disabled


# ------------------------------------------------------------------------------------------
# One record in full


def _record_script(path: str, row: int) -> None:
    import streamlit as st  # noqa: F401

    from core.workspace.store import Workspace
    from ui.panels import records

    records.record_view(Workspace.open(path), row)


def record_of(ws: Workspace, row: int) -> AppTest:
    at = AppTest.from_function(_record_script, args=(str(ws.path), row), default_timeout=30)
    at.run()
    assert_clean(at)
    return at


def _boxes(node: object) -> list[int]:
    """The pixel heights of the fixed-height containers under ``node``."""
    found = []
    proto = getattr(node, "proto", None)
    config = getattr(proto, "height_config", None)
    if config is not None and config.pixel_height:
        found.append(int(config.pixel_height))
    for child in getattr(node, "children", {}).values():
        found += _boxes(child)
    return found


def test_record_view_shows_every_column_of_the_sample(ready: Workspace) -> None:
    frame = ready.samples()
    at = record_of(ready, 7)
    table = next(d.value for d in at.dataframe if "column" in d.value.columns)
    values = dict(zip(table["column"], table["value"], strict=True))
    assert values == {
        "difficulty": str(frame["difficulty"].iloc[7]),
        "steps": str(frame["steps"].iloc[7]),
    }
    body = texts(at)
    assert "**Prompt** · `question`" in body and "**Response** · `answer`" in body
    assert frame["question"].iloc[7].replace("\\", "") in body


def test_plain_text_sample_is_named_after_its_column(home: Path) -> None:
    ws = make_workspace(home / "workspaces" / "tweets", n=20, dim=8, gsm8k=False)
    frame = ws.samples().rename(columns={"question": "tweet", "answer": "label"})
    ws.write_samples(frame)
    columns = {"prompt": None, "response": None, "messages": None, "text": "tweet", "id": None}
    ws.set_section(ws.dataset.replace(columns=columns))
    at = record_of(ws, 3)
    headings = [m.value for m in at.markdown]
    assert "**tweet**" in headings and "**Text**" not in headings
    table = next(d.value for d in at.dataframe if "column" in d.value.columns)
    assert "label" in set(table["column"])  # the other column is shown, not dropped


def test_long_record_scrolls_inside_a_box_short_one_does_not(home: Path) -> None:
    from ui.panels import records

    ws = make_workspace(home / "workspaces" / "long", n=20, dim=8, gsm8k=False)
    frame = ws.samples()
    frame.loc[4, "answer"] = "\n".join(f"step {i}: carry the one" for i in range(2_000))
    ws.write_samples(frame)
    assert _boxes(record_of(ws, 4).main) == [records.RECORD_HEIGHT]
    assert _boxes(record_of(ws, 5).main) == []


def test_truncated_record_says_where_the_model_stopped(home: Path) -> None:
    ws = make_workspace(home / "workspaces" / "cut", n=20, dim=8, gsm8k=False)
    frame = ws.samples()
    frame["truncated"] = np.arange(20) % 2 == 1
    frame.loc[1, ["n_tokens", "n_response_tokens"]] = [64, 40]  # the prompt lost its start
    frame.loc[3, ["n_tokens", "n_response_tokens"]] = [64, 63]  # the response was cut
    ws.write_samples(frame)
    assert not record_of(ws, 0).warning
    first = record_of(ws, 1).warning[0].value
    assert "read 64 tokens" in first and "last 24 tokens of the prompt" in first
    assert "--max-length" in first
    second = record_of(ws, 3).warning[0].value
    assert "first 63 tokens of the response" in second
