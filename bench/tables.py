"""The benchmark tables of README.md and bench/README.md, rendered from bench/results/*.json.

    python bench/tables.py           # rewrite the tables in both READMEs (make bench-tables)
    python bench/tables.py --check   # exit 1 when a README's tables differ from the results

A table sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; NAME is a key of
``TABLES``, whose function renders it from the parsed results (``{"vendi": <vendi.json>, …}``).
Text outside the markers is left as it is. Standard library only, so the test suite can run it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DOCUMENTS = (REPO / "README.md", REPO / "bench" / "README.md")

# Targets of bench/features.py and bench/gpu.py (the other scripts store theirs in their JSON).
SPEEDUP_VS_NAIVE = 5.0  # Prism at least this many times faster than the naive baseline (CPU)
COST_VS_TRAIN_STEP = 1.5  # Prism at most this many times the cost of a training step (CPU)
PEAK_RSS_GB = 4.0  # peak resident memory of `prism features` (CPU)
GPU_MFU = 0.40  # MFU at 1,024 tokens (GPU)
DEMO_ROWS = 1319  # the GSM8K demo

Results = dict[str, Any]
MARKER = re.compile(r"(<!-- bench:([a-z0-9-]+) -->\n)(.*?)(<!-- /bench:\2 -->)", re.DOTALL)


def load_results(folder: Path = RESULTS) -> Results:
    """``{"vendi": …, "select": …}``: every ``*.json`` of ``folder`` by its stem."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def _table(header: list[str], align: str, rows: list[list[str]]) -> str:
    """A Markdown table; ``align`` holds one ``l`` or ``r`` per column."""
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = [header, rule, *rows]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _sci(x: float) -> str:
    """``1.3e-7`` rather than ``1.3e-07``."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _ratio(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}×"


# --- bench/features.py ---------------------------------------------------------------------------


def features(results: Results) -> str:
    r = results["features"]
    speedup, cost = r["speedup_vs_naive"], r["cost_vs_train_step"]
    caption = (
        f"{r['model']}, scope `{r['scope']}`, {r['rows']} GSM8K rows with {r['tokens']:,} tokens, "
        f"{r['threads']} threads; Prism at 1.00×, against these:\n\n"
    )
    rows = [
        [
            "Prism (hooks + two-stage Kronecker sketch)",
            f"{r['prism_samples_per_s']:.3f}",
            "1.00×",
            "",
        ],
        [
            "naive: one sample at a time, materialised "
            f"{r['params_in_scope'] / 1e6:.1f}M-weight gradient, very sparse JL",
            f"{r['naive_samples_per_s']:.3f}",
            f"Prism is {_ratio(speedup)} faster",
            f"≥ {SPEEDUP_VS_NAIVE:g}×: {_met(speedup >= SPEEDUP_VS_NAIVE)}",
        ],
        [
            "plain forward+backward training step, same batches",
            f"{r['train_step_samples_per_s']:.3f}",
            f"Prism costs {_ratio(cost, 2)} a step",
            f"≤ {COST_VS_TRAIN_STEP:g}×: {_met(cost <= COST_VS_TRAIN_STEP)}",
        ],
    ]
    return caption + _table(["method", "samples/s", "ratio", "target"], "lrrl", rows)


def features_memory(results: Results) -> str:
    r = results["features"]
    memory = r["memory"]
    rows = [
        [
            f"peak RSS of a `prism features` process on the {memory['rows']} longest GSM8K rows",
            f"{memory['peak_rss_gb']:.2f} GB",
            f"≤ {PEAK_RSS_GB:g} GB: {_met(memory['peak_rss_gb'] <= PEAK_RSS_GB)}",
        ],
        [
            f"whole demo ({DEMO_ROWS:,} rows) at Prism's rate above (an estimate)",
            f"about {r['full_demo_estimate_s'] / 60:.0f} min",
            "",
        ],
    ]
    return _table(["measure", "value", "target"], "lrl", rows)


# --- bench/vendi.py ------------------------------------------------------------------------------


def vendi(results: Results) -> str:
    r = results["vendi"]
    stream = next(row for row in r["rows"] if row["case"].startswith("stream"))
    checks = [row for row in r["rows"] if row["case"].startswith("vs vendi-score")]
    orders = " / ".join(row["case"].rsplit("q=", 1)[1].replace("inf", "∞") for row in checks)
    values = " / ".join(f"{row['value']:.2f}" for row in checks)
    worst = max(row["rel_diff"] for row in checks)
    rows = [
        [
            "streamed G-Vendi from `.npy`",
            f"{stream['n']:,}",
            f"{stream['seconds']:.2f} (target {stream['target']}: {_met(stream['ok'])})",
            f"{stream['value']:.2f}",
            "",
            "",
            "",
        ],
        [
            f"q = {orders} against the N×N kernel",
            f"{checks[0]['n']:,}",
            f"{checks[0]['seconds']:.2f}",
            values,
            "same",
            f"≤ {_sci(worst)}",
            _ratio(checks[0]["ratio"], 0),
        ],
    ]
    cpus = r.get("machine", {}).get("cpu_count")
    caption = f"On {cpus} CPU cores, d = {stream['d']:,}:\n\n" if cpus else ""
    header = ["case", "n", "seconds", "value", "reference (vendi-score)", "rel. diff"]
    return caption + _table([*header, "speed ratio"], "lrrrrrr", rows)


# --- bench/app.py --------------------------------------------------------------------------------


def app(results: Results) -> str:
    r = results["app"]
    by_case = {row["case"]: row for row in r["rows"]}
    lassos = [row for row in r["rows"] if row["case"].startswith("lasso")]
    switches = [row for row in r["rows"] if row["case"].startswith("switch")]

    def seconds(row: dict[str, Any]) -> float:
        return float(row["seconds"])

    def target(group: list[dict[str, Any]]) -> str:
        ok = all(row["ok"] == "yes" for row in group)
        return f"{group[0]['target']}: {_met(ok)}"

    sizes = " / ".join(
        re.sub(r"^lasso k = ([\d,]+).*", r"\1", row["case"]).replace(",000", "k") for row in lassos
    )
    rows = [
        ["open the map (cold)", f"{seconds(by_case['open map (cold)']):.2f} s", ""],
        [
            "page switches, cold and warm",
            f"{min(map(seconds, switches)):.2f}–{max(map(seconds, switches)):.2f} s",
            target(switches),
        ],
        [
            f"lasso of {sizes} points → selection statistics",
            " / ".join(f"{seconds(row):.2f}" for row in lassos) + " s",
            target(lassos),
        ],
        [
            "background results ready (map tiles, random curve, cluster words)",
            f"{seconds(by_case['background results ready']):.2f} s",
            "",
        ],
    ]
    caption = f"On a {r['n']:,}-point synthetic workspace, d = {r['dim']:,} (server time):\n\n"
    return caption + _table(["step", "time", "target"], "lrl", rows)


# --- bench/app_scale.py --------------------------------------------------------------------------


def _page_switch(row: dict[str, Any]) -> str:
    """The slowest warm page switch of a case (AppTest runs), and its page; – if not measured."""
    pages = row.get("pages", {}).get("switch")
    if not pages:
        return "–"
    page = max(pages, key=pages.__getitem__)
    return f"{pages[page]:.2f} s ({page})"


def app_scale(results: Results) -> str:
    r = results["app_scale"]
    targets = r["targets"]
    cases = r["rows"]

    def lasso_s(row: dict[str, Any]) -> float:
        return float(row["lasso_rows_s"]) + float(row["stats_s"])

    def g_vendi(row: dict[str, Any]) -> str:
        if not row["g_vendi_estimated"]:
            return "exact"
        return (
            f"estimate {row['g_vendi']:,.1f} ± {row['g_vendi_bound']:,.1f} "
            f"(exact {row['exact_g_vendi']:,.1f})"
        )

    rows = [
        [
            f"{row['n']:,} × {row['dim']:,}",
            f"{row['drawn']:,}",
            f"{row['open_cold_s']:.1f} s / {row['open_warm_s']:.2f} s",
            f"{row['figure_bytes'] / 2**20:.1f} MB",
            f"{row['selected']:,}",
            f"{lasso_s(row):.2f} s ({row['stats_again_s']:.2f} s)",
            g_vendi(row),
            f"{row['peak_rss_mb'] / 1024:.2f} GB",
            _page_switch(row),
            f"{row['load_average']:.1f}",
        ]
        for row in cases
    ]
    met = [
        f"open warm ≤ {targets['open_warm_s']:g} s: "
        + _met(all(row["open_warm_s"] <= targets["open_warm_s"] for row in cases)),
        f"lasso → stats ≤ {targets['lasso_to_stats_s']:g} s: "
        + _met(all(lasso_s(row) <= targets["lasso_to_stats_s"] for row in cases)),
        f"peak RSS ≤ {targets['peak_rss_gb']:g} GB: "
        + _met(all(row["peak_rss_mb"] / 1024 <= targets["peak_rss_gb"] for row in cases)),
    ]
    if "page_switch_s" in targets and all("pages" in row for row in cases):
        met.append(
            f"page switch ≤ {targets['page_switch_s']:g} s: "
            + _met(
                all(
                    max(row["pages"]["switch"].values()) <= targets["page_switch_s"]
                    for row in cases
                )
            )
        )
    caption = (
        f"The Map page's server time on {r['machine']['cpus']} CPUs (synthetic clustered "
        f"features; map: {r['layout']}; clusters: {r['clusters']}); a lasso of about half the "
        "rows, resolved on every row, then its statistics (in brackets: the same statistics "
        "again); the machine's 1-minute load is shown. " + "; ".join(met) + ".\n\n"
    )
    header = ["rows × d", "drawn", "open cold / warm", "figure", "lasso rows"]
    header += ["lasso → stats", "G-Vendi", "peak RSS", "slowest page switch", "load"]
    return caption + _table(header, "rrrrrrlrrr", rows)


# --- bench/selection.py --------------------------------------------------------------------------


def selection_timing(results: Results) -> str:
    r = results["select"]
    setup = r["timing_setup"]
    rows = []
    for row in r["timing"]:
        if row["k"] is None:
            budget = "all kept" if "n_selected" in row else ""
        else:
            budget = f"{row['k']:,}"
        faster = f"{row['speedup_vs_eager']:.1f}" if "speedup_vs_eager" in row else ""
        seconds = f"{row['seconds']:.2f}" if row["seconds"] < 10 else f"{row['seconds']:.1f}"
        rows.append([row["method"], budget, seconds, f"{row['passes']:,.0f}", faster])
    before, after = setup.get("load_average_before"), setup.get("load_average_after")
    load = f" (1-min load average {before[0]:.1f} at the start, {after[0]:.1f} at the end)"
    caption = (
        f"N = {setup['n']:,} × {setup['dim']:,}, budget {setup['k']:,}, on {setup['cpu_count']} "
        f"CPU cores{load if before and after else ''}:\n\n"
    )
    header = ["selector", "budget", "seconds", "× one pass", "× faster than eager"]
    return caption + _table(header, "lrrrr", rows)


def _random_equivalent(value: float | None) -> str:
    return "> N" if value is None or math.isnan(value) else f"{value:,.0f}"


def selection_demo(results: Results) -> str:
    demo = results["select"]["demo"]
    rows = [
        [
            row["method"],
            f"{row['size']:,}",
            f"{row['g_vendi_mean']:.1f} ± {row['g_vendi_sd']:.1f}",
            f"{row['g_vendi_low']:.1f}–{row['g_vendi_high']:.1f}",
            f"{row['vs_random']:.2f}",
            _random_equivalent(row["random_equivalent"]),
        ]
        for row in _selector_order(demo["subsets"])
    ]
    whole = demo["whole"]
    caption = f"Whole set: {whole['n']:,} rows, G-Vendi {whole['g_vendi']:.1f}.\n\n"
    header = ["selector", "rows", "G-Vendi (mean ± sd)", "min–max", "× random of that size"]
    return caption + _table([*header, "as random at"], "lrrrrr", rows)


def selection_text(results: Results) -> str:
    demo = results["select"]["demo"]

    def pm(row: dict[str, Any], key: str, digits: int) -> str:
        return f"{row[key]:.{digits}f} ± {row[key + '_sd']:.{digits}f}"

    rows = [
        [
            row["method"],
            f"{row['size']:,}",
            f"{row['g_vendi_mean']:.1f} ± {row['g_vendi_sd']:.1f}",
            pm(row, "embedding_vendi", 1),
            pm(row, "ngram_vendi", 1),
            pm(row, "distinct_2", 3),
        ]
        for row in _selector_order(demo["subsets"])
    ]
    w = demo["whole"]
    caption = (
        f"Whole set: G-Vendi {w['g_vendi']:.1f}, embedding Vendi {w['embedding_vendi']:.1f}, "
        f"n-gram Vendi {w['ngram_vendi']:.1f}, distinct-2 {w['distinct_2']:.3f}.\n\n"
    )
    header = ["selector", "rows", "G-Vendi", "embedding Vendi", "n-gram Vendi", "distinct-2"]
    return caption + _table(header, "lrrrrr", rows)


def _selector_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Random first (the baseline), then the others as stored."""
    return sorted(rows, key=lambda row: row["method"] != "random")


