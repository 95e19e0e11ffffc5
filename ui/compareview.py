"""The Compare page's parts: subsets side by side, and G-Vendi against budget for each selector
next to random (computed in a background thread, kept per workspace version while the app runs).
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.select.selectors import DESCRIPTIONS, NEEDS_CLUSTERS, SELECTORS
from core.workspace.compare import (
    ABOVE_RANDOM,
    WHOLE_SET,
    compare_subsets,
    load_curves,
    random_equivalent,
    random_equivalents,
    workspace_curves,
)
from core.workspace.compare import curve_settings as stored_curve_settings
from core.workspace.store import EMBEDDINGS, Workspace
from ui import cache, charts
from ui import format as fmt
from ui.widgets import error_message, plain

TEXT_COLUMNS = ("embedding_vendi", "ngram_vendi", "distinct_2")
DEFAULT_SEEDS = 5
DEFAULT_LARGEST = 2000  # the selectors' largest budget on the curves (random goes on to N)


# -- the table -----------------------------------------------------------------------------------


def text_scorer() -> Callable[[Workspace, np.ndarray], dict[str, Any]] | None:
    """``text_scores(workspace, rows)`` from the text-space part of Prism, when it is installed."""
    for module in ("core.measures.embed", "core.measures.textspace"):
        try:
            return importlib.import_module(module).text_scores
        except (ImportError, AttributeError):
            continue
    return None


@st.cache_data(max_entries=256, show_spinner=False)
def _text_scores(path: str, versions: tuple[float, float], rows: np.ndarray) -> dict[str, Any]:
    scorer = text_scorer()
    return dict(scorer(Workspace.open(path), rows)) if scorer else {}


def cached_text_scores(workspace: Workspace, rows: np.ndarray) -> dict[str, Any]:
    versions = (cache.samples_version(workspace)[1], cache._mtime(workspace.path / EMBEDDINGS))
    return _text_scores(str(workspace.path), versions, np.asarray(rows, dtype=np.int64))


@st.cache_data(max_entries=16, show_spinner=False)
def _comparison(
    path: str, versions: tuple[float, ...], names: tuple[str, ...], text: bool
) -> pd.DataFrame:
    scorer = cached_text_scores if text and text_scorer() is not None else None
    return compare_subsets(Workspace.open(path), list(names), text_scores=scorer)


def comparison(ws: Workspace, names: list[str], *, text: bool = False) -> pd.DataFrame:
    """``core.workspace.compare.compare_subsets`` of the workspace (cached per version of its files)."""
    versions = (
        cache.features_version(ws)[1],
        cache.samples_version(ws)[1],
        cache.subsets_version(ws),
        cache.manifest_version(ws),
    )
    return _comparison(str(ws.path), versions, tuple(names), text)


def random_curve(ws: Workspace, summary: pd.DataFrame | None) -> pd.DataFrame | None:
    """The random-subset curve to read equivalents from: the budget curves' when computed, else
    the map's baseline (core.measures.selection.saturation_curve), both as (method, size, mean)."""
    if summary is not None and (summary["method"] == "random").any():
        return summary
    baseline = cache.curve(ws)
    if baseline is None:
        return None
    return baseline.assign(method="random")[["method", "size", "mean"]]


COLUMNS = {
    "subset": st.column_config.TextColumn("Subset", pinned=True),
    "size": st.column_config.NumberColumn("Samples", format="localized"),
    "g_vendi": st.column_config.NumberColumn(
        "G-Vendi",
        format="%.1f",
        help="Vendi score (q = 1) of the gradient features: the effective number of distinct "
        "directions the subset pushes the model in.",
    ),
    "random_at": st.column_config.TextColumn(
        "≈ random at",
        help="The size at which random subsets reach this G-Vendi; “above every random size” when "
        "no random subset does, the whole set included.",
    ),
    "efficiency": st.column_config.TextColumn(
        "Rows saved",
        help="“≈ random at” over the subset's size: how many random rows each of its rows is worth "
        "(“>” when it is above every random size: at least that many).",
    ),
    "vendi_q0.5": st.column_config.NumberColumn(
        "Vendi q=0.5", format="%.1f", help="Weighs rare directions more."
    ),
    "vendi_q2": st.column_config.NumberColumn(
        "Vendi q=2", format="%.1f", help="Weighs common directions more."
    ),
    "vendi_qinf": st.column_config.NumberColumn(
        "Vendi q=∞", format="%.2f", help="One over the share of the commonest direction."
    ),
    "coverage": st.column_config.NumberColumn(
        "Coverage",
        format="%.0f%%",
        help="Share of the whole set's gradient clusters holding at least one of its samples.",
    ),
    "coverage_weighted": st.column_config.NumberColumn(
        "Coverage (weighted)",
        format="%.0f%%",
        help="Share of all samples that live in the clusters it covers.",
    ),
    "cluster_entropy": st.column_config.NumberColumn(
        "Cluster entropy",
        format="%.2f",
        help="Entropy (nats) of its cluster histogram: higher is spread more evenly.",
    ),
    "mean_loss": st.column_config.NumberColumn(
        "Mean loss", format="%.3f", help="Mean proxy-model loss of its samples."
    ),
    "embedding_vendi": st.column_config.NumberColumn(
        "Embedding Vendi", format="%.1f", help="Vendi score of sentence embeddings (text space)."
    ),
    "ngram_vendi": st.column_config.NumberColumn(
        "N-gram Vendi", format="%.1f", help="Vendi score of word n-gram counts (surface text)."
    ),
    "distinct_2": st.column_config.NumberColumn(
        "Distinct-2", format="%.3f", help="Distinct word bigrams over all bigrams."
    ),
    "how": st.column_config.TextColumn("Made by", width="large"),
}


