"""The Prismatic Synthesis loop on a workspace: rounds of generate → featurise → judge → join.

One round (as published; every step is a setting of ``SynthesisConfig``):

1. cluster the current pool — the workspace's own clustering when it covers exactly the current
   rows, else spherical k-means with k = 10% of the pool (``prism cluster``'s, written back);
2. plan ``per_round`` requests aimed at the target (default: a random cluster among the smallest
   10%), each with ``few_shot`` examples from it (``core.synthesis.targets``), and ask the
   generator (``core.synthesis.generators``) for a new prompt, then its response — or a new
   text (``core.synthesis.prompts``);
3. compute the candidates' features with the workspace's own proxy, scope, dim and seed;
4. judge them (``core.synthesis.filter``): malformed, duplicate, dense (nearest centroid not a
   sparse cluster) or kept; store every candidate with its provenance
   (``core.workspace.synthesis.candidates``);
5. join the kept ones (``core.workspace.synthesis.grow``) unless ``review`` is on, in which case the
   round waits for keep/drop by hand and ``prism synthesize WS --join``.

A joined round can be taken out again (``unjoin``): its rows leave, the scores return to their
values before the join, and its record says "unjoined".

The job is ``synthesis`` in ``jobs/`` (``core.workspace.jobs.record``): progress per candidate, a
Cancel (SIGTERM) or Ctrl-C keeps every finished round and stops within a step even while an
endpoint hangs, and a resumed run starts at the first round not yet joined (a round whose
candidates are on disk is joined, not generated again).

Checked before any model loads or any job is recorded: the workspace's features are Prism's own
(``check_synthesizable``: imported features have no proxy to measure candidates with), and a
resumed run that sent an endpoint key can read it again (keys are never stored).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.errors import JobStopped, PrismError
from core.synthesis.endpoint import endpoint_key
from core.synthesis.generation import Generator
from core.workspace.analyses import workspace_scores
from core.workspace.jobs.record import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    Stop,
    read_job,
    report_job,
    sigterm_stops,
    start_job,
)
from core.workspace.manifest import RoundRecord, SynthesisSection
from core.workspace.origin import imported_source
from core.workspace.store import Workspace
from core.workspace.synthesis.candidates import read_round, round_numbers
from core.workspace.synthesis.grow import join_round, place, recover_join, unjoin_round
from core.workspace.synthesis.rounds import SynthesisConfig, SynthesisRound

KIND = "synthesis"  # the job's kind in jobs/


def _section(workspace: Workspace) -> SynthesisSection:
    return workspace.section(SynthesisSection) or SynthesisSection()


def _save_record(workspace: Workspace, record: RoundRecord) -> None:
    with workspace.lock():
        workspace.reload()
        section = _section(workspace)
        rounds = [r for r in section.rounds if r.round != record.round]
        rounds = sorted([*rounds, record], key=lambda r: r.round)
        joined = sum(r.joined or 0 for r in rounds)
        workspace.set_section(section.replace(rounds=tuple(rounds), n_joined=joined))


def _g_vendi(workspace: Workspace) -> float:
    scores = workspace.scores
    if scores is not None and scores.n == workspace.n_samples and scores.g_vendi is not None:
        return float(scores.g_vendi)
    return float(workspace_scores(workspace).g_vendi or 0.0)


def round_record(workspace: Workspace, round_no: int) -> RoundRecord:
    """The manifest's record of a round (counts, G-Vendi and sparse rows before → after)."""
    for record in _section(workspace).rounds:
        if record.round == round_no:
            return record
    return RoundRecord(round=round_no)


def join(workspace: Workspace, round_no: int) -> RoundRecord:
    """Join a judged round and complete its record (what ``--join`` and the loop call). The
    counts come from the round's candidates, so a join resumed after a kill records them too."""
    recover_join(workspace)
    record = round_record(workspace, round_no)
    before = record.g_vendi_before
    if before is None:
        before = _g_vendi(workspace)
    join_round(workspace, round_no)
    workspace.reload()
    frame, _ = read_round(workspace, round_no)
    joined = frame["joined"].to_numpy(dtype=bool)
    landing = joined & frame["nearest_sparse"].to_numpy(dtype=bool)
    record = record.replace(
        g_vendi_before=float(before),
        g_vendi_after=_g_vendi(workspace),
        joined=int(joined.sum()),
        sparse_rows_after=(record.sparse_rows_before or 0) + int(landing.sum()),
        sparse_clusters_reached=int(frame.loc[landing, "nearest_cluster"].nunique()),
        status="joined",
    )
    _save_record(workspace, record)
    return record


