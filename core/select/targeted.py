"""The targeted selectors: rows relevant to a target set, alone or with diversity.

- ``targeted``: top-k by relevance (LESS), or with ``round_robin`` the target's groups in turn.
- ``targeted_diverse``: order-2 Vendi greedy within the most relevant rows (its docstring says why
  this design).
- ``boolean`` / ``relevance_agg``: the parsers of their text options.

Both rank by ``pool.relevance`` (n × G: each row's relevance to each group of the target,
``core.measures.relevance``) and follow the selector contract of ``core.select.selectors``.
"""

from __future__ import annotations

import numpy as np

from core.errors import PrismError
from core.measures.relevance import check_agg
from core.select.greedy import greedy
from core.select.pool import Pool, available, check_fit, start_rows

# targeted_diverse's default shortlist: the SHORTLIST_FACTOR × budget most relevant rows.
SHORTLIST_FACTOR = 4


def _by_relevance(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` from most to least relevant by ``scores`` (n,); ties go to the lower row."""
    return rows[np.lexsort((rows, -scores[rows]))]


def targeted(
    pool: Pool, *, budget: int, seed: int, start: object = None, round_robin: bool = False
) -> np.ndarray:
    """The most relevant rows to the target (LESS keeps its top 5 %): top-k by relevance.

    Relevance is the best group's (``pool.relevance`` maximised over groups). ``round_robin``: the
    target's groups take turns, each adding its own most relevant remaining row, so a group that
    few rows match still gets its share at a small budget. Deterministic: ``seed`` is not used.
    """
    scores = pool.require_relevance("targeted")
    chosen = start_rows(pool, start, budget)
    free = available(pool, chosen)
    check_fit("targeted", budget, len(chosen), int(free.sum()))
    rows = np.flatnonzero(free)
    wanted = budget - len(chosen)
    if not round_robin or scores.shape[1] == 1:
        added = _by_relevance(scores.max(axis=1), rows)[:wanted]
        return np.concatenate([chosen, added]).astype(np.int64)
    orders = [_by_relevance(scores[:, g], rows) for g in range(scores.shape[1])]
    places = [0] * len(orders)
    taken = np.zeros(pool.n, dtype=bool)
    added_list: list[int] = []
    while len(added_list) < wanted:
        for g, order in enumerate(orders):
            if len(added_list) == wanted:
                break
            while taken[order[places[g]]]:
                places[g] += 1
            row = int(order[places[g]])
            taken[row] = True
            added_list.append(row)
    return np.concatenate([chosen, np.asarray(added_list, dtype=np.int64)]).astype(np.int64)


def targeted_diverse(
    pool: Pool, *, budget: int, seed: int, start: object = None, shortlist: int = 0
) -> np.ndarray:
    """Relevant and diverse: greedy Vendi (order 2) within the ``shortlist`` most relevant rows.

    Why this design rather than a greedy on relevance + λ·diversity gain: relevance (a cosine) and
    the Vendi gain live on different scales that change with the data, so a λ would need tuning
    per pool and target, and a bad one either ignores the target or ignores diversity. A
    shortlist keeps a guarantee a curator can read — every chosen row is among the
    ``shortlist`` most relevant — and within it the Vendi greedy spreads the budget over the
    target's modes instead of piling onto the one that top-k favours (TAROT's finding for
    multi-modal targets); it is the exact lazy greedy of ``vendi_greedy``, so it scales alike.
    ``shortlist`` = 0 takes ``SHORTLIST_FACTOR`` × budget (at most the free rows). The first row
    (without ``start``) is the most relevant one, so the result is deterministic: ``seed`` is
    not used.
    """
    scores = pool.require_relevance("targeted_diverse").max(axis=1)
    if isinstance(shortlist, bool) or not isinstance(shortlist, int) or shortlist < 0:
        raise PrismError(
            f"shortlist must be a whole number ≥ 0 (0: {SHORTLIST_FACTOR} × budget); got "
            f"{shortlist!r}.",
            param="shortlist",
        )
    chosen = start_rows(pool, start, budget)
    free = available(pool, chosen)
    check_fit("targeted_diverse", budget, len(chosen), int(free.sum()))
    wanted = budget - len(chosen)
    size = shortlist or SHORTLIST_FACTOR * budget
    if size < wanted:
        raise PrismError(
            f"shortlist = {shortlist:,} holds fewer rows than the {wanted:,} still to choose; "
            "raise it (or lower the budget).",
            param="shortlist",
        )
    if wanted == 0:
        return chosen
    ranked = _by_relevance(scores, np.flatnonzero(free))[:size]
    allowed = np.zeros(pool.n, dtype=bool)
    allowed[ranked] = True
    first = chosen if len(chosen) else ranked[:1]
    order = greedy(
        pool.features, budget=budget, chosen=first.tolist(), free=allowed, aggregate="sum_sq"
    )
    return np.asarray(order, dtype=np.int64)


def boolean(value: object) -> bool:
    """An option's yes/no from a bool or text (true/false, yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(value)


def relevance_agg(value: object) -> str:
    """A relevance aggregation (``core.measures.relevance.AGGREGATIONS``)."""

    try:
        return check_agg(value)
    except PrismError:
        raise ValueError(value) from None
