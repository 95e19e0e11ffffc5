"""Prism against its closest peer (EleutherAI Bergson `build`) and a plain training step, same rows.

    python bench/peers.py --export-assets DIR   # write DIR/gsm8k.jsonl and DIR/tokenizer (here)
    python bench/peers.py --assets DIR          # on a CUDA machine (Bergson 2.5.1 installed)
    python bench/peers.py --cpu                 # small config on the CPU (a smoke test)

Rows: the 1,319 GSM8K test rows (short) and 329 long rows, each four GSM8K pairs joined (questions
joined as the prompt, answers as the response). Model: the Qwen2.5-0.5B architecture with seeded
random weights (no download; throughput does not depend on weight values), bf16, every Linear
weight, response-only loss, the embedded proxy's tokenizer. For each row set: Prism packed (the
GPU default; also with twice the token budget, and with the model's own eager SiLU·up and rotary
embedding), Prism padded (length-grouped, masked), Bergson with the flags below, and a plain bf16
forward+backward with weight gradients over the padded batches. Each Prism variant is timed as the
median of ``--repeats`` passes (5 on a GPU) after a warm-up pass that compiles its kernels. Counted FLOPs: ``6·P·T`` for
T real tokens (P: the Linear weights), and the FLOPs each Prism variant actually does (padding,
attention and sketch included, no weight gradients). Bergson is timed as its whole command
minus the same command on 32 rows (start-up and model load, measured once per row set); its
memory is what nvidia-smi saw.
Writes bench/results/peers.json (peers-cpu.json with --cpu).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpu import QWEN25_05B, SMALL, build_proxy, matmul_rate, sync, time_train_step  # noqa: E402
from core.features.extract import (  # noqa: E402
    FeatureConfig,
    FeatureExtractor,
    default_batch_tokens,
)
from core.features.tokenize import Encoded, encode_many  # noqa: E402

BERGSON = {
    "bergson_p16": ["--projection_dim", "16"],
    "bergson_p16_tb32k": ["--projection_dim", "16", "--token_batch_size", "32768"],
    "bergson_global_p1024": [
        "--projection_dim", "1024", "--projection_target", "global", "--token_batch_size", "32768",
    ],
}  # fmt: skip
BERGSON_COMMON = [
    "--precision",
    "bf16",
    "--prompt_column",
    "question",
    "--completion_column",
    "answer",
]
# The default token batch is skipped on long rows (9× slower than Prism on short rows already).
BERGSON_ON_LONG = ("bergson_p16_tb32k", "bergson_global_p1024")


def gsm8k_rows(assets: Path | None) -> list[dict[str, str]]:
    if assets is not None:
        lines = (assets / "gsm8k.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    from core.data.dataset import load_dataset

    frame = load_dataset("demo:gsm8k").samples
    return [
        {"question": q, "answer": a}
        for q, a in zip(frame["question"], frame["answer"], strict=True)
    ]


def long_rows(rows: list[dict[str, str]], join: int = 4) -> list[dict[str, str]]:
    groups = [rows[i : i + join] for i in range(0, len(rows) - join + 1, join)]
    return [
        {k: "\n\n".join(r[k] for r in group) for k in ("question", "answer")} for group in groups
    ]


def encode_rows(tokenizer, rows: list[dict[str, str]]) -> list[Encoded]:
    chats = [
        [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]
        for r in rows
    ]
    return encode_many(tokenizer, chats)


def export_assets(folder: Path) -> None:
    from transformers import AutoTokenizer

    from core.features.proxy import default_model_dir

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "gsm8k.jsonl").open("w") as out:
        for row in gsm8k_rows(None):
            out.write(json.dumps(row) + "\n")
    AutoTokenizer.from_pretrained(default_model_dir()).save_pretrained(folder / "tokenizer")
    print(f"wrote {folder}/gsm8k.jsonl and {folder}/tokenizer")


def flops_done(model, extractor: FeatureExtractor, encoded: list[Encoded], packed: bool) -> float:
    """FLOPs of Prism's passes over ``encoded``: forward and activation-gradient backward of the
    body (2 + 2 per weight per computed token), the head at loss rows (forward, δ·W and the head's
    block), causal attention (forward 2·L·H·s², backward twice that), stage-one projections and
    blocks (2·(in + out)·k + 2·k² per layer per computed token)."""
    config = model.config
    hidden, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    head = extractor.head
    body = sum(
        a * b
        for name, (a, b) in ((n, tuple(m.weight.shape)) for n, m in extractor.layers.items())
        if extractor.layers[name] is not head
    )
    k = extractor.sketch.k
    sketch_per_token = sum(
        2 * (m.weight.shape[0] + m.weight.shape[1]) * k + 2 * k * k
        for m in extractor.layers.values()
        if m is not head
    )
    total = 0.0
    for batch in extractor.batches(encoded):
        lengths = np.array([len(encoded[i].input_ids) for i in batch], dtype=np.float64)
        seqs = lengths if packed else np.full_like(lengths, extractor.width(int(lengths.max())))
        tokens = seqs.sum()
        loss_rows = sum(encoded[i].n_response for i in batch)
        total += 4 * body * tokens + sketch_per_token * tokens
        total += 3 * 2 * layers * hidden * float((seqs**2).sum())
        total += 2 * 2 * vocab * hidden * loss_rows + 2 * vocab * k * loss_rows
        total += 2 * hidden * k * tokens + 2 * k * k * tokens  # the head's input projection, block
    return total


def run_prism(
    proxy,
    encoded: list[Encoded],
    *,
    packed: bool,
    batch_tokens: int,
    device: str,
    repeats: int = 1,
    fused_mlps: bool = True,
    profile: Path | None = None,
) -> dict:
    """Prism over ``encoded`` after a warm-up: the median of ``repeats`` timed passes."""
    dtype = "bfloat16" if next(proxy.model.parameters()).dtype == torch.bfloat16 else "float32"
    config = FeatureConfig(model="bench", dtype=dtype, batch_tokens=batch_tokens, device=device)
    extractor = FeatureExtractor(proxy, config)
    extractor.pack = packed
    extractor.fused_mlps = fused_mlps
    extractor.compute(encoded[:64])  # warm-up (compiles the fused kernels)
    sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = extractor.compute(encoded)
        sync(device)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    if profile is not None:
        write_profile(extractor, encoded, profile)
    tokens = int(result.n_tokens.sum())
    return {
        "rows_per_s": len(encoded) / seconds,
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "seconds_each": times,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if device.startswith("cuda")
        else None,
        "flops_done_per_s": flops_done(proxy.model, extractor, encoded, packed) / seconds,
        "features": result.features,
    }


def write_profile(extractor: FeatureExtractor, encoded: list[Encoded], path: Path) -> None:
    """The kernels of one pass over ``encoded``, by total device time (torch.profiler's table)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        extractor.compute(encoded)
        torch.cuda.synchronize()
    path.write_text(prof.key_averages().table(sort_by="cuda_time_total", row_limit=60))


def run_train(proxy, encoded: list[Encoded], *, batch_tokens: int, device: str) -> dict:
    extractor = FeatureExtractor(
        proxy, FeatureConfig(model="bench", batch_tokens=batch_tokens, device=device)
    )
    extractor.pack = False
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rate = time_train_step(
        proxy, encoded, batch_size=0, device=device, batches=extractor.batches(encoded)
    )
    return {
        "rows_per_s": rate,
        "tokens_per_s": rate * float(np.mean([len(e.input_ids) for e in encoded])),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if device.startswith("cuda")
        else None,
    }


def _gpu_memory_used() -> float | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        return float(out.strip().splitlines()[0]) / 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _bergson(
    model_dir: Path, data: Path, flags: list[str], work: Path
) -> tuple[float, float | None, str]:
    """Wall seconds of one `bergson build`, the most GPU memory seen in use meanwhile, its log."""
    run = work / f"run-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "bergson", "build", str(run), "--model", str(model_dir),
               "--dataset", str(data), *BERGSON_COMMON, *flags]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("BENCH_GPU", "0")}
    base = _gpu_memory_used()
    peak = [base]
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            used = _gpu_memory_used()
            if used is not None and peak[0] is not None:
                peak[0] = max(peak[0], used)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=150)
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"bergson exited {proc.returncode}: {proc.stderr[-1500:]}")
    memory = None if base is None or peak[0] is None else peak[0] - base
    return seconds, memory, proc.stderr[-400:]