# --- bench/gpu.py --------------------------------------------------------------------------------


def gpu(results: Results) -> str:
    r = results["gpu"]
    rows = [
        [
            f"{row['seq']:,}",
            str(row["batch_size"]),
            f"{row['samples_per_s']:.2f}",
            f"{row['naive_samples_per_s']:.3f}",
            _ratio(row["speedup_vs_naive"]),
            _ratio(row["cost_vs_train_step"], 2),
            f"{100 * row['mfu']:.1f}%",
            f"{row['peak_memory_gib']:.1f}",
        ]
        for row in r["rows"]
    ]
    at_1024 = [row for row in r["rows"] if row["seq"] == 1024]
    first = next((row for row in at_1024 if row["mfu"] >= GPU_MFU), None)
    verdict = f"met from batch {first['batch_size']} on" if first else "missed at every batch size"
    caption = (
        f"{r['device']}, {r['arch']}, {r['n_params'] / 1e6:.1f}M parameters, {r['dtype']}, "
        f"torch {r['torch']}; bf16 matrix rate measured in the same run "
        f"{r['matmul_flops'] / 1e12:.1f} TFLOP/s. Target: MFU ≥ {100 * GPU_MFU:.0f}% at 1,024 "
        f"tokens, {verdict}.\n\n"
    )
    header = ["seq", "batch", "samples/s", "naive samples/s", "speed-up", "cost vs train step"]
    return caption + _table([*header, "MFU (6·P·T)", "peak GiB"], "rrrrrrrr", rows)


