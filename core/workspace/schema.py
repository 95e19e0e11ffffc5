"""Which analysis writes which per-sample columns, which manifest section and which labels.

Declared once here; the store (where derived columns live), the dataset reader (names a
user's column may not take), export, the CLI tables and the app's colour menu and compare table
read it instead of listing names of their own.

- ``ANALYSES``: analysis name → ``Analysis`` (its columns with display labels, its manifest
  section, the command that computes it). Each analysis keeps its columns in
  ``derived/<name>.parquet``, row-aligned with ``samples.parquet``.
- ``DERIVED_COLUMNS`` / ``RESERVED_COLUMNS``: every column Prism writes (``RESERVED_COLUMNS``
  adds ``id``); a dataset column of one of these names is kept as ``<name>_orig``.
- ``RELEVANCE_PREFIX``: ``relevance:<target>`` columns (one per target set, ``prism relevance``)
  belong to the ``relevance`` analysis; ``is_derived`` says whether a name is a derived column.
- ``COORDINATES``: the 2-D maps (``Space``: its x/y columns and title), never colours.
- ``MEASURES``: the columns of a subset comparison (``core.workspace.compare``), with labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """A per-sample column an analysis writes: its name, label, and whether it can colour a map."""

    name: str
    label: str
    colour: bool = True
    categorical: bool = False


@dataclass(frozen=True)
class Analysis:
    """An analysis of a workspace and what it stores."""

    name: str
    section: str
    columns: tuple[Column, ...]
    command: str  # the CLI command that (re)computes it
    description: str
    # The whole command that recomputes it, in backquotes, ``{path}`` for the workspace, where
    # `prism <command> <path>` alone would not.
    recompute: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis(
            "features",
            "features",
            (
                Column("loss", "Loss"),
                Column("grad_norm", "Gradient norm"),
                Column("n_tokens", "Tokens"),
                Column("n_response_tokens", "Response tokens"),
                Column("truncated", "Truncated", categorical=True),
            ),
            "features",
            "per-sample loss gradients, sketched and unit-normalised",
        ),
        Analysis(
            "clusters",
            "clusters",
            (Column("cluster", "Cluster", categorical=True),),
            "cluster",
            "spherical k-means of the features",
        ),
        Analysis(
            "layout",
            "layout",
            (Column("umap_x", "Map x", colour=False), Column("umap_y", "Map y", colour=False)),
            "map",
            "UMAP 2-D layout of the features",
        ),
        Analysis(
            "embedding",
            "embedding",
            (
                Column("emb_cluster", "Text cluster", categorical=True),
                Column("emb_umap_x", "Text map x", colour=False),
                Column("emb_umap_y", "Text map y", colour=False),
                Column("nbr_agreement", "Neighbourhood agreement (gradient vs text)"),
            ),
            "embed",
            "the text-space baseline: sentence embeddings, their clusters, map and neighbours",
        ),
        Analysis(
            "relevance",
            "targets",
            (),  # one column per target set: relevance_column(target)
            "relevance",
            "relevance of each row to a target set (cosine of unit features, LESS aggregation)",
        ),
        Analysis(
            "ifd",
            "ifd",
            (
                Column("ifd", "IFD (loss with prompt / alone)"),
                Column("loss_alone", "Loss of the response alone"),
            ),
            "quality",
            "instruction-following difficulty: the response's loss with its prompt over alone",
            recompute="`prism quality {path} --ifd`",
        ),
        Analysis(
            "outliers",
            "outliers",
            (
                Column("is_high_loss_outlier", "High-loss outlier", categorical=True),
                Column("is_low_loss_outlier", "Low-loss outlier", categorical=True),
            ),
            "quality",
            "rows of extreme response loss, by a stated rule",
        ),
    )
}
RELEVANCE_PREFIX = "relevance:"

# Columns written by add_columns that no analysis declares (a test's, a plug-in's) live here.
OTHER = "other"

COLUMNS: dict[str, Column] = {c.name: c for a in ANALYSES.values() for c in a.columns}
ANALYSIS_OF: dict[str, str] = {c.name: a.name for a in ANALYSES.values() for c in a.columns}
DERIVED_COLUMNS: tuple[str, ...] = tuple(COLUMNS)
RESERVED_COLUMNS: tuple[str, ...] = ("id", *DERIVED_COLUMNS)
# Column order of the colour menu: clusters and the text-space comparison first.
COLOUR_ORDER = (
    "cluster",
    "nbr_agreement",
    "emb_cluster",
    "loss",
    "grad_norm",
    "ifd",
    "loss_alone",
    "is_high_loss_outlier",
    "is_low_loss_outlier",
    "n_tokens",
    "n_response_tokens",
    "truncated",
)


def relevance_column(target: str) -> str:
    """The derived column holding each row's relevance to target set ``target``."""
    return RELEVANCE_PREFIX + target


