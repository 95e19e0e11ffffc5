"""Typed sections of a workspace's ``manifest.json``: one frozen dataclass per section.

``manifest.json`` is a JSON object of sections (``dataset``, ``features``, ``scores``,
``clusters``, ``layout``, ``embedding``, ``lexical``, ``curves``, ``synthesis``, ``targets``,
``ifd``, ``outliers``) beside a few top-level stamps
(``schema_version``, ``prism_version``, ``created``, ``updated``). Each section class reads its
dict with ``from_dict`` — tolerant of older workspaces: a missing key takes its default, an
unknown key is kept in ``extra`` — and writes it back with ``to_dict`` (``None`` values and empty
``extra`` left out, tuples as lists): each is a ``core.workspace.records.Record``. ``TypedSections``, mixed into ``Workspace``
(``core.workspace.store``), gives typed access, e.g. ``workspace.clusters -> ClustersSection |
None``, ``set_section`` to write one and ``drop_sections`` to remove some. Only this module and the
store touch the manifest's JSON object; everything else goes through these.

Schema versions: 1 kept derived per-sample columns inside ``samples.parquet``; 2 keeps them in
``derived/<analysis>.parquet`` (``core.workspace.schema``). Both open.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from core.measures.vendi import q_label
from core.workspace.records import Record

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

T = TypeVar("T", bound="Section")


@dataclass(frozen=True)
class Section(Record):
    """A manifest section: ``NAME`` is its key in ``manifest.json``."""

    NAME: ClassVar[str] = ""


@dataclass(frozen=True)
class DatasetSection(Section):
    """Where the samples came from and how their columns are read."""

    NAME: ClassVar[str] = "dataset"
    source: str | None = None
    fingerprint: str | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)
    n_samples: int = 0
    n_total: int | None = None
    n_skipped: int | None = None
    renamed: Mapping[str, str] = field(default_factory=dict)
    # Stored names of the columns the file brought; None in workspaces older than that record.
    original_columns: tuple[str, ...] | None = None
    # Columns stored as JSON text (core.data.columns.restore_json_columns gives the values).
    json_columns: tuple[str, ...] = ()
    split: str | None = None
    sample: int | None = None
    sample_seed: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureSection(Section):
    """The feature settings and the state of their extraction."""

    NAME: ClassVar[str] = "features"
    settings: Mapping[str, Any] = field(default_factory=dict)
    status: str = "pending"  # pending | running | cancelled | failed | complete
    shard_size: int | None = None
    shard_seconds: float | None = None
    model_fingerprint: str | None = None
    n_params_in_scope: int | None = None
    n_layers_in_scope: int | None = None
    device: str | None = None
    n_samples: int | None = None
    dim: int | None = None
    n_truncated: int | None = None
    grad_norm: str | None = None
    completed: str | None = None
    rank_rows: tuple[int, ...] | None = None  # rows each rank computed, in a distributed run

    @property
    def complete(self) -> bool:
        return self.status == "complete"


@dataclass(frozen=True)
class Scores(Section):
    """Whole-set scores: G-Vendi and Vendi per order q (labels from ``q_label``)."""

    NAME: ClassVar[str] = "scores"
    g_vendi: float | None = None
    vendi: Mapping[str, float] = field(default_factory=dict)
    n: int | None = None
    dim: int | None = None


@dataclass(frozen=True)
class ClustersSection(Section):
    """Spherical k-means of the features: sizes, sparse clusters, seed."""

    NAME: ClassVar[str] = "clusters"
    n_clusters: int = 0
    seed: int | None = None
    sizes: tuple[int, ...] = ()
    median_size: float | None = None
    sparse: tuple[int, ...] = ()
    n_sparse: int | None = None
    n_in_sparse: int | None = None
    objective: float | None = None
    method: str | None = None


@dataclass(frozen=True)
class LayoutSection(Section):
    """The 2-D map's parameters."""

    NAME: ClassVar[str] = "layout"
    method: str | None = None
    metric: str | None = None
    seed: int | None = None
    n_neighbors: int | None = None
    min_dist: float | None = None
    fit_rows: int | None = None  # rows UMAP was fit on (the rest placed by its transform)


