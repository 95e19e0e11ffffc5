"""Distributed extraction: one process against two (`prism features --nproc 2`), same rows.

    python bench/distributed.py --assets DIR            # 2 GPUs: 1 vs 2 ranks (NCCL), 20,000 rows
    python bench/distributed.py --cpu                   # 1 vs 2 CPU ranks (gloo), tiny model

Rows: the 1,319 GSM8K rows repeated with distinct ids up to ``--rows`` (repeats of a row give
the same features; the work per row is real). On a GPU the model is the Qwen2.5-0.5B architecture
with seeded random weights saved to a folder with the embedded proxy's tokenizer (``--assets``
from ``bench/peers.py --export-assets``), bf16; on a CPU the tiny test model, float32. Each run is
the whole command, timed twice: wall clock, and the extraction rate the job reports (from the
model loaded to the features assembled). Scaling efficiency = rate with 2 ranks / (2 × rate with
1). Agreement: the 2-rank features against the 1-rank ones, row by row.
Writes bench/results/distributed.json (distributed-cpu.json with --cpu).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import agreement, gsm8k_rows  # noqa: E402


def write_rows(path: Path, rows: list[dict[str, str]], n: int) -> None:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"id": f"row-{i}", **rows[i % len(rows)]}) + "\n")


def save_random_qwen(assets: Path, folder: Path) -> Path:
    import torch

    from bench.gpu import QWEN25_05B, build_proxy
    from bench.peers import save_model

    proxy = build_proxy(QWEN25_05B, device="cpu", dtype=torch.bfloat16)
    return save_model(proxy, assets / "tokenizer", folder)


def run_features(
    data: Path, workspace: Path, *, nproc: int, model: str, gpu: bool, extra: list[str]
) -> dict:
    from core.workspace.jobs.record import read_progress

    command = [sys.executable, "-m", "core", "features", str(data), "--workspace", str(workspace),
               "--model", model, "--nproc", str(nproc), "--quiet", *extra]  # fmt: skip
    env = dict(os.environ)
    if gpu:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(nproc))
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"prism features --nproc {nproc} exited {proc.returncode}: {proc.stderr[-1500:]}"
        )
    progress = read_progress(workspace)
    return {
        "nproc": nproc,
        "wall_seconds": wall,
        "rows_per_s": progress.samples_per_s if progress else None,
        "features": np.load(workspace / "features.npy", allow_pickle=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", action="store_true", help="1 vs 2 CPU ranks (gloo), tiny model")
    parser.add_argument(
        "--assets", type=Path, default=None, help="folder from bench/peers.py --export-assets"
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="rows (default 20,000 on GPUs, 64 on CPUs)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    gpu = not args.cpu
    n = args.rows or (20_000 if gpu else 64)
    rows = gsm8k_rows(args.assets)
    result: dict = {"rows": n, "distinct_rows": min(n, len(rows)), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "rows.jsonl"
        write_rows(data, rows, n)
        if gpu:
            if args.assets is None:
                parser.error("--assets is needed on GPUs (the tokenizer of the saved model)")
            model = str(save_random_qwen(args.assets, root / "model"))
            extra = ["--dtype", "bfloat16", "--device", "cuda", "--shard-size", "2048"]
            result.update(
                model="Qwen2.5-0.5B architecture (random weights)", dtype="bfloat16", backend="nccl"
            )
        else:
            model, extra = "tiny", ["--device", "cpu", "--shard-size", "16"]
            result.update(model="tiny (2-layer Llama)", dtype="float32", backend="gloo")
        runs = []
        for nproc in (1, 2):
            run = run_features(
                data, root / f"ws{nproc}", nproc=nproc, model=model, gpu=gpu, extra=extra
            )
            runs.append(run)
            print(
                f"  {nproc} rank(s): {run['wall_seconds']:.1f} s wall, {run['rows_per_s'] or 0:.1f} rows/s",
                flush=True,
            )
    one, two = runs
    result["agreement"] = agreement(two.pop("features"), one.pop("features"))
    result["runs"] = runs
    if one["rows_per_s"] and two["rows_per_s"]:
        result["scaling_efficiency"] = two["rows_per_s"] / (2 * one["rows_per_s"])
    result["wall_scaling_efficiency"] = one["wall_seconds"] / (2 * two["wall_seconds"])
    print(f"{n:,} rows, {result['model']}, {result['dtype']}, {result['backend']}")
    print(f"{'ranks':>5} {'wall s':>8} {'rows/s':>9}")
    for run in runs:
        print(f"{run['nproc']:>5} {run['wall_seconds']:>8.1f} {run['rows_per_s'] or 0:>9.1f}")
    if "scaling_efficiency" in result:
        print(
            f"scaling efficiency {result['scaling_efficiency']:.2f} (wall clock {result['wall_scaling_efficiency']:.2f})"
        )
    print(
        f"2 ranks vs 1: max |Δ| {result['agreement']['max_abs_diff']:.1e}, min cosine {result['agreement']['min_cosine']:.6f}"
    )
    out = args.out or Path(__file__).parent / "results" / (
        "distributed.json" if gpu else "distributed-cpu.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
