"""Rendering for people: the two consoles, number formatting and every table the CLI prints.

Tables fit the terminal, 80 columns included (``fitted``): a number is never broken over lines,
text columns keep a readable width and fold onto more lines, and where that is still too wide the
least needed columns are left out (and the table says which, and that ``--json`` has them all).
Every piece of user text (subset names, paths, manifest values) is escaped, so that it prints as
text, never as rich markup. ``--json`` output bypasses all of this (``print_json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from core.cli.tables import Column, fitted, key_value_table
from core.cli.tables import table as table  # what core.cli.synthesis imports from here
from core.workspace.manifest import Scores
from core.workspace.records import SubsetRecord
from core.workspace.schema import ANALYSES, MEASURES

console = Console()
err = Console(stderr=True)


def print_json(data: Any) -> None:
    """Machine output: every digit, no markup."""
    typer.echo(json.dumps(data, indent=2))


# -- numbers ---------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    """A value with a fixed number of decimals ("–" for a missing one)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def number(value: Any) -> str:
    """A number for people: thousands separated, 3–4 significant digits ("1,319", "87.42",
    "0.0531"); text as it is (escaped)."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return "∞" if value > 0 else "–" if math.isnan(value) else "−∞"
        magnitude = abs(value)
        if magnitude >= 1000 or magnitude == 0 or value == int(value):
            return f"{value:,.0f}"
        if magnitude >= 1:
            return f"{value:,.{3 - int(math.floor(math.log10(magnitude)))}f}"
        return f"{value:.3g}"
    return escape(str(value))


def cell(value: Any, digits: int) -> str:
    """A table cell: ``digits`` decimals, or a percentage when ``digits`` is negative."""
    if digits < 0:  # a fraction, shown as a percentage
        return "–" if value is None or value != value else f"{100 * value:.0f}%"
    return fmt(value, digits)


def print_fitted(
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    ends: Sequence[bool] | None = None,
) -> list[str]:
    """Print a ``fitted`` table, then which columns a narrow terminal left out; returns those."""
    result, dropped = fitted(title, columns, rows, ends=ends, console=console)
    console.print(result)
    if dropped:
        console.print(
            f"not shown at {console.width} columns: {escape(', '.join(dropped))} (--json has all)",
            style="dim",
        )
    return dropped


# -- scores and clusters ---------------------------------------------------------------------


def print_scores(scores: Scores | dict[str, Any] | None) -> None:
    """The ``scores`` record (and its text-space baselines, when present) as a table."""
    record = scores.to_dict() if isinstance(scores, Scores) else scores
    if not record:
        return
    rows = [["G-Vendi (q = 1)", f"{record['g_vendi']:.2f}"]]
    rows += [[f"Vendi q = {q}", f"{v:.2f}"] for q, v in record["vendi"].items() if q != "1"]
    text = record.get("text")
    if text:
        embedding = text.get("embedding_vendi")
        ngrams = text.get("ngram_vendi")
        rows += [
            [
                "embedding Vendi (text space)",
                "– (run `prism embed`)" if embedding is None else f"{embedding:.2f}",
            ],
            ["n-gram Vendi (1–2-grams)", "–" if ngrams is None else f"{ngrams:.2f}"],
            ["distinct-2", f"{text['distinct_2']:.3f}"],
        ]
    print_fitted(
        f"Vendi scores (n = {record['n']:,}, d = {record['dim']:,})",
        [Column("measure", numeric=False, fold=28), Column("value")],
        rows,
    )


def print_cluster_scores(rows: list[dict[str, Any]], *, limit: int = 40) -> None:
    """Per-cluster sizes and Vendi (``prism score --per-cluster``), the first ``limit`` rows."""
    print_fitted(
        f"Clusters ({len(rows):,})",
        [Column(name) for name in ("cluster", "size", "sparse", "Vendi q=1")],
        [
            [
                str(row["cluster"]),
                f"{row['size']:,}",
                "yes" if row["sparse"] else "",
                f"{row['vendi']['1']:.2f}" if "vendi" in row else "",
            ]
            for row in rows[:limit]
        ],
    )
    if len(rows) > limit:
        console.print(f"… {len(rows) - limit:,} more (use --json for all)")


def print_clusters(summary: dict[str, Any]) -> None:
    """What ``prism cluster`` found: one sentence, then the largest and smallest clusters."""
    console.print(
        f"{summary['n_clusters']:,} clusters (seed {summary['seed']}); median size "
        f"{summary['median_size']:g}; {summary['n_sparse']:,} sparse clusters holding "
        f"{summary['n_in_sparse']:,} samples; mean cosine to centroid {summary['objective']:.3f}"
    )
    sparse = set(summary["sparse"])
    rows = list(enumerate(summary["sizes"]))
    shown = rows[:10] + (rows[-5:] if len(rows) > 15 else rows[10:])
    print_fitted(
        "Largest and smallest clusters",
        [Column("cluster"), Column("size"), Column("sparse")],
        [[str(c), f"{size:,}", "yes" if c in sparse else ""] for c, size in shown],
    )


def print_embedding(section: dict[str, Any], lexical: dict[str, Any], path: Any) -> None:
    """What ``prism embed`` stored: text-space Vendi, clusters, lexical numbers, agreement."""
    console.print(
        f"embedded {section['n']:,} samples with {escape(str(section['model_name']))} in "
        f"{section['seconds']:.1f} s (d = {section['dim']}; {section['n_truncated']:,} longer "
        f"than {section['max_seq_length']} tokens, truncated)"
    )
    clusters = section["clusters"]
    console.print(
        f"embedding Vendi {section['embedding_vendi']:.2f}; {clusters['n_clusters']:,} clusters "
        f"(seed {section['seed']}), {clusters['n_sparse']:,} sparse"
    )
    ngrams = lexical.get("ngram_vendi")
    console.print(
        f"n-gram Vendi {'–' if ngrams is None else f'{ngrams:.2f}'}; distinct-1…4 "
        + " / ".join(f"{lexical[f'distinct_{n}']:.3f}" for n in (1, 2, 3, 4))
    )
    near = section["neighbours"]
    if near is None:
        console.print("no gradient features yet: run `prism features` for nbr_agreement")
    else:
        console.print(
            f"neighbourhood agreement (k = {near['k']}): mean {near['mean_agreement']:.3f} vs "
            f"chance {near['chance']:.4f}; rank correlation of pairwise cosines ρ = "
            f"{near['rank_correlation']:.3f}"
        )
    stored = [c for c in ANALYSES["embedding"].column_names if near or c != "nbr_agreement"]
    console.print(
        f"stored embeddings.npy and the columns {', '.join(stored)} in {escape(str(path))}"
    )


# -- subsets and curves ----------------------------------------------------------------------

# (header, key, digits) of the compare table, from the schema; the rest come with --wide
SUBSET_COLUMNS = [(m.short, m.key, m.digits) for m in MEASURES.values() if m.basic]
WIDE_COLUMNS = [(m.short, m.key, m.digits) for m in MEASURES.values() if not m.basic]


def random_at(equal: float | None, size: int, n: int) -> tuple[str, str]:
    """("≈ random at", "rows saved") in words: a size, or above every random size."""
    # heavy: pandas and pyarrow, kept off `prism --help`
    from core.measures.curves import ABOVE_RANDOM

    if equal is None or equal != equal:
        return ABOVE_RANDOM, f"> {n / size:,.1f}×"
    return f"{equal:,.0f}", f"{equal / size:,.1f}×"


def print_subset_list(
    subsets: Mapping[str, SubsetRecord],
    describe: Callable[[SubsetRecord], str],
    stale: Callable[[SubsetRecord], str | None],
) -> None:
    """``prism subset list``: name, size, how each was made (``describe(record)``, or why it is
    stale), created."""
    if not subsets:
        console.print("no subsets yet: make one with `prism select` or in the app")
        return
    rows = []
    for name, record in subsets.items():
        reason = stale(record)
        rows.append(
            [
                escape(name),
                f"{record.size:,}",
                escape(f"STALE: {reason}; delete it" if reason else describe(record)),
                escape(str(record.created or "")[:16].replace("T", " ")),
            ]
        )
    print_fitted(
        f"Subsets ({len(subsets)})",
        [
            Column("name", numeric=False, fold=20),
            Column("size"),
            Column("how", numeric=False, fold=24),
            Column("created", drop=1),
        ],
        rows,
    )


# Left out first on a narrow terminal: loss, q=∞, q=2, coverage, how, then what random needs.
SUBSET_DROPS = {"loss": 6, "q=∞": 5, "q=2": 4, "cover": 3, "how": 2, "saved": 1}


def print_subsets(
    name: str, rows: Any, summary: Any, equals: list[Any] | None, *, n: int, wide: bool
) -> None:
    """``prism compare``: one row per subset; ``equals`` are the random sizes of equal G-Vendi."""
    columns = [Column("subset", numeric=False, fold=20), Column("rows"), Column("G-Vendi")]
    if summary is not None:
        columns += [Column("≈ random at", numeric=False, fold=11), Column("saved")]
    columns += [Column(header) for header, _, _ in SUBSET_COLUMNS[2:]]
    columns += [Column("how", numeric=False, fold=16)]
    columns = [Column(c.header, c.numeric, SUBSET_DROPS.get(c.header, 0), c.fold) for c in columns]
    cells = []
    for i, row in enumerate(rows.to_dict(orient="records")):
        line = [escape(str(row["subset"])), cell(row["size"], 0), cell(row["g_vendi"], 2)]
        if equals is not None:
            line += random_at(equals[i], int(row["size"]), n)
        line += [cell(row.get(key), digits) for _, key, digits in SUBSET_COLUMNS[2:]]
        cells.append([*line, escape(str(row["how"]))])
    print_fitted(f"Subsets of {escape(name)}", columns, cells)
    more = [c for c in WIDE_COLUMNS if c[1] in rows and not rows[c[1]].isna().all()]
    if not wide:
        console.print("more measures: --wide; every number: --json", style="dim")
        return
    # A second table, so that both fit a narrow terminal.
    print_fitted(
        "More measures",
        [Column("subset", numeric=False, fold=16)] + [Column(h) for h, _, _ in more],
        [
            [escape(str(row["subset"])), *[cell(row.get(k), d) for _, k, d in more]]
            for row in rows.to_dict(orient="records")
        ],
    )


def print_curves(summary: Any, *, sizes: list[int], seeds: int, n: int) -> None:
    """G-Vendi against budget, one section per selector, random first as the baseline."""
    rows: list[list[str]] = []
    ends: list[bool] = []
    for method in dict.fromkeys(summary["method"]):
        part = summary[summary["method"] == method]
        if method == "random":
            part = part[part["size"].isin(sizes)]
        records = part.to_dict(orient="records")
        for i, row in enumerate(records):
            size = int(row["size"])
            equal, saved = (
                ("the baseline" if i == 0 else "", "")
                if method == "random"
                else random_at(row["random_equivalent"], size, n)
            )
            rows.append(
                [
                    escape(method) if i == 0 else "",
                    f"{size:,}",
                    f"{row['mean']:,.2f}",
                    f"{row['sd']:.2f}",
                    equal,
                    saved,
                ]
            )
            ends.append(i == len(records) - 1)
    print_fitted(
        f"G-Vendi against budget (mean ± sd over {seeds} seeds)",
        [
            Column("method", numeric=False, fold=16),
            Column("budget"),
            Column("G-Vendi"),
            Column("± sd", drop=2),
            Column("≈ random at", numeric=False, fold=12),
            Column("saved", drop=1),
        ],
        rows,
        ends=ends,
    )


# -- prism info ------------------------------------------------------------------------------

# Manifest sections of `prism info`, in order: the dataset, the features job, the scores, then
# every analysis the schema declares; sections not named here follow, in their manifest order.
INFO_SECTIONS = list(
    dict.fromkeys(["dataset", "features", "job", "scores"] + [a.section for a in ANALYSES.values()])
)
INFO_HEADINGS = {"layout": "Map"}  # the rest: the section's name, capitalised
INFO_SKIP = {
    "schema_version",
    "prism_version",
    "created",
    "updated",
    "columns",
    "subsets",
    "quality_signals",
}


def info_heading(section: str) -> str:
    """The heading of a manifest section in ``prism info``."""
    return INFO_HEADINGS.get(section, section.replace("_", " ").capitalize())


def info_value(value: Any) -> str:
    """One manifest value for people: numbers rounded, short lists listed, long ones summarised."""
    if isinstance(value, dict):
        return ", ".join(f"{escape(str(k))} {info_value(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list):
        if len(value) <= 8 and all(not isinstance(v, (dict, list)) for v in value):
            return ", ".join(info_value(v) for v in value) or "none"
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(value):
            return f"{len(value):,} values, {number(min(numbers))} to {number(max(numbers))}"
        return f"{len(value):,} values"
    return number(value)


def info_rows(section: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(label, value) lines of a manifest section; a large nested dict gets its own lines."""
    rows: list[tuple[str, str]] = []
    for key, value in section.items():
        label = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict) and value and len(value) > 3 and not prefix:
            rows += info_rows(value, prefix=f"{key}.")
        else:
            rows.append((escape(label), info_value(value)))
    return rows