def run_bergson_set(model_dir: Path, rows: list[dict], name: str, work: Path, configs) -> dict:
    data = work / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    small = work / f"{name}-32.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in rows[:32]))
    out: dict = {}
    overhead = None
    for key in configs:
        try:
            if overhead is None:  # start-up and model load: the same for every set of flags
                overhead, _, _ = _bergson(model_dir, small, BERGSON[key], work)
            seconds, memory, _ = _bergson(model_dir, data, BERGSON[key], work)
            rate = (len(rows) - 32) / max(seconds - overhead, 1e-9)
            out[key] = {"rows_per_s": rate, "seconds": seconds, "startup_seconds": overhead,
                        "peak_memory_gib": memory}  # fmt: skip
        except Exception as error:  # noqa: BLE001 - report why a peer did not run, keep going
            out[key] = {"error": f"{error!r:.1200}"}
        print(f"  {name} {key}: {out[key]}", flush=True)
    return out


def save_model(proxy, tokenizer_dir: Path, folder: Path) -> Path:
    from transformers import AutoTokenizer

    proxy.model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    cosines = np.sum(a.astype(np.float64) * b, axis=1)
    return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cosines.min())}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", action="store_true", help="small config on the CPU (smoke test)")
    parser.add_argument("--assets", type=Path, default=None, help="folder from --export-assets")
    parser.add_argument("--export-assets", type=Path, default=None)
    parser.add_argument("--no-bergson", action="store_true")
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed passes (median)")
    parser.add_argument("--profile", type=Path, default=None, help="write a kernel table here")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.export_assets:
        export_assets(args.export_assets)
        return
    from transformers import AutoTokenizer

    from core.features.proxy import default_model_dir

    cpu_mode = args.cpu or not torch.cuda.is_available()
    device = "cpu" if cpu_mode else "cuda"
    tokenizer_dir = args.assets / "tokenizer" if args.assets else default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    arch = {**SMALL, "vocab_size": len(tokenizer)} if cpu_mode else QWEN25_05B
    dtype = torch.float32 if cpu_mode else torch.bfloat16
    batch_tokens = args.batch_tokens or default_batch_tokens(device)
    repeats = args.repeats or (1 if cpu_mode else 5)
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = gsm8k_rows(args.assets)[: 48 if cpu_mode else None]
    sets = {"short": rows, "long": long_rows(rows)}
    proxy = build_proxy(arch, device=device, dtype=dtype)
    proxy.tokenizer = tokenizer
    n_params = FeatureExtractor(proxy, FeatureConfig(model="bench", device=device)).n_params
    peak = matmul_rate(device, dtype, 1024 if cpu_mode else 8192)
    result: dict = {
        "device": torch.cuda.get_device_name() if not cpu_mode else "cpu",
        "torch": torch.__version__,
        "arch": "small" if cpu_mode else "Qwen2.5-0.5B (random weights)",
        "n_params_linear": n_params,
        "dtype": str(dtype).removeprefix("torch."),
        "batch_tokens": batch_tokens,
        "repeats": repeats,
        "matmul_flops": peak,
        "sets": {},
    }
    out = args.out or Path(__file__).parent / "results" / (
        "peers-cpu.json" if cpu_mode else "peers.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, set_rows in sets.items():
        encoded = encode_rows(tokenizer, set_rows)
        tokens = np.array([len(e.input_ids) for e in encoded])
        entry: dict = {"rows": len(encoded), "mean_tokens": float(tokens.mean()),
                       "max_tokens": int(tokens.max()), "peers": {}}  # fmt: skip
        variants = (  # key, packed, × batch tokens, fused SiLU·up and rotary
            ("prism_packed", True, 1, True),
            ("prism_packed_2x", True, 2, True),
            ("prism_packed_eager_mlp", True, 1, False),
            ("prism_padded", False, 1, True),
        )
        for key, packed, scale, fused_mlps in variants:
            run = run_prism(
                proxy,
                encoded,
                packed=packed,
                batch_tokens=scale * batch_tokens,
                device=device,
                repeats=repeats,
                fused_mlps=fused_mlps,
                profile=args.profile if key == "prism_packed" and name == "short" else None,
            )
            run["mfu_6pt"] = 6 * n_params * run["tokens_per_s"] / peak
            run["flops_done_fraction"] = run["flops_done_per_s"] / peak
            entry[key] = run
            print(
                f"  {name} {key}: {run['rows_per_s']:.1f} rows/s, {run['tokens_per_s']:.0f} tok/s",
                flush=True,
            )
        entry["prism_packed_2x"].pop("features")
        entry["fused_vs_eager_mlp"] = agreement(
            entry["prism_packed"]["features"], entry["prism_packed_eager_mlp"].pop("features")
        )
        entry["packed_vs_padded"] = agreement(
            entry["prism_packed"].pop("features"), entry["prism_padded"].pop("features")
        )
        entry["train_step"] = run_train(proxy, encoded, batch_tokens=batch_tokens, device=device)
        entry["train_step"]["mfu_6pt"] = 6 * n_params * entry["train_step"]["tokens_per_s"] / peak
        result["sets"][name] = entry
    if not cpu_mode:
        # The variable-length kernel against the padded path in float32: exactness, not bf16 noise.
        encoded = encode_rows(tokenizer, rows[:64])
        proxy.model.float()
        runs = [
            run_prism(proxy, encoded, packed=p, batch_tokens=batch_tokens, device=device)
            for p in (True, False)
        ]
        result["float32_packed_vs_padded"] = {
            "rows": 64,
            **agreement(runs[0]["features"], runs[1]["features"]),
        }
        proxy.model.to(dtype)
    out.write_text(json.dumps(result, indent=2) + "\n")  # Prism's rows are kept if a peer hangs
    if not cpu_mode and not args.no_bergson:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = save_model(proxy, tokenizer_dir, Path(tmp) / "model")
            for name, set_rows in sets.items():
                keys = BERGSON if name == "short" else BERGSON_ON_LONG
                peers = run_bergson_set(model_dir, set_rows, name, Path(tmp), keys)
                result["sets"][name]["peers"] = peers
                out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {out}")


def print_table(result: dict) -> None:
    print(
        f"{result['device']}, {result['arch']}, {result['dtype']}, matmul {result['matmul_flops'] / 1e12:.0f} TFLOP/s"
    )
    print(
        f"{'rows':>6} {'method':>22} {'rows/s':>9} {'tok/s':>9} {'6PT MFU':>8} {'done':>6} {'GiB':>6}"
    )
    for name, entry in result["sets"].items():
        mean = entry["mean_tokens"]
        methods = {
            k: entry[k]
            for k in (
                "prism_packed",
                "prism_packed_2x",
                "prism_packed_eager_mlp",
                "prism_padded",
                "train_step",
            )
            if k in entry
        }
        methods.update(entry["peers"])
        for key, run in methods.items():
            if "error" in run:
                print(f"{name:>6} {key:>22} failed: {run['error'][:80]}")
                continue
            tok = run.get("tokens_per_s", run["rows_per_s"] * mean)
            mfu = run.get("mfu_6pt")
            done = run.get("flops_done_fraction")
            print(f"{name:>6} {key:>22} {run['rows_per_s']:>9.1f} {tok:>9.0f} "
                  f"{'' if mfu is None else f'{100 * mfu:.1f}%':>8} {'' if done is None else f'{100 * done:.1f}%':>6} "
                  f"{run['peak_memory_gib'] or 0:>6.1f}")  # fmt: skip
        print(
            f"{name:>6} packed vs padded (bf16): min cosine {entry['packed_vs_padded']['min_cosine']:.6f}"
        )
    if "float32_packed_vs_padded" in result:
        print(
            f"float32 packed vs padded on the GPU: max |Δ| {result['float32_packed_vs_padded']['max_abs_diff']:.1e}"
        )


if __name__ == "__main__":
    main()