def gpu_checks(results: Results) -> str:
    r = results["gpu"]
    same = r["device_independence"]
    bf16 = r["bf16_vs_float32"]
    stream = r["streamed_vendi"]
    rows = [
        [
            f"CPU against GPU, tiny Qwen2 in float32, same seed ({same['n']} samples)",
            f"largest difference {_sci(same['max_abs_diff'])}, smallest cosine {same['min_cosine']:.8f}",
        ],
        [
            "G-Vendi: GPU / CPU / merged (half the shards from each)",
            f"{same['g_vendi_device']:.6f} / {same['g_vendi_cpu']:.6f} / "
            f"{same['g_vendi_merged']:.6f}",
        ],
        [
            f"bf16 model against the same weights in float32 ({bf16['n']} samples)",
            f"smallest cosine {bf16['min_cosine']:.6f}, loss within "
            f"{_sci(bf16['loss_max_rel_diff'])} relative",
        ],
        [
            f"streamed G-Vendi of {stream['n']:,} × {stream['dim']:,} generated on the device",
            f"{stream['seconds']:.2f} s",
        ],
    ]
    return _table(["check", "result"], "ll", rows)


# --- bench/load.py -------------------------------------------------------------------------------


def _load_rows(r: Results) -> list[list[str]]:
    rows = []
    for row in r["rows"]:
        name = "Prism" if row["code"] == "prism" else str(r.get("compare_label"))
        if "load_s" not in row:
            rows.append([name, f"{row['n']:,}", "", "failed", "", "", "", ""])
            continue
        rows.append(
            [
                name + (f", `limit={row['limit']}`" if row["limit"] else ""),
                f"{row['n']:,} ({row['file_mb']:,.0f} MB)",
                f"{row['load_s']:.1f}",
                f"{row['write_s']:.1f}",
                f"{row['cpu_s']:.1f}",
                f"{row['rows_per_s']:,.0f}" if row["rows_per_s"] else "",
                f"{row['peak_rss_gb']:.2f}",
            ]
        )
    return rows


