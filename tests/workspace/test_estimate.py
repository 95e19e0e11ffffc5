"""The run-time estimate shown before feature extraction: a probe of a few median-length rows,
scaled to all rows, writing nothing."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import test_app
from cli_support import DIM, N_SAMPLES

from core.data.dataset import load_dataset
from core.errors import PrismError
from core.features.extract import FeatureConfig
from core.features.proxy import prism_home
from core.workspace.jobs.estimate import RunEstimate, estimate_run, probe_indices, rough_duration

TINY = FeatureConfig(model="tiny", dim=DIM)
router_only = test_app.router_only  # AppTest runs routed by app.py, as the server does


def _files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")} if root.exists() else {}


def test_estimate_probes_a_few_rows_and_writes_nothing(dataset_file: Path) -> None:
    dataset = load_dataset(dataset_file)
    data_before = _files(dataset_file.parent)
    workspaces_before = _files(prism_home() / "workspaces")
    estimate = estimate_run(dataset, TINY)
    assert _files(dataset_file.parent) == data_before
    assert _files(prism_home() / "workspaces") == workspaces_before
    assert isinstance(estimate, RunEstimate)
    assert estimate.rows == N_SAMPLES and estimate.probe_rows == 4 and estimate.device == "cpu"
    assert 0 < estimate.probe_seconds <= estimate.seconds
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.seconds = 0.0  # type: ignore[misc]
    assert re.fullmatch(
        rf"about \d+ (s|min) for {N_SAMPLES} rows on cpu \(probe: 4 rows in \d+\.\d s\)",
        estimate.sentence(),
    ), estimate.sentence()


def test_estimate_scales_the_probe_by_tokens_and_rows() -> None:
    # Rows of one length: every row costs what a probe row costs, so the run is rows / probe_rows
    # probes (plus loading the model).
    samples = ["The same short sentence about rivers and trains, again."] * 40
    estimate = estimate_run(samples, TINY, probe_rows=2, seed=3)
    assert estimate.rows == 40 and estimate.probe_rows == 2
    assert estimate.seconds - estimate.load_seconds == pytest.approx(
        estimate.probe_seconds * 40 / 2, rel=1e-9
    )


def test_probe_rows_are_those_nearest_the_median_length() -> None:
    lengths = [5, 100, 50, 51, 49, 2000, 48, 7]  # median 50
    chosen = probe_indices(lengths, 3, seed=0)
    assert sorted(lengths[i] for i in chosen) == [49, 50, 51]
    assert probe_indices(lengths, 3, seed=0).tolist() == chosen.tolist()  # seeded
    assert len(probe_indices(lengths, 20, seed=1)) == len(lengths)


def test_rough_durations_read_like_estimates() -> None:
    assert rough_duration(3.2) == "3 s"
    assert rough_duration(41) == "40 s"
    assert rough_duration(25 * 60 + 10) == "25 min"
    assert rough_duration(3 * 3600 + 9 * 60) == "3 h 10 min"
    assert rough_duration(2 * 3600 + 1) == "2 h"


def test_bad_probe_rows_and_empty_data_are_messages() -> None:
    with pytest.raises(PrismError, match="probe_rows"):
        estimate_run(["text"], TINY, probe_rows=0)
    with pytest.raises(PrismError, match="no rows"):
        estimate_run([], TINY)


def test_cli_features_prints_the_estimate_first(built: dict) -> None:
    said = built["stderr"]
    line = next(s for s in said.splitlines() if s.startswith("estimate:"))
    assert f"for {N_SAMPLES} rows on cpu (probe: 4 rows in" in line
    assert said.index("estimate:") < said.index("wrote")


def test_features_page_estimates_before_start_and_offers_a_random_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from cli_support import sample_records, write_jsonl
    from streamlit.testing.v1 import AppTest
    from test_app import REPO, USER_PRISM_HOME

    from ui import state

    home = tmp_path / "home"
    home.mkdir()
    models = USER_PRISM_HOME / "models"  # the tiny model borrows the embedded tokenizer
    if models.is_dir():
        (home / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("PRISM_HOME", str(home))
    monkeypatch.setenv("PRISM_DATA_ROOTS", str(tmp_path))
    monkeypatch.setattr("core.workspace.demo.SHIPPED", tmp_path / "no-shipped-demo")
    source = write_jsonl(tmp_path / "rows.jsonl", sample_records(24))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.session_state[state.PENDING] = {
        "source": str(source),
        "columns": {
            "prompt": "prompt",
            "response": "response",
            "messages": None,
            "text": None,
            "id": "id",
        },
        "label": "rows.jsonl",
        "n_samples": 24,
    }
    at.switch_page("pages/features.py")
    at.run()
    at.radio[0].set_value("other")
    next(t for t in at.text_input if t.label == "Model name or path").input("tiny")
    next(s for s in at.selectbox if s.label == "Dimension d").select(DIM)

    def estimated() -> str:
        next(b for b in at.button if b.label == "Estimate the run time").click()
        at.run()
        assert not at.exception, at.exception
        said = " ".join(i.value for i in at.info if "Estimated" in i.value)
        assert said, ([e.value for e in at.error], [m.value for m in at.markdown][:8])
        return said

    before = _files(home / "workspaces")
    assert "for 24 rows on cpu (probe: 4 rows in" in estimated()
    next(n for n in at.number_input if n.label.startswith("Random sample")).set_value(10)
    assert "for 10 rows on cpu (probe: 4 rows in" in estimated()
    assert _files(home / "workspaces") == before  # estimating wrote no workspace


# ------------------------------------------------------------------------------------------
# The embedded model's one-time conversion


def test_the_conversion_is_announced_only_while_the_cache_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.features.proxy import conversion_note, embedded_model_cached

    assert embedded_model_cached()  # the tests' tokenizer comes from the user's cache
    assert conversion_note("default") is None and conversion_note("tiny") is None
    monkeypatch.setenv("PRISM_HOME", str(tmp_path / "fresh"))
    note = conversion_note("default")
    assert note is not None and "converting the embedded model once" in note
    assert re.search(r"about \d+ s; later runs reuse it", note)
    assert str(tmp_path / "fresh" / "models") in note
    assert conversion_note("tiny:3") == note  # the tiny model borrows its tokenizer
    assert conversion_note("Qwen/Qwen2.5-0.5B-Instruct") is None  # nothing of Prism's to convert


def test_a_later_run_reuses_the_converted_weights() -> None:
    from core.features.proxy import default_model_dir, load_proxy, reused_models

    weights = default_model_dir() / "model.safetensors"
    before = weights.stat()
    first = load_proxy("tiny")
    assert load_proxy("tiny") is not first  # each load is its own, outside reused_models
    with reused_models():
        shared = load_proxy("tiny")
        assert load_proxy("tiny") is shared  # the estimate's load serves the run
        assert load_proxy("tiny:1") is not shared
    assert load_proxy("tiny") is not shared
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_sentence_counts_the_conversion_in() -> None:
    estimate = RunEstimate(
        seconds=400.0, rows=1319, device="cpu", probe_rows=4, probe_seconds=3.1,
        load_seconds=1.0, convert_seconds=80.0,
    )  # fmt: skip
    assert estimate.sentence() == (
        "about 7 min for 1,319 rows on cpu (probe: 4 rows in 3.1 s; converting the embedded "
        "model once: 1 min, included)"
    )
    assert "converting" not in dataclasses.replace(estimate, convert_seconds=0.0).sentence()


def test_long_rows_are_probed_fewer_at_a_time() -> None:
    long_row = " ".join(f"word{i}" for i in range(700))  # well over PROBE_TOKENS / 2 tokens
    estimate = estimate_run([long_row] * 12, TINY, probe_rows=4)
    assert estimate.probe_rows < 4 and estimate.convert_seconds == 0.0
    short = estimate_run(["A short row about rivers."] * 12, TINY, probe_rows=4)
    assert short.probe_rows == 4
