"""The Grow page's results: the round table (counts by verdict, G-Vendi and rows in sparse
clusters before → after, G-Vendi gained per 100 joined), the candidates, one candidate read
beside its few-shot examples, keep or drop by hand, and Join for rounds left for review."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import PrismError
from core.synthesis.quality import RULE
from core.workspace.manifest import RoundRecord
from core.workspace.store import Workspace
from core.workspace.synthesis import loop as synthesis
from core.workspace.synthesis.candidates import decide, examples_of
from ui import cache, state
from ui import format as fmt
from ui.errors import Slots
from ui.panels.grow_map import VERDICTS, verdicts
from ui.panels.records import sample_parts
from ui.widgets import code, plain

KEY = "grow_"
MAX_CANDIDATES = 2_000  # rows listed in the candidate table (the newest rounds first)
COUNTS = ("generated", "malformed", "duplicate", "low_quality", "dense", "kept", "joined")
STATUS = {"joined": "joined", "unjoined": "unjoined"}  # any other: judged, to review
ROUND_COLUMNS = {
    "round": "Round",
    "target": "Target",
    "generated": "Generated",
    "malformed": "Malformed",
    "duplicate": "Duplicate",
    "low_quality": "Low quality",
    "dense": "Dense",
    "kept": "Kept",
    "joined": "Joined",
    "g_vendi": "G-Vendi before → after",
    "sparse_rows": "Rows in sparse clusters before → after",
    "seconds": "Seconds",
    "status": "Status",
}


def _arrow(before: Any, after: Any, *, score: bool) -> str:
    def one(value: Any) -> str:
        if value is None:
            return "—"
        return fmt.score(float(value)) if score else f"{int(value):,}"

    return f"{one(before)} → {one(after)}"


def round_rows(records: Sequence[RoundRecord]) -> pd.DataFrame:
    """One row per round record, as the round table shows it."""
    rows = []
    for r in records:
        rows.append(
            {
                "round": r.round,
                "target": r.target or "",
                **{k: getattr(r, k) or 0 for k in COUNTS},
                "g_vendi": _arrow(r.g_vendi_before, r.g_vendi_after, score=True),
                "sparse_rows": _arrow(r.sparse_rows_before, r.sparse_rows_after, score=False),
                "seconds": float("nan") if r.seconds is None else r.seconds,
                "status": STATUS.get(str(r.status), "to review"),
            }
        )
    return pd.DataFrame(rows, columns=list(ROUND_COLUMNS))


def round_table(ws: Workspace, records: Sequence[RoundRecord]) -> None:
    """The rounds' counts and scores, the quality rule, and an undo for a joined round."""
    st.markdown("#### Rounds")
    if not records:
        st.caption(
            "No round yet. Each round asks the generator for new samples, computes their "
            "gradient features with this workspace's proxy, and keeps those whose nearest cluster "
            "is sparse."
        )
        return
    st.dataframe(
        round_rows(records).rename(columns=ROUND_COLUMNS),
        hide_index=True,
        width="stretch",
        column_config={
            **{
                ROUND_COLUMNS[k]: st.column_config.NumberColumn(width="small")
                for k in ("round", *COUNTS)
            },
            "Seconds": st.column_config.NumberColumn("Seconds", format="%.1f", width="small"),
            "Status": st.column_config.TextColumn("Status", width="medium"),
        },
    )
    per_100 = synthesis.gain(records)
    generated = sum(r.generated or 0 for r in records)
    kept = sum(r.kept or 0 for r in records)
    seconds = sum(r.seconds or 0.0 for r in records)
    parts = [
        f"Acceptance {fmt.percent(kept / generated if generated else None)} "
        f"({kept:,} of {generated:,} kept by the filter)",
    ]
    if kept:
        parts.append(f"{seconds / kept:,.1f} s per kept sample")
    if per_100 is not None:
        parts.append(f"G-Vendi gained per 100 joined samples: **{per_100:+.2f}**")
    st.caption(" · ".join(parts))
    st.caption(
        "Dense: the candidate's nearest cluster is at or above the median size, so it adds "
        "little the data does not already teach. G-Vendi and rows in sparse clusters are "
        f"measured before and after each round joins. Low quality: {RULE}."
    )
    _undo_bar(ws)


