"""G-Vendi against budget: every selector next to random subsets, read at one budget and drawn
with the saved subsets.

The curves are computed in a thread of the app, recorded as a job of the workspace (one record
per settings, ``core.workspace.jobs.record``), and stored in the workspace like ``prism compare
--curves``: either finds the other's curves, and a refreshed page finds a running job. The
controls start at the stored curves' settings, so stored curves are drawn at once, with when and
how they were made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from core.measures.curves import ABOVE_RANDOM, random_equivalent
from core.select.selectors import SELECTORS
from core.workspace import compare as curve_store
from core.workspace.compare import WHOLE_SET, curve_budgets, load_curves, workspace_curves
from core.workspace.compare import curve_settings as stored_curve_settings
from core.workspace.files import now
from core.workspace.jobs.record import FAILED, Job, read_job, report_job, run_in_thread
from core.workspace.manifest import CurvesSection
from core.workspace.store import Workspace
from ui import cache, curve_charts
from ui import format as fmt
from ui.widgets import error_message, plain

DEFAULT_SEEDS = 5
DEFAULT_LARGEST = 2000  # the selectors' largest budget on the curves (random goes on to N)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # of a job record's started/updated (core.workspace.files.now)


@dataclass(frozen=True)
class CurveSettings:
    methods: tuple[str, ...]
    seeds: int = DEFAULT_SEEDS
    largest: int = DEFAULT_LARGEST


def available_methods(ws: Workspace) -> list[str]:
    clustered = "cluster" in cache.samples(ws).columns
    # The quality selectors optimise another axis: their curve is `prism quality --blend-curve`;
    # the targeted ones need a target.
    return [
        m
        for m, spec in SELECTORS.items()
        if spec.curves and not spec.needs_target and (clustered or not spec.needs_clusters)
    ]


@st.cache_data(max_entries=16, show_spinner=False)
def stored_section(path: str, version: float) -> CurvesSection | None:
    """The section of the curves stored in the workspace (any settings), while they are current."""
    found = curve_store.stored_curves(Workspace.open(path))
    return None if found is None else found[1]


def curve_settings(ws: Workspace) -> CurveSettings:
    """The controls of the budget curves: selectors, seeds, largest budget; they start at the
    settings of the stored curves, if any."""
    methods = available_methods(ws)
    stored = stored_section(str(ws.path), cache.manifest_version(ws))
    made = dict(stored.settings) if stored is not None else {}
    offered = [m for m in methods if m != "random"]
    made_methods = [m for m in made.get("methods", offered) if m in offered]
    n = ws.n_samples
    a, b, c = st.columns([3, 1, 1], vertical_alignment="bottom")
    chosen = a.multiselect(
        "Selectors",
        offered,
        default=made_methods,
        help="Random is always drawn: it is what every selector is read against.  \n"
        + "  \n".join(f"**{m}**: {SELECTORS[m].description}" for m in methods),
        key=f"curve_methods_{ws.name}",
    )
    seeds = int(
        b.number_input(
            "Seeds",
            min_value=1,
            max_value=20,
            value=min(max(int(made.get("seeds", DEFAULT_SEEDS)), 1), 20),
            key=f"curve_seeds_{ws.name}",
        )
    )
    largest = int(
        c.number_input(
            "Largest budget",
            min_value=min(20, n),
            max_value=n,
            value=min(max(int(made.get("largest", DEFAULT_LARGEST)), min(20, n)), n),
            step=100,
            key=f"curve_largest_{ws.name}",
            help="Selectors are scored at log-spaced budgets up to this; random goes on to all "
            f"{n:,} rows.",
        )
    )
    return CurveSettings(("random", *chosen), seeds, largest)


def made_note(section: CurvesSection | None) -> str:
    """When and how the stored curves were made, for the caption under them."""
    if section is None:
        return ""
    made = dict(section.settings)
    methods = [m for m in made.get("methods", []) if m != "random"]
    how = (
        f"selectors {', '.join(methods) or 'none'} and random; {made.get('seeds', '?')} seeds; "
        f"selectors' budgets up to {int(made.get('largest', 0)):,} rows"
    )
    by = f" by `{section.by}`" if section.by else ""
    when = f" on {section.computed[:16].replace('T', ' ')}" if section.computed else ""
    took = f" in {fmt.duration(section.seconds)}" if section.seconds is not None else ""
    made_by = f", computed{by}{when}{took}" if by or when or took else ""
    return f"Stored curves{made_by} ({how})."


def job_kind(settings: CurveSettings) -> str:
    """The kind of the curves' job record (``core.workspace.jobs.record``): one per settings."""
    text = json.dumps([list(settings.methods), settings.seeds, settings.largest])
    return f"curves-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def curve_job(ws: Workspace, settings: CurveSettings) -> Job | None:
    """The record of the curves' job for these settings, or None when none ever ran."""
    return read_job(ws.path, job_kind(settings))


