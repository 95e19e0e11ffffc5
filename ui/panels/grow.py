"""The Grow page: aim new samples at the sparse regions of gradient space (the Prismatic
Synthesis loop of ``core.workspace.synthesis.loop``), follow the background job, see where the
candidates landed and which joined.

The page reads the run's settings (target, generator, counts, filter, review) into a
``SynthesisConfig``, starts ``prism synthesize`` detached (``core.workspace.synthesis.loop.start``)
and polls its ``synthesis`` job from an ``st.fragment(run_every=…)``, so a refresh or a closed tab
does not stop it. The map, the round table and the candidates are in ``ui.panels.grow_map`` and
``ui.panels.grow_rounds``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.workspace.analyses import cluster_workspace
from core.workspace.jobs import analysis as analyze
from core.workspace.jobs.record import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    cancel_job,
    job_path,
    read_job,
)
from core.workspace.manifest import RoundRecord, SynthesisSection
from core.workspace.store import Workspace
from core.workspace.synthesis import loop as synthesis
from core.workspace.synthesis.candidates import round_numbers
from core.workspace.synthesis.grow import is_extended
from core.workspace.synthesis.rounds import SynthesisConfig
from ui import cache, state
from ui import format as fmt
from ui.errors import Slots
from ui.panels import jobs
from ui.panels.clusters import cluster_table_view
from ui.panels.grow_map import grow_map, pick_cluster, picked_cluster
from ui.panels.grow_rounds import candidates_panel, round_table
from ui.widgets import code, error_message, plain

KIND = synthesis.KIND
# The aim of a run (widget label → target kind of ``core.synthesis.targets``).
AIMS = {
    "Sparse clusters": "sparse",
    "One cluster": "cluster",
    "A subset": "subset",
    "Random clusters": "random",
}
GENERATORS = ("Embedded model", "Hugging Face model", "OpenAI-compatible endpoint")
KEY = "grow_"  # prefix of this page's widget keys
LOG_LINES = 12  # lines of a failed job's log shown


def grow_page(ws: Workspace) -> None:
    """The whole page: summary, map and settings side by side, the rounds, the candidates."""
    if analyze.needs_analysis(ws):
        jobs.build_map(ws)
        st.stop()
    frame = cache.samples(ws)
    candidates = cache.candidates(ws)
    section = ws.section(SynthesisSection) or SynthesisSection()
    records = list(section.rounds)
    picked_cluster(ws, frame)
    _table_pick(ws)
    _summary(ws, records, len(candidates))
    left, right = st.columns([0.58, 0.42], gap="large")
    with right:
        job_panel(ws)
    with left:
        grow_map(ws, frame, candidates)
        target_table(ws)
    st.divider()
    round_table(ws, records)
    candidates_panel(ws, candidates)


def _summary(ws: Workspace, records: list[RoundRecord], n_candidates: int) -> None:
    joined = sum(r.joined or 0 for r in records)
    per_100 = synthesis.gain(records)
    a, b, c, d, e = st.columns(5)
    a.metric("Samples", f"{ws.n_samples:,}")
    b.metric("Rounds", f"{len(records):,}")
    c.metric("Candidates", f"{n_candidates:,}")
    d.metric("Joined", f"{joined:,}")
    e.metric(
        "G-Vendi per 100 joined",
        "—" if per_100 is None else f"{per_100:+.2f}",
        help="G-Vendi after the last joined round minus before the first, per 100 samples "
        f"joined. G-Vendi now: {fmt.score(ws.g_vendi)}.",
    )


# -- the target --------------------------------------------------------------------------------


def _picked(ws: Workspace) -> dict[str, Any] | None:
    value = st.session_state.get(state.GROW_TARGET)
    if isinstance(value, dict) and value.get("workspace") == str(ws.path):
        return value
    return None


def _cluster_table(ws: Workspace) -> tuple[pd.DataFrame, bool]:
    """The cluster table, sparse clusters first (smallest first within each group)."""
    table, pending = cache.cluster_table(ws)
    if table.empty:
        return table, pending
    table = table.sort_values(["sparse", "size"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True), pending


def _table_pick(ws: Workspace) -> None:
    """A new click in the cluster table aims at that cluster (read before the settings draw)."""
    event = st.session_state.get(state.table_key(state.GROW_CLUSTER_TABLE))
    rows = ((event or {}).get("selection") or {}).get("rows") or []
    signature = str(rows)
    if rows and signature != st.session_state.get(state.GROW_CLUSTER_PICK):
        st.session_state[state.GROW_CLUSTER_PICK] = signature
        table, _ = _cluster_table(ws)
        if int(rows[0]) < len(table):
            pick_cluster(ws, int(table["cluster"].iloc[int(rows[0])]), {"method": "table"})


def target_table(ws: Workspace) -> None:
    """Clusters by size, sparse ones first: a click aims the next run at that cluster."""
    table, pending = _cluster_table(ws)
    if table.empty:
        return
    st.markdown("#### Clusters")
    st.caption(
        "Sparse clusters (smaller than the median) come first, smallest first. By default each "
        "request aims at a random one of the smallest 10%; click a row to aim at that cluster."
    )
    cluster_table_view(
        table,
        order="sparse first, smallest first",
        height=260,
        key=state.table_key(state.GROW_CLUSTER_TABLE),
        selection_mode="single-row",
    )
    if pending:
        jobs.refresh_when_ready(str(ws.path))


def _target(ws: Workspace, slots: Slots) -> str:
    """The target chosen in the settings: sparse, random, cluster:ID or subset:NAME."""
    picked = _picked(ws)
    if picked is not None and st.session_state.get(f"{KEY}picked") != picked:
        # A new pick on the map or in the table: aim at it.
        st.session_state[f"{KEY}picked"] = picked
        st.session_state[f"{KEY}aim"] = "One cluster"
        st.session_state[f"{KEY}cluster"] = int(picked["cluster"])
    st.session_state.setdefault(f"{KEY}aim", "Sparse clusters")
    aim = st.segmented_control(
        "Aim at",
        list(AIMS),
        key=f"{KEY}aim",
        help="Where the few-shot examples come from. Sparse clusters is the published default; "
        "random clusters with the filter off is the published ablation.",
    )
    kind = AIMS.get(aim or "Sparse clusters", "sparse")
    if kind == "cluster":
        sizes = list((ws.clusters.sizes if ws.clusters is not None else ()) or ())
        sparse = set(ws.clusters.sparse if ws.clusters is not None else ())
        options = list(range(len(sizes)))
        if st.session_state.get(f"{KEY}cluster", 0) not in options:
            st.session_state.pop(f"{KEY}cluster", None)  # a cluster of an older clustering
        cluster = st.selectbox(
            "Cluster",
            options,
            key=f"{KEY}cluster",
            format_func=lambda c: (
                f"cluster {c} · {fmt.count(int(sizes[c]), 'sample')}"
                + (" · sparse" if c in sparse else "")
            ),
            help="Pick it here, in the cluster table, or by clicking or lassoing the map.",
        )
        if picked is not None and picked.get("how", {}).get("method") == "map":
            how = picked["how"]
            st.caption(
                f"From the map: {fmt.count(int(how['rows']), 'sample')} picked in "
                f"{fmt.count(int(how['clusters']), 'cluster')}; aiming at the cluster holding most "
                "of them."
            )
        slots.under("target")
        if is_extended(ws.clusters):
            _stale_clusters(ws)
        return f"cluster:{cluster}"
    if kind == "subset":
        names = sorted(ws.subsets())
        if not names:
            st.caption("No saved subset yet: save one on the Map or Subsets page.")
        name = st.selectbox("Subset", names, key=f"{KEY}subset")
        slots.under("target")
        return f"subset:{name or ''}"
    slots.under("target")
    clusters = ws.clusters
    if kind == "sparse" and clusters is not None:
        n_sparse = int(clusters.n_sparse or 0)
        st.caption(
            "Each request draws its examples from a random cluster among the smallest 10% of "
            f"the {int(clusters.n_clusters):,} clusters. {fmt.count(n_sparse, 'cluster')} "
            f"{'is' if n_sparse == 1 else 'are'} sparse (smaller than the median), holding "
            f"{fmt.count(int(clusters.n_in_sparse or 0), 'sample')}."
        )
    return kind


def _stale_clusters(ws: Workspace) -> None:
    """Joined rows were added to the clusters by nearest centroid; the next round clusters
    afresh, so a cluster number picked now would name a cluster of another clustering."""
    st.warning(
        "Rows joined since these clusters were computed, so the next round clusters the data "
        "afresh and cluster numbers may change. Re-cluster now to aim at a cluster that the "
        "next round will use.",
        icon=":material/warning:",
    )
    if st.button("Re-cluster now", icon=":material/refresh:", key=f"{KEY}recluster"):
        with st.spinner("Clustering…"):
            cluster_workspace(ws, seed=0)
        st.session_state.pop(f"{KEY}cluster", None)
        st.rerun()


# -- the generator -----------------------------------------------------------------------------


def _generator(slots: Slots) -> dict[str, Any]:
    """The generator options of ``SynthesisConfig`` (generator, endpoint, endpoint_model,
    api_key_env). The endpoint's key is never asked for: only the name of its variable."""
    kind = st.segmented_control(
        "Generator", GENERATORS, default=GENERATORS[0], key=f"{KEY}generator_kind"
    )
    if kind == "Hugging Face model":
        name = st.text_input(
            "Model name or local path",
            key=f"{KEY}hf_name",
            placeholder="e.g. Qwen/Qwen2.5-0.5B-Instruct",
            help="Any Hugging Face causal LM with a chat template, run on this machine.",
        )
        slots.under("generator")
        if not name.strip():
            raise PrismError(
                "Enter a Hugging Face model name or a local model folder to generate with.",
                param="generator",
            )
        return {"generator": name.strip()}
    if kind == "OpenAI-compatible endpoint":
        url = st.text_input(
            "Endpoint URL",
            key=f"{KEY}endpoint",
            placeholder="http://127.0.0.1:8000/v1",
            help="vLLM, SGLang, llama.cpp server, Ollama, `transformers serve` or a hosted API.",
        )
        slots.under("endpoint")
        model = st.text_input(
            "Model name",
            key=f"{KEY}endpoint_model",
            help="Leave empty when the server serves exactly one model.",
        )
        slots.under("endpoint_model")
        env = st.text_input(
            "Name of the environment variable holding the key",
            value="OPENAI_API_KEY",
            key=f"{KEY}api_key_env",
        )
        slots.under("api_key_env")
        st.caption(
            "Prism reads the key from this variable of the process running it, and never stores "
            "or shows it: there is no field for the key itself. Local servers need none."
        )
        if not url.strip():
            raise PrismError(
                "Enter the endpoint's URL, such as http://127.0.0.1:8000/v1.", param="endpoint"
            )
        return {
            "endpoint": url.strip(),
            "endpoint_model": model.strip() or None,
            "api_key_env": env.strip(),
        }
    st.caption(
        "SmolLM2-135M-Instruct, shipped with Prism and run offline. It is small: expect modest, "
        "often repetitive samples. A stronger model (a Hugging Face name or an endpoint) writes "
        "better ones."
    )
    slots.under("generator")
    return {"generator": "default"}