def load(results: Results) -> str:
    r = results["load"]
    target = r["target"]
    full = [row for row in r["rows"] if row["code"] == "prism" and not row["limit"]]
    top = max(full, key=lambda row: row["n"])
    met = top["n"] >= target["rows"] and (
        top["load_s"] <= target["seconds"] and top["peak_rss_gb"] <= target["peak_rss_gb"]
    )
    growth = r["growth"]["prism"]
    caption = (
        f"GSM8K rows as JSON Lines, each size in a fresh process ({r['machine']}, Python "
        f"{r['python']}): `load_dataset` (read, validate, ids, fingerprint), then the workspace's "
        "`samples.parquet`; wall seconds, and CPU seconds of all threads (less sensitive to "
        f"other jobs on the machine). Target: {target['rows']:,} rows load in ≤ "
        f"{target['seconds']:g} s with peak RSS ≤ {target['peak_rss_gb']:g} GB: {_met(met)}. "
        f"Growth exponent between the two largest sizes (1 = linear): {growth['seconds']:.2f} for "
        f"wall seconds, {growth['cpu_seconds']:.2f} for CPU seconds, {growth['extra_rss']:.2f} for "
        "memory above the process's start (fixed costs make it sublinear). Peak RSS includes the "
        f"{top['base_rss_gb']:.2f} GB of the interpreter and its imports (torch among them).\n\n"
    )
    header = ["reader", "rows", "load s", "write s", "CPU s", "rows/s", "peak RSS GB"]
    return caption + _table(header, "lrrrrrr", _load_rows(r))