def unjoin(workspace: Workspace, round_no: int) -> RoundRecord:
    """Undo a round's join (``core.workspace.synthesis.grow.unjoin_round``) and record it: the
    rows taken out, G-Vendi after, and the subsets marked stale."""
    record = round_record(workspace, round_no)
    if round_no not in round_numbers(workspace) or not record.is_joined:
        joined = joined_rounds(workspace)
        raise PrismError(
            f"round {round_no} has no join to undo; joined rounds: "
            f"{', '.join(map(str, joined)) or 'none'}.",
            param="unjoin",
        )
    removed, stale = unjoin_round(workspace, round_no)
    workspace.reload()
    record = record.replace(
        status="unjoined",
        joined=0,
        unjoined=removed,
        g_vendi_unjoined=_g_vendi(workspace),
        stale_subsets=tuple(stale),
    )
    _save_record(workspace, record)
    return record


def joined_rounds(workspace: Workspace) -> list[int]:
    """Rounds whose join stands (can be undone), in order."""
    return [r for r in round_numbers(workspace) if round_record(workspace, r).is_joined]


def pending_rounds(workspace: Workspace) -> list[int]:
    """Rounds whose candidates are judged but not yet joined (nor unjoined)."""
    return [
        r
        for r in round_numbers(workspace)
        if not (round_record(workspace, r).is_joined or round_record(workspace, r).is_unjoined)
    ]


def check_synthesizable(workspace: Workspace) -> None:
    """Refuse a workspace whose features Prism cannot compute for new candidates.

    Candidates are judged against the pool's clusters, so their features must be in the
    workspace's own feature space; features imported from elsewhere name no model Prism can run.
    """

    source = imported_source(workspace)
    if source is None:
        return
    data = workspace.dataset.source or "DATA"
    raise PrismError(
        f"{workspace.path} holds features imported from {source}, and synthesis must measure "
        "each new candidate in the workspace's own feature space, which Prism cannot compute for "
        "imported features (they name no model Prism can run). To grow this dataset, extract "
        f"features with Prism into a new workspace (`prism features {data} --workspace NEW`), "
        "then run `prism synthesize NEW`.",
        param="workspace",
    )


def _check_key_again(workspace: Workspace, config: SynthesisConfig, sent_key: bool) -> None:
    """A resumed run whose first part sent a key must find one again (keys are never stored)."""

    if not (config.endpoint and sent_key) or endpoint_key(config.api_key_env, config.api_key_file):
        return
    where = (
        f"in the file {config.api_key_file} (api_key_file)"
        if config.api_key_file
        else f"in the environment variable {config.api_key_env} (api_key_env)"
    )
    raise PrismError(
        f"The run to resume sent a key to {config.endpoint}, and Prism never stores keys: put "
        f"it {where} again, then resume. (A key can also come from another variable or a "
        "file: api_key_env, api_key_file.)",
        param="api_key_env" if not config.api_key_file else "api_key_file",
    )


