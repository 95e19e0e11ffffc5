"""Quality beside diversity on a workspace: IFD against a direct two-pass computation, IFD kept
through a real kill, the refusals, the outlier rule on planted losses, and the signals' notes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_support import REPO, invoke

from core.data.columns import ColumnMap
from core.data.text import conversations
from core.errors import PrismError
from core.features.ifd import response_alone
from core.features.loss import response_loss
from core.features.proxy import load_proxy, reused_models
from core.features.tokenize import encode
from core.measures.quality import HIGH_FENCE_IQR, OUTLIER_RULE, loss_outliers
from core.workspace.jobs.ifd import finished_rows, run_ifd
from core.workspace.quality import flag_outliers, quality_signals
from core.workspace.store import IFD_SHARDS, Workspace

# Float32 agreement of one loss computed in other batch shapes and by another code path
# (the features' gradient pass for the prompted loss, a plain forward here): observed ~1e-7.
LOSS_RTOL = 1e-5


def _direct_loss(proxy: Any, chat: list[dict[str, str]], max_length: int | None) -> float:
    """Mean NLL of the response tokens: the model's full logits, one sample, no batching."""
    e = encode(proxy.tokenizer, chat, max_length=max_length)
    ids = torch.tensor([e.input_ids])
    with torch.no_grad():
        logits = proxy.model(input_ids=ids, use_cache=False).logits
    loss = response_loss(logits, ids, torch.tensor([e.n_prompt]), torch.tensor([len(e.input_ids)]))
    return float(loss[0])


def test_ifd_equals_a_direct_two_pass_computation(copy_built: Path) -> None:
    ws = Workspace.open(copy_built)
    settings = dict(ws.feature_section.settings)  # type: ignore[union-attr]
    with reused_models():  # one model load for the job and the direct computation
        section = run_ifd(ws, batch_size=3, device="cpu")
        proxy = load_proxy(settings["model"], dtype=settings["dtype"], device="cpu")
    assert section.complete and section.n == ws.n_samples and section.alone
    frame = ws.samples()
    chats = conversations(frame, ColumnMap.from_dict(dict(ws.dataset.columns)))
    with_prompt = np.array([_direct_loss(proxy, c, settings["max_length"]) for c in chats])
    alone = np.array(
        [_direct_loss(proxy, response_alone(c), settings["max_length"]) for c in chats]
    )
    # The prompted loss is the features' own loss column; the response alone is the new pass.
    np.testing.assert_allclose(frame["loss"], with_prompt, rtol=LOSS_RTOL)
    np.testing.assert_allclose(frame["loss_alone"], alone, rtol=LOSS_RTOL)
    np.testing.assert_allclose(frame["ifd"], with_prompt / alone, rtol=2 * LOSS_RTOL)
    assert not (copy_built / IFD_SHARDS).exists()  # assembled, shards gone
    # Current: asking again computes nothing (the same section back).
    assert run_ifd(Workspace.open(copy_built)).completed == section.completed


