"""Seconds and peak memory of import, clustering, dedupe, selectors and the map as N grows.

    python bench/scale.py --sizes 10000 100000 --dim 1024

Synthetic clustered unit features (N/10 planted directions, 5% planted near-duplicates) with short
texts are written to a temporary folder; each stage then runs in its own forked process, so its
peak RSS is its own:

- ``import``: ``prism import-features``' engine;
- ``cluster_exact`` (the numpy Lloyd loop) and ``cluster_two-level`` (``core.measures.
  kmeans_twolevel``, what a CPU runs at k = N/10 from 20,000 rows), k = N/10, one start each;
- ``dedupe_exact`` and ``dedupe_index`` (``core.select.dedupe_index``) at cosine 0.95, with the
  index's recall of the exact loop's drops;
- ``k_center`` / ``vendi_greedy``: what the selectors run (``core.select.greedy.greedy``: the
  eager loop on a CUDA device when there is one, else the lazy loop), beside ``_exact`` (the
  eager loop on the CPU) and ``_lazy`` (the CPU's lazy loop, the reference where the eager one
  is too slow), at a budget of min(``--budget``, N/10), with the overlap of their rows;
- ``map_full`` (UMAP on all rows) and ``map_sample`` (UMAP fit on ``--map-fit-sample`` seeded
  rows, the rest placed among their nearest sampled rows), each with its k = 10 neighbourhood
  preservation on 2,000 rows, up to ``--map-max-rows``.

Features are read through a memory map (peak RSS counts the mapped pages a stage touched). Exact
and lazy reference stages run up to ``--exact-max-rows``. Each stage records wall seconds and the
CPU seconds of its process (less sensitive to other jobs on a shared machine); ``--compare DIR``
runs every stage a second time with the ``core/`` of another source tree (e.g. the last commit,
from ``git worktree add``) on the same features, recorded as ``<stage>_before``. ``--keep DIR``
synthesises into DIR and reuses what is there, so several runs (e.g. on disjoint cores) share one
set of features; ``--note`` stores the run's conditions in the results. Prints a table with the growth exponent per stage (slope of
log seconds over log N between the two largest sizes it ran at) and writes ``--results``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
CHUNK = 65536
GREEDY = {"k_center": "max", "vendi_greedy": "sum_sq"}
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def synthesise(folder: Path, n: int, dim: int, seed: int) -> tuple[Path, Path]:
    """Written in row chunks straight into a ``.npy`` memory map, so 10⁶ × 1024 fits in memory."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 10), dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    data, feats = folder / f"data-{n}.jsonl", folder / f"features-{n}.npy"
    features = np.lib.format.open_memmap(feats, mode="w+", dtype=np.float32, shape=(n, dim))
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        features[lo:hi] = centres[labels[lo:hi]] + 0.5 * rng.standard_normal(
            (hi - lo, dim), dtype=np.float32
        )
    copies = np.sort(rng.choice(n, size=n // 20, replace=False))
    sources = rng.integers(0, n, len(copies))
    for lo in range(0, len(copies), CHUNK):
        part = copies[lo : lo + CHUNK]
        noise = 0.01 * rng.standard_normal((len(part), dim), dtype=np.float32)
        features[part] = np.asarray(features[sources[lo : lo + CHUNK]]) + noise
    for lo in range(0, n, CHUNK):
        block = np.asarray(features[lo : lo + CHUNK])
        features[lo : lo + CHUNK] = block / np.linalg.norm(block, axis=1, keepdims=True)
    features.flush()
    del features
    with open(data, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(
                json.dumps({"id": f"r{i}", "text": f"row {i} of topic {labels[i]}"}) + "\n"
            )
    return data, feats


def _stage(
    name: str,
    data: Path,
    feats: Path,
    folder: Path,
    out: Any,
    fit_sample: int,
    budget: int,
    tree: Path | None = None,
) -> None:
    if tree is not None:  # measure another source tree's code: its core/ comes first
        sys.path.insert(0, str(tree))
        for module in [m for m in sys.modules if m == "core" or m.startswith("core.")]:
            del sys.modules[module]
    features = np.load(feats, allow_pickle=False, mmap_mode="r")
    n = len(features)
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if name == "import":
        from core.data.dataset import load_dataset
        from core.workspace.imported import import_features

        import_features(folder / f"ws-{n}", load_dataset(str(data)), feats)
    elif name.startswith("cluster"):
        from core.measures.clusters import default_n_clusters, spherical_kmeans

        method = name.split("_", 1)[1]
        k = default_n_clusters(n)
        result = spherical_kmeans(
            features, n_clusters=k, seed=0, n_init=1, max_iter=25, method=method
        )
        extra = {
            "objective": result.objective,
            "n_clusters": k,
            "method": result.method,
            "n_iter": result.n_iter,
        }
    elif name.startswith("map"):
        from core.measures.layout import neighbourhood_preservation, umap_layout, warm_up

        warm_up()  # numba compilation is not the layout's cost
        t0 = time.perf_counter()
        sample = fit_sample if name == "map_sample" else None
        coords = umap_layout(features, seed=0, fit_sample=sample)
        seconds = time.perf_counter() - t0
        kept = neighbourhood_preservation(features, coords, k=10, n_queries=2000, seed=0)
        extra = {"preservation_k10": kept, "fit_rows": min(n, sample or n), "map_s": seconds}
    elif name in GREEDY or name.rsplit("_", 1)[0] in GREEDY:
        from core.select.greedy import eager_greedy, greedy, lazy_greedy

        base, kind = (name, "") if name in GREEDY else name.rsplit("_", 1)
        run = {"exact": eager_greedy, "lazy": lazy_greedy, "": greedy}[kind]
        free = np.ones(n, dtype=bool)
        order = run(features, budget=budget, chosen=[0], free=free, aggregate=GREEDY[base])
        extra = {
            "budget": budget,
            "kept": [int(i) for i in order],
            "stage_s": time.perf_counter() - t0,
        }
        extra["device"] = _device(kind)
    else:
        from core.select.selectors import near_duplicates

        twin = near_duplicates(features, threshold=0.95, method=name.split("_")[1])
        extra = {"n_dropped": int((twin >= 0).sum()), "kept": np.flatnonzero(twin < 0).tolist()}
    seconds = extra.pop("stage_s", extra.get("map_s", time.perf_counter() - t0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024  # KiB → MiB on Linux
    cpu = usage.ru_utime + usage.ru_stime  # the whole stage's, imports included
    out.put({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": peak, **extra})


def _device(kind: str) -> str:
    """Where a greedy stage ran: the selectors' ``greedy`` takes a CUDA device when there is one."""
    import torch

    return "cuda" if not kind and torch.cuda.is_available() else "cpu"


def run_stage(
    name: str,
    data: Path,
    feats: Path,
    folder: Path,
    fit_sample: int = 2_000,
    budget: int = 1_000,
    tree: Path | None = None,
) -> dict[str, Any]:
    context = mp.get_context("fork")
    queue = context.Queue()
    process = context.Process(
        target=_stage, args=(name, data, feats, folder, queue, fit_sample, budget, tree)
    )
    process.start()
    result = queue.get()
    process.join()
    return result


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "")


def exponent(rows: list[dict[str, Any]], stage: str) -> float | None:
    points = [(r["n"], r[stage]["seconds"]) for r in rows if stage in r]
    if len(points) < 2:
        return None
    (n0, s0), (n1, s1) = points[-2], points[-1]
    return math.log(s1 / s0) / math.log(n1 / n0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--exact-max-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--map-fit-sample", type=int, default=2_000)
    parser.add_argument("--map-max-rows", type=int, default=10_000)
    parser.add_argument("--budget", type=int, default=10_000, help="selectors' budget (≤ N/10)")
    parser.add_argument("--stages", nargs="+", help="run only these stages")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--compare", type=Path, help="another Prism source tree: each stage runs its code too"
    )
    parser.add_argument("--note", default="", help="conditions of the run, stored in the results")
    parser.add_argument(
        "--keep", type=Path, help="synthesise into this folder and reuse what it already holds"
    )
    args = parser.parse_args()
    stages = ["import", "cluster_exact", "cluster_two-level", "dedupe_exact", "dedupe_index"]
    stages += ["k_center_exact", "k_center_lazy", "k_center"]
    stages += ["vendi_greedy_exact", "vendi_greedy_lazy", "vendi_greedy"]
    stages += ["map_full", "map_sample"]
    stages = [stage for stage in stages if not args.stages or stage in args.stages]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in args.sizes:
            data, feats = folder / f"data-{n}.jsonl", folder / f"features-{n}.npy"
            if not (args.keep and data.exists() and feats.exists()):
                data, feats = synthesise(folder, n, args.dim, args.seed)
            row: dict[str, Any] = {"n": n}
            for stage in stages:
                if stage.endswith(("_exact", "_lazy")) and n > args.exact_max_rows:
                    continue
                if stage.startswith("map") and n > args.map_max_rows:
                    continue
                budget = min(args.budget, n // 10)
                row[stage] = run_stage(stage, data, feats, folder, args.map_fit_sample, budget)
                print(f"N={n:>9,} {stage:<14} {row[stage]['seconds']:8.2f} s", flush=True)
                if args.compare is not None:
                    before = run_stage(
                        stage, data, feats, folder, args.map_fit_sample, budget, args.compare
                    )
                    row[f"{stage}_before"] = before
                    print(
                        f"N={n:>9,} {stage:<14} {before['seconds']:8.2f} s ({args.compare}); "
                        f"CPU s {before['cpu_s']:.1f} before, {row[stage]['cpu_s']:.1f} now",
                        flush=True,
                    )
            if "dedupe_exact" in row and "dedupe_index" in row:
                exact, fast = row["dedupe_exact"]["kept"], row["dedupe_index"]["kept"]
                row["dedupe_same_rows"] = exact == fast
                dropped = set(range(n)) - set(exact)
                row["dedupe_recall"] = len(dropped - set(fast)) / max(1, len(dropped))
            for name in GREEDY:
                # The selectors' choice against the eager loop, else against the lazy one.
                reference = row.get(f"{name}_exact", row.get(f"{name}_lazy"))
                if reference is not None and name in row:
                    exact, fast = reference["kept"], row[name]["kept"]
                    row[f"{name}_same_order"] = exact == fast
                    row[f"{name}_overlap"] = len(set(exact) & set(fast)) / len(exact)
            for stage in list(row):
                if isinstance(row[stage], dict):
                    row[stage].pop("kept", None)
            if "cluster_exact" in row and "cluster_two-level" in row:
                exact = row["cluster_exact"]["objective"]
                fast = row["cluster_two-level"]["objective"]
                row["cluster_objective_ratio"] = fast / exact
            rows.append(row)
    print(
        f"\nd = {args.dim}, {platform.processor() or platform.machine()}, k = N/10, one start, "
        f"selectors' budget min({args.budget:,}, N/10), load average {os.getloadavg()[0]:.1f}"
    )
    header = f"{'stage':<20}" + "".join(f"{'N=' + format(r['n'], ','):>22}" for r in rows)
    print(header + f"{'exponent':>10}")
    for stage in stages:
        cells = "".join(
            f"{r[stage]['seconds']:>10.2f} s {r[stage]['peak_rss_mb']:>6.0f} MB"
            if stage in r
            else f"{'–':>22}"
            for r in rows
        )
        slope = exponent(rows, stage)
        print(f"{stage:<20}{cells}{'' if slope is None else format(slope, '10.2f')}")
    for r in rows:
        print(
            f"N={r['n']:,}: two-level/exact objective {r.get('cluster_objective_ratio', '–')}, "
            f"dedupe index keeps the exact rows: {r.get('dedupe_same_rows', '–')} "
            f"(recall of exact drops {r.get('dedupe_recall', '–')}); "
            + "; ".join(
                f"{g} same order as exact: {r.get(f'{g}_same_order', '–')} "
                f"(overlap {r.get(f'{g}_overlap', '–')})"
                for g in GREEDY
            )
        )
        if "map_full" in r:
            full, fast = r["map_full"], r["map_sample"]
            print(
                f"N={r['n']:,}: map k=10 preservation full {full['preservation_k10']:.3f}, "
                f"fit on {fast['fit_rows']:,} + placement {fast['preservation_k10']:.3f} "
                f"(ratio {fast['preservation_k10'] / full['preservation_k10']:.2f}); "
                f"layout seconds {full['map_s']:.1f} vs {fast['map_s']:.1f} "
                f"(speed-up {full['map_s'] / fast['map_s']:.1f}×)"
            )
    record = {
        "dim": args.dim,
        "budget": args.budget,
        "load_average": os.getloadavg()[0],
        "machine": {
            "cpus": mp.cpu_count(),
            "processor": platform.processor() or _cpu_model(),
            "cores_allowed": len(os.sched_getaffinity(0)),
            "threads": {v: os.environ.get(v) for v in THREAD_VARS if v in os.environ},
        },
        "note": args.note,
        "rows": rows,
        "exponents": {stage: exponent(rows, stage) for stage in stages},
    }
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