# --- README.md -----------------------------------------------------------------------------------


def summary(results: Results) -> str:
    f, v, g, s = results["features"], results["vendi"], results["gpu"], results["select"]
    stream = next(row for row in v["rows"] if row["case"].startswith("stream"))
    worst = max(row["rel_diff"] for row in v["rows"] if row["rel_diff"] is not None)
    best_gpu = max(g["rows"], key=lambda row: (row["seq"], row["mfu"]))
    lasso = max(
        (row for row in results["app"]["rows"] if row["case"].startswith("lasso")),
        key=lambda row: float(row["seconds"]),
    )
    greedy = next(row for row in s["demo"]["subsets"] if row["method"] == "vendi_greedy")
    rows = [
        [
            "features on the CPU (`bench/features.py`)",
            f"{_ratio(f['speedup_vs_naive'])} faster than a naive per-sample gradient; "
            f"{_ratio(f['cost_vs_train_step'], 2)} the cost of a training step",
        ],
        [
            "features on a GPU (`bench/gpu.py`)",
            f"{100 * best_gpu['mfu']:.1f}% MFU at {best_gpu['seq']:,} tokens × "
            f"{best_gpu['batch_size']} ({g['device']}, {g['dtype']})",
        ],
        [
            "G-Vendi (`bench/vendi.py`)",
            f"{stream['n']:,} × {stream['d']:,} streamed in {stream['seconds']:.1f} s on the CPU; "
            f"within {_sci(worst)} of the `vendi-score` package",
        ],
        [
            "selectors (`bench/selection.py`)",
            f"200-row `vendi_greedy` subsets of the demo: {greedy['vs_random']:.2f}× the G-Vendi "
            f"of random ones, as diverse as {_random_equivalent(greedy['random_equivalent'])} "
            "random rows",
        ],
        [
            "app (`bench/app.py`)",
            f"a lasso of {lasso['case'].split('=')[1].split('(')[0].strip()} of "
            f"{results['app']['n']:,} points → statistics in {float(lasso['seconds']):.2f} s",
        ],
    ]
    if "load" in results:
        rows.append(["loading data (`bench/load.py`)", _load_summary(results["load"])])
    return _table(["benchmark", "measured"], "ll", rows)


def _load_summary(r: Results) -> str:
    prism = [row for row in r["rows"] if row["code"] == "prism" and "load_s" in row]
    top = max((row for row in prism if not row["limit"]), key=lambda row: row["n"])
    text = (
        f"{top['n']:,} GSM8K rows of JSON Lines ({top['file_mb']:,.0f} MB) streamed in "
        f"{top['load_s']:.0f} s ({top['cpu_s']:.0f} CPU s), peak RSS {top['peak_rss_gb']:.2f} GB "
        "on 2 shared CPU cores"
    )
    limited = [row for row in prism if row["limit"]]
    if limited:
        row = limited[0]
        text += f"; `--limit {row['limit']}` of them in {row['load_s']:.1f} s"
    return text


PEER_LABELS = {
    "prism_packed": "Prism, packed rows (d = 1,024)",
    "prism_packed_2x": "Prism, packed rows, twice the token budget",
    "prism_packed_eager_mlp": "Prism, packed rows, the model's own eager SiLU·up and rotary",
    "prism_padded": "Prism, padded length groups (d = 1,024)",
    "train_step": "bf16 training step: loss over response tokens, head at response positions only",
    "bergson_p16": "Bergson `build`, p = 16/module, token batch 2,048 (its default)",
    "bergson_p16_tb32k": "Bergson, p = 16/module, token batch 32,768",
    "bergson_global_p1024": "Bergson, global p = 1,024, token batch 32,768",
}