# -- the settings form and the job -------------------------------------------------------------


def settings_form(ws: Workspace) -> None:
    """Target, generator, counts and filter; Start validates them and starts the job."""
    slots = Slots()
    problem: PrismError | None = None
    with st.container(border=True):
        st.markdown("#### Grow the sparse regions")
        target = _target(ws, slots)
        try:
            generator = _generator(slots)
        except PrismError as error:
            problem, generator = error, {}
        a, b, c = st.columns(3)
        per_round = a.number_input("Per round", 1, 100_000, 20, key=f"{KEY}per_round")
        rounds = b.number_input("Rounds", 1, 10_000, 1, key=f"{KEY}rounds")
        few_shot = c.number_input(
            "Few-shot", 1, 50, 5, key=f"{KEY}few_shot", help="Examples shown per request."
        )
        slots.under("per_round", where=a)
        slots.under("rounds", where=b)
        slots.under("few_shot", where=c)
        sparse_only = st.toggle(
            "Keep only candidates that land in a sparse cluster",
            value=True,
            key=f"{KEY}filter",
            help="The published filter: a candidate joins when its nearest centroid belongs to "
            "a cluster smaller than the median. Off: every well-formed, new candidate joins.",
        )
        review = st.toggle(
            "Review each round by hand before it joins",
            value=True,
            key=f"{KEY}review",
            help="Stops after one round; keep or drop candidates below, then Join. On by "
            "default: a small generator often writes wrong or incoherent samples, and a joined "
            "sample counts in every score.",
        )
        slots.under("review")
        with st.expander("Sampling and limits"):
            d, e = st.columns(2)
            temperature = d.number_input("Temperature", 0.0, 2.0, 1.0, 0.1, key=f"{KEY}temperature")
            top_p = e.number_input("Top-p", 0.01, 1.0, 0.95, 0.05, key=f"{KEY}top_p")
            slots.under("temperature", where=d)
            slots.under("top_p", where=e)
            max_new = d.number_input(
                "Longest reply (tokens)", 1, 32_768, 384, key=f"{KEY}max_new_tokens"
            )
            seed = e.number_input("Seed", 0, 2**31 - 1, 0, key=f"{KEY}seed")
            slots.under("max_new_tokens", where=d)
            slots.under("seed", where=e)
            duplicate = d.number_input(
                "Duplicate above cosine",
                0.5,
                1.0,
                0.98,
                0.005,
                format="%.3f",
                key=f"{KEY}duplicate_cosine",
                help="A candidate this close to a sample already there is a duplicate.",
            )
            slots.under("duplicate_cosine", where=d)
        waiting = synthesis.pending_rounds(ws)
        if waiting:
            st.caption(
                f"Round {waiting[0]} waits for review: keep or drop its candidates below and "
                "join it before starting another run."
            )
        start = st.button(
            "Start",
            type="primary",
            icon=":material/play_arrow:",
            key=f"{KEY}start",
            disabled=bool(waiting),
        )
        slots.under("start")
    if not start:
        return
    try:
        if problem is not None:
            raise problem
        config = SynthesisConfig(
            rounds=int(rounds),
            per_round=int(per_round),
            target=target,
            few_shot=int(few_shot),
            temperature=float(temperature),
            top_p=float(top_p),
            max_new_tokens=int(max_new),
            seed=int(seed),
            duplicate_cosine=float(duplicate),
            sparse_only=bool(sparse_only),
            review=bool(review),
            **generator,
        )
        synthesis.start(ws.path, config)
    except PrismError as error:
        slots.show(error)
        return
    st.rerun()


