"""Does targeted selection help training? Fine-tune the proxy on 5 % of a pool chosen four ways.

    python bench/targeted_training.py                  # the embedded SmolLM2-135M on a GPU
    python bench/targeted_training.py --smoke          # tiny model, few rows, CPU: the script runs

Pool (real rows shipped inside installed packages, as in bench/targeted.py): GSM8K test (at most
``--gsm8k-pool`` rows), GPQA diamond, numpy's docstrings and AIME 2025 (pool only). Per source a
seeded shuffle sets aside 20 rows as the target examples and the next 40 as held-out evaluation
rows; the rest (up to the cap) is the pool. Targets: one per scenario (GPQA, GSM8K, numpy docs).

For each target, ``prism features`` on the pool and ``prism target add`` of its 20 examples (one
feature space, the embedded proxy, d = 1,024), then 5 % of the pool chosen by ``targeted``
(mean-max relevance), ``targeted_diverse``, ``vendi_greedy`` and ``random``, seeds 0, 1, 2 (the
seed also orders training). Each subset fine-tunes a fresh copy of the same model for the same
number of optimizer steps (AdamW, float32, batches of 8 rows drawn in a seeded order, loss over
response tokens only, as extraction computes it), and is scored on the target's 40 held-out rows:
their mean response-token loss, and for GSM8K exact match of the final answer (greedy decoding).
The untuned model is the reference row. Writes bench/results/targeted_training.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.targeted import SOURCES, prism, write_jsonl  # noqa: E402
from core.features.tokenize import Encoded, encode_many  # noqa: E402
from core.measures.relevance import group_relevance  # noqa: E402
from core.measures.vendi import vendi_score  # noqa: E402
from core.select.selectors import Pool, select  # noqa: E402
from core.workspace.store import Workspace  # noqa: E402
from core.workspace.targets import group_codes, target_features  # noqa: E402

RESULTS = REPO / "bench" / "results" / "targeted_training.json"
SEED = 0
N_TARGET, N_EVAL = 20, 40
POOL_ONLY = ("aime",)
SCENARIOS = ("gpqa", "gsm8k", "numpy_docs")
METHODS = ("targeted", "targeted_diverse", "vendi_greedy", "random")
FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def split(gsm8k_pool: int, smoke: bool) -> tuple[list[dict], dict[str, list[dict]], dict]:
    """(pool rows, target examples per source, held-out rows per source)."""
    pool: list[dict] = []
    targets: dict[str, list[dict]] = {}
    held: dict[str, list[dict]] = {}
    for source, read in SOURCES.items():
        rows = read()
        order = np.random.default_rng(SEED).permutation(len(rows))
        tagged = [{"id": f"{source}-{i}", "source": source, **rows[i]} for i in order]
        if source not in POOL_ONLY:
            targets[source], held[source] = tagged[:N_TARGET], tagged[N_TARGET : N_TARGET + N_EVAL]
            tagged = tagged[N_TARGET + N_EVAL :]
        cap = gsm8k_pool if source == "gsm8k" else len(tagged)
        pool += tagged[: 12 if smoke else cap]
    if smoke:
        targets = {s: rows[:4] for s, rows in targets.items()}
        held = {s: rows[:4] for s, rows in held.items()}
    return pool, targets, held


def chats(rows: list[dict]) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        for r in rows
    ]


def batch(encoded: list[Encoded], pad: int, device: str) -> tuple[torch.Tensor, ...]:
    """Padded ids, attention mask and labels (-100 outside the response) of ``encoded``."""
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, e.n_prompt : n] = ids[i, e.n_prompt : n]
    return ids.to(device), mask.to(device), labels.to(device)


def response_loss(model: Any, encoded: list[Encoded], pad: int, device: str) -> float:
    """Mean loss per response token over ``encoded`` (token-weighted, as one long sequence)."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), 16):
            ids, mask, labels = batch(encoded[start : start + 16], pad, device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"
            )
            total += float(loss)
            count += int((target != -100).sum())
    return total / max(count, 1)


def exact_match(model: Any, tokenizer: Any, rows: list[dict], device: str, new: int) -> float:
    """Share of GSM8K rows whose generated final number equals the reference's ``#### N``."""
    encoded = encode_many(tokenizer, chats(rows))
    hits = 0
    model.eval()
    tokenizer.padding_side = "left"
    for start in range(0, len(rows), 20):
        prompts = [list(e.input_ids[: e.n_prompt]) for e in encoded[start : start + 20]]
        width = max(map(len, prompts))
        pad = tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        mask = (torch.arange(width, device=device)[None] >= torch.tensor(
            [width - len(p) for p in prompts], device=device)[:, None]).long()  # fmt: skip
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new,
                                 do_sample=False, pad_token_id=pad)  # fmt: skip
        for row, seq in zip(rows[start : start + 20], out[:, width:], strict=True):
            text = tokenizer.decode(seq, skip_special_tokens=True)
            gold = FINAL.search(row["response"])
            found = FINAL.search(text) or (NUMBER.findall(text) or [None])[-1]
            guess = found.group(1) if isinstance(found, re.Match) else found
            if gold and guess and guess.replace(",", "") == gold.group(1).replace(",", ""):
                hits += 1
    return hits / len(rows)


