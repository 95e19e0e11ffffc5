"""Prism against its closest peer (EleutherAI Bergson `build`) and a training step, same rows.

    python bench/peers.py --export-assets DIR   # write DIR/gsm8k.jsonl and DIR/tokenizer (here)
    python bench/peers.py --assets DIR          # on a CUDA machine (Bergson 2.5.1 installed)
    python bench/peers.py --cpu                 # small config on the CPU (a smoke test)

Rows: the packaged GSM8K test split (1,319 rows) repeated ``--copies`` times (8 on a GPU: 10,552
short rows), and long rows, each four GSM8K pairs joined (questions as the prompt, answers as the
response), likewise repeated (329 × 8 = 2,632). Bergson's commands repeat the same split more
often: each is sized so that its work is at least 10× its start-up (which is subtracted). Model: the Qwen2.5-0.5B architecture with seeded
random weights (no download; throughput does not depend on weight values), built once, saved, and
loaded by every side; bf16, every Linear weight, response-only loss, the embedded proxy's tokenizer.

Each side runs in its own process, one after another, so none starts on a GPU that another still
holds (the memory in use when each side starts is recorded):
- Prism: packed (the GPU default) and padded (length-grouped, masked); ``--variants`` adds twice
  the token budget and the model's own eager SiLU·up and rotary. A warm-up pass over the split once
  (every row length, so every kernel shape is compiled), then the median of ``--repeats`` passes.
- The reference: a standard bf16 training step (forward, loss, backward with weight gradients; no
  optimizer update) over the padded batches, the loss over response tokens only, the head's logits
  computed at response positions alone, 8,192 positions at a time, cast to float32 for the loss.
- Bergson `build` with the flags below, each command in its own process: its whole wall clock,
  the same command on 32 rows (start-up and model load, once per row set), and the rate of the work
  left after subtracting that start-up; also the time of its own progress bar's loop. Its memory is
  what nvidia-smi saw. Commands run in the order of ``BERGSON_PLAN`` while ``--deadline`` allows.
Counted FLOPs: ``6·P·T`` for T real tokens (P: the Linear weights), and the FLOPs each Prism
variant actually does (padding, attention and sketch included, no weight gradients).
Writes bench/results/peers.json (peers-cpu.json with --cpu).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpu import QWEN25_05B, SMALL, build_proxy, matmul_rate, sync  # noqa: E402
from core.features.extract import (  # noqa: E402
    FeatureConfig,
    FeatureExtractor,
    default_batch_tokens,
)
from core.features.proxy import Proxy  # noqa: E402
from core.features.tokenize import Encoded, encode_many  # noqa: E402

BERGSON = {
    "bergson_p16": ["--projection_dim", "16"],
    "bergson_p16_tb32k": ["--projection_dim", "16", "--token_batch_size", "32768"],
    "bergson_global_p1024": [
        "--projection_dim",
        "1024",
        "--projection_target",
        "global",
        "--token_batch_size",
        "32768",
    ],
}
BERGSON_COMMON = [
    "--precision",
    "bf16",
    "--prompt_column",
    "question",
    "--completion_column",
    "answer",
]
# (flags, row set, rows/s expected on that set). Each command's rows are the split repeated often
# enough that its work is at least WORK_OVER_STARTUP times its start-up, measured just before (the
# expected rates are Bergson 2.5.1's on one H200: a run that turns out faster than expected is
# flagged in its row). Run in this order while the deadline allows.
BERGSON_PLAN = (
    ("bergson_p16_tb32k", "short", 345.0),
    ("bergson_p16_tb32k", "long", 87.0),
    ("bergson_global_p1024", "short", 35.0),
    ("bergson_p16", "short", 42.0),
    ("bergson_global_p1024", "long", 9.0),
)
WORK_OVER_STARTUP = 10.0
STARTUP_ROWS = 32
PRISM_VARIANTS = {  # key: packed, × token budget, fused SiLU·up and rotary
    "prism_packed": (True, 1, True),
    "prism_padded": (False, 1, True),
    "prism_packed_2x": (True, 2, True),
    "prism_packed_eager_mlp": (True, 1, False),
}
HEAD_CHUNK = 8192  # response positions whose logits the reference step holds at once


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


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- the Prism side (its own process) -------------------------------------------------------


def load_proxy(model_dir: Path, device: str) -> Proxy:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return Proxy(model=model, tokenizer=tokenizer, name="qwen2-random", fingerprint="bench")


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
    warmup: int,
    repeats: int = 1,
    fused_mlps: bool = True,
    profile: Path | None = None,
) -> dict:
    """Prism over ``encoded`` after a warm-up over its first ``warmup`` rows: the median of
    ``repeats`` timed passes."""
    dtype = "bfloat16" if next(proxy.model.parameters()).dtype == torch.bfloat16 else "float32"
    config = FeatureConfig(model="bench", dtype=dtype, batch_tokens=batch_tokens, device=device)
    extractor = FeatureExtractor(proxy, config)
    extractor.pack = packed
    extractor.fused_mlps = fused_mlps
    extractor.compute(encoded[:warmup])  # compiles the fused kernels for every row length
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


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    cosines = np.sum(a.astype(np.float64) * b, axis=1)
    return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cosines.min())}


def prism_side(args, device: str, sets: dict[str, list[Encoded]]) -> dict:
    proxy = load_proxy(args.model, device)
    dtype = next(proxy.model.parameters()).dtype
    n_params = FeatureExtractor(proxy, FeatureConfig(model="bench", device=device)).n_params
    peak = matmul_rate(device, dtype, 1024 if device == "cpu" else 8192)
    out: dict = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "n_params_linear": n_params,
        "dtype": str(dtype).removeprefix("torch."),
        "matmul_flops": peak,
        "sets": {},
    }
    for name, encoded in sets.items():
        entry: dict = {}
        for key in args.variants:
            packed, scale, fused = PRISM_VARIANTS[key]
            run = run_prism(
                proxy,
                encoded,
                packed=packed,
                batch_tokens=scale * args.batch_tokens,
                device=device,
                warmup=max(1, len(encoded) // args.copies),
                repeats=args.repeats,
                fused_mlps=fused,
                profile=args.profile if key == "prism_packed" and name == "short" else None,
            )
            run["mfu_6pt"] = 6 * n_params * run["tokens_per_s"] / peak
            run["flops_done_fraction"] = run["flops_done_per_s"] / peak
            entry[key] = run
            print(
                f"  {name} {key}: {run['rows_per_s']:.1f} rows/s, "
                f"{run['tokens_per_s']:.0f} tok/s, passes {run['seconds_each']}",
                flush=True,
            )
        for key, other in (
            ("packed_vs_padded", "prism_padded"),
            ("fused_vs_eager_mlp", "prism_packed_eager_mlp"),
        ):
            if "prism_packed" in entry and other in entry:
                entry[key] = agreement(entry["prism_packed"]["features"], entry[other]["features"])
        for run in entry.values():
            run.pop("features", None)
        out["sets"][name] = entry
    if device.startswith("cuda") and {"prism_packed", "prism_padded"} <= set(args.variants):
        # The variable-length kernel against the padded path in float32: exactness, not bf16 noise.
        encoded = next(iter(sets.values()))[:64]
        proxy.model.float()
        runs = [
            run_prism(
                proxy, encoded, packed=p, batch_tokens=args.batch_tokens, device=device, warmup=8
            )
            for p in (True, False)
        ]
        out["float32_packed_vs_padded"] = {
            "rows": len(encoded),
            **agreement(runs[0]["features"], runs[1]["features"]),
        }
    return out


# ---- the reference: a standard bf16 training step (its own process) -------------------------


def train_step(model, batch: list[Encoded], *, device: str, pad_id: int) -> None:
    """Forward, loss over response tokens only, backward with weight gradients; no update.

    The head's logits are computed at response positions alone, ``HEAD_CHUNK`` at a time, and
    cast to float32 for the loss (bf16 logits of every position would be 151,936 numbers each)."""
    lengths = torch.tensor([len(e.input_ids) for e in batch])
    width = int(lengths.max())
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    for row, e in enumerate(batch):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
    n_prompt = torch.tensor([max(e.n_prompt, 1) for e in batch])
    positions = torch.arange(width - 1)
    # Position t predicts token t + 1: response tokens sit at n_prompt … length - 1.
    select = (positions[None] >= n_prompt[:, None] - 1) & (positions[None] < lengths[:, None] - 1)
    targets = ids[:, 1:][select]
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
    select, targets = select.to(device, non_blocking=True), targets.to(device, non_blocking=True)
    ragged = bool((lengths < width).any())
    hidden = model.base_model(
        input_ids=ids, attention_mask=mask if ragged else None, use_cache=False
    ).last_hidden_state
    rows = hidden[:, :-1][select]
    head = model.get_output_embeddings()
    losses = [
        torch.nn.functional.cross_entropy(
            head(rows[lo : lo + HEAD_CHUNK]).float(), targets[lo : lo + HEAD_CHUNK], reduction="sum"
        )
        for lo in range(0, len(rows), HEAD_CHUNK)
    ]
    (torch.stack(losses).sum() / len(rows)).backward()
    model.zero_grad(set_to_none=True)


def train_side(args, device: str, sets: dict[str, list[Encoded]]) -> dict:
    proxy = load_proxy(args.model, device)
    model = proxy.model
    extractor = FeatureExtractor(
        proxy, FeatureConfig(model="bench", batch_tokens=args.batch_tokens, device=device)
    )
    extractor.pack = False  # the padded, length-grouped batches of Prism's padded variant
    n_params = extractor.n_params
    pad_id = proxy.tokenizer.pad_token_id or 0
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    out: dict = {"sets": {}}
    for name, encoded in sets.items():
        batches = extractor.batches(encoded)
        for batch in batches[:2]:  # warm-up: the longest batches (allocator, kernel choice)
            train_step(model, [encoded[i] for i in batch], device=device, pad_id=pad_id)
        sync(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(args.train_repeats):
            start = time.perf_counter()
            for batch in batches:
                train_step(model, [encoded[i] for i in batch], device=device, pad_id=pad_id)
            sync(device)
            times.append(time.perf_counter() - start)
        seconds = float(np.median(times))
        tokens = sum(len(e.input_ids) for e in encoded)
        out["sets"][name] = {
            "rows_per_s": len(encoded) / seconds,
            "tokens_per_s": tokens / seconds,
            "seconds": seconds,
            "seconds_each": times,
            "n_passes": len(times),
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30
            if device.startswith("cuda")
            else None,
            "n_params_linear": n_params,
        }
        print(
            f"  {name} train_step: {len(encoded) / seconds:.1f} rows/s, passes {times}", flush=True
        )
    return out


def worker(args) -> None:
    device = "cpu" if args.cpu else "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sets = {
        name: encode_rows(tokenizer, read_rows(args.data / f"{name}.jsonl"))
        for name in ("short", "long")
    }
    side = prism_side if args.worker == "prism" else train_side
    args.part.write_text(json.dumps(side(args, device, sets), indent=2) + "\n")


# ---- Bergson (each command its own process) --------------------------------------------------


def _gpu_memory_used() -> float | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return float(out.strip().splitlines()[0]) / 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def progress_seconds(log: str) -> float | None:
    """Elapsed time of the last finished ``Computing …`` progress bar in Bergson's log (tqdm's
    ``[mm:ss<00:00`` or ``[h:mm:ss<00:00``: whole seconds), or None."""
    found = None
    for line in re.split(r"[\r\n]", log):
        if "Computing" not in line or "100%" not in line:
            continue
        match = re.search(r"\[(?:(\d+):)?(\d+):(\d+)<", line)
        if match:
            hours, minutes, seconds = (int(g or 0) for g in match.groups())
            found = float(3600 * hours + 60 * minutes + seconds)
    return found


def bergson_command(model_dir: Path, data: Path, flags: list[str], work: Path) -> list[str]:
    run = work / f"run-{time.monotonic_ns()}"
    return [
        sys.executable,
        "-m",
        "bergson",
        "build",
        str(run),
        "--model",
        str(model_dir),
        "--dataset",
        str(data),
        *BERGSON_COMMON,
        *flags,
    ]


def timed_process(command: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run ``command`` in its own process group: wall seconds, the most GPU memory seen in use
    meanwhile above what was in use before, exit code and output. Killed at ``timeout``."""
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
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    return {
        "seconds": seconds,
        "gpu_memory_before_gib": base,
        "peak_memory_gib": None if base is None or peak[0] is None else peak[0] - base,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "stdout": stdout,
        "stderr": stderr,
    }


def run_bergson_plan(
    model_dir: Path,
    sets: dict,
    work: Path,
    args,
    deadline: float,
    out: dict[str, dict],
    keep: Callable[[], None],
) -> None:
    """Bergson's commands in ``BERGSON_PLAN`` order; each set's start-up is measured before its
    first command. Fills ``out`` ({set: {key: result}}) as commands finish and calls ``keep``
    after each; a command that could not run says why."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("BENCH_GPU", "0")}
    startup: dict[str, dict] = {}
    for key, name, expected in BERGSON_PLAN:
        if key not in args.bergson:
            continue
        split = sets[name][: len(sets[name]) // args.copies]
        try:
            if name not in startup:
                small = work / f"{name}-{STARTUP_ROWS}.jsonl"
                write_rows(small, split[:STARTUP_ROWS])
                first = timed_process(
                    bergson_command(model_dir, small, BERGSON[key], work),
                    deadline - time.monotonic(),
                    env,
                )
                if first["returncode"] != 0:
                    raise RuntimeError(
                        f"start-up run exited {first['returncode']}: {first['stderr'][-1500:]}"
                    )
                startup[name] = first
            copies = bergson_copies(startup[name]["seconds"], expected, len(split), args)
            rows = split * copies
            data = work / f"{name}-x{copies}.jsonl"
            if not data.exists():
                write_rows(data, rows)
            left = deadline - time.monotonic()
            if left < (WORK_OVER_STARTUP + 1.5) * startup[name]["seconds"]:
                out[name][key] = {
                    "not_run": "the run's time limit would come before it could finish",
                    "rows": len(rows),
                }
                print(f"  {name} {key}: not run (time limit)", flush=True)
                continue
            run = timed_process(bergson_command(model_dir, data, BERGSON[key], work), left, env)
            if run["timed_out"]:
                raise RuntimeError(f"stopped at the run's time limit after {run['seconds']:.0f} s")
            if run["returncode"] != 0:
                raise RuntimeError(f"bergson exited {run['returncode']}: {run['stderr'][-1500:]}")
            start_s = startup[name]["seconds"]
            work_s = run["seconds"] - start_s
            loop = progress_seconds(run["stderr"])
            out[name][key] = {
                "rows": len(rows),
                "copies": copies,
                "rows_per_s": (len(rows) - STARTUP_ROWS) / max(work_s, 1e-9),
                "seconds": run["seconds"],
                "startup_seconds": start_s,
                "startup_rows": STARTUP_ROWS,
                "work_over_startup": work_s / start_s,
                "progress_seconds": loop,
                "progress_rows_per_s": None if not loop else len(rows) / loop,
                "peak_memory_gib": run["peak_memory_gib"],
                "gpu_memory_before_gib": run["gpu_memory_before_gib"],
            }
            if work_s < WORK_OVER_STARTUP * start_s:
                out[name][key]["undersized"] = (
                    f"faster than the {expected:g} rows/s its size was planned for: its work is "
                    f"{work_s / start_s:.1f}× its start-up"
                )
        except Exception as error:  # noqa: BLE001 - report why a peer did not run, keep going
            out[name][key] = {"error": str(error)[-1500:], "rows": len(split)}
        print(f"  {name} {key}: {out[name][key]}", flush=True)
        keep()


def bergson_copies(startup_s: float, expected_rows_per_s: float, split_rows: int, args) -> int:
    """Copies of the split that give Bergson ``WORK_OVER_STARTUP`` times its start-up in work at
    the rate expected (never fewer than Prism's own ``--copies``; 1 for the CPU smoke test)."""
    if args.cpu:
        return 1
    rows = WORK_OVER_STARTUP * startup_s * expected_rows_per_s + STARTUP_ROWS
    return max(args.copies, -(-int(rows) // split_rows))


# ---- the run ---------------------------------------------------------------------------------


def save_model(arch: dict, dtype: torch.dtype, tokenizer_dir: Path, folder: Path) -> Path:
    """The random-weight model every side loads (built on the CPU: this process holds no GPU)."""
    from transformers import AutoTokenizer

    proxy = build_proxy(arch, device="cpu", dtype=dtype)
    proxy.model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def run_side(kind: str, args, model_dir: Path, data: Path, work: Path, deadline: float) -> dict:
    part = work / f"{kind}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--part",
        str(part),
        "--batch-tokens",
        str(args.batch_tokens),
        "--repeats",
        str(args.repeats),
        "--train-repeats",
        str(args.train_repeats),
        "--copies",
        str(args.copies),
        "--variants",
        *args.variants,
    ]
    if args.cpu:
        command.append("--cpu")
    if args.profile:
        command += ["--profile", str(args.profile)]
    run = timed_process(command, deadline - time.monotonic())
    sys.stdout.write(run["stdout"])
    if run["returncode"] != 0 or not part.exists():
        raise RuntimeError(f"the {kind} side exited {run['returncode']}: {run['stderr'][-3000:]}")
    result = json.loads(part.read_text())
    result["process"] = {k: run[k] for k in ("seconds", "gpu_memory_before_gib")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu", action="store_true", help="small config on the CPU (smoke test)")
    parser.add_argument("--assets", type=Path, default=None, help="folder from --export-assets")
    parser.add_argument("--export-assets", type=Path, default=None)
    parser.add_argument(
        "--copies", type=int, default=None, help="repeats of the split (8 on a GPU)"
    )
    parser.add_argument(
        "--bergson",
        nargs="*",
        default=None,
        choices=list(BERGSON),
        help="Bergson configurations (default: all on a GPU, none on a CPU)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["prism_packed", "prism_padded"],
        choices=list(PRISM_VARIANTS),
    )
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="Prism's timed passes (median)")
    parser.add_argument("--train-repeats", type=int, default=1, help="the reference's passes")
    parser.add_argument("--deadline", type=float, default=None, help="seconds the run may take")
    parser.add_argument("--profile", type=Path, default=None, help="write a kernel table here")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", choices=("prism", "train"), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--part", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    started = time.monotonic()
    if args.export_assets:
        export_assets(args.export_assets)
        return
    # torch.cuda.is_available() asks the driver without creating a context: this process holds
    # no GPU memory, so every side starts on a free device.
    args.cpu = args.cpu or not torch.cuda.is_available()
    device = "cpu" if args.cpu else "cuda"
    args.batch_tokens = args.batch_tokens or default_batch_tokens(device)
    args.repeats = args.repeats or (1 if args.cpu else 2)
    args.copies = args.copies or (1 if args.cpu else 8)
    if args.worker:
        worker(args)
        return
    deadline = started + (args.deadline or 24 * 3600)
    if args.bergson is None:
        args.bergson = [] if args.cpu else list(BERGSON)

    from core.features.proxy import default_model_dir

    tokenizer_dir = args.assets / "tokenizer" if args.assets else default_model_dir()
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tokenizer_dir))
    arch = {**SMALL, "vocab_size": vocab} if args.cpu else QWEN25_05B
    dtype = torch.float32 if args.cpu else torch.bfloat16
    split = gsm8k_rows(args.assets)[: 16 if args.cpu else None]
    base = {"short": split, "long": long_rows(split)}
    sets = {name: rows * args.copies for name, rows in base.items()}
    out = args.out or Path(__file__).parent / "results" / (
        "peers-cpu.json" if args.cpu else "peers.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        from importlib.metadata import version

        bergson_version: str | None = version("bergson")
    except Exception:  # noqa: BLE001 - not installed: its rows say why
        bergson_version = None
    result: dict = {
        "arch": "small" if args.cpu else "Qwen2.5-0.5B (random weights)",
        "batch_tokens": args.batch_tokens,
        "repeats": args.repeats,
        "train_repeats": args.train_repeats,
        "copies": args.copies,
        "split_rows": {name: len(rows) for name, rows in base.items()},
        "bergson_version": bergson_version,
        "sets": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        for name, rows in sets.items():
            write_rows(data / f"{name}.jsonl", rows)
        model_dir = save_model(arch, dtype, tokenizer_dir, work / "model")
        prism = run_side("prism", args, model_dir, data, work, deadline)
        for key in (
            "device",
            "torch",
            "n_params_linear",
            "dtype",
            "matmul_flops",
            "float32_packed_vs_padded",
        ):
            if key in prism:
                result[key] = prism[key]
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        for name, rows in sets.items():
            tokens = np.array([len(e.input_ids) for e in encode_rows(tokenizer, rows)])
            result["sets"][name] = {
                "rows": len(rows),
                "mean_tokens": float(tokens.mean()),
                "max_tokens": int(tokens.max()),
                **prism["sets"][name],
                "peers": {},
            }
        result["sides"] = {"prism": prism["process"]}
        out.write_text(json.dumps(result, indent=2) + "\n")  # kept if a later side fails
        try:
            train = run_side("train", args, model_dir, data, work, deadline)
            result["sides"]["train"] = train["process"]
            peak = result["matmul_flops"]
            for name, run in train["sets"].items():
                run["mfu_6pt"] = 6 * run.pop("n_params_linear") * run["tokens_per_s"] / peak
                result["sets"][name]["train_step"] = run
        except Exception as error:  # noqa: BLE001 - its row says why
            for name in sets:
                result["sets"][name]["train_step"] = {"error": str(error)[-1500:]}
        out.write_text(json.dumps(result, indent=2) + "\n")
        if args.bergson:

            def keep() -> None:  # what finished so far is kept if the run is stopped
                out.write_text(json.dumps(result, indent=2) + "\n")

            peers = {name: result["sets"][name]["peers"] for name in sets}
            run_bergson_plan(model_dir, sets, work, args, deadline, peers, keep)
        for key, name, _ in BERGSON_PLAN:
            if key not in args.bergson:
                rows = len(base[name])
                result["sets"][name]["peers"][key] = {"not_run": "not asked for", "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {out}")


def print_table(result: dict) -> None:
    print(
        f"{result['device']}, torch {result['torch']}, {result['arch']}, {result['dtype']}, "
        f"matmul {result['matmul_flops'] / 1e12:.0f} TFLOP/s"
    )
    print(
        f"{'rows':>6} {'method':>22} {'rows/s':>9} {'tok/s':>9} {'6PT MFU':>8} {'GiB':>6} seconds"
    )
    for name, entry in result["sets"].items():
        mean = entry["mean_tokens"]
        methods = {k: entry[k] for k in (*PRISM_VARIANTS, "train_step") if k in entry}
        methods.update(entry["peers"])
        for key, run in methods.items():
            rows = run.get("rows", entry["rows"])
            if "error" in run or "not_run" in run:
                why = run.get("error") or run.get("not_run")
                print(f"{rows:>6} {key:>22} not measured: {why[:200]}")
                continue
            tok = run.get("tokens_per_s", run["rows_per_s"] * mean)
            mfu = run.get("mfu_6pt")
            seconds = f"{run['seconds']:.1f}"
            if "startup_seconds" in run:
                seconds += f" whole − {run['startup_seconds']:.1f} start-up"
            print(
                f"{rows:>6} {key:>22} {run['rows_per_s']:>9.1f} {tok:>9.0f} "
                f"{'' if mfu is None else f'{100 * mfu:.1f}%':>8} "
                f"{run.get('peak_memory_gib') or 0:>6.1f} {seconds}"
            )
        if "packed_vs_padded" in entry:
            print(
                f"{name:>6} packed vs padded (bf16): min cosine "
                f"{entry['packed_vs_padded']['min_cosine']:.6f}"
            )
    if "float32_packed_vs_padded" in result:
        check = result["float32_packed_vs_padded"]
        print(f"float32 packed vs padded on the GPU: max |Δ| {check['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()
