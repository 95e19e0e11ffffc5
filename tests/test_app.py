"""The app, page by page, with streamlit's AppTest: with and without a prepared workspace.

Every page must render without an exception and without a traceback, show its key elements, and
turn injected state (a selection, a chosen dataset, a job's progress) into the right numbers.
The selection helpers behind the map (``core.measures.selection``) are checked against ``core.measures.vendi`` directly.
Plotly's lasso cannot be driven here; tests/e2e does that in a real browser.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_workspaces import make_workspace
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from core.data.dataset import load_dataset
from core.features.extract import FeatureConfig
from core.measures.clusters import coverage
from core.measures.curves import baseline_at, budget_sizes, random_baseline
from core.measures.regions import points_in_polygon
from core.measures.selection import SelectionScorer, grid_tiles
from core.measures.vendi import subset_vendi
from core.workspace.jobs.extraction import prepare_workspace
from core.workspace.jobs.record import Progress, write_progress
from core.workspace.store import Workspace
from ui import format as fmt
from ui import state
from ui.events import event_signature, rows_from_event

REPO = Path(__file__).resolve().parent.parent
USER_PRISM_HOME = Path(os.environ.get("PRISM_HOME") or Path.home() / ".cache" / "prism")
PAGES = {"data": "Data", "features": "Features", "map": "Map", "diversity": "Diversity"}
N = 240


# ------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $PRISM_HOME (with its own workspace registry); the shipped demo is hidden so
    'no workspace' stays true.

    The test's folder is a data root, so the pages may read and write files beside the home.
    """
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("PRISM_HOME", str(root))
    monkeypatch.delenv("PRISM_WORKSPACE_REGISTRY", raising=False)
    monkeypatch.setattr("core.workspace.demo.SHIPPED", tmp_path / "no-shipped-demo")
    monkeypatch.setenv("PRISM_DATA_ROOTS", str(tmp_path))
    return root


@pytest.fixture
def ready(home: Path) -> Workspace:
    """A finished workspace (features, scores, clusters, map) named like the demo."""
    return make_workspace(home / "workspaces" / "demo-gsm8k", n=N, dim=64, seed=0)


@pytest.fixture(autouse=True)
def router_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every AppTest run as the server runs all but its first: routed by app.py alone.

    AppTest starts each run afresh, and a fresh start with a pages/ folder runs Streamlit's legacy
    page discovery, which the pages answer with a rerun through app.py (see ui/widgets.py); that
    rerun would drop the click being tested. test_deep_link_is_routed_through_the_router checks
    the fresh start itself.
    """
    original = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def app(page: str = "map") -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    if page != "map":
        at.switch_page(f"pages/{page}.py")
        at.run()
        # AppTest keeps asking for the switched-to page on every later run; a browser stays on
        # the page it is on (which st.switch_page in the app may change). Do as the browser does.
        at._page_hash = ""
    return at


def assert_clean(at: AppTest) -> None:
    """No exception, no traceback, no 'something went wrong' message."""
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert not any("Something went wrong" in e for e in errors), errors
    assert "Traceback" not in str(at.main)


def errors(at: AppTest) -> list[str]:
    """The error messages shown, without Markdown's escapes of the text they quote."""
    return [e.value.replace("\\", "") for e in at.error]


def values(array: object) -> np.ndarray:
    """A figure array as serialised: a list, or Plotly's base64 typed-array form."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"{label!r} not shown once: {[m.label for m in at.metric]}"
    return values[0]


def texts(at: AppTest) -> str:
    """Every text on the page, with Markdown's escapes of data text removed."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += (
        [e.value for e in at.info] + [e.value for e in at.success] + [e.value for e in at.error]
    )
    return "\n".join(parts).replace("\\", "")


def select(at: AppTest, ws: Workspace, rows: object, how: dict | None = None) -> None:
    at.session_state[state.SELECTION] = {
        "workspace": str(ws.path),
        "rows": rows,
        "how": how or {"method": "lasso"},
    }