def is_derived(column: str) -> bool:
    """True for a column an analysis writes (a declared one or a relevance column)."""
    return column in COLUMNS or column.startswith(RELEVANCE_PREFIX)


def analysis_of(column: str) -> str:
    """The analysis whose file holds ``column`` (``OTHER`` for a column no analysis declares)."""
    if column.startswith(RELEVANCE_PREFIX):
        return "relevance"
    return ANALYSIS_OF.get(column, OTHER)


def label(column: str) -> str:
    """The display label of a derived column (the column's own name for any other)."""
    if column.startswith(RELEVANCE_PREFIX):
        return f"Relevance to {column[len(RELEVANCE_PREFIX) :]}"
    known = COLUMNS.get(column)
    return known.label if known is not None else column


def colour_columns() -> dict[str, str]:
    """Derived column → label for every derived column that can colour a map, in menu order."""
    return {name: COLUMNS[name].label for name in COLOUR_ORDER if COLUMNS[name].colour}


@dataclass(frozen=True)
class Space:
    """A 2-D map of the samples: its coordinate columns and title."""

    key: str
    x: str
    y: str
    title: str


COORDINATES: dict[str, Space] = {
    "gradient": Space("gradient", "umap_x", "umap_y", "Gradient space"),
    "text": Space("text", "emb_umap_x", "emb_umap_y", "Text space"),
}
COORDINATE_COLUMNS: frozenset[str] = frozenset(c for s in COORDINATES.values() for c in (s.x, s.y))


@dataclass(frozen=True)
class Measure:
    """A column of the subset comparison: its label, a short one for narrow tables, digits
    (-1: a fraction shown as a percentage), and whether it is one of the basic columns."""

    key: str
    label: str
    short: str
    digits: int
    basic: bool
    help: str = ""


MEASURES: dict[str, Measure] = {
    m.key: m
    for m in (
        Measure("size", "Samples", "rows", 0, True),
        Measure("g_vendi", "G-Vendi", "G-Vendi", 2, True, "Vendi score (q = 1) of the gradients"),
        Measure("vendi_q2", "Vendi q=2", "q=2", 2, True, "order-2 Vendi: weighs common modes"),
        Measure("vendi_qinf", "Vendi q=∞", "q=∞", 2, True, "1 / the largest eigenvalue"),
        Measure("coverage", "Coverage", "cover", -1, True, "share of clusters with a member"),
        Measure("mean_loss", "Mean loss", "loss", 2, True, "mean proxy loss of the rows"),
        Measure("vendi_q0.5", "Vendi q=0.5", "q=0.5", 2, False, "order-0.5: weighs rare modes"),
        Measure(
            "coverage_weighted",
            "Coverage (weighted)",
            "cover (w)",
            -1,
            False,
            "coverage weighted by cluster size",
        ),
        Measure(
            "cluster_entropy", "Cluster entropy", "entropy", 2, False, "entropy of the histogram"
        ),
        Measure("embedding_vendi", "Embedding Vendi", "emb. Vendi", 2, False),
        Measure("ngram_vendi", "n-gram Vendi", "n-gram Vendi", 2, False),
        Measure("distinct_2", "distinct-2", "distinct-2", 3, False),
    )
}
TEXT_MEASURES = ("embedding_vendi", "ngram_vendi", "distinct_2")


def describe() -> list[dict[str, Any]]:
    """The schema as plain records (for ``--json`` output and documentation)."""
    return [
        {
            "analysis": a.name,
            "section": a.section,
            "command": a.command,
            "columns": {c.name: c.label for c in a.columns},
        }
        for a in ANALYSES.values()
    ]