def print_info(path: Any, record: dict[str, Any]) -> None:
    """``prism info`` for people: a summary, then a heading per manifest section."""
    console.print(
        f"[bold]{escape(str(path))}[/] · workspace schema {record.get('schema_version')}, "
        f"Prism {escape(str(record.get('prism_version')))}, updated "
        f"{escape(str(record.get('updated') or record.get('created') or '–'))}"
    )
    print_info_summary(record)
    names = [k for k in INFO_SECTIONS if isinstance(record.get(k), dict)]
    names += [k for k in record if k not in INFO_SECTIONS and k not in INFO_SKIP]
    for name in names:
        value = record[name]
        result = key_value_table(info_heading(name), key_style="dim")
        rows = info_rows(value) if isinstance(value, dict) else [("", info_value(value))]
        for label, text in rows:
            result.add_row(label, text)
        console.print(result)


def print_info_summary(record: dict[str, Any]) -> None:
    """The lines most people open ``prism info`` for, before the full sections."""
    result = key_value_table("Summary", key_style="bold")
    dataset, feats = record.get("dataset") or {}, record.get("features") or {}
    skipped = dataset.get("n_skipped") or 0
    result.add_row(
        "data",
        f"{number(dataset.get('n_samples', 0))} samples ({number(skipped)} skipped) from "
        + escape(str(dataset.get("source", "–"))),
    )
    settings = feats.get("settings") or {}
    result.add_row(
        "features",
        " · ".join(
            escape(str(part))
            for part in (
                feats.get("status", "not started"),
                f"model {settings.get('model', '–')}",
                f"scope {settings.get('scope', '–')}",
                f"d {number(settings.get('dim'))}",
                f"seed {settings.get('seed', '–')}",
                f"{number(feats.get('n_truncated', 0))} truncated",
            )
        ),
    )
    scores = record.get("scores") or {}
    if scores:
        orders = ", ".join(
            f"q={'∞' if q == 'inf' else q} {number(v)}"
            for q, v in (scores.get("vendi") or {}).items()
            if q != "1"
        )
        result.add_row("G-Vendi", f"{number(scores.get('g_vendi'))} ({orders})")
    clusters = record.get("clusters") or {}
    if clusters:
        result.add_row(
            "clusters",
            f"{number(clusters.get('n_clusters'))} (seed {clusters.get('seed')}), "
            f"{number(clusters.get('n_sparse'))} sparse",
        )
    result.add_row("columns", escape(", ".join(map(str, record.get("columns", [])))))
    signals = record.get("quality_signals") or []
    if signals:
        result.add_row(
            "quality",
            ", ".join(f"{escape(s['column'])} {'✓' if s['present'] else '–'}" for s in signals),
        )
        for s in signals:
            if not s["present"]:
                result.add_row(f"  {escape(s['column'])}", escape(s["note"]))
    subsets = record.get("subsets", {})
    result.add_row(
        "subsets",
        ", ".join(f"{escape(str(n))} ({size:,})" for n, size in subsets.items()) or "none yet",
    )
    console.print(result)