# A peer's command whose work (whole time minus start-up) is shorter than this is start-up noise.
PEER_RESOLVED_SECONDS = 3.0


def _peer_timing(run: dict) -> tuple[str, str]:
    """(rows/s cell, wall-clock cell) of one measured row."""
    rate = f"{run['rows_per_s']:,.1f}"
    if "startup_seconds" in run:  # a peer's whole command, its start-up subtracted
        work = run["seconds"] - run["startup_seconds"]
        wall = (
            f"{run['seconds']:.1f} s whole command − {run['startup_seconds']:.1f} s start-up "
            f"({run['startup_rows']} rows) = {work:.1f} s work, {work / run['startup_seconds']:.1f}× "
            "start-up"
        )
        if run.get("progress_seconds"):
            wall += (
                f"; its progress bar's loop {run['progress_seconds']:.0f} s "
                f"({run['progress_rows_per_s']:,.0f} rows/s)"
            )
        if work < PEER_RESOLVED_SECONDS:
            rate = "not resolved"
        return rate, wall
    passes = len(run.get("seconds_each", [run["seconds"]]))
    if passes == 1:
        return rate, f"{run['seconds']:.1f} s, one pass"
    how = "mean" if passes == 2 else "median"
    return rate, f"{run['seconds']:.1f} s a pass ({how} of {passes})"


def peers(results: Results) -> str:
    r = results["peers"]
    rows = []
    for name, entry in r["sets"].items():
        names = (
            "prism_packed",
            "prism_packed_2x",
            "prism_packed_eager_mlp",
            "prism_padded",
            "train_step",
        )
        methods = {k: entry[k] for k in names if k in entry}
        methods.update(entry["peers"])
        packed = entry["prism_packed"]["rows_per_s"]
        for key, run in methods.items():
            n = run.get("rows", entry["rows"])
            label = f"{n:,} {name} rows (mean {entry['mean_tokens']:.0f} tok)"
            method = PEER_LABELS.get(key, key)
            if "error" in run or "not_run" in run:
                last = run.get("error", "").strip().splitlines()[-1:] or [""]
                why = run.get("not_run") or last[0][:200]
                if "not_run" not in run and not why.startswith("stopped at"):
                    why = f"failed: {why}"
                rows.append([label, method, f"not measured: {why}", "", "", "", "", "", ""])
                continue
            rate, wall = _peer_timing(run)
            resolved = rate != "not resolved"
            tokens = run.get("tokens_per_s", run["rows_per_s"] * entry["mean_tokens"])
            mfu, done = run.get("mfu_6pt"), run.get("flops_done_fraction")
            memory = run.get("peak_memory_gib")
            ahead = _ratio(packed / run["rows_per_s"], 2) if resolved else "not resolved"
            rows.append(
                [
                    label,
                    method,
                    rate,
                    f"{tokens / 1e3:,.1f}k" if resolved else "",
                    "" if mfu is None else f"{100 * mfu:.1f}%",
                    "" if done is None else f"{100 * done:.1f}%",
                    "" if memory is None else f"{memory:.1f}",
                    wall,
                    "1" if key == "prism_packed" else ahead,
                ]
            )
    split = r.get("split_rows", {})
    copies = r.get("copies", 1)
    sides = r.get("sides", {})
    before = [s["gpu_memory_before_gib"] for s in sides.values() if s.get("gpu_memory_before_gib")]
    before += [
        run["gpu_memory_before_gib"]
        for entry in r["sets"].values()
        for run in entry["peers"].values()
        if run.get("gpu_memory_before_gib") is not None
    ]
    caption = (
        f"{r['device']}, {r['arch']}, {r['dtype']}, torch {r['torch']}, Bergson "
        f"{r.get('bergson_version') or '(not installed)'}; bf16 matrix rate measured in the same "
        f"run {r['matmul_flops'] / 1e12:.0f} TFLOP/s. Rows: the packaged GSM8K test split "
        f"({split.get('short', 0):,} rows) repeated {copies} times, and long rows (four pairs "
        f"joined: {split.get('long', 0):,}) repeated {copies} times; Bergson's commands repeat "
        "the same split as often as makes each one's work at least 10× its start-up (the 'rows' "
        "column). One run: each side in its own process, one after another"
    )
    if before:
        caption += f" (GPU memory in use when each started: at most {1024 * max(before):.0f} MiB)"
    if "prism" in sides and "train" in sides:
        caption += (
            f"; Prism's process took {sides['prism']['seconds']:.0f} s in all, the training "
            f"step's {sides['train']['seconds']:.0f} s"
        )
    train_passes = r.get("train_repeats", 1)
    caption += (
        f". Prism: token budget {r['batch_tokens']:,} per batch, a warm-up pass over the split "
        f"once, then {r.get('repeats', 1)} timed passes. The training step: the padded batches of "
        "Prism's padded rows, forward and backward with weight gradients (no optimizer update), "
        "the loss over response tokens only, the head's logits at response positions only, "
        f"{'one timed pass' if train_passes == 1 else f'{train_passes} timed passes'} after a "
        "warm-up. 'Prism ahead': Prism packed's rows/s over the row's. MFU counts 6·P·T over real "
        "tokens (P = Linear weights); 'done' counts what Prism computes (padding, attention and "
        "sketch included, no weight gradients). Bergson: its whole command's wall clock, minus "
        "the same command on its first rows (start-up and model load, once per row set); its "
        "memory as nvidia-smi saw it."
    )
    ratios = [
        run["work_over_startup"]
        for entry in r["sets"].values()
        for run in entry["peers"].values()
        if "work_over_startup" in run
    ]
    if ratios:
        short = (
            " (under the 10× that keeps the subtraction's error small)" if min(ratios) < 10 else ""
        )
        caption += (
            f" Bergson's work was {min(ratios):.1f}–{max(ratios):.1f}× its start-up{short}; its "
            "progress bar's loop time (whole seconds, start-up excluded) is the check."
        )
    if r.get("conditions"):
        caption += f" Conditions: {r['conditions']}."
    check = r.get("float32_packed_vs_padded")
    if check:
        caption += (
            f" Packed against padded features in float32 on the GPU ({check['rows']} rows): "
            f"largest difference {_sci(check['max_abs_diff'])}."
        )
    header = ["rows", "method", "rows/s", "tokens/s", "MFU (6·P·T)", "done", "peak GiB"]
    header += ["wall clock", "Prism ahead"]
    return caption + "\n\n" + _table(header, "llrrrrrlr", rows)


