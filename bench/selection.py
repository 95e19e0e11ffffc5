"""Selector benchmark: time at N = 100,000 × 1024, and G-Vendi of 200-row subsets on the demo.

    python bench/selection.py                 # both parts; writes bench/results/select.json
    python bench/selection.py --n 20000       # a smaller timing run
    python bench/selection.py --skip-demo     # the timing only; the stored demo part is kept

Part 1 times each selector on seeded clustered unit features (memory-mapped from a temporary
.npy, as a workspace's features are), against one full pass over the features (a matrix–vector
product) measured in the same run: greedy selectors cost about one pass per chosen row.
Part 2 scores 200-row subsets of the GSM8K demo workspace from each selector against random
(mean ± sd over 5 seeds), with the size at which random subsets reach the same G-Vendi.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.measures.curves import (  # noqa: E402
    budget_sizes,
    random_equivalent,
    random_mean_at,
    summarise_curves,
)
from core.select.greedy import eager_greedy, lazy_greedy  # noqa: E402
from core.select.selectors import SELECTORS, Pool, select  # noqa: E402
from core.workspace.compare import budget_curves  # noqa: E402
from core.workspace.store import read_npy, write_npy  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "select.json"


def clustered_features(
    n: int, dim: int, n_clusters: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    labels = rng.choice(n_clusters, size=n, p=weights / weights.sum()).astype(np.int32)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    features = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 16384):
        block = centres[labels[lo : lo + 16384]] + 0.8 * rng.standard_normal(
            (min(16384, n - lo), dim), dtype=np.float32
        )
        features[lo : lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    # Plant 1% exact-ish duplicates so dedupe has work to do.
    twins = rng.choice(n, size=n // 100, replace=False)
    features[twins] = features[(twins + 1) % n]
    return features, labels


def timing(n: int, dim: int, k: int) -> list[dict]:
    features, labels = clustered_features(n, dim, n_clusters=max(2, n // 10))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "features.npy"
        write_npy(path, features)
        del features
        mapped = read_npy(path)
        pool = Pool(mapped, labels=labels)
        vector = np.asarray(mapped[0])
        start = time.perf_counter()
        for _ in range(3):
            for lo in range(0, n, 8192):
                np.asarray(mapped[lo : lo + 8192]) @ vector
        one_pass = (time.perf_counter() - start) / 3
        rows = [
            {"method": "one pass (features @ v)", "k": None, "seconds": one_pass, "passes": 1.0}
        ]
        for method in (m for m in SELECTORS if not SELECTORS[m].needs_target):
            budget = None if SELECTORS[method].is_filter else k
            start = time.perf_counter()
            chosen = select(method, pool, budget=budget, seed=0)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "method": method,
                    "k": budget,
                    "n_selected": int(len(chosen)),
                    "seconds": seconds,
                    "passes": seconds / one_pass,
                }
            )
            print(f"  {method:<17} {seconds:8.2f} s", flush=True)
        # The eager greedy (a full pass per chosen row) is the baseline of the lazy one; it is
        # timed at a fifth of the budget, with the lazy one again at that budget for the ratio.
        small = max(2, k // 5)
        free = np.ones(n, dtype=bool)
        for method, aggregate in (("k_center", "max"), ("vendi_greedy", "sum_sq")):
            timed = {}
            for name, run in (("eager", eager_greedy), ("lazy", lazy_greedy)):
                start = time.perf_counter()
                order = run(mapped, budget=small, chosen=[0], free=free, aggregate=aggregate)
                timed[name] = (time.perf_counter() - start, order)
            same = timed["eager"][1] == timed["lazy"][1]
            for name in ("eager", "lazy"):
                seconds = timed[name][0]
                rows.append(
                    {
                        "method": f"{method} ({name}{', same rows' if same else ''})",
                        "k": small,
                        "seconds": seconds,
                        "passes": seconds / one_pass,
                        "speedup_vs_eager": timed["eager"][0] / seconds,
                    }
                )
            print(
                f"  {method} eager/lazy at k={small}: {timed['eager'][0] / timed['lazy'][0]:.1f}×"
            )
    return rows


def demo_subsets(size: int, seeds: int) -> tuple[list[dict], dict]:
    from core.workspace.demo import ensure_demo_workspace
    from core.workspace.selector_runs import selector_pool

    workspace = ensure_demo_workspace()
    pool = selector_pool(workspace)
    raw = budget_curves(
        pool,
        methods=list(SELECTORS),
        sizes=[size],
        seeds=range(seeds),
        random_sizes=budget_sizes(pool.n, points=24),
    )
    summary = summarise_curves(raw)
    rows = []
    # A filter that keeps fewer rows than `size` is reported at everything it keeps.
    at_size = summary[summary["size"] <= size].sort_values("size").groupby("method").tail(1)
    for row in at_size.to_dict(orient="records"):
        rows.append(
            {
                "method": row["method"],
                "size": int(row["size"]),
                "g_vendi_mean": row["mean"],
                "g_vendi_sd": row["sd"],
                "g_vendi_low": row["low"],
                "g_vendi_high": row["high"],
                "vs_random": row["mean"] / random_mean_at(summary, int(row["size"])),
                "random_equivalent": random_equivalent(summary, row["mean"]),
            }
        )
    whole = {"n": pool.n, "g_vendi": workspace.manifest["scores"]["g_vendi"]}
    if workspace.has_embeddings:  # the text-space measures of the same subsets
        from core.workspace.analyses import text_scores

        whole.update(text_scores(workspace, np.arange(pool.n)).to_dict())
        for row in rows:
            k = size if SELECTORS[row["method"]].is_filter else row["size"]
            per_seed = [
                text_scores(workspace, select(row["method"], pool, budget=k, seed=s)).to_dict()
                for s in range(seeds)
            ]
            for key in ("embedding_vendi", "ngram_vendi", "distinct_2"):
                values = np.array([scores[key] for scores in per_seed], dtype=float)
                row[key] = float(values.mean())
                row[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return rows, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1000, help="budget of the greedy selectors")
    parser.add_argument("--size", type=int, default=200, help="demo subset size")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--skip-timing", action="store_true", help="keep the stored timing part of the results"
    )
    parser.add_argument(
        "--skip-demo", action="store_true", help="keep the stored demo part of the results"
    )
    args = parser.parse_args()

    # A part that is skipped keeps its stored numbers, so the results file always holds both.
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    result: dict = {key: stored[key] for key in ("timing", "timing_setup", "demo") if key in stored}
    if not args.skip_timing:
        print(f"timing selectors on {args.n:,} × {args.dim} (budget {args.k:,}) …", flush=True)
        result["timing_setup"] = {
            "n": args.n,
            "dim": args.dim,
            "k": args.k,
            "cpu_count": os.cpu_count(),
            "load_average_before": list(os.getloadavg()),
        }
        result["timing"] = timing(args.n, args.dim, args.k)
        result["timing_setup"]["load_average_after"] = list(os.getloadavg())
        print("\n| selector | budget | seconds | × one pass | × faster than eager |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in result["timing"]:
            budget = "all kept" if row["k"] is None and "n_selected" in row else (row["k"] or "")
            speedup = f"{row['speedup_vs_eager']:.1f}" if "speedup_vs_eager" in row else ""
            print(
                f"| {row['method']} | {budget} | {row['seconds']:.2f} | {row['passes']:.0f} "
                f"| {speedup} |"
            )
    if args.skip_demo:
        write(result)
        return
    print(
        f"\nG-Vendi of {args.size}-row subsets of the GSM8K demo ({args.seeds} seeds) …", flush=True
    )
    rows, whole = demo_subsets(args.size, args.seeds)
    result["demo"] = {"size": args.size, "seeds": args.seeds, "whole": whole, "subsets": rows}
    print(f"whole set: n = {whole['n']:,}, G-Vendi {whole['g_vendi']:.1f}\n")
    if "embedding_vendi" in whole:
        print(
            f"text space, whole set: embedding Vendi {whole['embedding_vendi']:.1f}, n-gram Vendi "
            f"{whole['ngram_vendi']:.1f}, distinct-2 {whole['distinct_2']:.3f}\n"
        )
    print(
        "| selector | rows | G-Vendi (mean ± sd) | min–max | × random of that size | as random at |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        equal = row["random_equivalent"]
        print(
            f"| {row['method']} | {row['size']} | {row['g_vendi_mean']:.1f} ± {row['g_vendi_sd']:.1f} | "
            f"{row['g_vendi_low']:.1f}–{row['g_vendi_high']:.1f} | {row['vs_random']:.2f} | "
            f"{'> N' if equal is None or equal != equal else f'{equal:,.0f}'} |"
        )
    if "embedding_vendi" in whole:
        print("\n| selector | rows | G-Vendi | embedding Vendi | n-gram Vendi | distinct-2 |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            print(
                f"| {row['method']} | {row['size']} | {row['g_vendi_mean']:.1f} ± "
                f"{row['g_vendi_sd']:.1f} | {row['embedding_vendi']:.1f} ± "
                f"{row['embedding_vendi_sd']:.1f} | {row['ngram_vendi']:.1f} ± "
                f"{row['ngram_vendi_sd']:.1f} | {row['distinct_2']:.3f} ± {row['distinct_2_sd']:.3f} |"
            )
    write(result)


def write(result: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
