"""Adding rows to a workspace: kept synthetic candidates join the samples and the features.

``join_round`` appends a round's joining candidates (``core.workspace.synthesis.candidates.joining``) as
samples with ``origin = "synthetic"`` and their provenance (``synthesis_round``,
``synthesis_cluster``, ``synthesis_examples``, ``synthesis_generator``); the rows already there
get ``origin = "source"`` unless the dataset brought an ``origin`` column of its own. Their
features were computed with the workspace's own proxy, scope, dim and seed, so they are appended
to ``features.npy`` as they are. Per-sample analyses are extended rather than recomputed: the
feature columns come from the candidates' own extraction, ``cluster`` is the nearest centroid
(the clusters section's sizes grow to match and the next synthesis round clusters afresh), and
map coordinates are placed among the nearest existing rows (as the sampled map places rows). Whole-set
scores are recomputed; text-space results and budget curves, which cannot be extended, are
removed (their commands recompute them).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.columns import ColumnMap
from core.errors import PrismError, WorkspaceError
from core.measures.clusters import sparse_clusters
from core.measures.layout import PLACE_NEIGHBOURS, placed
from core.measures.neighbours import nearest_in_pool
from core.measures.vendi import gram_from_npy, vendi_from_covariance
from core.workspace.derived import SAMPLES, derived_files
from core.workspace.files import write_npy
from core.workspace.manifest import (
    ClustersSection,
    CurvesSection,
    EmbeddingSection,
    FeatureSection,
    IfdSection,
    LexicalSection,
    OutliersSection,
    SynthesisSection,
    scores_record,
)
from core.workspace.schema import ANALYSES, is_derived
from core.workspace.store import EMBEDDINGS, MANIFEST, Workspace
from core.workspace.subsets import mark_stale
from core.workspace.synthesis.candidates import UNJOINED, joining, read_round, write_round

ORIGIN = "origin"
SOURCE, SYNTHETIC = "source", "synthetic"
ORIGINS = (SOURCE, SYNTHETIC)
PROVENANCE = ("synthesis_round", "synthesis_cluster", "synthesis_examples", "synthesis_generator")
JOURNAL = "synthesis/joining"  # backup of the files a join in progress replaces
EXTENDED = ("features", "clusters", "layout")  # analyses whose columns join_round extends
_NOTE = "; synthesis: "  # what a join or an undone join adds to the clustering's method


def place(pool: np.ndarray, coords: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Map coordinates (m×2) for new rows, placed among the pool's rows as the sampled map
    places the rows it was not fit on (``core.measures.layout.placed``)."""
    near, cosines = nearest_in_pool(pool, queries, PLACE_NEIGHBOURS)
    return placed(cosines, near, coords)


