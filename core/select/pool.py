"""What a selector chooses from and how many rows it keeps: the ``Pool`` and the budget.

- ``Pool``: unit ``features`` (n × d), optional cluster ``labels`` (n,), optional ``candidates``
  (the rows a selector may add), optional ``relevance`` (n × G: each row's relevance to each group
  of a target set, ``core.measures.relevance``) for the targeted selectors, optional per-row
  numeric ``columns`` (``loss``, ``ifd``…: what the quality selectors read, ``core.select.quality``).
- the budget (a count or a fraction of the rows) is read by ``core.validate.check_budget``.
- ``start_rows`` / ``available`` / ``check_fit``: the rows already chosen, the rows still free,
  and whether the budget fits in them — shared by every selector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from core.errors import PrismError
from core.validate import check_features, check_indices


def distinct_rows(rows: object, n: int, *, param: str) -> np.ndarray:
    """Row positions into n rows, first occurrences kept in order; empty allowed."""
    array = check_indices(rows if rows is not None else [], n, param=param, allow_empty=True)
    return np.asarray(list(dict.fromkeys(array.tolist())), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Pool:
    """What a selector chooses from: unit ``features`` (n × d), optional ``labels`` (n,).

    ``candidates`` (row positions) limits the rows a selector may add; None means all rows.
    ``columns``: per-row numeric columns by name (n values each), for selectors that read them.
    """

    features: np.ndarray
    labels: np.ndarray | None = None
    candidates: np.ndarray | None = field(default=None)
    relevance: np.ndarray | None = None
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", check_features(self.features, min_rows=1))
        if self.labels is not None and len(self.labels) != len(self.features):
            raise PrismError(
                f"There are {len(self.labels):,} cluster labels for {len(self.features):,} rows; "
                "re-run `prism cluster` on this workspace.",
                param="labels",
            )
        if self.candidates is not None:
            object.__setattr__(
                self, "candidates", distinct_rows(self.candidates, self.n, param="candidates")
            )
        if self.relevance is not None:
            scores = check_features(self.relevance, param="relevance", finite=True)
            if len(scores) != self.n:
                raise PrismError(
                    f"relevance has {len(scores):,} rows for {self.n:,} pool rows; compute it "
                    "on this pool.",
                    param="relevance",
                )
            object.__setattr__(self, "relevance", scores)
        for name, values in self.columns.items():
            if len(values) != len(self.features):
                raise PrismError(
                    f"Column {name!r} has {len(values):,} values for {len(self.features):,} rows.",
                    param="columns",
                )

    @property
    def n(self) -> int:
        return len(self.features)

    def candidate_mask(self) -> np.ndarray:
        if self.candidates is None:
            return np.ones(self.n, dtype=bool)
        mask = np.zeros(self.n, dtype=bool)
        mask[self.candidates] = True
        return mask

    def require_labels(self, method: str) -> np.ndarray:
        if self.labels is None:
            raise PrismError(
                f"{method} needs gradient clusters; run `prism cluster WS` (or Cluster on the Map "
                "page) first.",
                param="method",
            )
        return np.asarray(self.labels)

    def require_relevance(self, method: str) -> np.ndarray:
        """Relevance to the target's groups (n × G); a PrismError when no target was given."""
        if self.relevance is None:
            raise PrismError(
                f"{method} ranks rows by relevance to a target set: pass target=NAME (a target "
                "added with `prism target add`).",
                param="target",
            )
        return np.asarray(self.relevance)


def pool_column(pool: Pool, name: str, method: str) -> np.ndarray:
    """The pool's numeric column ``name`` as float64, or a PrismError saying how to get it."""
    if name not in pool.columns:
        have = ", ".join(sorted(pool.columns)) or "none"
        raise PrismError(
            f"{method} reads the column {name!r}, which this workspace does not have (numeric "
            f"columns it has: {have}). Compute it first (`loss` comes with the features, `ifd` "
            "from `prism quality WS --ifd`), or choose another `score`.",
            param="options",
        )
    try:
        return np.asarray(pool.columns[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise PrismError(
            f"{method} needs a numeric column; {name!r} is not numeric.", param="options"
        ) from None


def start_rows(pool: Pool, start: object, budget: int | None) -> np.ndarray:
    """The rows of ``start`` (distinct, in order); no more than the budget."""
    rows = distinct_rows(start, pool.n, param="start")
    if budget is not None and len(rows) > budget:
        raise PrismError(
            f"The starting subset has {len(rows):,} rows, more than the budget = {budget:,}; "
            "raise the budget or start from a smaller subset.",
            param="start",
        )
    return rows


def available(pool: Pool, chosen: np.ndarray) -> np.ndarray:
    """Boolean mask of the candidate rows not chosen yet."""
    mask = pool.candidate_mask()
    mask[chosen] = False
    return mask


def check_fit(method: str, budget: int, chosen: int, free: int) -> None:
    """Refuse a budget larger than the rows ``method`` can still choose from."""
    if budget - chosen > free:
        kept = f" ({chosen:,} of them already chosen)" if chosen else ""
        raise PrismError(
            f"budget = {budget:,} is more than the {chosen + free:,} rows {method} can "
            f"choose from{kept}; lower the budget.",
            param="budget",
        )