def stored_settings(workspace: Workspace, settings: CurveSettings) -> dict[str, Any]:
    """The settings the curves are stored under: the CLI's (`prism compare --curves`) for the
    same selectors, seeds and largest budget, so that either finds the other's curves."""
    return stored_curve_settings(
        workspace, methods=settings.methods, seeds=settings.seeds, largest=settings.largest
    )


def _compute(path: str, settings: CurveSettings, kind: str, total: int) -> None:
    """Score the curves (stored in the workspace), reporting each step in the job record."""
    workspace = Workspace.open(path)
    done = 0

    def tick(step: str) -> None:
        nonlocal done
        done += 1
        report_job(path, kind, done=done, total=total, step=step)

    workspace_curves(workspace, stored_settings(workspace, settings), by="the app", progress=tick)


def start_curves(ws: Workspace, settings: CurveSettings) -> Future[None] | None:
    """Start computing the curves in a thread of the app, recorded as a job of the workspace;
    None when they are being computed already."""
    kind = job_kind(settings)
    job = read_job(ws.path, kind)
    if job is not None and job.running:
        return None
    clustered = "cluster" in cache.samples(ws).columns
    planned = [m for m in settings.methods if clustered or not SELECTORS[m].needs_clusters]
    total = max(len(set(planned) | {"random"}), 1) * settings.seeds
    path = str(ws.path)
    return run_in_thread(_compute, path, settings, kind, total, where=path, kind=kind, total=total)


def _seconds(job: Job) -> float | None:
    """How long the job ran (to its last report), or None when its times cannot be read."""
    try:
        started = datetime.strptime(job.started, TIME_FORMAT)
        updated = datetime.strptime(job.updated, TIME_FORMAT)
    except ValueError:
        return None
    return (updated - started).total_seconds()


def curve_summary(ws: Workspace, settings: CurveSettings) -> pd.DataFrame | None:
    """The finished curves for these settings (stored in the workspace), or None."""
    job = curve_job(ws, settings)
    if job is not None and job.running:
        return None
    return stored_curves(
        str(ws.path), cache.manifest_version(ws), settings.methods, settings.seeds, settings.largest
    )


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
    if job is not None and job.running:
        _follow(str(ws.path), job_kind(settings))
        return
    if job is not None and job.status == FAILED:
        error_message(f"The curves could not be computed: {job.message}")
    n = ws.n_samples
    budgets = curve_budgets(ws, stored_settings(ws, settings))
    st.caption(
        f"Each selector is run {settings.seeds} times (one per seed) at budgets from "
        f"{budgets[0]:,} to {budgets[-1]:,} rows, and random subsets up to all {n:,} rows; every "
        "subset is scored by its G-Vendi. This runs in the background: the page stays usable."
    )
    other = stored_section(str(ws.path), cache.manifest_version(ws))
    if other is not None:  # stored for other settings than those chosen above
        st.caption(made_note(other) + " Choose those settings above to draw them again.")
    failed = job is not None and job.status == FAILED
    if st.button(
        "Try again" if failed else "Compute the curves",
        type="primary",
        icon=":material/show_chart:",
        key="curves_start",
    ):
        future = start_curves(ws, settings)
        # Small workspaces finish at once; larger ones are followed (a failure is in the record).
        with contextlib.suppress(Exception):
            if future is not None:
                future.result(timeout=3)
        st.rerun()


@st.fragment(run_every=1.0)
def _follow(path: str, kind: str) -> None:
    job = read_job(path, kind)
    if job is None or not job.running:
        st.rerun(scope="app")
        return
    elapsed = fmt.duration(_seconds(dataclasses.replace(job, updated=now())))
    total = max(job.total, 1)
    st.progress(
        min(max(job.done - 1, 0) / total, 1.0),
        text=f"Scoring {job.step} ({min(job.done, total)} of {total}) · {elapsed}",
    )


def random_words(equal: float | None, size: int, n: int) -> tuple[str, str]:
    """("≈ random at", "rows saved") as words: "1,020" and "3.1×", or above every random size
    and the least it saves (all ``n`` rows over ``size``)."""
    if equal is None or equal != equal:
        return ABOVE_RANDOM, f"> {n / size:,.1f}×"
    return f"{equal:,.0f}", f"{round(equal) / size:,.1f}×"


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
        else curve_charts.equivalent_text(size, e if e == e else None, n=n)
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
            curve_charts.budget_figure(
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
    seeds = int(summary["n_seeds"].max())
    st.caption(
        f"Lines: mean G-Vendi over {seeds} seeds; bands: lowest to highest seed. Yellow marks: your "
        "saved subsets. A point left of the random line at the same height needs fewer rows for the "
        "same diversity. " + made_note(stored_section(str(ws.path), cache.manifest_version(ws)))
    )