def distributed(results: Results) -> str:
    parts = []
    for key in ("distributed", "distributed-cpu"):
        r = results.get(key)
        if r is None:
            continue
        one, two = r["runs"]
        # Timings of CPU ranks on a shared 2-core machine say nothing: agreement only there.
        efficiency = r.get("scaling_efficiency") if r["backend"] == "nccl" else None
        rates = f"{one['rows_per_s'] or 0:,.1f} / {two['rows_per_s'] or 0:,.1f}"
        walls = f"{one['wall_seconds']:.0f} / {two['wall_seconds']:.0f}"
        parts.append(
            [
                f"{r['rows']:,} rows ({r['distinct_rows']:,} distinct), {r['model']}, {r['dtype']}, "
                f"{r['backend']}",
                rates if efficiency is not None else "",
                walls if efficiency is not None else "",
                ""
                if efficiency is None
                else f"{efficiency:.2f} (wall {r['wall_scaling_efficiency']:.2f})",
                f"{_sci(r['agreement']['max_abs_diff'])}, cosine ≥ {r['agreement']['min_cosine']:.6f}",
            ]
        )
    header = ["run", "rows/s, 1 / 2 ranks", "wall s, 1 / 2", "scaling efficiency", "2 ranks vs 1"]
    return _table(header, "lrrrl", parts)


# --- bench/targeted.py ---------------------------------------------------------------------------


def targeted(results: Results) -> str:
    r = results["targeted"]
    scenarios = list(dict.fromkeys(row["scenario"] for row in r["rows"]))
    methods = list(dict.fromkeys(row["method"] for row in r["rows"]))
    value = {(row["scenario"], row["method"]): row for row in r["rows"]}
    k = {row["scenario"]: row["k"] for row in r["rows"]}
    sources = ", ".join(f"{s} {n}" for s, n in r["pool_sources"].items())
    caption = (
        f"Pool of {r['pool_rows']} rows ({sources}); proxy `{r['model']}`, d = {r['dim']}, "
        f"at most {r['max_length']} tokens ({r['n_truncated']} rows truncated); "
        f"{r['seconds']['total']:.0f} s in all.\n\n"
    )
    header = ["method", *[c for s in scenarios for c in (f"{s}: P@{k[s]}", "G-Vendi")]]
    rows = [
        [
            m,
            *[
                c
                for s in scenarios
                for c in (f"{value[(s, m)]['precision']:.2f}", f"{value[(s, m)]['g_vendi']:.1f}")
            ],
        ]
        for m in methods
    ]
    return caption + _table(header, "l" + "rr" * len(scenarios), rows)