def random_words(equal: float | None, size: int, n: int) -> tuple[str, str]:
    """("≈ random at", "rows saved") as words: "1,020" and "3.1×", or above every random size
    and the least it saves (all ``n`` rows over ``size``)."""
    if equal is None or equal != equal:
        return ABOVE_RANDOM, f"> {n / size:,.1f}×"
    return f"{equal:,.0f}", f"{round(equal) / size:,.1f}×"


def presented(
    table: pd.DataFrame, curve: pd.DataFrame | None, *, n: int | None = None
) -> pd.DataFrame:
    """The comparison as shown: the random equivalent after G-Vendi, empty text columns dropped;
    ``n`` (default: the largest row, the whole set) is the workspace's size."""
    out = table.copy()
    n = int(n if n is not None else out["size"].max())
    if curve is not None:
        words = [
            random_words(e, int(size), n)
            for e, size in zip(random_equivalents(out, curve, n=n), out["size"], strict=True)
        ]
        out.insert(3, "random_at", [w[0] for w in words])
        out.insert(4, "efficiency", [w[1] for w in words])
    for column in ("coverage", "coverage_weighted"):  # shown as percentages
        out[column] = pd.to_numeric(out[column], errors="coerce") * 100
    for column in TEXT_COLUMNS:
        if column in out and out[column].isna().all():
            out = out.drop(columns=column)
    return out


def comparison_table(table: pd.DataFrame) -> None:
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key="compare_table",
        height=min(38 + 35 * len(table), 420),
        column_config={k: v for k, v in COLUMNS.items() if k in table.columns},
    )


# -- budget curves ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveSettings:
    methods: tuple[str, ...]
    seeds: int = DEFAULT_SEEDS
    largest: int = DEFAULT_LARGEST


@dataclass
class CurveJob:
    total: int
    done: int = 0
    step: str = "starting"
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    future: Future[pd.DataFrame] | None = None


@st.cache_resource(show_spinner=False)
def _jobs() -> dict[tuple[Any, ...], CurveJob]:
    return {}


@st.cache_resource(show_spinner=False)
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="prism-curves")


def available_methods(ws: Workspace) -> list[str]:
    clustered = "cluster" in cache.samples(ws).columns
    return [m for m in SELECTORS if clustered or m not in NEEDS_CLUSTERS]


def curve_settings(ws: Workspace) -> CurveSettings:
    """The controls of the budget curves: selectors, seeds, largest budget."""
    methods = available_methods(ws)
    a, b, c = st.columns([3, 1, 1], vertical_alignment="bottom")
    chosen = a.multiselect(
        "Selectors",
        [m for m in methods if m != "random"],
        default=[m for m in methods if m != "random"],
        help="Random is always drawn: it is what every selector is read against.  \n"
        + "  \n".join(f"**{m}**: {DESCRIPTIONS.get(m, '')}" for m in methods),
        key=f"curve_methods_{ws.name}",
    )
    seeds = int(
        b.number_input(
            "Seeds", min_value=1, max_value=20, value=DEFAULT_SEEDS, key=f"curve_seeds_{ws.name}"
        )
    )
    n = ws.n_samples
    largest = int(
        c.number_input(
            "Largest budget",
            min_value=min(20, n),
            max_value=n,
            value=min(DEFAULT_LARGEST, n),
            step=100,
            key=f"curve_largest_{ws.name}",
            help="Selectors are scored at log-spaced budgets up to this; random goes on to all "
            f"{n:,} rows.",
        )
    )
    return CurveSettings(("random", *chosen), seeds, largest)