@dataclass(frozen=True)
class EmbeddingSection(Section):
    """The text-space baseline (``prism embed``): model, scores, its clusters, map, neighbours."""

    NAME: ClassVar[str] = "embedding"
    model: str | None = None
    model_name: str | None = None
    dim: int | None = None
    n: int | None = None
    seed: int | None = None
    fingerprint: str | None = None
    text: str | None = None  # how a sample's text was put together for the encoder
    max_seq_length: int | None = None
    n_truncated: int | None = None
    created: str | None = None
    seconds: float | None = None
    load_seconds: float | None = None
    device: str | None = None
    batch_size: int | None = None
    embedding_vendi: float | None = None
    vendi: Mapping[str, float] = field(default_factory=dict)
    clusters: Mapping[str, Any] = field(default_factory=dict)
    layout: Mapping[str, Any] = field(default_factory=dict)
    # Agreement with the gradient features' neighbourhoods; None without gradient features.
    neighbours: Mapping[str, Any] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LexicalSection(Section):
    """Surface measures of the whole set's text (n-gram Vendi, distinct-n)."""

    NAME: ClassVar[str] = "lexical"
    n: int | None = None
    fingerprint: str | None = None
    ngram_vendi: float | None = None
    distinct_1: float | None = None
    distinct_2: float | None = None
    distinct_3: float | None = None
    distinct_4: float | None = None
    tokens: str | None = None  # what a token is, in words
    ngram_range: tuple[int, ...] | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class CurvesSection(Section):
    """Stored budget curves (``curves.parquet``): their settings, what they were computed from,
    and when, by what (``prism compare --curves`` or the app) and in how many seconds."""

    NAME: ClassVar[str] = "curves"
    settings: Mapping[str, Any] = field(default_factory=dict)
    basis: Mapping[str, Any] = field(default_factory=dict)
    computed: str | None = None
    by: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class RoundRecord(Record):
    """One round of the synthesis loop (``core.workspace.synthesis.loop``): what it aimed at, the
    pool it judged against, its candidates by verdict, G-Vendi and rows in sparse clusters before
    → after joining, its status (``judged``, then ``joined``, ``unjoined`` after an undo) and its
    seconds. A count is None
    where the round's record does not hold it (a round joined after its run was stopped)."""

    round: int = 0
    target: str | None = None
    generator: str | None = None
    pool_before: int | None = None
    n_clusters: int | None = None
    n_sparse: int | None = None
    sparse_rows_before: int | None = None
    generated: int | None = None
    malformed: int | None = None  # the verdicts of core.synthesis.filter
    duplicate: int | None = None
    low_quality: int | None = None
    dense: int | None = None
    kept: int | None = None
    loss_band: tuple[float, ...] | None = None  # the quality gate's source loss band
    answers_checked: bool | None = None  # the gate checked final answers (GSM8K-style)
    g_vendi_before: float | None = None
    status: str | None = None
    seconds: float | None = None
    g_vendi_after: float | None = None
    joined: int | None = None
    sparse_rows_after: int | None = None
    sparse_clusters_reached: int | None = None
    unjoined: int | None = None  # rows an undo took out again (status ``unjoined``)
    g_vendi_unjoined: float | None = None
    stale_subsets: tuple[str, ...] | None = None

    @property
    def is_joined(self) -> bool:
        return self.status == "joined"

    @property
    def is_unjoined(self) -> bool:
        return self.status == "unjoined"


@dataclass(frozen=True)
class SynthesisSection(Section):
    """The synthesis loop (``core.workspace.synthesis.loop``): its settings and one
    ``RoundRecord`` per round."""

    NAME: ClassVar[str] = "synthesis"
    settings: Mapping[str, Any] = field(default_factory=dict)
    generator: str | None = None
    rounds: tuple[RoundRecord, ...] = ()
    n_joined: int = 0
    origin_added: bool = False  # the ``origin`` column is Prism's: the dataset brought none

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SynthesisSection:
        section = super().from_dict(data)
        rounds = [RoundRecord.from_dict(r) for r in section.rounds if isinstance(r, Mapping)]
        return section.replace(rounds=tuple(rounds))


@dataclass(frozen=True)
class TargetRecord(Section):
    """One target set (``core.workspace.targets``): where its rows came from, its groups, and
    the feature space its features were computed in (settings and model fingerprint)."""

    name: str = ""
    kind: str = ""  # file | subset | text
    source: str = ""  # the file read, the subset's name, or "typed text"
    n_rows: int = 0
    groups: Mapping[str, int] = field(default_factory=dict)  # group → examples, first-seen order
    group_column: str | None = None
    dim: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    model_fingerprint: str | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)  # column map of a file target
    fingerprint: str | None = None  # the file's data fingerprint
    n_truncated: int = 0
    created: str | None = None
    # How the stored relevance column was computed: agg, whiten, ridge, when.
    relevance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetsSection(Section):
    """The workspace's target sets, name → ``TargetRecord`` (as a dict)."""

    NAME: ClassVar[str] = "targets"
    targets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def records(self) -> dict[str, TargetRecord]:
        return {name: TargetRecord.from_dict(data) for name, data in self.targets.items()}

    def with_record(self, record: TargetRecord) -> TargetsSection:
        return self.replace(targets={**self.targets, record.name: record.to_dict()})

    def without(self, name: str) -> TargetsSection:
        return self.replace(targets={k: v for k, v in self.targets.items() if k != name})


