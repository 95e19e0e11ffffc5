"""Rows/s and peak memory of loading a JSON Lines dataset as the row count grows.

    python bench/load.py --sizes 10000 100000 1000000

GSM8K-like rows (the bundled ``demo:gsm8k`` rows repeated, each with a row counter as its
``id`` so that ids stay unique) are written to a temporary JSON Lines file per size. Each size is
then loaded in its own fresh process, so that its peak RSS is its own: ``load_dataset`` (read,
validate, ids, fingerprint) followed by writing the workspace's ``samples.parquet``
(``prepare_workspace``), and, at the largest size, ``load_dataset(limit=8)`` as
``prism features --limit 8`` does. Wall seconds depend on what else the machine runs; CPU
seconds (all threads) much less. Prints a table with rows/s, peak RSS and the growth exponent
(slope of log seconds and of log extra RSS over log N between the two largest sizes) and writes
``bench/results/load.json``. ``--compare DIR`` also measures another Prism source tree (for
example an older release) the same way, in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "load.json"

# Runs in a fresh interpreter: argv = code root, data file, workspace folder, limit or "".
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from core.data.dataset import load_dataset
from core.features.extract import FeatureConfig
from core.workspace.jobs.extraction import prepare_workspace

def peak_gb():  # this process's own peak RSS (ru_maxrss would count the parent's pages at exec)
    with open("/proc/self/status") as status:
        return int(status.read().split("VmHWM:")[1].split()[0]) / 2**20

limit = int(sys.argv[4]) if sys.argv[4] else None
base = peak_gb()
t0, c0 = time.perf_counter(), time.process_time()
dataset = load_dataset(sys.argv[2], limit=limit)
t1 = time.perf_counter()
prepare_workspace(sys.argv[3], dataset, FeatureConfig(model="tiny", dim=64))
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"rows": dataset.n_samples, "load_s": t1 - t0, "write_s": t2 - t1,
                  "cpu_s": c2 - c0, "peak_rss_gb": peak_gb(), "base_rss_gb": base,
                  "fingerprint": dataset.fingerprint}))
"""


def write_rows(path: Path, n: int) -> int:
    """``n`` GSM8K-like JSON Lines rows at ``path``; returns the file's size in bytes."""
    sys.path.insert(0, str(REPO))
    from core.data.read import read_table

    demo = read_table("demo:gsm8k")
    pairs = list(zip(demo["question"], demo["answer"], strict=True))
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            question, answer = pairs[i % len(pairs)]
            row = {"id": f"gsm8k-{i}", "question": question, "answer": answer}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path.stat().st_size


def measure(code: Path, data: Path, workspace: Path, limit: int | None) -> dict[str, Any]:
    """One load in a fresh process: seconds, peak RSS and the fingerprint it computed."""
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(code), str(data), str(workspace), str(limit or "")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "failed"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def _exponent(rows: list[dict[str, Any]], key: str) -> float | None:
    """Slope of log ``key`` over log n between the two largest full loads."""
    full = sorted((r for r in rows if r.get("limit") is None and key in r), key=lambda r: r["n"])
    if len(full) < 2:
        return None
    a, b = full[-2], full[-1]
    if a[key] <= 0 or b[key] <= 0:
        return None
    return math.log(b[key] / a[key]) / math.log(b["n"] / a["n"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--compare", type=Path, help="another Prism source tree to measure too")
    parser.add_argument("--compare-label", default="another source tree", help="its table name")
    parser.add_argument("--compare-max-rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    codes = {"prism": REPO}
    if args.compare is not None:
        codes["compare"] = args.compare.resolve()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in sorted(args.sizes):
            data = folder / f"rows-{n}.jsonl"
            size = write_rows(data, n)
            cases: list[tuple[str, int | None]] = [(name, None) for name in codes]
            if n == max(args.sizes):
                cases.append(("prism", 8))
            for name, limit in cases:
                if name == "compare" and n > args.compare_max_rows:
                    continue
                workspace = folder / f"ws-{name}-{n}-{limit}"
                result = measure(codes[name], data, workspace, limit)
                result.update(code=name, n=n, limit=limit, file_mb=size / 1e6)
                if "load_s" in result:
                    total = result["load_s"] + result["write_s"]
                    result["rows_per_s"] = n / total if limit is None else None
                    result["total_s"] = total
                    result["extra_rss_gb"] = max(0.0, result["peak_rss_gb"] - result["base_rss_gb"])
                rows.append(result)
                print(json.dumps(result), flush=True)
                subprocess.run(["rm", "-rf", str(workspace)], check=False)
            data.unlink()
    growth = {
        name: {
            "seconds": _exponent([r for r in rows if r["code"] == name], "total_s"),
            "cpu_seconds": _exponent([r for r in rows if r["code"] == name], "cpu_s"),
            "extra_rss": _exponent([r for r in rows if r["code"] == name], "extra_rss_gb"),
        }
        for name in codes
    }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "target": {"rows": 1_000_000, "seconds": 60.0, "peak_rss_gb": 2.5},
        "compare_label": args.compare_label if args.compare is not None else None,
        "rows": rows,
        "growth": growth,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    header = f"{'code':<8} {'rows':>10} {'limit':>6} {'file MB':>8} {'load s':>8} {'write s':>8} "
    print("\n" + header + f"{'CPU s':>8} {'rows/s':>10} {'peak RSS GB':>12}")
    for r in rows:
        if "load_s" not in r:
            print(f"{r['code']:<8} {r['n']:>10,} {r['limit'] or '':>6} failed: {r['error']}")
            continue
        rate = f"{r['rows_per_s']:,.0f}" if r["rows_per_s"] else ""
        print(
            f"{r['code']:<8} {r['n']:>10,} {r['limit'] or '':>6} {r['file_mb']:>8.1f} "
            f"{r['load_s']:>8.2f} {r['write_s']:>8.2f} {r['cpu_s']:>8.2f} {rate:>10} "
            f"{r['peak_rss_gb']:>12.2f}"
        )
    for name, g in growth.items():
        shown = {k: "n/a" if v is None else f"{v:.2f}" for k, v in g.items()}
        print(f"{name}: growth exponent of seconds {shown['seconds']}, of CPU seconds "
              f"{shown['cpu_seconds']}, of extra RSS {shown['extra_rss']} (1.00 = linear)")  # fmt: skip
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
