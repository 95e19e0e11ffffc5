"""Feature-extraction benchmark on the CPU: Prism vs a naive baseline vs a plain training step.

    python bench/features.py [--n 16] [--scope all] [--memory-rows 48]

On the embedded proxy (SmolLM2-135M-Instruct) and real GSM8K rows, in one process:
- prism:      batched hooks + two-stage Kronecker sketch (what `prism features` runs);
- naive:      one sample at a time, the full per-sample gradient of the same scope materialised,
              then a very sparse random projection (Li et al.: density 1/√D) to the same dim;
- train step: a plain forward+backward with weight gradients over the same batches (cost reference).
Then the peak resident memory of a real `prism features` process on the longest GSM8K rows (peak
memory is set by the largest batch: shards bound everything else, whatever N is).
Prints a table and writes bench/results/features.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data.dataset import load_dataset  # noqa: E402
from core.data.text import conversations  # noqa: E402
from core.features.extract import FeatureConfig, FeatureExtractor  # noqa: E402
from core.features.loss import exact_gradients, response_loss  # noqa: E402
from core.features.proxy import load_proxy  # noqa: E402


def sparse_projection(n_in: int, dim: int, *, seed: int) -> torch.Tensor:
    """A (dim × n_in) sparse sign matrix with density 1/√n_in, scaled to preserve norms."""
    rng = np.random.default_rng(seed)
    density = 1 / np.sqrt(n_in)
    nnz = int(n_in * dim * density)
    rows = rng.integers(0, dim, size=nnz)
    cols = rng.integers(0, n_in, size=nnz)
    values = (rng.choice([-1.0, 1.0], size=nnz) / np.sqrt(density * dim)).astype(np.float32)
    matrix = torch.sparse_coo_tensor(np.stack([rows, cols]), values, (dim, n_in))
    return matrix.coalesce().to_sparse_csr()


def bench_naive(extractor: FeatureExtractor, encoded: list, projection: torch.Tensor) -> float:
    params = [m.weight for m in extractor.layers.values()]
    start = time.perf_counter()
    for grads, _ in exact_gradients(extractor.proxy.model, encoded, params):
        out = torch.mv(projection, torch.cat([g.reshape(-1) for g in grads]))
        _ = out / out.norm()
    return len(encoded) / (time.perf_counter() - start)


def bench_train_step(extractor: FeatureExtractor, encoded: list) -> float:
    """Forward+backward with weight gradients, over exactly the batches Prism uses."""
    model = extractor.proxy.model
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        start = time.perf_counter()
        for batch in extractor.batches(encoded):
            items = [encoded[i] for i in batch]
            width = max(len(e.input_ids) for e in items)
            ids = torch.zeros((len(items), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, e in enumerate(items):
                ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
                mask[row, : len(e.input_ids)] = 1
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            loss = response_loss(
                logits, ids, torch.tensor([e.n_prompt for e in items]), mask.sum(1)
            ).sum()
            loss.backward()
            model.zero_grad(set_to_none=True)
        return len(encoded) / (time.perf_counter() - start)
    finally:
        for p in model.parameters():
            p.requires_grad_(False)


def peak_memory_of_cli(rows: int) -> dict:
    """Peak RSS of `prism features` on the ``rows`` longest GSM8K samples (a child process)."""
    dataset = load_dataset("demo:gsm8k")
    lengths = dataset.samples["question"].str.len() + dataset.samples["answer"].str.len()
    longest = dataset.samples.loc[
        lengths.sort_values(ascending=False).index[:rows], ["id", "question", "answer"]
    ]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "longest.jsonl"
        longest.to_json(data, orient="records", lines=True, force_ascii=False)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "core",
                "features",
                str(data),
                "--workspace",
                str(Path(tmp) / "ws"),
                "--quiet",
            ],
            check=True,
            cwd=ROOT,
        )
        seconds = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"rows": rows, "peak_rss_gb": max(peak_kb, before) / 1024**2, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=16, help="GSM8K rows to time")
    parser.add_argument("--n-naive", type=int, default=4, help="rows for the (slow) naive baseline")
    parser.add_argument("--scope", default="all")
    parser.add_argument(
        "--memory-rows", type=int, default=48, help="longest rows for the memory run (0: skip)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "features.json")
    args = parser.parse_args()

    dataset = load_dataset("demo:gsm8k", limit=args.n)
    proxy = load_proxy("default")
    extractor = FeatureExtractor(proxy, FeatureConfig(scope=args.scope))
    encoded = extractor.encode(conversations(dataset.samples, dataset.columns))
    tokens = sum(len(e.input_ids) for e in encoded)

    extractor.compute(encoded[:2])  # warm-up (allocator, kernels)
    start = time.perf_counter()
    extractor.compute(encoded)
    prism = args.n / (time.perf_counter() - start)
    train = bench_train_step(extractor, encoded)
    n_params = extractor.n_params
    projection = sparse_projection(n_params, extractor.config.dim, seed=0)
    naive = bench_naive(extractor, encoded[: args.n_naive], projection)
    memory = peak_memory_of_cli(args.memory_rows) if args.memory_rows else None

    result = {
        "model": "SmolLM2-135M-Instruct (embedded)",
        "scope": args.scope,
        "params_in_scope": n_params,
        "rows": args.n,
        "tokens": tokens,
        "threads": torch.get_num_threads(),
        "prism_samples_per_s": prism,
        "naive_samples_per_s": naive,
        "train_step_samples_per_s": train,
        "speedup_vs_naive": prism / naive,
        "cost_vs_train_step": train / prism,
        "full_demo_estimate_s": 1319 / prism,
        "memory": memory,
    }
    print(
        f"GSM8K rows: {args.n} ({tokens:,} tokens), scope {args.scope} ({n_params / 1e6:.1f}M weights), "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'method':<34}{'samples/s':>10}{'ratio':>10}  target")
    print(f"{'prism (hooks + Kronecker sketch)':<34}{prism:>10.3f}{1.0:>10.2f}")
    print(
        f"{'naive (materialised + sparse JL)':<34}{naive:>10.3f}{prism / naive:>9.1f}×  prism ≥ 5× faster: "
        f"{'yes' if prism / naive >= 5 else 'NO'}"
    )
    print(
        f"{'plain forward+backward step':<34}{train:>10.3f}{train / prism:>9.2f}×  prism ≤ 1.5× its cost: "
        f"{'yes' if train / prism <= 1.5 else 'NO'}"
    )
    print(f"full demo (1,319 rows) at this rate: {1319 / prism / 60:.1f} min")
    if memory:
        print(
            f"peak RSS of `prism features` on the {memory['rows']} longest rows: {memory['peak_rss_gb']:.2f} GB "
            f"(target ≤ 4 GB: {'yes' if memory['peak_rss_gb'] <= 4 else 'NO'})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
