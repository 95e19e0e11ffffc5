"""Latency of the hand-curation loop at 10⁴ and 10⁵ rows: find by condition, find by text,
similar rows (exact and through the stored index), the index's build time, size and recall.

    python bench/curation_loop.py                   # 10⁴ and 10⁵ rows × 1,024
    python bench/curation_loop.py --sizes 10000     # a smoke test of the script itself

Per size, in a fresh process of its own (so that its peak RSS is its own):
- the workspace: the GSM8K demo's 1,319 questions and answers repeated to N rows (each copy
  marked ``(copy j)`` so that no two rows are equal), a ``difficulty`` (1–5) and a ``source``
  column, a ``loss`` column, and synthetic clustered unit features (N/100 planted directions,
  noise 0.5 per dimension: about 100 rows per neighbourhood), through ``prism import-features``'
  engine;
- ``condition``: ``find_where`` of ``difficulty >= 4 AND source = 'gsm8k' AND loss > 2`` (DuckDB
  over the workspace's Parquet files; each call opens its connection and view, as the CLI does);
- ``substring``: ``find_text`` of "ducks" over question and answer, any case (streamed);
- ``regex``: ``find_text`` of ``\\b\\d+ eggs\\b`` as a regular expression;
- ``similar (exact)``: ``similar_to_rows`` of one row, 50 neighbours, every row compared
  (``nearest_in_pool`` over the memory-mapped features; ``exact_max_rows=N`` forces it at every
  size, also above the size where the app and CLI switch to the index);
- ``index build``: the faiss IVF index built and stored (``exact_max_rows=0`` forces it); its
  file size; ``similar (index)``: the same queries through it, and its recall@50 against exact;
- ``peak RSS``: the process's peak resident memory.

Latencies are p50 / p95 over repeated calls (``--repeats``). Prints a table and writes
``bench/results/curation_loop.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]
RESULTS = REPO / "bench" / "results" / "curation_loop.json"
DEMO = REPO / "demo" / "gsm8k" / "samples.parquet"
CONDITION = "difficulty >= 4 AND source = 'gsm8k' AND loss > 2"
SUBSTRING = "ducks"
REGEX = r"\b\d+ eggs\b"
N_NEIGHBORS = 50
DIM = 1024


def build(folder: Path, n: int, seed: int) -> Path:
    """A workspace of n rows of real-ish text and synthetic clustered features."""
    import numpy as np
    import pandas as pd

    from core.data.dataset import load_dataset
    from core.workspace.imported import import_features

    rng = np.random.default_rng(seed)
    demo = pd.read_parquet(DEMO, columns=["question", "answer"])
    copy, row = np.divmod(np.arange(n), len(demo))
    data = folder / f"data-{n}.jsonl"
    with open(data, "w", encoding="utf-8") as handle:
        for i, (c, r) in enumerate(zip(copy.tolist(), row.tolist(), strict=True)):
            record = {
                "id": f"r{i}",
                "prompt": demo["question"].iat[r] + (f" (copy {c})" if c else ""),
                "response": demo["answer"].iat[r],
                "difficulty": int(rng.integers(1, 6)),
                "source": "gsm8k" if rng.random() < 0.7 else "synthetic",
            }
            handle.write(json.dumps(record) + "\n")
    feats = folder / f"features-{n}.npy"
    features = np.lib.format.open_memmap(feats, mode="w+", dtype=np.float32, shape=(n, DIM))
    centres = rng.standard_normal((max(2, n // 100), DIM)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    for lo in range(0, n, 50_000):
        hi = min(n, lo + 50_000)
        block = centres[labels[lo:hi]] + 0.5 * rng.standard_normal((hi - lo, DIM), np.float32)
        features[lo:hi] = block / np.linalg.norm(block, axis=1, keepdims=True)
    features.flush()
    del features
    ws = import_features(folder / f"ws-{n}", load_dataset(str(data)), feats)
    with ws.lock():
        ws.add_columns({"loss": rng.gamma(4.0, 0.5, n).astype(np.float32)})
    feats.unlink()
    data.unlink()
    return ws.path


def _percentiles(seconds: list[float]) -> dict[str, float]:
    import numpy as np

    return {
        "p50_ms": float(np.percentile(seconds, 50) * 1000),
        "p95_ms": float(np.percentile(seconds, 95) * 1000),
        "calls": len(seconds),
    }


def _timed(call: Any, repeats: int) -> tuple[dict[str, float], Any]:
    call()  # warm: imports, page cache
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return _percentiles(seconds), result


def measure(folder: str, n: int, seed: int, repeats: int, out: Any) -> None:
    import numpy as np

    from core.workspace.find import find_text, find_where
    from core.workspace.similar import INDEX_FILE, similar_to_rows
    from core.workspace.store import Workspace

    start = time.perf_counter()
    ws = Workspace.open(build(Path(folder), n, seed))
    record: dict[str, Any] = {"n": n, "dim": DIM, "build_workspace_s": time.perf_counter() - start}
    record["condition"], found = _timed(lambda: find_where(ws, CONDITION), repeats)
    record["condition"]["rows"] = found.n_rows
    record["substring"], found = _timed(lambda: find_text(ws, SUBSTRING), repeats)
    record["substring"]["rows"] = found.n_rows
    record["regex"], found = _timed(lambda: find_text(ws, REGEX, regex=True), repeats)
    record["regex"]["rows"] = found.n_rows
    queries = np.random.default_rng(seed + 1).choice(n, size=repeats, replace=False)
    exact_results, exact_s = [], []
    for row in queries:
        t0 = time.perf_counter()
        exact_results.append(
            similar_to_rows(ws, [int(row)], n_neighbors=N_NEIGHBORS, exact_max_rows=n)
        )
        exact_s.append(time.perf_counter() - t0)
    record["similar_exact"] = _percentiles(exact_s[1:])
    t0 = time.perf_counter()
    built = similar_to_rows(ws, [int(queries[0])], n_neighbors=N_NEIGHBORS, exact_max_rows=0)
    record["index_build_s"] = time.perf_counter() - t0
    assert built.built_index
    record["index_bytes"] = (ws.index_dir / INDEX_FILE).stat().st_size
    index_s, recalls = [], []
    for row, truth in zip(queries, exact_results, strict=True):
        t0 = time.perf_counter()
        result = similar_to_rows(ws, [int(row)], n_neighbors=N_NEIGHBORS, exact_max_rows=0)
        index_s.append(time.perf_counter() - t0)
        recalls.append(len(set(result.rows.tolist()) & set(truth.rows.tolist())) / N_NEIGHBORS)
    record["similar_index"] = _percentiles(index_s[1:])
    record["recall_at_50"] = float(np.mean(recalls))
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["load_average"] = os.getloadavg()[0]
    out.put(record)


def _in_process(target: Any, *args: Any) -> Any:
    context = mp.get_context("spawn")  # a fresh interpreter: its peak RSS is its own
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def table(rows: list[dict[str, Any]]) -> str:
    def lat(key: str) -> Any:
        return lambda r: f"{r[key]['p50_ms']:,.0f} / {r[key]['p95_ms']:,.0f} ms"

    lines = [
        ("rows × d", lambda r: f"{r['n']:,} × {r['dim']:,}"),
        ("condition p50 / p95", lat("condition")),
        ("  rows found", lambda r: f"{r['condition']['rows']:,}"),
        ("substring p50 / p95", lat("substring")),
        ("regex p50 / p95", lat("regex")),
        ("similar exact p50 / p95", lat("similar_exact")),
        ("index build", lambda r: f"{r['index_build_s']:.1f} s"),
        ("index file", lambda r: f"{r['index_bytes'] / 2**20:,.0f} MB"),
        ("similar index p50 / p95", lat("similar_index")),
        ("index recall@50", lambda r: f"{r['recall_at_50']:.3f}"),
        ("peak RSS", lambda r: f"{r['peak_rss_mb'] / 1024:.2f} GB"),
        ("machine load (1 min)", lambda r: f"{r['load_average']:.1f}"),
    ]
    width = max(len(name) for name, _ in lines)
    return "\n".join(
        name.ljust(width) + "".join(f"{cell(r):>22}" for r in rows) for name, cell in lines
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="prism-curation-") as tmp:
        os.environ["PRISM_HOME"] = tmp
        for n in args.sizes:
            record = _in_process(measure, tmp, n, args.seed, args.repeats)
            rows.append(record)
            print(f"N={n:>9,}: done (index built in {record['index_build_s']:.1f} s)", flush=True)
    cpu = platform.processor() or platform.machine()
    print(f"\nThe curation loop's latency ({cpu}, {os.cpu_count()} CPUs, shared with other jobs)")
    print(table(rows))
    result = {
        "rows": rows,
        "condition": CONDITION,
        "substring": SUBSTRING,
        "regex": REGEX,
        "n_neighbors": N_NEIGHBORS,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "machine": "the project's shared 2-core CPU machine, loaded by other jobs: latencies are "
        "pessimistic, not quiet-machine figures",
        "measured": time.strftime("%Y-%m-%d"),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