def run_synthesis(
    workspace: Workspace,
    config: SynthesisConfig,
    *,
    generator: Generator | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[RoundRecord]:
    """Run ``config.rounds`` rounds (after joining any judged round left by a stopped run).

    Returns the records of the rounds this call finished. With ``review`` the loop stops after
    one round, leaving it for keep/drop by hand and ``join``.
    """
    # heavy: torch, only when a round computes features
    from core.features.extract import FeatureExtractor
    from core.features.proxy import load_proxy
    from core.synthesis.endpoint import endpoint_key
    from core.workspace.jobs.extraction import config_from_workspace

    check_synthesizable(workspace)  # before anything is loaded, written or recorded as a job
    # whether a key is sent (never the key): a resumed run must find one again
    sent_key = bool(config.endpoint and endpoint_key(config.api_key_env, config.api_key_file))
    recover_join(workspace)  # a join a kill interrupted is undone, and done again below
    workspace.features()  # a clear message when the features are not finished
    total = config.rounds * config.per_round
    started = None
    state = {"done": 0, "round": 0}

    def report(step: str, within: int, status: str = RUNNING, message: str = "") -> None:
        nonlocal started
        done = min(total, state["done"] + within)
        job = report_job(
            workspace,
            KIND,
            status=status,
            done=done,
            total=total,
            step=step,
            started=started,
            message=message or f"round {state['round']}: {step}",
        )
        started = job.started
        if on_progress is not None:
            on_progress({"step": step, "done": done, "total": total, "round": state["round"]})

    finished: list[RoundRecord] = []
    with sigterm_stops():
        try:
            waiting = pending_rounds(workspace)
            if waiting and config.review:
                raise PrismError(
                    f"Round {waiting[0]} waits for review: keep or drop its candidates, then "
                    f"`prism synthesize {workspace.path} --join`.",
                    param="review",
                )
            for round_no in waiting:
                state["round"] = round_no
                report("joining", 0)
                finished.append(join(workspace, round_no))
            first = max(round_numbers(workspace), default=0) + 1
            with workspace.lock():
                workspace.reload()
                settings = {
                    **config.settings(),
                    "first_round": first,
                    "last_round": first + config.rounds - 1,
                    "sent_key": sent_key,
                }
                workspace.set_section(_section(workspace).replace(settings=settings))
            report("loading models", 0, message="loading the generator and the proxy")
            feature_config = config_from_workspace(workspace)
            if generator is None:  # first: an endpoint's problems show before the proxy loads
                # heavy: torch and transformers, only when a generator is made
                from core.synthesis.generators import make_generator

                generator = make_generator(
                    config.generator,
                    endpoint=config.endpoint,
                    endpoint_model=config.endpoint_model,
                    api_key_env=config.api_key_env,
                    api_key_file=config.api_key_file,
                )
            proxy = load_proxy(
                feature_config.model,
                dtype=feature_config.dtype,
                device=feature_config.device,
                trust_remote_code=feature_config.trust_remote_code,
            )
            with workspace.lock():
                workspace.reload()
                workspace.set_section(_section(workspace).replace(generator=generator.label))
            runner = SynthesisRound(
                workspace, config, generator, FeatureExtractor(proxy, feature_config), report
            )
            joined_now = sum(r.joined or 0 for r in finished)
            for round_no in range(first, first + config.rounds):
                if config.budget is not None and joined_now >= config.budget:
                    break
                state["round"] = round_no
                t_round = time.monotonic()
                before = _g_vendi(workspace)
                runner.run(round_no)
                record = runner.record.replace(
                    g_vendi_before=before,
                    status="judged",
                    seconds=round(time.monotonic() - t_round, 2),
                )
                _save_record(workspace, record)
                if config.review:
                    finished.append(record)
                    break
                report("joining", config.per_round)
                record = join(workspace, round_no)
                record = record.replace(seconds=round(time.monotonic() - t_round, 2))
                _save_record(workspace, record)
                finished.append(record)
                joined_now += record.joined or 0
                state["done"] += config.per_round
            report("done", 0, status=DONE, message=_summary(finished))
        except (Stop, KeyboardInterrupt) as error:
            interrupted = isinstance(error, KeyboardInterrupt)
            kept = [r.round for r in finished]
            report(
                "stopped",
                0,
                status=CANCELLED,
                message=f"stopped in round {state['round']}; finished rounds are kept",
            )
            raise JobStopped(
                f"Synthesis was {'interrupted' if interrupted else 'stopped'} in round "
                f"{state['round']}; {'rounds ' + ', '.join(map(str, kept)) if kept else 'no round'} "
                f"finished in this run and everything finished is kept in {workspace.path}. "
                f"Continue with `prism synthesize {workspace.path} --resume`.",
                exit_code=130 if interrupted else 143,
            ) from None
        except BaseException as error:
            report("failed", 0, status=FAILED, message=str(error) or type(error).__name__)
            raise
    return finished


def gain(records: Sequence[RoundRecord]) -> float | None:
    """G-Vendi gained per 100 joined samples over ``records`` (first before → last after)."""
    joined = [r for r in records if r.is_joined]
    n = sum(r.joined or 0 for r in joined)
    after, before = (joined[-1].g_vendi_after, joined[0].g_vendi_before) if joined else (None, None)
    if not n or after is None or before is None:
        return None
    return 100.0 * (after - before) / n


def start(path: str | os.PathLike[str], config: SynthesisConfig) -> int:
    """Run ``prism synthesize`` with ``config`` in a detached process (the app's Start); returns
    its pid. Progress is the ``synthesis`` job; Cancel is ``cancel_job(path, KIND)``."""

    check_synthesizable(Workspace.open(path))  # refused here, not in a job that fails at once
    argv = ["core", "synthesize", str(path), "--quiet"]
    defaults = SynthesisConfig()
    for name, value in config.settings().items():
        if name == "review":  # always said: the command's default depends on the generator
            argv.append("--review" if value else "--no-review")
            continue
        if value == getattr(defaults, name) or value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flag = {"sparse_only": "--no-filter", "quality_gate": "--no-quality-gate"}[name]
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    job = start_job(path, KIND, argv, total=config.rounds * config.per_round, step="starting")
    return int(job.pid or 0)


def fail_started_job(workspace: Workspace, error: BaseException) -> None:
    """Record why a started synthesis job (``start``) failed before its first round, so that
    the app shows the reason rather than a vanished process."""
    job = read_job(workspace.path, KIND)
    if job is not None and job.running and job.pid == os.getpid():
        report_job(workspace, KIND, status=FAILED, step="failed", message=str(error))


def candidate_coords(workspace: Workspace, round_no: int) -> np.ndarray | None:
    """Map coordinates (M×2) of a round's candidates, placed among the samples as joined rows
    are (``core.workspace.synthesis.grow.place``); None without a map. Malformed candidates get NaN."""
    if "umap_x" not in workspace.sample_columns():
        return None
    frame, features = read_round(workspace, round_no)
    samples = workspace.samples(["id", "umap_x", "umap_y"])
    coords = np.full((len(frame), 2), np.nan)
    ids = pd.Index(samples["id"].astype(str))
    at = ids.get_indexer(frame["candidate_id"].astype(str))
    joined = at >= 0
    xy = samples[["umap_x", "umap_y"]].to_numpy(dtype=np.float64)
    coords[joined] = xy[at[joined]]
    todo = np.flatnonzero(~joined & (frame["reason"] != "malformed").to_numpy())
    if todo.size:
        coords[todo] = place(workspace.features(), xy, features[todo])
    return coords


def _summary(records: list[RoundRecord]) -> str:
    joined = sum(r.joined or 0 for r in records)
    generated = sum(r.generated or 0 for r in records)
    return f"{len(records)} round(s): {generated} generated, {joined} joined"


def resume_config(workspace: Workspace, **overrides: Any) -> SynthesisConfig:
    """The config of the last run, for the rounds it has left (``--resume``); ``overrides`` may
    name another key source (``api_key_env``, ``api_key_file``). Refused up front when the run
    sent a key that cannot be found now."""
    check_synthesizable(workspace)
    settings = dict(_section(workspace).settings)
    if not settings:
        raise PrismError(
            f"{workspace.path} has no synthesis run to resume; start one with "
            f"`prism synthesize {workspace.path} --rounds R --per-round N`.",
            param="resume",
        )
    last = int(settings.pop("last_round", 0))
    settings.pop("first_round", None)
    sent_key = bool(settings.pop("sent_key", False))
    done = max(
        [r for r in round_numbers(workspace) if r not in pending_rounds(workspace)], default=0
    )
    left = last - done - len(pending_rounds(workspace))
    settings.update(overrides)
    settings["rounds"] = max(1, left)
    known = set(SynthesisConfig.__dataclass_fields__)
    config = SynthesisConfig(**{k: v for k, v in settings.items() if k in known})
    _check_key_again(workspace, config, sent_key)
    return config
