"""Synthesis benchmark: the published loop against its ablation, on the GSM8K demo workspace.

    python bench/synthesis.py                                  # 2 rounds × 16 per arm, CPU
    python bench/synthesis.py --rounds 4 --per-round 64 --generator NAME-OR-PATH

Three arms, each on a fresh copy of the shipped demo workspace (1,319 GSM8K rows, features of the
embedded SmolLM2-135M, d = 1024), with the same generator, seed and sampling settings:

- ``prismatic``: few-shot examples from a random cluster among the smallest 10%, and only
  candidates whose nearest centroid is a sparse cluster are kept (the published loop), without
  the quality gate;
- ``ablation``: few-shot examples from a random cluster, no gradient filter (malformed and
  duplicate candidates are still dropped), without the quality gate;
- ``gated``: the published loop with Prism's quality gate (``core.synthesis.quality``).

Per arm: candidates generated, malformed, duplicate, low quality, dense, joined, the acceptance
rate, G-Vendi before → after and per 100 joined samples, the share of joined rows that pass the
quality gate (judged after the fact where the arm ran without it), G-Vendi per 100 joined rows
that pass the gate (the source plus only those rows), seconds, and a sample of 10 joined rows to
read. Prints a table and writes ``bench/results/synthesis.json``. The embedded generator is a
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.synthesis.quality import assess  # noqa: E402
from core.workspace.analyses import workspace_scores  # noqa: E402
from core.workspace.demo import SHIPPED  # noqa: E402
from core.workspace.store import Workspace  # noqa: E402
from core.workspace.synthesis.candidates import read_candidates  # noqa: E402
from core.workspace.synthesis.loop import SynthesisConfig, gain, run_synthesis  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "synthesis.json"
ARMS = {
    "prismatic": {"target": "sparse", "sparse_only": True, "quality_gate": False},
    "ablation": {"target": "random", "sparse_only": False, "quality_gate": False},
    "gated": {"target": "sparse", "sparse_only": True, "quality_gate": True},
}
SAMPLE_ROWS = 10  # joined rows printed per arm


def gate_report(ws: Workspace, g_vendi_before: float) -> dict[str, Any]:
    """The quality gate on the rows that joined: the share passing, G-Vendi per 100 of those
    (the source plus only the passing rows) and a sample of the joined rows to read."""
    samples = ws.samples(["id", "origin", "loss", "answer"])
    source = samples["origin"] == "source"
    joined = read_candidates(ws).query("joined").reset_index(drop=True)
    quality = assess(
        list(joined["response"]),
        joined["loss"].to_numpy(),
        source_losses=samples.loc[source, "loss"].to_numpy(),
        source_responses=list(samples.loc[source, "answer"]),
    )
    passing = set(joined.loc[quality.passed, "candidate_id"])
    rows = np.flatnonzero((source | samples["id"].isin(passing)).to_numpy())
    g_vendi = workspace_scores(ws, rows=rows).g_vendi
    sample = [
        {
            "id": r["candidate_id"],
            "passes_gate": bool(ok),
            "why_not": problem,
            "prompt": r["prompt"],
            "response": r["response"],
        }
        for (_, r), ok, problem in zip(
            joined.head(SAMPLE_ROWS).iterrows(), quality.passed, quality.problem, strict=False
        )
    ]
    return {
        "joined_passing_gate": len(passing),
        "share_passing_gate": len(passing) / len(joined) if len(joined) else None,
        "gain_per_100_passing": 100.0 * (float(g_vendi or 0.0) - g_vendi_before) / len(passing)
        if passing
        else None,
        "sample": sample,
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
        for key in ("generated", "malformed", "duplicate", "low_quality", "dense", "kept", "joined")
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
        **gate_report(Workspace.open(path), float(records[0].g_vendi_before or 0.0)),
        "rounds": [r.to_dict() for r in records],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per-round", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--generator", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arm names")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.arms.split(","):
            results.append(run_arm(name, ARMS[name], args, Path(scratch)))
    print(
        f"{'arm':<10} {'made':>5} {'bad':>4} {'dup':>4} {'lowq':>4} {'dense':>5} {'joined':>6} "
        f"{'accept':>6} {'G-Vendi':>15} {'Δ/100':>7} {'pass':>5} {'Δ/100 pass':>10} {'s':>7}"
    )
    for r in results:
        per_100 = "—" if r["gain_per_100"] is None else f"{r['gain_per_100']:+.2f}"
        passing = r["gain_per_100_passing"]
        share = r["share_passing_gate"]
        print(
            f"{r['arm']:<10} {r['generated']:>5} {r['malformed']:>4} {r['duplicate']:>4} "
            f"{r['low_quality']:>4} {r['dense']:>5} {r['joined']:>6} {r['acceptance']:>6.0%} "
            f"{r['g_vendi_before']:>6.2f} → {r['g_vendi_after']:>6.2f} {per_100:>7} "
            f"{'—' if share is None else f'{share:.0%}':>5} "
            f"{'—' if passing is None else f'{passing:+.2f}':>10} {r['seconds']:>7.1f}"
        )
    for r in results:
        print(f"\n{r['arm']}: joined rows (up to {SAMPLE_ROWS})")
        for row in r["sample"]:
            verdict = "passes the gate" if row["passes_gate"] else f"fails: {row['why_not']}"
            print(f"- {row['id']} ({verdict})")
            print(f"  Q: {' '.join(str(row['prompt']).split())[:300]}")
            print(f"  A: {' '.join(str(row['response']).split())[:300]}")
    record = {
        "conditions": {
            "workspace": "shipped GSM8K demo (1,319 rows, embedded SmolLM2-135M features, d=1024)",
            "generator": args.generator,
            "rounds": args.rounds,
            "per_round": args.per_round,
            "max_new_tokens": args.max_new_tokens,
            "seed": args.seed,
            "arms": args.arms,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        },
        "arms": results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