def _key(ws: Workspace, settings: CurveSettings) -> tuple[Any, ...]:
    return (
        str(ws.path),
        cache.features_version(ws)[1],
        cache.samples_version(ws)[1],
        settings,
    )


def curve_job(ws: Workspace, settings: CurveSettings) -> CurveJob | None:
    return _jobs().get(_key(ws, settings))


def stored_settings(workspace: Workspace, settings: CurveSettings) -> dict[str, Any]:
    """The settings the curves are stored under: the CLI's (`prism compare --curves`) for the
    same selectors, seeds and largest budget, so that either finds the other's curves."""
    return stored_curve_settings(
        workspace, methods=settings.methods, seeds=settings.seeds, largest=settings.largest
    )


def _compute(path: str, settings: CurveSettings, job: CurveJob) -> pd.DataFrame:
    workspace = Workspace.open(path)

    def tick(step: str) -> None:
        job.done += 1
        job.step = step

    summary = workspace_curves(workspace, stored_settings(workspace, settings), progress=tick)
    job.seconds = time.monotonic() - job.started
    return summary


def start_curves(ws: Workspace, settings: CurveSettings) -> CurveJob:
    """Start computing the curves in the background (once per workspace version and settings)."""
    jobs = _jobs()
    key = _key(ws, settings)
    job = jobs.get(key)
    if job is not None and job.future is not None and not _failed(job):
        return job
    clustered = "cluster" in cache.samples(ws).columns
    planned = [m for m in settings.methods if clustered or m not in NEEDS_CLUSTERS]
    job = CurveJob(total=max(len(set(planned) | {"random"}), 1) * settings.seeds)
    job.future = _executor().submit(_compute, str(ws.path), settings, job)
    for old in [k for k in jobs if k[0] == key[0] and k != key and jobs[k].future.done()][:-3]:
        jobs.pop(old, None)  # keep a few earlier settings of this workspace, not all
    jobs[key] = job
    return job


def _failed(job: CurveJob) -> bool:
    return job.future is not None and job.future.done() and job.future.exception() is not None


def curve_summary(ws: Workspace, settings: CurveSettings) -> pd.DataFrame | None:
    """The finished curves for these settings, or None."""
    job = curve_job(ws, settings)
    if job is None:
        return stored_curves(
            str(ws.path),
            cache.manifest_version(ws),
            settings.methods,
            settings.seeds,
            settings.largest,
        )
    if job.future is None or not job.future.done() or _failed(job):
        return None
    return job.future.result()


@st.cache_data(max_entries=16, show_spinner=False)
def stored_curves(
    path: str, version: float, methods: tuple[str, ...], seeds: int, largest: int
) -> pd.DataFrame | None:
    """Curves computed earlier (another session, before a restart) for the same settings."""
    workspace = Workspace.open(path)
    return load_curves(
        workspace, stored_settings(workspace, CurveSettings(methods, seeds, largest))
    )


def curves_status(ws: Workspace, settings: CurveSettings) -> None:
    """The button that starts the curves, their progress, or what went wrong."""
    job = curve_job(ws, settings)
    if job is None or _failed(job):
        if job is not None:
            error_message(f"The curves could not be computed: {job.future.exception()}")
        n = ws.n_samples
        st.caption(
            f"Each selector is run {settings.seeds} times (one per seed) at budgets from 20 to "
            f"{min(settings.largest, n):,} rows, and random subsets up to all {n:,} rows; every "
            "subset is scored by its G-Vendi. This runs in the background: the page stays usable."
        )
        if st.button(
            "Compute the curves" if job is None else "Try again",
            type="primary",
            icon=":material/show_chart:",
            key="curves_start",
        ):
            job = start_curves(ws, settings)
            # Small workspaces finish at once; larger ones are followed below (and a failure is
            # shown on the next run).
            with contextlib.suppress(Exception):
                job.future.result(timeout=3)
            st.rerun()
        return
    if not job.future.done():
        _follow(str(ws.path), _key(ws, settings))


@st.fragment(run_every=1.0)
def _follow(path: str, key: tuple[Any, ...]) -> None:
    job = _jobs().get(key)
    if job is None or job.future is None or job.future.done():
        st.rerun(scope="app")
        return
    elapsed = fmt.duration(time.monotonic() - job.started)
    st.progress(
        min(max(job.done - 1, 0) / job.total, 1.0),
        text=f"Scoring {job.step} ({min(job.done, job.total)} of {job.total}) · {elapsed}",
    )


