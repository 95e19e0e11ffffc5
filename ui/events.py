"""Plotly selection events read as row numbers: what a lasso, a box or a click on a map selects.

- ``rows_from_event``: the global row numbers of a selection event (``customdata`` holds the row
  number, since ``point_indices`` are per trace; a lasso or box on a sampled map is resolved
  against every point's coordinates by ``core.measures.regions``).
- ``event_signature``: a short fingerprint of a selection, so each new one is acted on once.

Events are read dict-style, so a test can inject one through session state. No streamlit here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.measures.regions import PointIndex, rows_in_shapes


def _customdata_row(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def rows_from_event(
    event: Any,
    n_rows: int,
    *,
    coords: tuple[np.ndarray, np.ndarray] | PointIndex | None = None,
    sampled: bool = False,
) -> np.ndarray | None:
    """Sorted unique row numbers selected by a Plotly event; None when the event selects nothing.

    On a sampled map (``sampled``) the drawn lasso or box is applied to every point's
    coordinates, so points that were not drawn are selected too.
    """
    selection = (event or {}).get("selection", {}) if isinstance(event, Mapping) else {}
    if not isinstance(selection, Mapping):
        return None
    if sampled and coords is not None:
        points = coords if isinstance(coords, PointIndex) else PointIndex(*coords)
        inside = rows_in_shapes(selection, points)
        if inside is not None:
            return inside if inside.size else None
    rows = []
    for point in selection.get("points") or []:
        if isinstance(point, Mapping):
            row = _customdata_row(point.get("customdata"))
            if row is not None and 0 <= row < n_rows:
                rows.append(row)
    if not rows:
        return None
    return np.unique(np.asarray(rows, dtype=np.int64))


def event_signature(event: Any) -> str | None:
    """A short fingerprint of an event's selection, to act on each new selection only once."""
    selection = (event or {}).get("selection") if isinstance(event, Mapping) else None
    if not selection or not (
        selection.get("points") or selection.get("lasso") or selection.get("box")
    ):
        return None
    blob = json.dumps(
        {
            "p": [
                _customdata_row(p.get("customdata"))
                for p in selection.get("points") or []
                if isinstance(p, Mapping)
            ],
            "l": selection.get("lasso") or [],
            "b": selection.get("box") or [],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