def _undo_bar(ws: Workspace) -> None:
    """Take a joined round's rows out again (``core.workspace.synthesis.loop.unjoin``)."""
    joined = synthesis.joined_rounds(ws)
    if not joined:
        return
    pick, action = st.columns([1, 2], vertical_alignment="bottom")
    round_no = pick.selectbox("Joined round", joined[::-1], key=f"{KEY}unjoin_round")
    undo = action.button("Undo this join", icon=":material/undo:", key=f"{KEY}unjoin")
    action.caption(
        "Its rows leave the samples, features and every derived column; the scores return to "
        "their values before the join; subsets holding those rows are marked stale."
    )
    if not undo:
        return
    try:
        record = synthesis.unjoin(ws, int(round_no))
    except PrismError as error:
        st.error(plain(str(error)), icon=":material/error:")
        return
    stale = record.stale_subsets or ()
    state.flash(
        f"Round {record.round}: {fmt.count(int(record.unjoined or 0), 'row')} taken out."
        + (f" Subsets marked stale: {', '.join(stale)}." if stale else "")
    )
    st.rerun()


# -- candidates ------------------------------------------------------------------------------


def _sample(row: pd.Series) -> str:
    text = row["text"] if isinstance(row["text"], str) else row["prompt"]
    return str(text or row["raw_prompt"] or row["raw_response"] or "")


def candidate_rows(candidates: pd.DataFrame) -> pd.DataFrame:
    """The candidate table: newest rounds first, one line of each sample."""
    verdict = verdicts(candidates)
    table = pd.DataFrame(
        {
            "id": candidates["candidate_id"].astype(str),
            "round": candidates["round"].astype(int),
            "verdict": [VERDICTS.get(v, (v,))[0] for v in verdict],
            "by hand": candidates["decision"].fillna("").astype(str),
            "nearest": candidates["nearest_cluster"].astype(int),
            "target": candidates["target_cluster"].astype(int),
            "sample": [fmt.shorten(_sample(r), 120) for _, r in candidates.iterrows()],
        }
    )
    order = np.lexsort((np.arange(len(table)), -table["round"].to_numpy()))
    return table.iloc[order[:MAX_CANDIDATES]].reset_index(drop=True)


def candidates_panel(ws: Workspace, candidates: pd.DataFrame) -> None:
    """Every candidate; one read in full beside its few-shot examples; review and Join."""
    st.markdown("#### Candidates")
    if candidates.empty:
        st.caption(
            "The candidates of each round appear here, with the reason each was kept or not."
        )
        return
    table = candidate_rows(candidates)
    waiting = synthesis.pending_rounds(ws)
    if waiting:
        _join_bar(ws, waiting)
    more = f" (the newest {MAX_CANDIDATES:,})" if len(candidates) > MAX_CANDIDATES else ""
    st.caption(f"{fmt.count(len(candidates), 'candidate')}{more}. Click one to read it.")
    event = st.dataframe(
        table,
        key=state.table_key(state.GROW_CANDIDATE_TABLE),
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        height=280,
        width="stretch",
        column_config={
            "id": st.column_config.TextColumn("Candidate"),
            "round": st.column_config.NumberColumn("Round", format="%d"),
            "verdict": st.column_config.TextColumn("Verdict"),
            "by hand": st.column_config.TextColumn("By hand"),
            "nearest": st.column_config.NumberColumn("Nearest cluster", format="%d"),
            "target": st.column_config.NumberColumn("Aimed at", format="%d"),
            "sample": st.column_config.TextColumn("Sample", width="large"),
        },
    )
    ids = table["id"].tolist()
    selected: Mapping[str, Any] = event if isinstance(event, Mapping) else {}
    rows = (selected.get("selection") or {}).get("rows") or []
    if rows and st.session_state.get(f"{KEY}table_pick") != rows:
        st.session_state[f"{KEY}table_pick"] = rows
        st.session_state[state.GROW_READ] = ids[int(rows[0])]
    if st.session_state.get(state.GROW_READ) not in ids:
        st.session_state[state.GROW_READ] = ids[0]
    chosen = st.selectbox("Read candidate", ids, key=state.GROW_READ)
    record = candidates.loc[candidates["candidate_id"].astype(str) == chosen].iloc[0]
    reader(ws, record)


