"""The synthesis loop on a real tiny-model workspace: candidates, the filter, joining, provenance
through export and reload, review by hand, and a killed job resumed at its round."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_support import REPO, invoke
from endpoint_stub import Behaviour, serving

from core.errors import PrismError
from core.synthesis.filter import count_key
from core.synthesis.generators import make_generator
from core.workspace.export import FORMATS, export_subset, read_export
from core.workspace.manifest import RoundRecord, SynthesisSection
from core.workspace.store import Workspace
from core.workspace.synthesis.candidates import (
    COLUMNS,
    decide,
    read_candidates,
    read_round,
    round_numbers,
)
from core.workspace.synthesis.grow import PROVENANCE
from core.workspace.synthesis.loop import SynthesisConfig, pending_rounds, run_synthesis
from core.workspace.synthesis.loop import join as join_round

# The tiny model is random: its candidates' losses lie outside the source band, so the quality
# gate is off where a test needs rows to join (the gate's own tests turn it on).
FAST = {"generator": "tiny", "max_new_tokens": 16, "quality_gate": False}


@pytest.fixture(scope="module")
def tiny_generator() -> Any:
    return make_generator("tiny")


def _run(path: Path, generator: Any, **options: Any) -> list[RoundRecord]:
    config = SynthesisConfig(**{**FAST, **options})
    return run_synthesis(Workspace.open(path), config, generator=generator)


def test_a_round_stores_every_candidate_and_joins_exactly_the_kept_ones(
    copy_built: Path, tiny_generator: Any
) -> None:
    before = Workspace.open(copy_built)
    n0, old_features = before.n_samples, np.array(before.features())
    [record] = _run(copy_built, tiny_generator, per_round=6, seed=3)
    ws = Workspace.open(copy_built)
    frame, features = read_round(ws, 1)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(features) == 6
    counts = frame["reason"].value_counts().to_dict()
    assert sum(counts.values()) == record.generated == 6
    assert {k: getattr(record, count_key(k)) for k in counts} == counts
    # The filter: kept ⇔ well formed, no duplicate, nearest centroid in a sparse cluster.
    formed = frame["reason"] != "malformed"
    assert (frame.loc[frame["reason"] == "kept", "nearest_sparse"]).all()
    assert not frame.loc[frame["reason"] == "dense", "nearest_sparse"].any()
    assert (np.abs(np.linalg.norm(features[formed.to_numpy()], axis=1) - 1) < 1e-5).all()
    # Exactly the kept candidates joined, features appended as computed.
    kept = frame["reason"] == "kept"
    assert frame["joined"].tolist() == kept.tolist()
    assert ws.n_samples == n0 + int(kept.sum()) == record.pool_before + record.joined
    stored = ws.features()
    np.testing.assert_array_equal(stored[:n0], old_features)
    np.testing.assert_array_equal(stored[n0:], features[kept.to_numpy()])
    samples = ws.samples()
    assert samples["origin"].tolist() == ["source"] * n0 + ["synthetic"] * int(kept.sum())
    assert samples["id"].is_unique
    assert record.g_vendi_after == pytest.approx(ws.scores.g_vendi)
    assert record.sparse_rows_after == record.sparse_rows_before + int(kept.sum())


def test_candidate_features_are_the_workspace_features_of_those_samples(
    copy_built: Path, tiny_generator: Any
) -> None:
    """Same proxy, scope, dim and seed: featurising the joined rows again gives their features."""
    from core.data.columns import ColumnMap
    from core.data.text import conversations
    from core.features.extract import FeatureExtractor
    from core.features.proxy import load_proxy
    from core.workspace.jobs.extraction import config_from_workspace

    _run(copy_built, tiny_generator, per_round=3, sparse_only=False, seed=5)
    ws = Workspace.open(copy_built)
    samples = ws.samples()
    rows = np.flatnonzero((samples["origin"] == "synthetic").to_numpy())
    assert rows.size >= 1
    config = config_from_workspace(ws)
    extractor = FeatureExtractor(load_proxy(config.model), config)
    chats = conversations(samples.iloc[rows], ColumnMap.from_dict(dict(ws.dataset.columns)))
    again = extractor.compute(extractor.encode(chats)).features
    np.testing.assert_allclose(again, ws.features()[rows], atol=1e-5)


def _export_columns(path: Path, tmp: Path, fmt: str, **options: Any) -> list[str]:
    """The columns of an export of the whole set (``options``: origin, derived), as read back."""
    out = tmp / f"columns-{len(list(tmp.iterdir()))}"
    result = export_subset(Workspace.open(path), None, fmt=fmt, out=out, **options)
    assert list(read_export(result.path, fmt).columns) == list(result.columns)
    return list(result.columns)


def test_provenance_survives_export_and_reload(
    copy_built: Path, tiny_generator: Any, tmp_path: Path
) -> None:
    from core.data.dataset import load_dataset

    before = {fmt: _export_columns(copy_built, tmp_path, fmt) for fmt in FORMATS}
    _run(copy_built, tiny_generator, per_round=3, sparse_only=False, seed=1)
    ws = Workspace.open(copy_built)
    synthetic = read_candidates(ws).query("joined")
    assert len(synthetic) >= 1
    # The user's schema: an export of the source rows gains no column from the join (every
    # format); the provenance is Prism's and comes with synthetic rows or `derived`.
    provenance = {"origin", *PROVENANCE}
    for fmt in FORMATS:
        assert _export_columns(copy_built, tmp_path, fmt, origin="source") == before[fmt], fmt
    assert not provenance & set(before["jsonl"])
    for options in ({"origin": "synthetic"}, {"origin": "all"}, {"derived": True}):
        assert provenance <= set(_export_columns(copy_built, tmp_path, "parquet", **options))
    for origin, expected in (("all", ws.n_samples), ("source", 16), ("synthetic", len(synthetic))):
        out = tmp_path / f"{origin}.jsonl"
        code, _, err = invoke("export", copy_built, "--out", out, "--origin", origin)
        assert code == 0, err
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == expected
    rows = [json.loads(line) for line in (tmp_path / "synthetic.jsonl").read_text().splitlines()]
    source_ids = {f"s{i:03d}" for i in range(16)}
    for row, (_, candidate) in zip(rows, synthetic.iterrows(), strict=True):
        assert row["id"] == candidate["candidate_id"] and row["origin"] == "synthetic"
        assert row["prompt"] == candidate["prompt"] and row["response"] == candidate["response"]
        assert row["synthesis_round"] == 1
        assert set(json.loads(row["synthesis_examples"])) <= source_ids
        assert row["synthesis_generator"].startswith("local:tiny")
    reloaded = load_dataset(tmp_path / "all.jsonl")
    assert (reloaded.samples["origin"] == "synthetic").sum() == len(synthetic)
    assert set(reloaded.samples.loc[reloaded.samples["origin"] == "source", "id"]) == source_ids
    code, _, err = invoke("export", copy_built, "--out", tmp_path / "x.jsonl", "--origin", "both")
    assert code != 0 and "--origin" in err


def test_review_keeps_and_drops_by_hand_before_joining(
    copy_built: Path, tiny_generator: Any
) -> None:
    n0 = Workspace.open(copy_built).n_samples
    [record] = _run(copy_built, tiny_generator, per_round=6, review=True, seed=2)
    ws = Workspace.open(copy_built)
    assert record.status == "judged" and ws.n_samples == n0 and pending_rounds(ws) == [1]
    frame, _ = read_round(ws, 1)
    formed = frame[frame["reason"] != "malformed"]
    assert len(formed) >= 2
    drop, keep = formed["candidate_id"].iloc[0], formed["candidate_id"].iloc[1]
    assert decide(ws, [drop], "drop") == 1 and decide(ws, [keep], "keep") == 1
    with pytest.raises(PrismError, match="no candidate has id"):
        decide(ws, ["nope"], "keep")
    malformed = frame.loc[frame["reason"] == "malformed", "candidate_id"]
    if len(malformed):
        with pytest.raises(PrismError, match="malformed"):
            decide(ws, [malformed.iloc[0]], "keep")
    with pytest.raises(PrismError, match="waits for review"):
        _run(copy_built, tiny_generator, review=True)
    expected = set(frame.loc[frame["reason"] == "kept", "candidate_id"]) - {drop} | {keep}
    record = join_round(ws, 1)
    ws = Workspace.open(copy_built)
    synthetic = set(ws.samples().query("origin == 'synthetic'")["id"])
    assert synthetic == expected and record.joined == len(expected)
    assert join_round(ws, 1).joined == len(expected)  # joining again adds nothing
    assert Workspace.open(copy_built).n_samples == n0 + len(expected)
    with pytest.raises(PrismError, match="already joined"):
        decide(Workspace.open(copy_built), [keep], "drop")


def test_a_join_interrupted_halfway_is_undone_and_done_again(
    copy_built: Path, tiny_generator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after the samples were written but before the features were: the next join puts
    the workspace back as it was, then joins the round once."""
    import core.workspace.synthesis.grow as grow

    n0 = Workspace.open(copy_built).n_samples
    _run(copy_built, tiny_generator, per_round=3, sparse_only=False, review=True, seed=4)
    kept = set(
        read_round(Workspace.open(copy_built), 1)[0].query("reason == 'kept'")["candidate_id"]
    )
    assert kept

    def stop(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(grow, "write_npy", stop)
    with pytest.raises(KeyboardInterrupt):
        join_round(Workspace.open(copy_built), 1)
    monkeypatch.undo()
    assert (copy_built / "synthesis" / "joining").is_dir()
    record = join_round(Workspace.open(copy_built), 1)
    ws = Workspace.open(copy_built)
    assert not (copy_built / "synthesis" / "joining").exists()
    assert record.joined == len(kept) and ws.n_samples == n0 + len(kept)
    samples = ws.samples()  # every derived file matches the samples again
    assert set(samples.query("origin == 'synthetic'")["id"]) == kept
    assert len(ws.features()) == len(samples) and samples["id"].is_unique


def _synthesize(
    path: Path,
    *args: str,
    generator: tuple[str, ...] = ("--generator", "tiny"),
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "core", "synthesize", str(path), *generator,
         "--max-new-tokens", "16", "--no-quality-gate", "--quiet", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _wait_for_round(path: Path, round_no: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if round_no in round_numbers(Workspace.open(path)):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    raise AssertionError(f"round {round_no} never appeared")


def test_a_killed_synthesis_job_resumes_at_its_round(copy_built: Path) -> None:
    process = _synthesize(copy_built, "--rounds", "2", "--per-round", "2", "--no-filter")
    try:
        _wait_for_round(copy_built, 1, process)
        process.kill()  # SIGKILL: no chance to clean up
    finally:
        process.wait(timeout=30)
    ws = Workspace.open(copy_built)
    done_before = round_numbers(ws)
    texts_before = {r: read_round(ws, r)[0]["raw_prompt"].tolist() for r in done_before}
    result = subprocess.run(
        [sys.executable, "-m", "core", "synthesize", str(copy_built), "--resume", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ws = Workspace.open(copy_built)
    assert round_numbers(ws) == [1, 2] and pending_rounds(ws) == []
    for r, texts in texts_before.items():  # finished rounds were not generated again
        assert read_round(ws, r)[0]["raw_prompt"].tolist() == texts
    candidates = read_candidates(ws)
    samples = ws.samples()
    assert samples["id"].is_unique
    assert set(samples.query("origin == 'synthetic'")["id"]) == set(
        candidates.loc[candidates["joined"], "candidate_id"]
    )
    assert len(ws.features()) == len(samples) == 16 + int(candidates["joined"].sum())


def test_cancel_stops_with_143_and_says_how_to_resume(copy_built: Path) -> None:
    process = _synthesize(copy_built, "--rounds", "50", "--per-round", "2")
    _wait_for_round(copy_built, 1, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "--resume" in err and "kept" in err
    job = json.loads((copy_built / "jobs" / "synthesis.json").read_text())
    assert job["status"] == "cancelled"
    assert pd.read_parquet(copy_built / "synthesis" / "round-0001.parquet")["round"].eq(1).all()


SECRET = "sk-prism-resume-secret-0123456789"


def test_over_long_replies_are_malformed_with_their_reason(copy_built: Path) -> None:
    """A server that ignores max_tokens sends 3,000-character answers: with max_reply_chars
    1,000 they count as malformed, say why, and are neither stored nor featurised."""
    with serving(Behaviour(reply_chars=3000)) as url:
        generator = make_generator(endpoint=url, endpoint_model="m", max_retries=0)
        [record] = _run(copy_built, generator, per_round=2, max_reply_chars=1000, seed=1)
    frame, features = read_round(Workspace.open(copy_built), 1)
    assert record.malformed == 2 and record.joined == 0
    assert frame["reason"].tolist() == ["malformed", "malformed"]
    assert frame["prompt"].str.contains("a farmer plants").all()  # the prompts were fine
    assert frame["raw_response"].tolist() == ["", ""]  # the long replies are not kept
    for problem in frame["problem"]:
        assert problem.startswith("response: the reply holds 3,000 characters, more than the")
        assert "limit of 1,000 (max_reply_chars)" in problem
    assert not features.any()  # malformed candidates get zero rows, no features computed
    code, out, _ = invoke("synthesize", copy_built, "--list")
    assert code == 0 and "(response: the reply holds 3,000 characters" in " ".join(out.split())


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("http://127.0.0.1:abc/v1", "must be an http(s) URL with a host"),
        ("127.0.0.1:8000/v1", "must be an http(s) URL with a host"),
        ("http://user:pw@127.0.0.1:8000/v1", "must not carry a user, password or query"),
        ("http://127.0.0.1:8000/v1?key=abc", "must not carry a user, password or query"),
    ],
)
def test_a_bad_endpoint_is_refused_before_any_model_loads(
    copy_built: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str, says: str
) -> None:
    import core.features.proxy as proxy

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(proxy, "load_proxy", never)
    manifest = (copy_built / "manifest.json").read_bytes()
    code, _, err = invoke("synthesize", copy_built, "--endpoint", endpoint)
    message = " ".join(err.split())
    assert code == 2 and says in message and "--endpoint" in message, message
    assert "pw" not in message and "abc" not in message.replace("127.0.0.1:abc", "")
    assert not (copy_built / "jobs" / "synthesis.json").exists()  # no job, failed or other
    assert (copy_built / "manifest.json").read_bytes() == manifest


def test_sigterm_while_the_endpoint_hangs_stops_at_once_and_resume_reads_the_key_again(
    copy_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real ``prism synthesize`` process against a server that needs a key: round 1 is
    answered, round 2's requests are accepted and never answered (a 120 s timeout with
    retries). SIGTERM ends the process within seconds, round 1 kept. ``--resume`` then refuses
    to start without the key (never stored), and with it in the environment finishes round 2."""
    behaviour = Behaviour(key=SECRET, answer_first=4)  # round 1: 2 prompts + 2 responses
    env = {"PRISM_ENDPOINT_API_KEY": SECRET}
    with serving(behaviour) as url:
        endpoint = ("--endpoint", url, "--endpoint-model", "m")
        process = _synthesize(
            copy_built, "--rounds", "2", "--per-round", "2", "--no-filter",
            "--api-key-env", "PRISM_ENDPOINT_API_KEY", generator=endpoint, env=env,
        )  # fmt: skip
        try:
            _wait_for_round(copy_built, 1, process)
            deadline = time.monotonic() + 120
            while behaviour.hanging < 2 and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                time.sleep(0.1)
            assert behaviour.hanging == 2  # round 2's prompt requests are held unanswered
            process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            _, err = process.communicate(timeout=60)
            stopped_after = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 143, err
        assert stopped_after < 10, stopped_after  # the request's timeout is 120 s × 3 tries
        assert "--resume" in err and "kept" in err
        ws = Workspace.open(copy_built)
        assert round_numbers(ws) == [1] and pending_rounds(ws) == []  # round 1 kept and joined
        job = json.loads((copy_built / "jobs" / "synthesis.json").read_text())
        assert job["status"] == "cancelled"
        for stored in ("manifest.json", "synthesis/round-0001.parquet"):
            assert SECRET.encode() not in (copy_built / stored).read_bytes()

        behaviour.answer_first = None
        monkeypatch.delenv("PRISM_ENDPOINT_API_KEY", raising=False)
        code, _, err = invoke("synthesize", copy_built, "--resume")
        message = " ".join(err.split())
        assert code == 2 and "PRISM_ENDPOINT_API_KEY" in message and "never stores" in message
        assert json.loads((copy_built / "jobs" / "synthesis.json").read_text()) == job

        monkeypatch.setenv("PRISM_ENDPOINT_API_KEY", SECRET)
        code, out, err = invoke("synthesize", copy_built, "--resume", "--json")
        assert code == 0, err
    assert [r["round"] for r in json.loads(out)["rounds"]] == [2]
    assert round_numbers(Workspace.open(copy_built)) == [1, 2]
    assert set(behaviour.seen_keys) == {SECRET}  # every request carried the key


def test_the_quality_gate_rejects_candidates_outside_the_source_loss_band(
    copy_built: Path, tiny_generator: Any
) -> None:
    """With the gate on, a formed, new candidate is "low quality" exactly when its response loss
    (from its own extraction) lies outside the source rows' 5th–95th percentile band; the reason
    is stored and counted."""
    from core.synthesis.quality import loss_band

    source = Workspace.open(copy_built).samples(["loss"])["loss"].to_numpy()
    low, high = loss_band(source)
    [record] = _run(copy_built, tiny_generator, per_round=6, seed=3, quality_gate=True,
                    sparse_only=False)  # fmt: skip
    frame, _ = read_round(Workspace.open(copy_built), 1)
    judged = frame[~frame["reason"].isin(["malformed", "duplicate"])]
    assert len(judged) >= 2
    outside = (judged["loss"] < low) | (judged["loss"] > high)
    assert ((judged["reason"] == "low quality") == outside).all()
    assert judged.loc[outside, "quality"].str.contains("the source band").all()
    assert (judged.loc[~outside, "quality"] == "").all()
    assert record.low_quality == int(outside.sum())
    assert list(record.loss_band) == pytest.approx([low, high]) and not record.answers_checked
    assert not frame.loc[frame["reason"] == "low quality", "joined"].any()


def test_unjoin_restores_samples_features_derived_columns_and_scores(
    copy_built: Path, tiny_generator: Any
) -> None:
    """Join a round, then undo it: every file and score is what it was before the join (to float
    tolerance), subsets holding its rows are stale, and its candidates stay as "unjoined"."""
    from core.workspace.analyses import workspace_scores
    from core.workspace.subsets import save_subset

    _run(copy_built, tiny_generator, per_round=4, sparse_only=False, review=True, seed=6)
    ws = Workspace.open(copy_built)
    samples0, features0 = ws.samples(), np.array(ws.features())
    clusters0, scores0 = ws.clusters, workspace_scores(ws)
    columns0 = ws.sample_columns()
    record = join_round(ws, 1)
    assert record.joined >= 1
    ws = Workspace.open(copy_built)
    joined_id = str(ws.samples().query("origin == 'synthetic'")["id"].iloc[0])
    save_subset(ws, "with-new", ids=[joined_id, "s001"])
    save_subset(ws, "source-only", ids=["s001", "s002"])
    code, out, err = invoke("synthesize", copy_built, "--unjoin", "1")
    assert code == 0, err
    assert f"{record.joined} row(s) taken out" in out and "with-new" in out
    ws = Workspace.open(copy_built)
    pd.testing.assert_frame_equal(ws.samples(), samples0)
    assert ws.sample_columns() == columns0
    np.testing.assert_allclose(ws.features(), features0, rtol=0, atol=1e-7)
    assert ws.clusters == clusters0
    assert ws.scores.g_vendi == pytest.approx(scores0.g_vendi, rel=1e-9)
    shared = set(ws.scores.vendi) & set(scores0.vendi)
    assert len(shared) >= 3
    for q in shared:
        assert ws.scores.vendi[q] == pytest.approx(scores0.vendi[q], rel=1e-9), q
    assert ws.n_samples == len(samples0) and ws.feature_section.n_samples == len(samples0)
    subsets = ws.subsets()
    assert subsets["with-new"].stale and not subsets["source-only"].stale
    frame, _ = read_round(ws, 1)
    joined = frame["decision"] == "unjoined"
    assert joined.sum() == record.joined and not frame["joined"].any()
    [stored] = ws.section(SynthesisSection).rounds
    assert stored.status == "unjoined" and stored.unjoined == record.joined
    assert stored.g_vendi_unjoined == pytest.approx(record.g_vendi_before, rel=1e-9)
    assert pending_rounds(ws) == []  # an undone round does not join again by itself
    code, _, err = invoke("synthesize", copy_built, "--unjoin", "1")
    assert code == 2 and "no join to undo" in err
    code, _, err = invoke("synthesize", copy_built, "--unjoin", "last")
    assert code == 2 and "--unjoin" in err and "'all'" in err


def test_unjoin_all_takes_out_every_joined_round(copy_built: Path, tiny_generator: Any) -> None:
    samples0 = Workspace.open(copy_built).samples(["id"])
    _run(copy_built, tiny_generator, rounds=2, per_round=2, sparse_only=False, seed=7)
    ws = Workspace.open(copy_built)
    assert ws.n_samples > len(samples0)
    code, out, err = invoke("synthesize", copy_built, "--unjoin", "all", "--json")
    assert code == 0, err
    assert [r["round"] for r in json.loads(out)["rounds"]] == [2, 1]
    ws = Workspace.open(copy_built)
    assert ws.samples(["id"])["id"].tolist() == samples0["id"].tolist()
    assert "origin" not in ws.sample_columns() and len(ws.features()) == len(samples0)


def test_review_is_on_by_default_for_the_embedded_generator_only(
    copy_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.workspace.synthesis.loop as loop

    seen: list[SynthesisConfig] = []
    monkeypatch.setattr(loop, "run_synthesis", lambda ws, config, **_: seen.append(config) or [])
    code, _, err = invoke("synthesize", copy_built)
    assert code == 0 and seen[-1].review and seen[-1].generator == "default"
    assert "Review is on" in err and "--no-review" in err
    code, _, err = invoke("synthesize", copy_built, "--no-review")
    assert code == 0 and not seen[-1].review and "Review is on" not in err
    code, _, err = invoke("synthesize", copy_built, "--generator", "tiny")
    assert code == 0 and not seen[-1].review and "Review is on" not in err
    code, _, _ = invoke("synthesize", copy_built, "--generator", "tiny", "--review")
    assert code == 0 and seen[-1].review and seen[-1].quality_gate
