"""GPU benchmark: feature throughput and MFU, naive baseline, device independence, G-Vendi at 10^7.

    python bench/gpu.py                 # on a CUDA machine: Qwen2.5-0.5B architecture, random weights
    python bench/gpu.py --cpu           # small config on the CPU (a smoke test of this script)

Prints a table and writes JSON to bench/results/gpu.json (gpu-cpu.json with --cpu). Throughput does
not depend on weight values, so the published proxy's architecture (Qwen2: 24 layers, hidden 896,
intermediate 4864, 14 heads, 2 KV heads, vocab 151,936, tied embeddings) is built from its config
with seeded random weights; no download is needed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.features.extract import FeatureConfig, FeatureExtractor  # noqa: E402
from core.features.loss import exact_gradients, response_loss  # noqa: E402
from core.features.proxy import Proxy  # noqa: E402
from core.features.scope import scope_layers  # noqa: E402
from core.features.sketch import DenseSketch  # noqa: E402
from core.features.tokenize import Encoded  # noqa: E402
from core.measures.vendi import vendi_from_covariance  # noqa: E402

QWEN25_05B = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    tie_word_embeddings=True,
    max_position_embeddings=32768,
)
SMALL = dict(
    vocab_size=2048,
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=True,
    max_position_embeddings=4096,
)


def build_proxy(config: dict, *, device: str, dtype: torch.dtype, seed: int = 0) -> Proxy:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = (
        Qwen2ForCausalLM(Qwen2Config(**config, pad_token_id=0))
        .to(device=device, dtype=dtype)
        .eval()
    )
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = SimpleNamespace(pad_token_id=0)
    return Proxy(model=model, tokenizer=tokenizer, name="qwen2-random", fingerprint="bench")


def random_samples(n: int, length: int, vocab: int, *, seed: int) -> list[Encoded]:
    rng = np.random.default_rng(seed)
    return [
        Encoded(tuple(int(t) for t in rng.integers(1, vocab, size=length)), length // 4)
        for _ in range(n)
    ]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_features(
    proxy: Proxy, samples: list[Encoded], *, batch_size: int, device: str, dtype: str
) -> float:
    width = len(samples[0].input_ids) + 64
    config = FeatureConfig(
        model="bench",
        scope="all",
        dtype=dtype,
        batch_size=batch_size,
        batch_tokens=batch_size * width,
        device=device,
    )
    extractor = FeatureExtractor(proxy, config)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    extractor.compute(samples[:batch_size])  # warm-up
    sync(device)
    start = time.perf_counter()
    extractor.compute(samples)
    sync(device)
    return len(samples) / (time.perf_counter() - start)


def peak_memory_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def time_train_step(
    proxy: Proxy,
    samples: list[Encoded],
    *,
    batch_size: int,
    device: str,
    micro_tokens: int = 8192,
    batches: list[list[int]] | None = None,
) -> float:
    """A plain forward+backward with weight gradients over the same batches (the cost reference).

    ``batches`` (index lists; default: runs of ``batch_size``) may hold samples of unequal
    lengths: they are right-padded and masked, as a training step on such rows would be. Full
    logits (float32 for the loss) of more than ``micro_tokens`` tokens do not fit on the device
    with a 151,936-token vocabulary, so a batch runs as accumulated micro-batches.
    """
    model = proxy.model
    if batches is None:
        batches = [
            list(range(i, min(i + batch_size, len(samples))))
            for i in range(0, len(samples), batch_size)
        ]
    for p in model.parameters():
        p.requires_grad_(True)
    try:

        def step(batch: list[Encoded]) -> None:
            micro = max(1, micro_tokens // max(len(e.input_ids) for e in batch))
            for lo in range(0, len(batch), micro):
                part = batch[lo : lo + micro]
                lengths = [len(e.input_ids) for e in part]
                ids = torch.zeros((len(part), max(lengths)), dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, e in enumerate(part):
                    ids[row, : lengths[row]] = torch.tensor(e.input_ids)
                    mask[row, : lengths[row]] = 1
                ids, mask = ids.to(device), mask.to(device)
                n_prompt = torch.tensor([e.n_prompt for e in part], device=device)
                logits = model(
                    input_ids=ids,
                    attention_mask=mask if min(lengths) < max(lengths) else None,
                    use_cache=False,
                ).logits
                loss = response_loss(
                    logits, ids, n_prompt, torch.tensor(lengths, device=device)
                ).sum()
                loss.backward()
            model.zero_grad(set_to_none=True)

        step([samples[i] for i in batches[0]])
        sync(device)
        start = time.perf_counter()
        for batch in batches:
            step([samples[i] for i in batch])
        sync(device)
        return len(samples) / (time.perf_counter() - start)
    finally:
        for p in model.parameters():
            p.requires_grad_(False)


def time_naive(
    proxy: Proxy, samples: list[Encoded], *, device: str, dim: int = 1024, chunk: int = 1 << 20
) -> float:
    """One sample at a time, the full gradient materialised, then the dense reference sketch
    (Gaussian, drawn in chunks on the device for every sample: the whole matrix does not fit)."""
    layers, _ = scope_layers(proxy.model, "all")
    params = [m.weight for m in layers.values()]
    sketch = DenseSketch(
        sum(p.numel() for p in params),
        dim=dim,
        seed=0,
        kind="gaussian",
        device=device,
        chunk_cols=chunk,
        draw="device",
        cache_entries=0,
    )

    def run(batch: list[Encoded]) -> None:
        for grads, _ in exact_gradients(proxy.model, batch, params):
            out = sketch.project(torch.cat([g.reshape(-1) for g in grads]))
            out / out.norm()

    run(samples[:1])
    sync(device)
    start = time.perf_counter()
    run(samples)
    sync(device)
    return len(samples) / (time.perf_counter() - start)


def matmul_rate(device: str, dtype: torch.dtype, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    reps = 10
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def device_independence(device: str) -> dict:
    """Features of one tiny model and seed on the CPU and on ``device``; then shards merged."""
    cpu = build_proxy(SMALL, device="cpu", dtype=torch.float32, seed=1)
    other = build_proxy(SMALL, device=device, dtype=torch.float32, seed=1)
    rng = np.random.default_rng(2)
    samples = [
        Encoded(
            tuple(int(t) for t in rng.integers(1, SMALL["vocab_size"], size=int(n))), int(n) // 3
        )
        for n in rng.integers(16, 300, size=48)
    ]
    config = dict(model="bench", scope="all", dim=1024, seed=7, batch_size=8)
    on_cpu = FeatureExtractor(cpu, FeatureConfig(**config, device="cpu")).compute(samples).features
    on_dev = (
        FeatureExtractor(other, FeatureConfig(**config, device=device)).compute(samples).features
    )
    cosines = np.sum(on_cpu.astype(np.float64) * on_dev, axis=1)
    merged = np.concatenate(
        [on_cpu[:24], on_dev[24:]]
    )  # shards 0–2 from the CPU, 3–5 from the device

    def g_vendi(features: np.ndarray) -> float:
        f = features.astype(np.float64)
        return vendi_from_covariance(f.T @ f / len(f), qs=(1.0,))[1.0]

    return {
        "n": len(samples),
        "max_abs_diff": float(np.abs(on_cpu - on_dev).max()),
        "min_cosine": float(cosines.min()),
        "g_vendi_device": g_vendi(on_dev),
        "g_vendi_cpu": g_vendi(on_cpu),
        "g_vendi_merged": g_vendi(merged),
    }


def bf16_agreement(proxy: Proxy, vocab: int, *, device: str) -> dict:
    """Features of the bf16 model against the same weights in float32 (16 samples, 256 tokens)."""
    samples = random_samples(16, 256, vocab, seed=5)
    config = FeatureConfig(model="bench", scope="all", batch_size=16, device=device)
    low = FeatureExtractor(proxy, config).compute(samples)
    proxy.model.float()
    try:
        high = FeatureExtractor(proxy, config).compute(samples)
    finally:
        proxy.model.to(torch.bfloat16)
    cosines = np.sum(low.features.astype(np.float64) * high.features, axis=1)
    return {
        "n": len(samples),
        "min_cosine": float(cosines.min()),
        "mean_cosine": float(cosines.mean()),
        "loss_max_rel_diff": float(np.abs(low.loss / high.loss - 1).max()),
    }


def streamed_vendi(device: str, n: int, dim: int = 1024, chunk: int = 1 << 18) -> dict:
    """G-Vendi of n × dim unit features streamed chunk by chunk through the device (d×d covariance)."""
    generator = torch.Generator(device=device)
    centres = torch.nn.functional.normalize(torch.randn(300, dim, device=device), dim=1)
    cov = torch.zeros(dim, dim, device=device, dtype=torch.float64)
    sync(device)
    start = time.perf_counter()
    for i, lo in enumerate(range(0, n, chunk)):
        rows = min(chunk, n - lo)
        generator.manual_seed(i)
        x = centres[torch.randint(0, 300, (rows,), device=device, generator=generator)]
        x = torch.nn.functional.normalize(
            x + 0.5 * torch.randn(rows, dim, device=device, generator=generator) / math.sqrt(dim),
            dim=1,
        )
        cov += (x.T @ x).double()
    value = vendi_from_covariance((cov / n).cpu().numpy(), qs=(1.0,))[1.0]
    sync(device)
    return {"n": n, "dim": dim, "seconds": time.perf_counter() - start, "g_vendi": value}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", action="store_true", help="small config on the CPU (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cpu_mode = args.cpu or not torch.cuda.is_available()
    device = "cpu" if cpu_mode else "cuda"
    arch = SMALL if cpu_mode else QWEN25_05B
    dtype_name = "float32" if cpu_mode else "bfloat16"
    dtype = torch.float32 if cpu_mode else torch.bfloat16
    seqs = (64,) if cpu_mode else (256, 1024)
    batch_sizes = {64: (1, 4), 128: (1, 4), 256: (1, 8, 32, 128), 1024: (1, 8, 16, 32)}
    # The naive baseline draws a dense 1,024 × P matrix per sample: on the CPU (a smoke test) one
    # timed sample, drawn 2^16 columns at a time (0.25 GiB, not the whole 2 GiB matrix at once).
    n_naive = 1 if cpu_mode else 2
    naive_chunk = 1 << 16 if cpu_mode else 1 << 20
    torch.backends.cuda.matmul.allow_tf32 = False

    proxy = build_proxy(arch, device=device, dtype=dtype)
    n_params = sum(p.numel() for p in proxy.model.parameters())
    peak = matmul_rate(device, dtype, 1024 if cpu_mode else 8192)
    rows = []
    for seq in seqs:
        naive = time_naive(
            proxy,
            random_samples(n_naive, seq, arch["vocab_size"], seed=seq),
            device=device,
            chunk=naive_chunk,
        )
        for bs in batch_sizes[seq]:
            samples = random_samples(
                max(2 * bs, 4 if cpu_mode else 32), seq, arch["vocab_size"], seed=seq
            )
            rate = time_features(proxy, samples, batch_size=bs, device=device, dtype=dtype_name)
            memory = peak_memory_gib(device)
            train = time_train_step(proxy, samples, batch_size=bs, device=device)
            mfu = 6 * n_params * seq * rate / peak
            rows.append(
                {
                    "seq": seq,
                    "batch_size": bs,
                    "samples_per_s": rate,
                    "train_step_samples_per_s": train,
                    "cost_vs_train_step": train / rate,
                    "naive_samples_per_s": naive,
                    "speedup_vs_naive": rate / naive,
                    "mfu": mfu,
                    "peak_memory_gib": memory,
                }
            )
    independence = device_independence(device) if not cpu_mode else None
    agreement = None if cpu_mode else bf16_agreement(proxy, arch["vocab_size"], device=device)
    vendi = streamed_vendi(device, 10_000 if cpu_mode else 10_000_000)
    result = {
        "device": torch.cuda.get_device_name() if not cpu_mode else "cpu",
        "torch": torch.__version__,
        "arch": "small" if cpu_mode else "Qwen2.5-0.5B (random weights)",
        "n_params": n_params,
        "dtype": dtype_name,
        "matmul_flops": peak,
        "rows": rows,
        "device_independence": independence,
        "bf16_vs_float32": agreement,
        "streamed_vendi": vendi,
    }

    print(
        f"device {result['device']}, {result['arch']}, {n_params / 1e6:.0f}M params, {dtype_name}, "
        f"matmul {peak / 1e12:.1f} TFLOP/s"
    )
    header = f"{'seq':>5} {'batch':>5} {'samples/s':>10} {'naive/s':>9} {'speedup':>8} {'vs train':>8} {'MFU':>6} {'GiB':>5}"
    print(header)
    for r in rows:
        print(
            f"{r['seq']:>5} {r['batch_size']:>5} {r['samples_per_s']:>10.2f} {r['naive_samples_per_s']:>9.3f} "
            f"{r['speedup_vs_naive']:>7.1f}× {r['cost_vs_train_step']:>7.2f}× {100 * r['mfu']:>5.1f}% "
            f"{r['peak_memory_gib'] or 0:>5.1f}"
        )
    if independence:
        print(
            f"CPU vs {device}: max |Δ| {independence['max_abs_diff']:.2e}, min cosine {independence['min_cosine']:.8f}; "
            f"G-Vendi device {independence['g_vendi_device']:.6f}, merged {independence['g_vendi_merged']:.6f}, "
            f"cpu {independence['g_vendi_cpu']:.6f}"
        )
    if agreement:
        print(
            f"bf16 vs float32 model, same weights: min cosine {agreement['min_cosine']:.6f}, "
            f"loss max rel diff {agreement['loss_max_rel_diff']:.1e}"
        )
    print(
        f"streamed G-Vendi of {vendi['n']:,} × {vendi['dim']}: {vendi['seconds']:.2f} s (value {vendi['g_vendi']:.2f})"
    )
    out = args.out or Path(__file__).parent / "results" / (
        "gpu-cpu.json" if cpu_mode else "gpu.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