def _join_bar(ws: Workspace, waiting: list[int]) -> None:
    with st.container(border=True):
        text, action = st.columns([3, 1], vertical_alignment="center")
        names = ", ".join(str(r) for r in waiting)
        text.markdown(
            f"**Round {names} waits for review.** Keep or drop candidates by hand (read one "
            "below), then join: the filter's kept candidates join unless dropped, and those kept "
            "by hand join too."
        )
        if action.button("Join", type="primary", icon=":material/merge:", key=f"{KEY}join"):
            try:
                records = [synthesis.join(ws, r) for r in waiting]
            except PrismError as error:
                st.error(plain(str(error)), icon=":material/error:")
                return
            joined = sum(r.joined or 0 for r in records)
            state.flash(f"{fmt.count(joined, 'candidate')} joined the samples.")
            st.rerun()


def _facts(record: pd.Series) -> str:
    verdict = verdicts(record.to_frame().T).iloc[0]
    label = VERDICTS.get(verdict, (verdict,))[0]
    facts = [
        f"**{plain(str(record['candidate_id']))}**",
        f"round {int(record['round'])}",
        f"verdict: **{plain(label)}**",
        f"aimed at cluster {int(record['target_cluster'])}",
        f"nearest cluster {int(record['nearest_cluster'])}"
        + (" (sparse)" if bool(record["nearest_sparse"]) else ""),
    ]
    if record["reason"] != "malformed":
        facts.append(f"cosine to the closest sample {float(record['pool_cosine']):.3f}")
        facts.append(f"loss {float(record['loss']):.3f}")
    if record.get("quality"):
        facts.append(f"low quality: {plain(str(record['quality']))}")
    return " · ".join(facts)


def reader(ws: Workspace, record: pd.Series) -> None:
    """One candidate in full (or its raw reply when malformed) beside its few-shot examples,
    with keep/drop by hand while its round has not joined."""
    st.markdown(_facts(record))
    left, right = st.columns(2, gap="large")
    with left, st.container(border=True):
        st.markdown("##### The candidate")
        if isinstance(record["text"], str):
            st.markdown(plain(record["text"]))
        elif isinstance(record["prompt"], str):
            st.markdown("**Prompt**")
            st.markdown(plain(record["prompt"]))
            st.markdown("**Response**")
            st.markdown(plain(record["response"] or "(no response)"))
        else:
            st.caption("Malformed: the generator's raw reply could not be read as a sample.")
            st.code(
                str(record["raw_prompt"] or record["raw_response"] or "(empty)"),
                language=None,
                wrap_lines=True,
            )
        st.caption(f"generator {code(record['generator'])} · seed {int(record['seed'])}")
        if not bool(record["joined"]):
            _decision(ws, record)
    with right:
        examples(ws, record)


def _decision(ws: Workspace, record: pd.Series) -> None:
    slots = Slots()
    current = str(record["decision"] or "")
    a, b, c = st.columns(3)
    choice = None
    if a.button("Keep", icon=":material/check:", key=f"{KEY}keep", disabled=current == "keep"):
        choice = "keep"
    if b.button("Drop", icon=":material/close:", key=f"{KEY}drop", disabled=current == "drop"):
        choice = "drop"
    if c.button("As the filter said", key=f"{KEY}undo", disabled=current == ""):
        choice = ""
    slots.under("candidates")
    if choice is None:
        return
    try:
        decide(ws, [str(record["candidate_id"])], choice)
    except PrismError as error:
        slots.show(error)
        return
    st.rerun()


def examples(ws: Workspace, record: pd.Series) -> None:
    """The few-shot examples the generator was shown, read from the samples."""
    ids = examples_of(record)
    frame = cache.samples(ws)
    where = pd.Index(frame["id"].astype(str)).get_indexer(ids)
    st.markdown(f"##### Its {fmt.count(len(ids), 'few-shot example')}")
    for example_id, row in zip(ids, where, strict=True):
        with st.expander(f"id {example_id}", expanded=len(ids) <= 2):
            if row < 0:
                st.caption("This sample is no longer in the workspace.")
                continue
            cluster = frame["cluster"].iloc[row] if "cluster" in frame.columns else None
            if cluster is not None:
                st.caption(f"cluster {int(cluster)}")
            for label, text in sample_parts(ws, int(row)):
                st.markdown(label)
                st.markdown(plain(text))