@dataclass(frozen=True)
class IfdSection(Section):
    """IFD (``core.workspace.jobs.ifd``): how the response alone was read, its state and summary."""

    NAME: ClassVar[str] = "ifd"
    status: str = "pending"  # pending | running | cancelled | failed | complete
    alone: str | None = None  # what "the response alone" is, in words
    fingerprint: str | None = None  # the dataset it was computed for
    features_completed: str | None = None  # the features whose loss it divides
    shard_size: int | None = None
    n: int | None = None
    median_ifd: float | None = None
    n_above_one: int | None = None  # rows whose prompt does not help (IFD ≥ 1)
    device: str | None = None
    seconds: float | None = None
    completed: str | None = None

    @property
    def complete(self) -> bool:
        return self.status == "complete"


@dataclass(frozen=True)
class OutliersSection(Section):
    """The loss-outlier flags (``core.measures.quality``): the rule in words, its cuts, counts."""

    NAME: ClassVar[str] = "outliers"
    rule: str | None = None
    high_cut: float | None = None
    low_cut: float | None = None
    n_rows: int | None = None
    n_high: int | None = None
    n_low: int | None = None
    features_completed: str | None = None
    computed: str | None = None


def scores_record(scores: Mapping[float, float], *, n: int, dim: int) -> Scores:
    """The one schema for scores ({q: Vendi}, q = 1 included), in the manifest and in
    `prism score --json`."""
    return Scores(
        g_vendi=float(scores[1.0]),
        vendi={q_label(q): float(v) for q, v in scores.items()},
        n=int(n),
        dim=int(dim),
    )


class TypedSections:
    """Typed access to a manifest's sections: what ``core.workspace.store.Workspace`` offers
    everyone else, who never reads or writes ``manifest`` itself."""

    manifest: dict[str, Any]

    def save_manifest(self) -> None:
        raise NotImplementedError  # the store writes the manifest

    def section(self, kind: type[T]) -> T | None:
        """The manifest section ``kind.NAME`` as its typed record, or None when absent."""
        data = self.manifest.get(kind.NAME)
        return kind.from_dict(data) if isinstance(data, Mapping) else None

    def set_section(self, section: Section, *, save: bool = True) -> None:
        """Replace the manifest section ``section.NAME`` (and save, unless ``save`` is False)."""
        self.manifest[section.NAME] = section.to_dict()
        if save:
            self.save_manifest()

    def drop_sections(self, *kinds: type[Section], save: bool = True) -> None:
        """Remove the manifest sections ``kind.NAME`` (and save, unless ``save`` is False)."""
        for kind in kinds:
            self.manifest.pop(kind.NAME, None)
        if save:
            self.save_manifest()

    def record(self) -> dict[str, Any]:
        """The whole manifest as a JSON object (a copy): what ``prism info --json`` prints."""
        return copy.deepcopy(self.manifest)

    @property
    def updated(self) -> str:
        """When the manifest was last written (or created), as recorded in it."""
        return str(self.manifest.get("updated", self.manifest.get("created", "")))

    @property
    def dataset(self) -> DatasetSection:
        """Where the samples came from (an empty record for a manifest without one)."""
        return self.section(DatasetSection) or DatasetSection()

    @property
    def feature_section(self) -> FeatureSection | None:
        return self.section(FeatureSection)

    @property
    def scores(self) -> Scores | None:
        return self.section(Scores)

    @property
    def clusters(self) -> ClustersSection | None:
        return self.section(ClustersSection)

    @property
    def layout(self) -> LayoutSection | None:
        return self.section(LayoutSection)

    @property
    def embedding(self) -> EmbeddingSection | None:
        return self.section(EmbeddingSection)

    @property
    def lexical(self) -> LexicalSection | None:
        return self.section(LexicalSection)

    @property
    def curves(self) -> CurvesSection | None:
        return self.section(CurvesSection)

    @property
    def synthesis(self) -> SynthesisSection | None:
        return self.section(SynthesisSection)

    @property
    def targets(self) -> TargetsSection:
        """The workspace's target sets (an empty section before the first one)."""
        return self.section(TargetsSection) or TargetsSection()

    @property
    def ifd(self) -> IfdSection | None:
        return self.section(IfdSection)

    @property
    def outliers(self) -> OutliersSection | None:
        return self.section(OutliersSection)

    @property
    def g_vendi(self) -> float | None:
        """The whole set's stored G-Vendi (None until scored)."""
        scores = self.scores
        return None if scores is None else scores.g_vendi


SECTIONS: dict[str, type[Section]] = {
    cls.NAME: cls
    for cls in (
        DatasetSection,
        FeatureSection,
        Scores,
        ClustersSection,
        LayoutSection,
        EmbeddingSection,
        LexicalSection,
        CurvesSection,
        SynthesisSection,
        TargetsSection,
        IfdSection,
        OutliersSection,
    )
}
