"""The loss-outlier rule on the GSM8K demo, with planted broken and trivial rows beside it.

    python bench/quality_outliers.py

The demo workspace (1,319 GSM8K test rows, losses of the embedded SmolLM2-135M-Instruct) is a
clean, human-written set, so the rule (``core.measures.quality.OUTLIER_RULE``) should flag little
there. To see whether it finds what a person would flag, rows a person would flag are planted
beside it, 8 of each kind, built from other GSM8K rows, and their response loss is computed with
the same proxy and chat template (one forward pass each, ``core.features.ifd.response_losses``):

- ``mislabelled``: a question with the answer of another question;
- ``garbled``: the answer's characters reversed (a broken row);
- ``foreign``: an answer in another language (hand-written, to an English question);
- ``echo``: the answer is the question copied (trivial: the proxy copies it from the prompt);
- ``counting``: the answer is "1 2 3 … 60" (trivial).

The first three should be high-loss outliers, the last two low-loss ones. As a check that the
forward pass gives the stored loss, 16 demo rows are recomputed the same way. IFD (the loss given
the prompt over the loss of the response alone) of the planted rows and of 40 original rows
drawn with the seed shows what loss alone misses: how many have IFD ≥ 1 (the prompt does not
help, Cherry LLM's cut). Prints the counts,
the recall per planted kind, the share of flagged rows that were planted, and 20 flagged rows
with their text (most extreme first; when fewer than 20 are flagged, the most extreme unflagged
rows fill the list, marked so); writes ``bench/results/quality_outliers.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.columns import ColumnMap  # noqa: E402
from core.data.text import conversations  # noqa: E402
from core.measures.quality import OUTLIER_RULE, loss_outliers  # noqa: E402
from core.workspace.demo import SHIPPED  # noqa: E402
from core.workspace.store import Workspace  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "quality_outliers.json"
PER_KIND = 8
SHOWN = 20
SEED = 0
FOREIGN = [
    "Elle a 3 sacs de 12 pommes, donc elle a 3 × 12 = 36 pommes.\n#### 36",
    "Er verdient 15 Dollar pro Stunde und arbeitet 8 Stunden, also 15 × 8 = 120 Dollar.\n#### 120",
    "Ella compró 4 libros a 7 dólares cada uno: 4 × 7 = 28 dólares.\n#### 28",
    "他每天跑5公里，一周跑7天，所以一共跑了5 × 7 = 35公里。\n#### 35",
    "У неё было 20 конфет, она отдала 8, осталось 20 − 8 = 12 конфет.\n#### 12",
    "彼は1日に6ページ読むので、10日で6 × 10 = 60ページ読みます。\n#### 60",
    "اشترى أحمد ٥ أقلام بسعر ٣ دولارات للقلم، فدفع ٥ × ٣ = ١٥ دولارًا.\n#### 15",
    "Lei ha 9 gatti e ne adotta altri 4, quindi ora ne ha 9 + 4 = 13.\n#### 13",
]
EXPECTED = {
    "mislabelled": "high",
    "garbled": "high",
    "foreign": "high",
    "echo": "low",
    "counting": "low",
}


def planted_rows(questions: list[str], answers: list[str]) -> list[tuple[str, str, str]]:
    """(kind, question, answer) of every planted row, from GSM8K rows drawn with ``SEED``."""
    rng = np.random.default_rng(SEED)
    drawn = rng.choice(len(questions), size=len(EXPECTED) * PER_KIND + 1, replace=False).tolist()
    rows = []
    for k, kind in enumerate(EXPECTED):
        for j in range(PER_KIND):
            i = drawn[k * PER_KIND + j]
            question, answer = questions[i], answers[i]
            if kind == "mislabelled":
                answer = answers[drawn[k * PER_KIND + j + 1]]
            elif kind == "garbled":
                answer = answer[::-1]
            elif kind == "foreign":
                answer = FOREIGN[j % len(FOREIGN)]
            elif kind == "echo":
                answer = question
            elif kind == "counting":
                answer = " ".join(str(n) for n in range(1, 61))
            rows.append((kind, question, answer))
    return rows


def main() -> None:
    from core.features.ifd import losses_of, response_alone
    from core.features.proxy import load_proxy
    from core.features.tokenize import encode_many

    t0 = time.perf_counter()
    ws = Workspace.open(SHIPPED)
    frame = ws.samples()
    columns = ColumnMap.from_dict(dict(ws.dataset.columns))
    questions = frame[columns.prompt].astype(str).tolist()
    answers = frame[columns.response].astype(str).tolist()
    stored = frame["loss"].to_numpy(dtype=np.float64)
    settings = dict(ws.feature_section.settings)  # type: ignore[union-attr]

    proxy = load_proxy(settings["model"], dtype=settings["dtype"], device="cpu")
    planted = planted_rows(questions, answers)
    chats = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}] for _, q, a in planted
    ]
    check_rows = list(range(0, len(frame), len(frame) // 16))[:16]
    check_chats = [conversations(frame.iloc[[i]], columns)[0] for i in check_rows]
    encoded = encode_many(
        proxy.tokenizer, [*chats, *check_chats], max_length=settings["max_length"]
    )
    losses = losses_of(proxy, encoded, batch_size=4, batch_tokens=2048)
    planted_loss, check_loss = losses[: len(chats)], losses[len(chats) :]
    agreement = float(np.max(np.abs(check_loss / stored[check_rows] - 1)))
    originals = np.sort(np.random.default_rng(SEED + 1).choice(len(frame), 40, replace=False))
    original_chats = conversations(frame.iloc[originals], columns)
    alone = losses_of(
        proxy,
        encode_many(
            proxy.tokenizer,
            [response_alone(c) for c in [*chats, *original_chats]],  # type: ignore[arg-type]
            max_length=settings["max_length"],
        ),
        batch_size=4,
        batch_tokens=2048,
    )
    ifd = np.concatenate([planted_loss, stored[originals]]) / alone
    groups = {kind: ifd[i * PER_KIND : (i + 1) * PER_KIND] for i, kind in enumerate(EXPECTED)}
    groups["GSM8K original (40 drawn)"] = ifd[len(chats) :]
    ifd_table = {
        kind: {
            "median_ifd": round(float(np.median(v)), 3),
            "at_least_one": int((v >= 1).sum()),
            "of": len(v),
        }
        for kind, v in groups.items()
    }

    loss = np.concatenate([stored, planted_loss])
    kinds = ["GSM8K original"] * len(stored) + [f"planted: {k}" for k, _, _ in planted]
    texts = list(zip(questions, answers, strict=True)) + [(q, a) for _, q, a in planted]
    demo_only = loss_outliers(stored)
    found = loss_outliers(loss)
    flagged = found.high | found.low
    is_planted = np.arange(len(loss)) >= len(stored)
    recall = {}
    for kind, side in EXPECTED.items():
        rows = np.flatnonzero(np.array([k == f"planted: {kind}" for k in kinds]))
        hit = (found.high if side == "high" else found.low)[rows]
        recall[kind] = {"expected": side, "flagged": int(hit.sum()), "of": len(rows)}
    logs = np.log(loss)
    q1, q3 = np.percentile(logs, [25, 75])
    extremeness = np.abs(logs - np.median(logs)) / (q3 - q1)
    order = np.argsort(-(extremeness + 1e6 * flagged), kind="stable")[:SHOWN]
    shown = [
        {
            "row": int(i),
            "what": kinds[i],
            "loss": round(float(loss[i]), 4),
            "flag": "high" if found.high[i] else "low" if found.low[i] else "not flagged",
            "question": texts[i][0][:160],
            "answer": texts[i][1][:200],
        }
        for i in order
    ]
    result: dict[str, Any] = {
        "rule": OUTLIER_RULE,
        "model": settings["model"],
        "demo_rows": len(stored),
        "demo_alone": {
            "high_cut": demo_only.high_cut,
            "low_cut": demo_only.low_cut,
            "n_high": int(demo_only.high.sum()),
            "n_low": int(demo_only.low.sum()),
        },
        "with_planted": {
            "rows": len(loss),
            "planted": int(is_planted.sum()),
            "high_cut": found.high_cut,
            "low_cut": found.low_cut,
            "n_high": int(found.high.sum()),
            "n_low": int(found.low.sum()),
            "flagged_planted": int((flagged & is_planted).sum()),
            "flagged_original": int((flagged & ~is_planted).sum()),
        },
        "recall": recall,
        "forward_vs_stored_loss_max_rel": agreement,
        "ifd": ifd_table,
        "shown": shown,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()}, {platform.system()}, CPU",
    }
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"rule: {OUTLIER_RULE}")
    d = result["demo_alone"]
    print(
        f"demo alone ({len(stored):,} rows): {d['n_high']} high (loss > {d['high_cut']:.2f}), "
        f"{d['n_low']} low (loss < {d['low_cut']:.3f})"
    )
    w = result["with_planted"]
    print(
        f"with {w['planted']} planted rows: {w['n_high']} high (loss > {w['high_cut']:.2f}), "
        f"{w['n_low']} low (loss < {w['low_cut']:.3f}); flagged: {w['flagged_planted']} planted, "
        f"{w['flagged_original']} original GSM8K rows"
    )
    print("\n| planted kind | expected | flagged |\n| --- | --- | ---: |")
    for kind, r in recall.items():
        print(f"| {kind} | {r['expected']} | {r['flagged']} / {r['of']} |")
    print("\n| rows | median IFD | IFD ≥ 1 |\n| --- | ---: | ---: |")
    for kind, r in ifd_table.items():
        print(f"| {kind} | {r['median_ifd']:.3f} | {r['at_least_one']} / {r['of']} |")
    print(
        f"\nforward pass against the stored loss (16 demo rows): max relative diff {agreement:.1e}"
    )
    print(f"\n{SHOWN} most extreme rows (flagged first):")
    for r in shown:
        print(f"- [{r['flag']}] loss {r['loss']:.3f} · {r['what']}")
        print(f"    Q: {r['question'][:110]!r}")
        print(f"    A: {r['answer'][:140]!r}")
    print(
        f"\n{result['seconds']} s; wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS.name}"
    )


if __name__ == "__main__":
    main()