def fine_tune(model_dir: Path, encoded: list[Encoded], args, seed: int, pad: int) -> Any:
    """A fresh copy of the model trained ``args.steps`` steps on ``encoded`` (seeded order)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(args.device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    order: list[int] = []
    for _ in range(args.steps):
        if len(order) < args.batch:
            order += rng.permutation(len(encoded)).tolist()
        take, order = order[: args.batch], order[args.batch :]
        ids, mask, labels = batch([encoded[i] for i in take], pad, args.device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, few rows, CPU")
    parser.add_argument("--gsm8k-pool", type=int, default=400)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.smoke:
        args.steps, args.seeds, args.new_tokens = 2, 1, 8
    model_name = "tiny" if args.smoke else "default"
    t_start = time.perf_counter()
    pool_rows, target_rows, held_rows = split(args.gsm8k_pool, args.smoke)
    from transformers import AutoTokenizer

    from core.features.proxy import default_model_dir, load_proxy

    with tempfile.TemporaryDirectory(prefix="prism-targeted-training-") as tmp:
        root = Path(tmp)
        ws_path = root / "ws"
        t0 = time.perf_counter()
        prism("features", str(write_jsonl(root / "pool.jsonl", pool_rows)), "--workspace",
              str(ws_path), "--model", model_name, "--dim", "1024", "--max-length",
              str(args.max_length), "--quiet")  # fmt: skip
        t_features = time.perf_counter() - t0
        for source, rows in target_rows.items():
            prism("target", "add", str(ws_path), str(write_jsonl(root / f"{source}.jsonl", rows)),
                  "--name", source)  # fmt: skip
        ws = Workspace.open(ws_path)
        features = np.array(ws.features())
        ids = ws.samples(columns=["id"])["id"].tolist()
        relevance = {}
        for source in target_rows:
            codes, _ = group_codes(ws, source)
            relevance[source] = group_relevance(features, target_features(ws, source), groups=codes)
        if args.smoke:
            # The tiny proxy is a random model: save it so training has a directory to load.
            proxy = load_proxy("tiny", device="cpu")
            model_dir = root / "tiny"
            proxy.model.save_pretrained(model_dir)
            proxy.tokenizer.save_pretrained(model_dir)
        else:
            model_dir = default_model_dir()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        by_id = {r["id"]: r for r in pool_rows}
        pool_encoded = encode_many(
            tokenizer, chats([by_id[i] for i in ids]), max_length=args.max_length
        )
        source_of = np.array([by_id[i]["source"] for i in ids])
        budget = max(2, round(args.fraction * len(ids)))
        rows: list[dict[str, Any]] = []
        for scenario in args.scenarios:
            held_encoded = encode_many(
                tokenizer, chats(held_rows[scenario]), max_length=args.max_length
            )

            def score(
                model: Any,
                held_encoded: list[Encoded] = held_encoded,
                gsm: bool = scenario == "gsm8k",
            ) -> dict:
                out = {"held_out_loss": response_loss(model, held_encoded, pad, args.device)}
                if gsm:
                    out["exact_match"] = exact_match(
                        model, tokenizer, held_rows["gsm8k"], args.device, args.new_tokens
                    )
                return out

            from transformers import AutoModelForCausalLM

            base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
            rows.append({"scenario": scenario, "method": "untuned", "seed": None,
                         **score(base.to(args.device))})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
            del base
            pool = Pool(features, relevance=relevance[scenario])
            for method in METHODS:
                for seed in range(args.seeds):
                    chosen = select(method, pool, budget=budget, seed=seed)
                    t0 = time.perf_counter()
                    model = fine_tune(model_dir, [pool_encoded[i] for i in chosen], args, seed, pad)
                    rows.append(
                        {
                            "scenario": scenario,
                            "method": method,
                            "seed": seed,
                            "rows": len(chosen),
                            "target_share": float((source_of[chosen] == scenario).mean()),
                            "g_vendi": vendi_score(features[chosen]),
                            "train_seconds": time.perf_counter() - t0,
                            **score(model),
                        }
                    )
                    del model
                    print(json.dumps(rows[-1]), flush=True)
    result = {
        "model": "tiny (smoke)" if args.smoke else "embedded SmolLM2-135M-Instruct",
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "pool_rows": len(ids),
        "pool_sources": {s: int((source_of == s).sum()) for s in SOURCES},
        "budget": budget,
        "fraction": args.fraction,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "max_length": args.max_length,
        "seconds": {"features": t_features, "total": time.perf_counter() - t_start},
        "rows": rows,
    }
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def print_table(result: dict) -> None:
    print(f"pool {result['pool_sources']}, {result['budget']} rows per subset "
          f"({100 * result['fraction']:.0f} %), {result['steps']} steps × {result['batch']} rows, "
          f"{result['model']} on {result['device']}")  # fmt: skip
    print(f"{'target':<11} {'method':<17} {'target share':>12} {'G-Vendi':>8} "
          f"{'held-out loss':>18} {'exact match':>12}")  # fmt: skip
    for scenario in SCENARIOS:
        for method in ("untuned", *METHODS):
            runs = [
                r for r in result["rows"] if r["scenario"] == scenario and r["method"] == method
            ]
            if not runs:
                continue
            loss = np.array([r["held_out_loss"] for r in runs])
            share = np.mean([r.get("target_share", np.nan) for r in runs])
            vendi = np.mean([r.get("g_vendi", np.nan) for r in runs])
            em = [r["exact_match"] for r in runs if "exact_match" in r]
            spread = f" ± {loss.std():.3f}" if len(loss) > 1 else ""
            print(f"{scenario:<11} {method:<17} {share:>12.2f} {vendi:>8.1f} "
                  f"{loss.mean():>10.3f}{spread:<8} "
                  f"{'' if not em else f'{100 * np.mean(em):.1f} %':>12}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