def at_budget(summary: pd.DataFrame, size: int, *, n: int) -> pd.DataFrame:
    """One row per method at ``size``: G-Vendi mean ± sd and what random needs to match it."""
    part = summary[summary["size"] == size].copy()
    part["random_equivalent"] = part["random_equivalent"].round()
    words = [
        ("the baseline", "") if m == "random" else random_words(e, size, n)
        for m, e in zip(part["method"], part["random_equivalent"], strict=True)
    ]
    part["random_at"] = [w[0] for w in words]
    part["ratio"] = [w[1] for w in words]
    part["reads"] = [
        "the baseline"
        if m == "random"
        else charts.equivalent_text(size, e if e == e else None, n=n)
        for m, e in zip(part["method"], part["random_equivalent"], strict=True)
    ]
    order = {m: i for i, m in enumerate(SELECTORS)}
    return part.sort_values("method", key=lambda s: s.map(order)).reset_index(drop=True)


def budget_choices(summary: pd.DataFrame) -> list[int]:
    """Budgets at which at least one selector besides random was scored."""
    return sorted(int(s) for s in summary.loc[summary["method"] != "random", "size"].unique())


def default_budget(choices: list[int], n: int) -> int:
    """The largest scored budget up to a quarter of the set (room for random to catch up)."""
    small = [s for s in choices if s <= n / 4]
    return small[-1] if small else choices[0]


def callout(
    summary: pd.DataFrame, size: int, *, n: int
) -> tuple[str, str, int, float, float | None] | None:
    """(sentence, best method, size, its G-Vendi, random equivalent) for the best selector."""
    part = at_budget(summary, size, n=n)
    others = part[part["method"] != "random"]
    if others.empty:
        return None
    best = others.loc[others["mean"].idxmax()]
    equal = best["random_equivalent"]
    equal = None if equal != equal else float(equal)
    sentence = (
        f"**{plain(best['method'])}** at **{size:,} rows** reaches G-Vendi "
        f"**{best['mean']:,.1f}** (± {best['sd']:.1f} over {int(best['n_seeds'])} seeds) — "
    )
    if equal is None:
        sentence += (
            f"more diverse than random subsets of every size, the whole set of {n:,} rows included."
        )
    else:
        sentence += f"as diverse as **random at {equal:,.0f} rows**, {equal / size:.1f}× as many."
    return sentence, str(best["method"]), size, float(best["mean"]), equal


def budget_section(
    ws: Workspace, settings: CurveSettings, summary: pd.DataFrame, table: pd.DataFrame
) -> None:
    """The chart (selectors, random, saved subsets) and what it says at one budget."""
    n = ws.n_samples
    choices = budget_choices(summary)
    if not choices:
        st.info("Only random was scored; choose selectors above.", icon=":material/info:")
        return
    left, right = st.columns([1.45, 1], gap="large")
    with right:
        size = st.select_slider(
            "Read the curves at",
            choices,
            value=default_budget(choices, n),
            format_func=lambda s: f"{s:,} rows",
            key=f"curve_budget_{ws.name}",
        )
        said = callout(summary, int(size), n=n)
        if said is not None:
            st.success(said[0], icon=":material/emoji_events:")
        rows = at_budget(summary, int(size), n=n)
        st.dataframe(
            rows[["method", "mean", "random_at", "ratio"]],
            hide_index=True,
            width="stretch",
            key="curve_at_budget",
            column_config={
                "method": st.column_config.TextColumn("Selector"),
                "mean": st.column_config.NumberColumn("G-Vendi", format="%.1f", width="small"),
                "random_at": st.column_config.TextColumn("≈ random at"),
                "ratio": st.column_config.TextColumn("Rows saved", width="small"),
            },
        )
    with left:
        whole = table.loc[table["subset"] == WHOLE_SET, "g_vendi"]
        marks = [
            (
                str(row["subset"]),
                int(row["size"]),
                float(row["g_vendi"]),
                random_equivalent(summary, float(row["g_vendi"])),
            )
            for _, row in table.iterrows()
            if row["subset"] != WHOLE_SET
        ]
        highlight = (said[1], said[2], said[3], said[4]) if said else None
        st.plotly_chart(
            charts.budget_figure(
                summary,
                n=n,
                whole=float(whole.iloc[0]) if len(whole) else None,
                marks=marks,
                highlight=highlight,
            ),
            width="stretch",
            config={"displaylogo": False},
            key="budget_chart",
        )
    job = curve_job(ws, settings)
    job_seconds = job.seconds if job is not None else None
    seeds = int(summary["n_seeds"].max())
    st.caption(
        f"Lines: mean G-Vendi over {seeds} seeds; bands: lowest to highest seed. Yellow marks: your "
        "saved subsets. A point left of the random line at the same height needs fewer rows for the "
        "same diversity." + (f" Computed in {fmt.duration(job_seconds)}." if job_seconds else "")
    )