# ------------------------------------------------------------------------------------------
# Every page, without and with a workspace


@pytest.mark.parametrize("page", list(PAGES))
def test_page_without_workspace_shows_what_to_do(home: Path, page: str) -> None:
    at = app(page)
    assert_clean(at)
    assert [t.value for t in at.title] == [PAGES[page]]
    body = texts(at)
    if page == "data":
        assert "Add a dataset" in [s.value for s in at.subheader]
        assert "None yet" in body
        assert at.file_uploader, "the upload control is the first thing to use"
        assert "1,024 MB" in body  # the upload limit is stated
    else:
        assert "No data yet" in body
        assert any(link.proto.page == "data" for link in at.get("page_link"))


@pytest.mark.parametrize("page", list(PAGES))
def test_page_with_workspace_renders(ready: Workspace, page: str) -> None:
    at = app(page)
    assert_clean(at)
    assert [t.value for t in at.title] == [PAGES[page]]
    assert not [w for w in at.warning if "Few rows" in w.value]  # 240 rows in 24 clusters
    scores = ready.manifest["scores"]
    if page == "map":
        assert len(at.get("plotly_chart")) == 1  # one WebGL scatter per page
        assert metric(at, "Samples") == f"{N:,}"
        assert metric(at, "G-Vendi (whole set)") == fmt.score(scores["g_vendi"])
        assert metric(at, "Clusters") == f"{ready.manifest['clusters']['n_clusters']:,}"
        options = at.selectbox(key=f"{state.COLOR_BY}_demo-gsm8k").options
        assert {"Cluster", "Loss", "Gradient norm", "Column: difficulty", "Column: steps"} <= set(
            options
        )
        assert "Column: question" not in options  # long text is not a colour
        table = next(d for d in at.dataframe if "Top words" in d.value.columns)
        assert len(table.value) == ready.manifest["clusters"]["n_clusters"]
    elif page == "diversity":
        assert metric(at, "G-Vendi (q = 1)") == fmt.score(scores["g_vendi"])
        for q, label in (("0.5", "Vendi q = 0.5"), ("2", "Vendi q = 2"), ("inf", "Vendi q = ∞")):
            assert metric(at, label) == fmt.score(scores["vendi"][q])
        assert len(at.get("plotly_chart")) == 2  # saturation curve and cluster sizes
        table = at.dataframe[0].value
        assert len(table) == ready.manifest["clusters"]["n_clusters"]
        assert (table["Within-cluster Vendi"] >= 1).all()
        assert table["Top words"].str.len().gt(0).any()
    elif page == "data":
        assert "demo-gsm8k" in texts(at)
        assert at.button(key=f"open_{ready.path}").label == "Opened"
    elif page == "features":
        assert "are ready" in texts(at)


