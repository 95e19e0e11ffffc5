"""bench/gpu.py in its --cpu mode: a small config, so the GPU benchmark script itself stays tested."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.bench
def test_gpu_bench_cpu_mode_runs_and_reports(tmp_path):
    out = tmp_path / "gpu-cpu.json"
    run = subprocess.run(
        [sys.executable, "bench/gpu.py", "--cpu", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "samples/s" in run.stdout and "streamed G-Vendi" in run.stdout
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["rows"]
    for row in result["rows"]:
        assert row["samples_per_s"] > 0 and row["naive_samples_per_s"] > 0
        assert row["train_step_samples_per_s"] > 0
        assert 0 < row["mfu"] < 1
        assert row["peak_memory_gib"] is None  # only measured on a GPU
    vendi = result["streamed_vendi"]
    assert 1 <= vendi["g_vendi"] <= vendi["dim"]
