"""Spherical k-means at k = N/10 on a GPU (``core.measures.kmeans_torch``), as published at scale.

    python bench/clusters_gpu.py                      # 10⁵ and 10⁶ rows × 1,024, one CUDA device
    python bench/clusters_gpu.py --sizes 20000 --dim 64 --device cpu    # a quick check anywhere

Features: seeded clustered unit rows (N/10 planted centres of uneven sizes, Gaussian spread), as
``bench/scale.py`` makes them. Per size: seconds and iterations of the torch loop from seeded
distinct rows (the start used at scale), its objective (mean cosine to the own centroid), and at
the smaller size the same loop from the exact loop's k-means++ centres (computed on the CPU,
timed apart): the objective gap says what the cheap start costs. Peak GPU memory. Prints a table
and writes ``bench/results/clusters_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.measures.kmeans import kmeans_plusplus  # noqa: E402
from core.measures.kmeans_torch import torch_kmeans  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "clusters_gpu.json"


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 10), dim)).astype(np.float32)
    weights = rng.pareto(1.5, len(centres)) + 1
    labels = rng.choice(len(centres), size=n, p=weights / weights.sum())
    rows = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 65_536):
        part = labels[lo : lo + 65_536]
        rows[lo : lo + len(part)] = centres[part] + 0.5 * rng.standard_normal(
            (len(part), dim), dtype=np.float32
        )
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def run(features: np.ndarray, k: int, device: str, init: str, seed: int) -> dict[str, Any]:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = torch_kmeans(features, n_clusters=k, seed=seed, device=device, init=init)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    sizes = np.bincount(result.labels, minlength=k)
    return {
        "init": init,
        "seconds": round(seconds, 2),
        "n_iter": result.n_iter,
        "objective": result.objective,
        "empty_clusters": int((sizes == 0).sum()),
        "peak_gpu_gib": None if peak is None else round(peak, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import torch

    device_name = (
        torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()
    )
    rows = []
    for i, n in enumerate(args.sizes):
        features = clustered(n, args.dim, args.seed)
        k = max(2, n // 10)
        record: dict[str, Any] = {"n": n, "dim": args.dim, "k": k}
        record["random_start"] = run(features, k, args.device, "random", args.seed)
        if i == 0:  # the k-means++ start costs N·k·d on the CPU: the smaller size only
            t0 = time.perf_counter()
            kmeans_plusplus(features[: min(n, 100_000)], 2, seed=0)  # warm the code path
            record["plusplus_start"] = run(features, k, args.device, "kmeans++", args.seed)
            record["plusplus_start"]["seconds_incl_cpu_start"] = round(time.perf_counter() - t0, 1)
            gap = record["random_start"]["objective"] / record["plusplus_start"]["objective"] - 1
            record["objective_gap"] = gap
        rows.append(record)
        print(json.dumps(record), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"device": device_name, "rows": rows}, indent=2) + "\n", encoding="utf-8"
        )
    print(
        f"{'rows × d':>14} {'k':>8} {'start':>9} {'s':>7} {'iter':>5} {'objective':>9} {'GiB':>6}"
    )
    for r in rows:
        for key in ("random_start", "plusplus_start"):
            if key in r:
                x = r[key]
                print(
                    f"{r['n']:>8,} × {r['dim']:<4} {r['k']:>8,} {x['init']:>9} {x['seconds']:>7} "
                    f"{x['n_iter']:>5} {x['objective']:>9.4f} {x['peak_gpu_gib'] or '—':>6}"
                )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
