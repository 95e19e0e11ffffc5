"""The synthesis loop's candidates, every one kept with its provenance, under ``synthesis/``.

Per round ``r``: ``synthesis/round-<r>.parquet`` holds one row per candidate (``COLUMNS``: id,
round, target, few-shot example ids, generator and settings, seed, raw replies, the cleaned
sample, its features' loss and nearest cluster, the reason it was kept or rejected, for a
malformed one the problem (such as a reply over the length cap), for a low-quality one why
(``quality``), a decision by hand ("unjoined" once its join was undone) and whether it joined the
samples) and ``synthesis/round-<r>.npy`` its features
(M × dim float32, zero rows for malformed candidates). Both are written atomically, the features
first, so a round file on disk always has its features.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import PrismError, WorkspaceError
from core.workspace.files import read_npy, short, write_npy, write_parquet
from core.workspace.store import Workspace

DIRECTORY = "synthesis"
DECISIONS = ("", "keep", "drop")  # "" = as the filter said
UNJOINED = "unjoined"  # the decision recorded when a join is undone (never set by hand)
COLUMNS = (
    "candidate_id",
    "round",
    "target",
    "target_cluster",
    "examples",
    "generator",
    "settings",
    "seed",
    "raw_prompt",
    "raw_response",
    "prompt",
    "response",
    "text",
    "reason",
    "problem",
    "quality",
    "nearest_cluster",
    "nearest_cosine",
    "nearest_sparse",
    "pool_cosine",
    "loss",
    "grad_norm",
    "n_tokens",
    "n_response_tokens",
    "truncated",
    "decision",
    "joined",
)


def _stem(round_no: int) -> str:
    return f"round-{round_no:04d}"


def candidate_dir(workspace: Workspace) -> Path:
    return workspace.path / DIRECTORY


def round_numbers(workspace: Workspace) -> list[int]:
    """The rounds with candidates on disk, in order."""
    folder = candidate_dir(workspace)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("round-*.parquet"):
        digits = path.stem.removeprefix("round-")
        if digits.isdigit() and path.with_suffix(".npy").is_file():
            found.append(int(digits))
    return sorted(found)


def write_round(
    workspace: Workspace, round_no: int, frame: pd.DataFrame, features: np.ndarray
) -> None:
    """Store a round's candidates (``COLUMNS``, in order) and their features (rows aligned)."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing or len(frame) != len(features):
        raise WorkspaceError(
            f"round {round_no}: candidates lack columns {missing} or have {len(frame)} rows for "
            f"{len(features)} feature rows."
        )
    folder = candidate_dir(workspace)
    folder.mkdir(exist_ok=True)
    with workspace.lock():
        write_npy(folder / f"{_stem(round_no)}.npy", np.ascontiguousarray(features, np.float32))
        write_parquet(folder / f"{_stem(round_no)}.parquet", frame[list(COLUMNS)])


def read_round(workspace: Workspace, round_no: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A round's candidates and features, checked to match."""
    base = candidate_dir(workspace) / _stem(round_no)
    try:
        frame = pd.read_parquet(base.with_suffix(".parquet"))
        features = read_npy(base.with_suffix(".npy"), mmap=False)
    except (OSError, ValueError) as error:
        raise WorkspaceError(
            f"The candidates of round {round_no} in {base.parent} cannot be read "
            f"({short(error)}). Move {base}.parquet and .npy away to generate that round again."
        ) from None
    for name in ("problem", "quality"):  # rounds written before the column existed
        if name not in frame.columns:
            frame.insert(list(COLUMNS).index(name), name, "")
    if len(frame) != len(features):
        raise WorkspaceError(
            f"{base}.parquet has {len(frame)} candidates but {base}.npy {len(features)} rows. "
            f"Move both away to generate round {round_no} again."
        )
    return frame, features


def read_candidates(workspace: Workspace, rounds: Iterable[int] | None = None) -> pd.DataFrame:
    """Every candidate of ``rounds`` (all rounds by default), in round and generation order."""
    wanted = round_numbers(workspace) if rounds is None else list(rounds)
    frames = [read_round(workspace, r)[0] for r in wanted]
    if not frames:
        return pd.DataFrame({c: [] for c in COLUMNS})
    return pd.concat(frames, ignore_index=True)


def examples_of(record: pd.Series) -> list[str]:
    """The few-shot example ids of a candidate row."""
    return [str(i) for i in json.loads(record["examples"] or "[]")]


def decide(workspace: Workspace, candidate_ids: Iterable[str], decision: str) -> int:
    """Keep or drop candidates by hand before they join (``decision`` in DECISIONS; "" undoes).

    A malformed candidate cannot be kept; a joined one can no longer change. Returns how many
    candidates changed.
    """
    if decision not in DECISIONS:
        raise PrismError(
            f"decision must be keep, drop or empty (as the filter said); got {decision!r}.",
            param="decision",
        )
    wanted = {str(i) for i in candidate_ids}
    changed = 0
    with workspace.lock():
        for round_no in round_numbers(workspace):
            frame, features = read_round(workspace, round_no)
            hit = frame["candidate_id"].astype(str).isin(wanted)
            if not hit.any():
                continue
            bad = frame[
                hit & (frame["joined"] | ((frame["reason"] == "malformed") & (decision == "keep")))
            ]
            if len(bad):
                first = bad.iloc[0]
                why = "it already joined the samples" if first["joined"] else "it is malformed"
                raise PrismError(
                    f"candidate {first['candidate_id']} cannot be changed: {why}.",
                    param="candidates",
                )
            changed += int((frame.loc[hit, "decision"] != decision).sum())
            frame.loc[hit, "decision"] = decision
            write_round(workspace, round_no, frame, features)
            wanted -= set(frame.loc[hit, "candidate_id"].astype(str))
    if wanted:
        raise PrismError(
            f"no candidate has id {sorted(wanted)[0]!r}; list them with `prism synthesize WS "
            "--list`.",
            param="candidates",
        )
    return changed


def joining(frame: pd.DataFrame) -> np.ndarray:
    """Which candidates of a round join the samples: kept by the filter and not dropped by hand,
    or kept by hand; never one already joined, nor one whose join was undone."""
    keep = ((frame["reason"] == "kept") & ~frame["decision"].isin(["drop", UNJOINED])) | (
        frame["decision"] == "keep"
    )
    return (keep & ~frame["joined"].astype(bool)).to_numpy()