def test_ifd_keeps_finished_rows_through_a_real_kill(copy_built: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(copy_built, reference)
    run_ifd(Workspace.open(reference), batch_size=1)
    expected = Workspace.open(reference).samples(columns=["ifd"])["ifd"].to_numpy()

    shards = copy_built / IFD_SHARDS
    command = [sys.executable, "-m", "core", "quality", str(copy_built), "--ifd", "--quiet",
               "--shard-size", "1", "--batch-size", "1"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not any(shards.glob("shard-*.npz")):
            if process.poll() is not None:
                pytest.fail(f"the run ended before writing a shard: {process.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("no IFD shard appeared within 300 s")
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    ws = Workspace.open(copy_built)
    kept, values = finished_rows(ws, ws.n_samples)
    assert 0 < kept.sum() < ws.n_samples, "the kill must land mid-run"
    assert "ifd" not in ws.sample_columns()
    assert ws.ifd is not None and not ws.ifd.complete  # the record says it did not finish

    code, out, err = invoke("quality", copy_built, "--ifd", "--quiet")
    assert code == 0, err
    done = Workspace.open(copy_built).samples(columns=["ifd", "loss_alone"])
    np.testing.assert_array_equal(done["loss_alone"].to_numpy()[kept], values[kept])
    np.testing.assert_allclose(done["ifd"], expected, rtol=LOSS_RTOL)


def test_ifd_refuses_imported_features_and_plain_text(copy_built: Path, tmp_path: Path) -> None:
    from cli_support import sample_records, write_jsonl

    from core.data.dataset import load_dataset
    from core.workspace.imported import import_features

    data = write_jsonl(tmp_path / "d.jsonl", sample_records(12))
    source = tmp_path / "f.npy"
    np.save(source, np.random.default_rng(0).standard_normal((12, 8)), allow_pickle=False)
    imported = import_features(tmp_path / "imp", load_dataset(str(data)), source)
    with pytest.raises(PrismError, match="imported features") as caught:
        run_ifd(imported)
    assert caught.value.param == "workspace"
    notes = {s.column: s for s in quality_signals(imported)}
    assert not notes["ifd"].present and "imported" in notes["ifd"].note
    code, _, err = invoke("quality", imported.path)  # no loss: signals only, no crash
    assert code == 0, err

    ws = Workspace.open(copy_built)
    as_text = ColumnMap(text="response", id="id").to_dict()
    ws.set_section(ws.dataset.replace(columns=as_text))
    with pytest.raises(PrismError, match="plain text with no prompt"):
        run_ifd(Workspace.open(copy_built))
    code, _, err = invoke("quality", copy_built, "--ifd")
    assert code == 2 and "plain text with no prompt" in " ".join(err.split())


def test_outlier_rule_on_planted_losses(copy_built: Path) -> None:
    rng = np.random.default_rng(0)
    loss = np.exp(rng.normal(0.3, 0.2, 200))
    loss[[3, 50]] = [40.0, 25.0]  # broken rows
    loss[[7, 90]] = [0.004, 0.02]  # memorised rows
    loss[11] = np.nan  # no loss: never flagged
    found = loss_outliers(loss)
    assert set(np.flatnonzero(found.high)) == {3, 50}
    assert set(np.flatnonzero(found.low)) == {7, 90}
    logs = np.log(loss[np.isfinite(loss)])
    q1, q3 = np.percentile(logs, [25, 75])
    assert found.high_cut == pytest.approx(np.exp(q3 + HIGH_FENCE_IQR * (q3 - q1)))
    assert found.n_rows == 199
    with pytest.raises(PrismError, match="at least 10 rows"):
        loss_outliers(loss[:5])

    # On a workspace: stored as derived columns, the rule printed by the CLI.
    ws = Workspace.open(copy_built)
    planted = ws.samples(columns=["loss"])["loss"].to_numpy().copy()
    planted[0], planted[1] = planted.max() * 50, 1e-4
    ws.add_columns({"loss": planted})
    section = flag_outliers(ws)
    frame = Workspace.open(copy_built).samples()
    assert np.flatnonzero(frame["is_high_loss_outlier"]).tolist() == [0]
    assert np.flatnonzero(frame["is_low_loss_outlier"]).tolist() == [1]
    assert section.rule == OUTLIER_RULE and section.n_high == 1 and section.n_low == 1
    code, out, _ = invoke("quality", copy_built)
    assert code == 0 and " ".join(OUTLIER_RULE.split()) in " ".join(out.split())


def test_a_workspace_without_grad_norm_says_it_is_missing(copy_built: Path) -> None:
    ws = Workspace.open(copy_built)
    ws.drop_columns(["grad_norm"])  # as a workspace written before it was stored
    signals = {s.column: s for s in quality_signals(Workspace.open(copy_built))}
    assert not signals["grad_norm"].present
    assert "built before Prism stored it" in signals["grad_norm"].note
    code, out, err = invoke("info", copy_built)
    assert code == 0, err
    text = " ".join(out.split())
    assert "grad_norm –" in text and "built before Prism stored it" in text
