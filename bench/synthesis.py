"""Synthesis benchmark: the published loop against its ablation, on the GSM8K demo workspace.

    python bench/synthesis.py                                  # 2 rounds × 16 per arm, CPU
    python bench/synthesis.py --rounds 4 --per-round 64 --generator NAME-OR-PATH

Two arms, each on a fresh copy of the shipped demo workspace (1,319 GSM8K rows, features of the
embedded SmolLM2-135M, d = 1024), with the same generator, seed and sampling settings:

- ``prismatic``: few-shot examples from a random cluster among the smallest 10%, and only
  candidates whose nearest centroid is a sparse cluster are kept (the published loop);
- ``ablation``: few-shot examples from a random cluster, no gradient filter (malformed and
  duplicate candidates are still dropped).

Per arm: candidates generated, malformed, duplicate, dense, joined, the acceptance rate, G-Vendi
before → after and the G-Vendi gained per 100 joined samples, seconds and seconds per joined
sample. Prints a table and writes ``bench/results/synthesis.json``. The embedded generator is a
135M-parameter model: its samples are weak, and the numbers measure the loop, not a generator.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.workspace.demo import SHIPPED  # noqa: E402
from core.workspace.store import Workspace  # noqa: E402
from core.workspace.synthesis.loop import SynthesisConfig, gain, run_synthesis  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "synthesis.json"
ARMS = {
    "prismatic": {"target": "sparse", "sparse_only": True},
    "ablation": {"target": "random", "sparse_only": False},
}


def run_arm(
    name: str, options: dict[str, Any], args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    path = scratch / name
    shutil.copytree(SHIPPED, path)
    config = SynthesisConfig(
        rounds=args.rounds,
        per_round=args.per_round,
        generator=args.generator,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        **options,
    )
    t0 = time.perf_counter()
    records = run_synthesis(Workspace.open(path), config)
    seconds = time.perf_counter() - t0
    totals = {
        key: sum(r.to_dict().get(key, 0) for r in records)
        for key in ("generated", "malformed", "duplicate", "dense", "kept", "joined")
    }
    joined = totals["joined"]
    return {
        "arm": name,
        **options,
        **totals,
        "acceptance": joined / totals["generated"] if totals["generated"] else 0.0,
        "g_vendi_before": records[0].g_vendi_before,
        "g_vendi_after": records[-1].g_vendi_after,
        "gain_per_100": gain(records),
        "seconds": round(seconds, 1),
        "seconds_per_joined": round(seconds / joined, 1) if joined else None,
        "rounds": [r.to_dict() for r in records],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per-round", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--generator", default="default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, options in ARMS.items():
            results.append(run_arm(name, options, args, Path(scratch)))
    print(
        f"{'arm':<10} {'made':>5} {'bad':>4} {'dup':>4} {'dense':>5} {'joined':>6} "
        f"{'accept':>6} {'G-Vendi':>15} {'Δ/100':>7} {'s':>7} {'s/joined':>8}"
    )
    for r in results:
        per_100 = "—" if r["gain_per_100"] is None else f"{r['gain_per_100']:+.2f}"
        print(
            f"{r['arm']:<10} {r['generated']:>5} {r['malformed']:>4} {r['duplicate']:>4} "
            f"{r['dense']:>5} {r['joined']:>6} {r['acceptance']:>6.0%} "
            f"{r['g_vendi_before']:>6.2f} → {r['g_vendi_after']:>6.2f} {per_100:>7} "
            f"{r['seconds']:>7.1f} {r['seconds_per_joined'] or '—':>8}"
        )
    record = {
        "conditions": {
            "workspace": "shipped GSM8K demo (1,319 rows, embedded SmolLM2-135M features, d=1024)",
            "generator": args.generator,
            "rounds": args.rounds,
            "per_round": args.per_round,
            "max_new_tokens": args.max_new_tokens,
            "seed": args.seed,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        },
        "arms": results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