def test_deep_link_is_routed_through_the_router(
    ready: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # a fresh start, legacy page discovery and all
    monkeypatch.setenv("PRISM_HOME", str(ready.path.parent.parent))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("pages/diversity.py")
    at.run()
    assert_clean(at)
    assert [t.value for t in at.title] == ["Diversity"]
    assert at.sidebar.selectbox[0].label == "Workspace"  # app.py's sidebar ran: the router did


def test_numbers_are_formatted_for_people() -> None:
    assert fmt.count(1319, "row") == "1,319 rows"
    assert fmt.count(1, "row") == "1 row"
    assert fmt.score(87.4321) == "87.4"
    assert fmt.score(float("nan")) == "—"
    assert fmt.duration(125) == "2 min 05 s"
    assert fmt.percent(0.5) == "50%"


# ------------------------------------------------------------------------------------------
# The map: the current selection


def test_injected_selection_is_scored(ready: Workspace) -> None:
    frame = ready.samples()
    rows = np.flatnonzero(frame["cluster"].isin([0, 3]).to_numpy() | (np.arange(N) % 17 == 0))
    at = app()
    select(at, ready, rows.tolist())
    at.run()
    assert_clean(at)
    assert metric(at, "Selected samples") == f"{rows.size:,}"
    expected = subset_vendi(ready.features(), rows, qs=(1.0,))[1.0]
    assert metric(at, "G-Vendi of the selection") == fmt.score(expected)
    assert metric(at, "Whole set") == fmt.score(ready.manifest["scores"]["g_vendi"])
    cover = coverage(
        frame["cluster"].to_numpy()[rows],
        reference_sizes=np.array(ready.manifest["clusters"]["sizes"]),
    )
    assert f"{cover.n_covered:,} of {cover.n_clusters:,} clusters" in texts(at)
    random_mean = float(metric(at, "Random, same size").replace(",", ""))
    assert 1 <= random_mean <= ready.manifest["scores"]["g_vendi"] + 0.05
    records = next(d for d in at.dataframe if "prompt" in d.value.columns).value
    assert records["id"].tolist() == frame["id"].iloc[rows].tolist()


@pytest.mark.parametrize(
    "value",
    [
        "not a dict",
        {"rows": "abc"},
        {"rows": [-5, 10_000]},
        {"rows": []},
        {"workspace": "/elsewhere", "rows": [1, 2, 3]},
        {"rows": [[1, 2], [3]]},
    ],
    ids=["string", "text rows", "out of range", "empty", "other workspace", "ragged"],
)
def test_malformed_selection_is_ignored(ready: Workspace, value: object) -> None:
    at = app()
    at.session_state[state.SELECTION] = value
    at.run()
    assert_clean(at)
    assert metric(at, "G-Vendi (whole set)")  # the whole-set panel, as with no selection
    assert not [m for m in at.metric if m.label == "Selected samples"]


def test_selection_rows_out_of_range_are_dropped(ready: Workspace) -> None:
    at = app()
    select(at, ready, [3, 3, 7, N + 5, -1])
    at.run()
    assert_clean(at)
    assert metric(at, "Selected samples") == "2"


def test_save_selection_as_subset_and_list_it(ready: Workspace) -> None:
    rows = list(range(10, 40))
    at = app()
    select(at, ready, rows, {"method": "lasso"})
    at.run()
    name_box = next(t for t in at.text_input if t.label == "Subset name")
    name_box.input("hard <b>cases</b>")
    next(b for b in at.button if b.label == "Save as subset").click()
    at.run()
    assert_clean(at)
    saved = Workspace.open(ready.path).subsets()
    assert list(saved) == ["hard <b>cases</b>"]
    assert list(saved["hard <b>cases</b>"].ids) == [str(r) for r in rows]
    assert saved["hard <b>cases</b>"].how == {"method": "lasso"}
    assert any("Saved" in s.value and "30 samples" in s.value for s in at.success)
    listing = next(d for d in at.dataframe if "Name" in d.value.columns).value
    assert listing["Name"].tolist() == ["hard <b>cases</b>"] and listing["Samples"].tolist() == [30]
    # the same name again is refused with a message, not an exception
    name_box = next(t for t in at.text_input if t.label == "Subset name")
    name_box.input("hard <b>cases</b>")
    next(b for b in at.button if b.label == "Save as subset").click()
    at.run()
    assert_clean(at)
    assert any("already exists" in e for e in errors(at))


def test_saved_subset_can_be_shown_on_the_map_and_cleared(ready: Workspace) -> None:
    from core.workspace.subsets import save_subset

    save_subset(ready, "tail", ["5", "6", "200"], how={"method": "hand"})
    at = app()
    next(b for b in at.button if b.label == "Show on map").click()
    at.run()
    assert_clean(at)
    assert metric(at, "Selected samples") == "3"
    assert list(at.session_state[state.SELECTION]["rows"]) == [5, 6, 200]
    next(b for b in at.button if b.label == "Clear").click()
    at.run()
    assert_clean(at)
    assert not [m for m in at.metric if m.label == "Selected samples"]


def test_every_colouring_renders(ready: Workspace) -> None:
    at = app()
    box = at.selectbox(key=f"{state.COLOR_BY}_demo-gsm8k")
    for option in box.options:
        at.selectbox(key=f"{state.COLOR_BY}_demo-gsm8k").select(option)
        at.run()
        assert_clean(at)
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        assert spec["data"][0]["type"] == "scattergl"


def test_map_figure_carries_row_ids_and_escapes_text(home: Path) -> None:
    ws = make_workspace(home / "workspaces" / "x", n=60, dim=16, seed=3)
    frame = ws.samples()
    frame.loc[0, "question"] = "<script>alert(1)</script> & <b>bold</b>"
    ws.write_samples(frame)
    at = app()
    assert_clean(at)
    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert values(trace["customdata"]).tolist() == list(range(60))
    assert "<script>" not in trace["text"][0] and "&lt;script&gt;" in trace["text"][0]


def test_selection_on_large_map_uses_a_sample_and_the_polygon(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui.panels import map as map_panel

    monkeypatch.setattr(map_panel, "MAX_POINTS", 100)
    ws = make_workspace(home / "workspaces" / "big", n=400, dim=16, seed=1)
    at = app()
    assert_clean(at)
    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert "showing" in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert 90 <= len(trace["text"]) <= 110
    # resolving a drawn box against every point, drawn or not
    frame = ws.samples()
    event = {"selection": {"points": [], "box": [{"x": [-20, 0], "y": [-20, 20]}], "lasso": []}}
    rows = rows_from_event(
        event,
        len(frame),
        coords=(frame["umap_x"].to_numpy(), frame["umap_y"].to_numpy()),
        sampled=True,
    )
    assert rows.tolist() == np.flatnonzero(frame["umap_x"].to_numpy() <= 0).tolist()


# ------------------------------------------------------------------------------------------
# Data page


def _csv(path: Path) -> Path:
    rows = [
        {
            "instruction": f"Say {i}",
            "output": f"{i}",
            "task": f"Add {i} and {i}",
            "solution": "" if i % 4 == 0 else str(2 * i),
        }
        for i in range(10)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_data_page_maps_columns_from_a_server_path(home: Path, tmp_path: Path) -> None:
    source = _csv(tmp_path / "pairs.csv")
    at = app("data")
    at.segmented_control(key="data_origin").set_value("Path on the server")
    at.run()
    at.text_input(key="server_path").input(str(source))
    at.run()
    assert_clean(at)
    # auto-detection picks (instruction, output): 10 usable rows
    assert any("10 usable rows" in s.value for s in at.success)
    prompt = next(s for s in at.selectbox if s.label == "Prompt column")
    assert prompt.value == "instruction"
    prompt.select("task")
    at.run()
    next(s for s in at.selectbox if s.label == "Response column").select("solution")
    at.run()
    assert_clean(at)
    # rows 0, 4 and 8 have an empty solution: skipped and counted
    assert any("7 usable rows" in s.value and "3 rows skipped" in s.value for s in at.success)
    next(b for b in at.button if b.label == "Continue: compute features").click()
    at.run()
    assert_clean(at)
    assert [t.value for t in at.title] == ["Features"]
    pending = at.session_state[state.PENDING]
    assert pending["columns"]["prompt"] == "task" and pending["columns"]["response"] == "solution"
    assert pending["n_samples"] == 7
    assert "New features for" in texts(at)


def test_data_page_upload_error_is_shown_next_to_the_upload(home: Path) -> None:
    at = app("data")
    at.file_uploader[0].set_value(("broken.csv", b"prompt,response\n\xff\xfe,oops\n", "text/csv"))
    at.run()
    assert_clean(at)
    assert any(e.startswith("broken.csv is not valid UTF-8") for e in errors(at))
    saved = list((home / "uploads").rglob("broken.csv"))
    assert len(saved) == 1  # kept under $PRISM_HOME/uploads, named after its content


def test_data_page_reads_another_encoding(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "tweets.csv"
    text = "Ça coûte 12 € — déjà payé, répondit le boulanger à l'étranger"
    rows = pd.DataFrame({"prompt": [text[i:] for i in range(12)], "response": ["très bien"] * 12})
    source.write_bytes(rows.to_csv(index=False).encode("cp1252"))
    at = app("data")
    at.segmented_control(key="data_origin").set_value("Path on the server")
    at.run()
    at.text_input(key="server_path").input(str(source))
    at.run()
    assert any("is not valid UTF-8" in e and "charset-normalizer" in e for e in errors(at))
    at.text_input(key="data_encoding").input("cp1252")
    at.run()
    assert_clean(at)
    assert any("12 usable rows" in s.value for s in at.success)
    next(b for b in at.button if b.label == "Continue: compute features").click()
    at.run()
    assert at.session_state[state.PENDING]["encoding"] == "cp1252"


def test_data_page_mapping_problem_is_a_message(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "one.jsonl"
    source.write_text('{"a": "x", "b": "y"}\n{"a": "z", "b": "w"}\n')
    at = app("data")
    at.segmented_control(key="data_origin").set_value("Path on the server")
    at.run()
    at.text_input(key="server_path").input(str(source))
    at.run()
    assert_clean(at)
    assert any("Pick the columns below" in i.value for i in at.info)
    next(s for s in at.selectbox if s.label == "Prompt column").select("b")
    at.run()
    next(s for s in at.selectbox if s.label == "Response column").select("b")
    at.run()  # prompt and response are now the same column
    assert_clean(at)
    assert any("must differ" in e for e in errors(at))


def test_data_page_missing_path_is_a_message(home: Path) -> None:
    at = app("data")
    at.segmented_control(key="data_origin").set_value("Path on the server")
    at.run()
    at.text_input(key="server_path").input(str(home / "no" / "such" / "file.jsonl"))
    at.run()
    assert_clean(at)
    assert any("no such file" in e for e in errors(at))


def test_exposed_app_reads_server_paths_only_under_data_roots(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui import paths

    monkeypatch.setenv("PRISM_DATA_ROOTS", str(tmp_path / "allowed"))
    (tmp_path / "allowed").mkdir()
    with pytest.raises(Exception, match="outside the folders"):
        paths.check_server_path(str(_csv(tmp_path / "x.csv")))
    assert paths.check_server_path(str(_csv(tmp_path / "allowed" / "y.csv"))).name == "y.csv"


def test_open_another_workspace(ready: Workspace, home: Path) -> None:
    other = make_workspace(home / "workspaces" / "other", n=80, dim=16, seed=5)
    at = app("data")
    at.button(key=f"open_{other.path}").click()
    at.run()
    assert_clean(at)
    assert at.session_state[state.WORKSPACE] == str(other.path)
    assert [t.value for t in at.title] == ["Map"]
    assert metric(at, "Samples") == "80"
    # remembered for the next session (a refresh)
    assert json.loads((home / "app.json").read_text())["last_workspace"] == str(other.path)
    again = app()
    assert metric(again, "Samples") == "80"


# ------------------------------------------------------------------------------------------
# Features page


def _prepared(home: Path, tmp_path: Path) -> Workspace:
    source = tmp_path / "few.jsonl"
    source.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(10))
    )
    dataset = load_dataset(str(source))
    ws = prepare_workspace(
        home / "workspaces" / "few", dataset, FeatureConfig(model="tiny", dim=64)
    )
    state_file = home / "app.json"
    state_file.write_text(json.dumps({"last_workspace": str(ws.path)}))
    return ws


def test_features_page_follows_a_running_job(home: Path, tmp_path: Path) -> None:
    ws = _prepared(home, tmp_path)
    write_progress(
        ws,
        Progress(
            "running", 4, 10, samples_per_s=2.0, eta_s=3.0, pid=os.getpid(), message="running"
        ),
    )
    at = app("features")
    assert_clean(at)
    assert metric(at, "Done") == "4 / 10"
    assert metric(at, "Speed") == "2.0 samples/s"
    assert metric(at, "Time left") == "3 s"
    assert any(b.label == "Cancel" for b in at.button)
    assert len(at.get("progress")) == 1


@pytest.mark.parametrize("status", ["failed", "cancelled", "dead"])
def test_features_page_offers_to_resume(home: Path, tmp_path: Path, status: str) -> None:
    ws = _prepared(home, tmp_path)
    if status == "dead":  # a job whose process was killed still says "running"
        progress = Progress("running", 6, 10, pid=2**22 + 12345, message="")
    else:
        progress = Progress(status, 6, 10, message="disk full" if status == "failed" else "")
    write_progress(ws, progress)
    at = app("features")
    assert_clean(at)
    assert any(b.label == "Resume" for b in at.button)
    assert "stopped" in texts(at)
    if status == "failed":
        assert any("disk full" in e for e in errors(at))
    if status == "cancelled":  # progress is not shown lost: the rows in progress are redone
        assert any(
            "computes again only the rows that were in progress" in c.value for c in at.caption
        )


def test_features_page_for_a_new_dataset(home: Path, tmp_path: Path) -> None:
    source = _csv(tmp_path / "pairs.csv")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state[state.PENDING] = {
        "source": str(source),
        "columns": {
            "prompt": "instruction",
            "response": "output",
            "messages": None,
            "text": None,
            "id": None,
        },
        "label": "pairs.csv",
        "n_samples": 10,
    }
    at.switch_page("pages/features.py")
    at.run()
    assert_clean(at)
    assert "pairs.csv" in texts(at)
    assert {"Dimension d", "Parameters", "Precision"} <= {s.label for s in at.selectbox}
    batch = next(n for n in at.number_input if n.label == "Batch size")
    assert batch.value == 0  # the device picks: 8 on a CPU, 128 on a GPU
    # asking for another model without naming it is a message
    at.radio[0].set_value("other")
    next(b for b in at.button if b.label == "Start").click()
    at.run()
    assert_clean(at)
    assert any("Type a model name" in e for e in errors(at))
    assert not (home / "workspaces").exists()


# ------------------------------------------------------------------------------------------
# Errors never reach the user as tracebacks


def test_a_broken_workspace_is_a_message(ready: Workspace) -> None:
    (ready.path / "samples.parquet").write_bytes(b"this is not parquet")
    for page in ("map", "diversity"):
        at = app(page)
        assert not at.exception
        errors = [e.value for e in at.error]
        assert errors and "Traceback" not in " ".join(errors)


def test_map_build_is_started_when_clusters_are_missing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.workspace.jobs import analysis as analyze

    ws = make_workspace(home / "workspaces" / "bare", n=50, dim=16)
    for section in ("clusters", "layout"):
        ws.manifest.pop(section)
    ws.save_manifest()
    started = []

    def fake_start(path: object) -> int:
        started.append(path)
        (Path(path) / analyze.STATUS).write_text(
            json.dumps(
                {"status": "running", "step": "clusters", "message": "grouping", "pid": os.getpid()}
            )
        )
        return os.getpid()

    monkeypatch.setattr(analyze, "start", fake_start)
    at = app()
    assert_clean(at)
    assert started == [ws.path]
    assert "Building the map" in texts(at)
    at = app("diversity")  # the scores are there already; the clusters wait for the map
    assert_clean(at)
    assert metric(at, "G-Vendi (q = 1)") == fmt.score(ws.manifest["scores"]["g_vendi"])


# ------------------------------------------------------------------------------------------
# core.measures.selection: the map's arithmetic


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("tiled", [False, True], ids=["plain", "tiled"])
@pytest.mark.parametrize("k", [1, 2, 20, 40, 130, 190], ids=lambda k: f"k={k}")
def test_selection_score_matches_core(k: int, tiled: bool) -> None:
    features = _unit(200, 32)  # k ≤ d, d < k ≤ n/2 and k > n/2 (from the complement) all occur
    coords = np.random.default_rng(1).normal(size=(200, 2))
    scorer = SelectionScorer(features)
    if tiled:
        scorer.build_tiles(grid_tiles(coords[:, 0], coords[:, 1], 3))
    # a lasso-like selection (a region of the map) and a scattered one
    for rows in (
        np.sort(np.argsort(np.hypot(*coords.T))[:k]),
        np.sort(np.random.default_rng(k).choice(200, size=k, replace=False)),
    ):
        expected = subset_vendi(features, rows, qs=(1.0,))[1.0]
        assert scorer.g_vendi(rows) == pytest.approx(expected, rel=1e-5)


def test_grid_tiles_are_balanced() -> None:
    coords = np.random.default_rng(0).normal(size=(900, 2))
    tiles = grid_tiles(coords[:, 0], coords[:, 1], 3)
    assert sorted(np.bincount(tiles).tolist()) == [100] * 9


def test_random_baseline_ends_at_the_whole_set() -> None:
    from core.measures.vendi import vendi_score

    features = _unit(300, 16)
    curve = random_baseline(features, seed=0)
    assert curve["size"].iloc[-1] == 300 and curve["size"].iloc[0] == 10
    assert curve["mean"].iloc[-1] == pytest.approx(vendi_score(features), rel=1e-6)
    assert curve["sd"].iloc[-1] == 0
    assert (np.diff(curve["mean"]) > 0).all()  # more random samples, more diversity here
    assert (curve["low"] <= curve["mean"]).all() and (curve["mean"] <= curve["high"]).all()
    mean, _ = baseline_at(curve, 10)
    assert mean == pytest.approx(curve["mean"].iloc[0])
    between, _ = baseline_at(curve, int(math.sqrt(curve["size"].iloc[3] * curve["size"].iloc[4])))
    assert curve["mean"].iloc[3] <= between <= curve["mean"].iloc[4]
    assert budget_sizes(5, points=12, smallest=10) == [5]


def test_points_in_polygon() -> None:
    x, y = np.meshgrid(np.arange(-5, 6) + 0.5, np.arange(-5, 6) + 0.5)
    x, y = x.ravel(), y.ravel()
    square = points_in_polygon(x, y, [0, 3, 3, 0], [0, 0, 3, 3])
    assert sorted(zip(x[square], y[square], strict=True)) == [
        (a + 0.5, b + 0.5) for a in range(3) for b in range(3)
    ]
    # a concave L: the notch is outside
    ell = points_in_polygon(x, y, [0, 4, 4, 2, 2, 0], [0, 0, 2, 2, 4, 4])
    assert (
        ell.sum() == 8 + 4
        and not points_in_polygon(
            np.array([3.0]), np.array([3.0]), [0, 4, 4, 2, 2, 0], [0, 0, 2, 2, 4, 4]
        )[0]
    )
    assert not points_in_polygon(x, y, [0, 1], [0, 1]).any()


def test_rows_from_event() -> None:
    points = [
        {"customdata": 7},
        {"customdata": [3, "x"]},
        {"customdata": 7},
        {"customdata": 99},
        {"x": 1},
    ]
    event = {"selection": {"points": points, "box": [], "lasso": []}}
    assert rows_from_event(event, 50).tolist() == [3, 7]
    assert rows_from_event({"selection": {"points": []}}, 50) is None
    assert rows_from_event(None, 50) is None
    assert rows_from_event("junk", 50) is None
    assert event_signature(event) == event_signature(json.loads(json.dumps(event)))
    assert event_signature({"selection": {"points": [], "box": [], "lasso": []}}) is None


def test_feature_job_runs_in_its_own_process_and_moves_on_to_the_map(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real thing: Start on the page runs `prism resume` in a separate process (tiny model)."""
    import time

    from core.workspace.jobs import analysis as analyze
    from core.workspace.jobs.record import read_progress

    # The tiny model borrows the embedded model's tokenizer; reuse the user's cached copy.
    models = USER_PRISM_HOME / "models"
    if models.is_dir():
        (home / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setattr(
        analyze,
        "start",
        lambda path: (Path(path) / analyze.STATUS).write_text(
            json.dumps({"status": "running", "step": "clusters", "pid": os.getpid()})
        ),
    )
    source = tmp_path / "six.jsonl"
    source.write_text(
        "".join(
            json.dumps({"prompt": f"What is {i} + {i}?", "response": f"It is {2 * i}."}) + "\n"
            for i in range(6)
        )
    )
    at = app("data")
    at.segmented_control(key="data_origin").set_value("Path on the server")
    at.run()
    at.text_input(key="server_path").input(str(source))
    at.run()
    next(b for b in at.button if b.label == "Continue: compute features").click()
    at.run()
    at.radio[0].set_value("other")
    next(t for t in at.text_input if t.label == "Model name or path").input("tiny")
    next(s for s in at.selectbox if s.label == "Dimension d").select(256)
    next(t for t in at.text_input if t.label == "Workspace name").input("six tiny")
    next(b for b in at.button if b.label == "Start").click()
    at.run()
    assert_clean(at)
    path = home / "workspaces" / "six-tiny"
    progress = read_progress(path)
    assert progress is not None and progress.pid and progress.pid != os.getpid()
    deadline = time.monotonic() + 240
    while (progress := read_progress(path)).status == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert progress.status == "done", progress
    at.run()  # the page sees the finished job and moves on to the map, which builds itself
    assert_clean(at)
    assert [t.value for t in at.title] == ["Map"]
    assert "Building the map" in texts(at)
    ws = Workspace.open(path)
    assert ws.has_features and ws.features().shape == (6, 256)


def test_lasso_badge_is_neutral_when_the_selection_is_level_with_random(ready: Workspace) -> None:
    """Every row is every random subset of its size: "≈ random" in grey, no arrow (the rule:
    core.measures.selection.versus_random); a selection far above random keeps its green
    "+x vs random"."""
    from streamlit.proto.Metric_pb2 import Metric

    from core.select.selectors import select as run_selector
    from core.workspace.selector_runs import selector_pool

    at = app()
    select(at, ready, list(range(N)))
    at.run()
    at.run()  # the random baseline, if it was still being computed
    assert_clean(at)
    badge = next(m for m in at.metric if m.label.startswith("G-Vendi of the selection"))
    assert badge.proto.delta == "≈ random"
    assert badge.proto.color == Metric.MetricColor.GRAY
    assert badge.proto.direction == Metric.MetricDirection.NONE
    # k-center rows are far more diverse than random rows of the same count
    spread = run_selector("k_center", selector_pool(ready), budget=12, seed=0)
    select(at, ready, sorted(int(r) for r in spread))
    at.run()
    assert_clean(at)
    badge = next(m for m in at.metric if m.label.startswith("G-Vendi of the selection"))
    assert badge.proto.delta.startswith("+") and badge.proto.delta.endswith("vs random")
    assert badge.proto.color == Metric.MetricColor.GREEN
    assert badge.proto.direction == Metric.MetricDirection.UP


@pytest.mark.parametrize("page", ["map", "diversity", "compare"])
def test_cluster_figures_of_a_small_set_are_marked_as_noise(home: Path, page: str) -> None:
    """24 rows in 4 clusters: where cluster sizes, sparse clusters or coverage are shown, the
    page says they are rough and by which rule (core.measures.clusters.few_rows_note)."""
    from core.measures.clusters import FEW_ROWS_RULE

    small = make_workspace(home / "workspaces" / "small", n=24, dim=16, n_clusters=4, seed=1)
    at = app(page)
    at.session_state[state.WORKSPACE] = str(small.path)
    at.run()
    assert_clean(at)
    warned = [w.value for w in at.warning if "Few rows" in w.value]
    assert len(warned) == 1, [w.value for w in at.warning]
    assert "24 rows in 4 clusters" in warned[0] and FEW_ROWS_RULE in warned[0]