def job_panel(ws: Workspace) -> None:
    """The running job live, or how the last one ended and the settings for the next."""
    job = read_job(ws.path, KIND)
    if job is not None and job.status == RUNNING:
        _running(str(ws.path))
        return
    if job is not None and job.status in (FAILED, CANCELLED):
        _stopped(ws, job.status, job.message)
    elif job is not None and job.status == DONE:
        st.success(f"The last run finished: {plain(job.message)}.", icon=":material/check_circle:")
    settings_form(ws)


def _stopped(ws: Workspace, status: str, message: str) -> None:
    with st.container(border=True):
        if status == FAILED:
            st.markdown("#### The last run stopped with an error")
            error_message(message or "The job ended without finishing.")
            log = job_path(ws.path, KIND).with_suffix(".log")
            if log.is_file():
                lines = log.read_text(errors="replace").splitlines()[-LOG_LINES:]
                with st.expander("The job's last log lines"):
                    st.code("\n".join(lines), language=None, wrap_lines=True)
        else:
            st.markdown("#### The last run was stopped")
            st.caption(plain(_stop_note(ws) or message or "Finished rounds are kept."))
        section = ws.section(SynthesisSection)
        if section is None or not section.settings:
            return
        if st.button("Resume", icon=":material/play_arrow:", key=f"{KEY}resume"):
            try:
                synthesis.start(ws.path, synthesis.resume_config(ws))
            except PrismError as error:
                error_message(str(error))
                return
            st.rerun()