def _content(
    frame: pd.DataFrame, columns: ColumnMap, json_columns: tuple[str, ...]
) -> dict[str, list[Any]]:
    """The candidates' samples in the dataset's own content columns."""
    if columns.text is not None:
        return {columns.text: list(frame["text"])}
    if columns.prompt is not None:
        return {
            str(columns.prompt): list(frame["prompt"]),
            str(columns.response): list(frame["response"]),
        }
    chats = [
        [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
        for p, r in zip(frame["prompt"], frame["response"], strict=True)
    ]
    name = str(columns.messages)
    return {
        name: [json.dumps(c, ensure_ascii=False) for c in chats] if name in json_columns else chats
    }


def _new_rows(
    workspace: Workspace, frame: pd.DataFrame, features: np.ndarray, samples: pd.DataFrame
) -> pd.DataFrame:
    dataset = workspace.dataset
    columns = ColumnMap.from_dict(dict(dataset.columns))
    data: dict[str, Any] = {"id": frame["candidate_id"].astype(str).to_list()}
    data.update(_content(frame, columns, tuple(dataset.json_columns)))
    data[ORIGIN] = SYNTHETIC
    data["synthesis_round"] = frame["round"].astype("int64").to_numpy()
    data["synthesis_cluster"] = frame["target_cluster"].astype("int64").to_numpy()
    data["synthesis_examples"] = frame["examples"].astype(str).to_list()
    data["synthesis_generator"] = frame["generator"].astype(str).to_list()
    derived = set(samples.columns)
    if "loss" in derived:
        data["loss"] = frame["loss"].astype("float32").to_numpy()
        data["grad_norm"] = frame["grad_norm"].astype("float32").to_numpy()
        data["n_tokens"] = frame["n_tokens"].astype("int32").to_numpy()
        data["n_response_tokens"] = frame["n_response_tokens"].astype("int32").to_numpy()
        data["truncated"] = frame["truncated"].astype(bool).to_numpy()
    if "cluster" in derived:
        data["cluster"] = frame["nearest_cluster"].astype("int32").to_numpy()
    if "umap_x" in derived:
        coords = samples[["umap_x", "umap_y"]].to_numpy(dtype=np.float64)
        placed = place(workspace.features(), coords, features)
        data["umap_x"], data["umap_y"] = placed[:, 0], placed[:, 1]
    return pd.DataFrame(data)


def _unextendable(samples: pd.DataFrame) -> list[str]:
    """Derived columns that new rows cannot be given (text space, relevance to a target, …)."""
    owned = {c for name in EXTENDED for c in ANALYSES[name].column_names}
    return [c for c in samples.columns if is_derived(c) and c not in owned]


def join_round(workspace: Workspace, round_no: int) -> int:
    """Join a round's kept candidates to the workspace; returns how many joined (0 again on a
    second call: joining is by candidate id, so a repeated or resumed join adds nothing)."""
    with workspace.lock():
        recover_join(workspace)
        frame, features = read_round(workspace, round_no)
        samples = workspace.samples()
        present = frame["candidate_id"].astype(str).isin(set(samples["id"].astype(str))).to_numpy()
        mask = joining(frame) & ~present
        already = present & ~frame["joined"].to_numpy(dtype=bool)
        joined = frame[mask].reset_index(drop=True)
        if len(joined):
            old = workspace.features(mmap=False)
            if old.shape[0] != len(samples):
                raise WorkspaceError(
                    f"{workspace.features_path} has {old.shape[0]:,} rows for {len(samples):,} "
                    f"samples. {workspace.rebuild_hint()}"
                )
            added = np.asarray(features[mask], dtype=np.float32)
            new = _new_rows(workspace, joined, added, samples)
            _back_up(workspace)
            if ORIGIN not in samples.columns:
                samples[ORIGIN] = SOURCE
                _note_origin_added(workspace)
            else:
                samples[ORIGIN] = samples[ORIGIN].fillna(SOURCE)
            table = pd.concat(
                [samples.drop(columns=_unextendable(samples)), new], ignore_index=True
            )
            note = "extended by nearest centroid with synthetic rows"
            _replace_rows(workspace, table, np.concatenate([old, added]), note)
            # Done: the rows are in. A kill before the next line leaves the round unmarked, and
            # joining it again only marks it (its ids are present).
            shutil.rmtree(workspace.path / JOURNAL)
        frame.loc[mask | already, "joined"] = True
        write_round(workspace, round_no, frame, features)
    return int(len(joined))


def _replace_rows(
    workspace: Workspace, table: pd.DataFrame, features: np.ndarray, note: str
) -> None:
    """Write the samples and features a join or an undone join leaves, with the sections that
    follow from them: counts, cluster sizes (the clustering's method gets ``note``) and the
    whole-set scores. Text-space results and budget curves, which cannot follow, are removed."""
    n = len(table)
    workspace.write_samples(table)
    write_npy(workspace.features_path, np.ascontiguousarray(features, dtype=np.float32))
    (workspace.path / EMBEDDINGS).unlink(missing_ok=True)
    (workspace.path / "curves.parquet").unlink(missing_ok=True)
    workspace.drop_sections(
        EmbeddingSection,
        LexicalSection,
        CurvesSection,
        IfdSection,
        OutliersSection,
        save=False,
    )
    workspace.set_section(workspace.dataset.replace(n_samples=n), save=False)
    section = workspace.feature_section or FeatureSection()
    workspace.set_section(section.replace(n_samples=n), save=False)
    clusters = workspace.clusters
    if clusters is not None and "cluster" in table.columns:
        workspace.set_section(_resized(clusters, table["cluster"].to_numpy(), note), save=False)
    gram, rows = gram_from_npy(workspace.features_path)
    scores = scores_record(
        vendi_from_covariance(gram, qs=(0.5, 1.0, 2.0, float("inf"))),
        n=rows,
        dim=int(features.shape[1]),
    )
    workspace.set_section(scores, save=False)
    workspace.save_manifest()


def _note_origin_added(workspace: Workspace, added: bool = True) -> None:
    """Remember that the ``origin`` column is Prism's (the dataset brought none), so that
    undoing every join removes it again."""

    section = workspace.section(SynthesisSection) or SynthesisSection()
    workspace.set_section(section.replace(origin_added=added), save=False)


def unjoin_round(workspace: Workspace, round_no: int) -> tuple[int, list[str]]:
    """Take a round's joined rows out again: they leave the samples, every derived column and
    the features; the cluster sizes and the scores follow (a clustering extended by the join is
    the one before it again once no synthetic row is left, and then the ``origin`` and provenance
    columns a join added go too). The candidates stay, with ``joined`` false and the decision
    "unjoined". Subsets that held those rows are marked stale. Returns (rows removed, subsets
    marked stale); (0, []) again on a second call."""

    with workspace.lock():
        recover_join(workspace)
        frame, features = read_round(workspace, round_no)
        joined = frame["joined"].to_numpy(dtype=bool)
        samples = workspace.samples()
        ids = set(frame.loc[joined, "candidate_id"].astype(str))
        leave = samples["id"].astype(str).isin(ids).to_numpy()
        columns = ColumnMap.from_dict(dict(workspace.dataset.columns))
        if leave.any():
            old = workspace.features(mmap=False)
            if old.shape[0] != len(samples):
                raise WorkspaceError(
                    f"{workspace.features_path} has {old.shape[0]:,} rows for {len(samples):,} "
                    f"samples. {workspace.rebuild_hint()}"
                )
            _back_up(workspace)
            table = samples.loc[~leave].reset_index(drop=True)
            table = table.drop(columns=_unextendable(table))
            note = "rows removed by undoing a join"
            if not len(origin_rows(table, SYNTHETIC)):
                added = (workspace.section(SynthesisSection) or SynthesisSection()).origin_added
                gone = [*PROVENANCE, *([ORIGIN] if added else [])]
                table = table.drop(columns=[c for c in gone if c in table.columns])
                _note_origin_added(workspace, False)
                if is_extended(workspace.clusters):
                    note = ""  # the source rows' labels never changed: the clustering before
            _replace_rows(workspace, table, old[~leave], note)
            shutil.rmtree(workspace.path / JOURNAL)
        frame.loc[joined, "decision"] = UNJOINED
        frame["joined"] = False  # ``joined`` may be a view of this column: changed last
        write_round(workspace, round_no, frame, features)
        stale = mark_stale(workspace, before=samples, before_columns=columns) if leave.any() else []
    return int(leave.sum()), stale


def _journal_files(workspace: Workspace) -> list[Path]:
    """Every file a join replaces or removes."""
    root = workspace.path
    named = [root / MANIFEST, root / SAMPLES, workspace.features_path, root / EMBEDDINGS]
    named.append(root / "curves.parquet")
    return [p for p in [*named, *(path for _, path in derived_files(root))] if p.is_file()]


def _back_up(workspace: Workspace) -> None:
    """Hard links to the files a join is about to replace (each is replaced by a rename, so the
    links keep the old contents), then the list of them: a complete backup."""
    folder = workspace.path / JOURNAL
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = [str(p.relative_to(workspace.path)) for p in _journal_files(workspace)]
    for name in files:
        os.link(workspace.path / name, folder / name.replace("/", "__"))
    (folder / "files.json").write_text(json.dumps(files), encoding="utf-8")


def recover_join(workspace: Workspace) -> bool:
    """Undo a join that a kill interrupted (True if there was one): the samples, derived files,
    features and manifest go back to what they were before it, so the round joins again."""
    folder = workspace.path / JOURNAL
    if not folder.is_dir():
        return False
    with workspace.lock():
        listing = folder / "files.json"
        if listing.is_file():  # else the join never got to change anything
            files = json.loads(listing.read_text(encoding="utf-8"))
            for _, path in derived_files(workspace.path):
                if str(path.relative_to(workspace.path)) not in files:
                    path.unlink()  # a file the join created
            for name in files:
                os.replace(folder / name.replace("/", "__"), workspace.path / name)
        shutil.rmtree(folder)
        workspace.reload()
    return True


def _resized(section: ClustersSection, labels: np.ndarray, note: str) -> ClustersSection:
    """The clustering's sizes and sparse clusters for ``labels``; its method says ``note`` (""
    restores the method before any join)."""
    sizes = np.bincount(labels.astype(np.int64), minlength=section.n_clusters)
    sparse = sparse_clusters(sizes)
    method = (section.method or "").split(_NOTE)[0].split("; extended by nearest centroid")[0]
    return section.replace(
        sizes=tuple(int(s) for s in sizes),
        median_size=float(np.median(sizes)),
        sparse=tuple(int(c) for c in np.flatnonzero(sparse)),
        n_sparse=int(sparse.sum()),
        n_in_sparse=int(sizes[sparse].sum()),
        method=f"{method}{_NOTE}{note}" if note else method,
    )


def is_extended(section: ClustersSection | None) -> bool:
    """Whether a clustering was extended by ``join_round`` or shrunk by ``unjoin_round`` (the
    next round clusters afresh)."""
    method = "" if section is None else section.method or ""
    return _NOTE in method or "; extended by nearest centroid" in method  # or before _NOTE


def of_origin(workspace: Workspace, rows: np.ndarray, origin: str) -> np.ndarray:
    """The rows among ``rows`` of ``origin`` ("source" or "synthetic"), in order."""
    if origin not in ORIGINS:
        raise PrismError(
            f"origin must be all, {' or '.join(ORIGINS)}; got {origin!r}.", param="origin"
        )
    columns = [c for c in (ORIGIN,) if c in workspace.sample_columns()]
    return np.intersect1d(rows, origin_rows(workspace.samples(columns), origin))


def origin_rows(samples: pd.DataFrame, origin: str) -> np.ndarray:
    """Row positions of ``origin`` ("source" or "synthetic"); rows without one are source."""
    values = (
        samples[ORIGIN].fillna(SOURCE)
        if ORIGIN in samples.columns
        else pd.Series(SOURCE, index=samples.index)
    )
    return np.flatnonzero((values == origin).to_numpy())