def curation_loop(results: Results) -> str:
    r = results["curation_loop"]

    def lat(row: dict[str, Any], key: str) -> str:
        return f"{row[key]['p50_ms']:,.0f} / {row[key]['p95_ms']:,.0f} ms"

    rows = [
        [
            f"{row['n']:,} × {row['dim']:,}",
            lat(row, "condition"),
            lat(row, "substring"),
            lat(row, "regex"),
            lat(row, "similar_exact"),
            f"{row['index_build_s']:.1f} s, {row['index_bytes'] / 2**20:,.0f} MB",
            lat(row, "similar_index"),
            f"{row['recall_at_50']:.3f}",
            f"{row['peak_rss_mb'] / 1024:.2f} GB",
            f"{row['load_average']:.1f}",
        ]
        for row in r["rows"]
    ]
    header = [
        "rows × d",
        "condition p50 / p95",
        "substring",
        "regex",
        "similar, exact",
        "index build, file",
        "similar, index",
        "recall@50",
        "peak RSS",
        "load (1 min)",
    ]
    return (
        f"{r['cpus']} CPUs, {r['repeats']} calls each, measured {r['measured']}; "
        f"{r['machine']}.\n\n" + _table(header, "lrrrrrrrrr", rows)
    )


def targeted_training(results: Results) -> str:
    r = results["targeted_training"]
    sources = ", ".join(f"{s} {n}" for s, n in r["pool_sources"].items())
    caption = (
        f"{r['model']} on an {r['device']} (torch {r['torch']}); pool of {r['pool_rows']} rows "
        f"({sources}); each subset {r['budget']} rows ({100 * r['fraction']:.0f} %), "
        f"{r['steps']} AdamW steps of {r['batch']} rows at lr {r['lr']:g}, float32, at most "
        f"{r['max_length']} tokens; mean ± standard deviation over the seeds run."
    )
    if r.get("partial"):
        caption += f" Partial: {r['partial']}."
    rows = []
    for scenario in dict.fromkeys(row["scenario"] for row in r["rows"]):
        for method in dict.fromkeys(row["method"] for row in r["rows"]):
            runs = [x for x in r["rows"] if x["scenario"] == scenario and x["method"] == method]
            if not runs:
                continue
            loss = [x["held_out_loss"] for x in runs]
            em = [x["exact_match"] for x in runs if "exact_match" in x]
            share = [x["target_share"] for x in runs if "target_share" in x]
            vendi = [x["g_vendi"] for x in runs if "g_vendi" in x]
            rows.append(
                [
                    scenario,
                    method,
                    str(len(runs)),
                    f"{statistics.fmean(share):.2f}" if share else "",
                    f"{statistics.fmean(vendi):.1f}" if vendi else "",
                    f"{statistics.fmean(loss):.4f} ± {statistics.pstdev(loss):.4f}",
                    f"{100 * statistics.fmean(em):.1f} %" if em else "",
                ]
            )
    header = ["target", "selector", "seeds", "target's share", "G-Vendi", "held-out loss", "EM"]
    return caption + "\n\n" + _table(header, "llrrrrr", rows)


TABLES: dict[str, Callable[[Results], str]] = {
    "summary": summary,
    "peers": peers,
    "distributed": distributed,
    "targeted": targeted,
    "targeted-training": targeted_training,
    "features": features,
    "features-memory": features_memory,
    "load": load,
    "vendi": vendi,
    "app": app,
    "app-scale": app_scale,
    "curation-loop": curation_loop,
    "selection-timing": selection_timing,
    "selection-demo": selection_demo,
    "selection-text": selection_text,
    "gpu": gpu,
    "gpu-checks": gpu_checks,
}


def render(text: str, results: Results) -> str:
    """``text`` with every marked table replaced by its rendering from ``results``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise KeyError(f"unknown benchmark table {name!r}; known: {', '.join(TABLES)}")
        return match.group(1) + TABLES[name](results) + match.group(4)

    return MARKER.sub(replace, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether a table is stale")
    args = parser.parse_args()
    results = load_results()
    stale = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        new = render(text, results)
        if new != text:
            stale.append(path.relative_to(REPO))
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "differ from bench/results (run `make bench-tables`)" if args.check else "rewritten"
    for path in stale:
        print(f"{path}: tables {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