def _stop_note(ws: Workspace) -> str | None:
    """Where a cancelled run stopped, in the rounds its progress showed (``first_round``–
    ``last_round`` of its settings): the first of them not joined. None without settings."""
    settings = (ws.section(SynthesisSection) or SynthesisSection()).settings
    first, last = settings.get("first_round"), settings.get("last_round")
    if not isinstance(first, int) or not isinstance(last, int):
        return None
    made, pending = set(round_numbers(ws)), set(synthesis.pending_rounds(ws))
    left = [r for r in range(first, last + 1) if r not in made or r in pending]
    if not left:
        return f"Stopped after round {last}; finished rounds are kept."
    planned = f"round {first}" if first == last else f"rounds {first}–{last}"
    return f"Stopped in round {left[0]} (of {planned}); finished rounds are kept."


@st.fragment(run_every=1.0)
def _running(path: str) -> None:
    job = read_job(path, KIND)
    ws = Workspace.open(path)
    rounds = round_numbers(ws)
    seen = st.session_state.get(f"{KEY}seen_rounds")
    st.session_state[f"{KEY}seen_rounds"] = rounds
    if job is None or job.status != RUNNING or (seen is not None and seen != rounds):
        st.rerun(scope="app")  # finished, or a round was scored: redraw map and tables
    with st.container(border=True):
        head, stop = st.columns([1.6, 1], vertical_alignment="center")
        head.markdown("#### Growing")
        if stop.button("Cancel", icon=":material/stop:", width="stretch", key=f"{KEY}cancel"):
            cancel_job(path, KIND)
            st.rerun(scope="app")
        st.progress(
            job.fraction,
            text=f"{job.done:,} of {fmt.count(job.total, 'candidate')} · {plain(job.message)}",
        )
        settings = (ws.section(SynthesisSection) or SynthesisSection()).settings
        generator = (ws.section(SynthesisSection) or SynthesisSection()).generator
        if settings:
            st.caption(
                f"target {code(settings.get('target', ''))} · "
                f"{settings.get('per_round', '?')} per round · rounds "
                f"{settings.get('first_round', '?')}–{settings.get('last_round', '?')}"
                + (f" · {code(generator)}" if generator else "")
            )
        st.caption(
            "The job runs in its own process: refresh or close this tab and it keeps going. "
            "Candidates appear on the map as each round is scored."
        )
