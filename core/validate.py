"""Validators of the values every part of the engine takes, one per kind of value.

- ``check_int``: an integer (not a bool) with a lower and an optional upper bound.
- ``check_number``: a finite real number (not a bool) within bounds, open or closed.
- ``check_choice``: one of a few named values.
- ``check_budget``: the rows a selector keeps, as a count or a fraction of the ``n`` rows.
- ``check_seed``: a seed for numpy, scikit-learn, UMAP and torch: an integer in [0, 2**32 − 1].
- ``check_features``: a 2-D real feature matrix (n_samples × d, d ≥ 1); memmaps stay memmaps.
- ``check_indices``: row positions into n rows, from integers or a boolean mask.
- ``check_url``: an http(s) URL with a host (and a valid port); with ``secrets=False`` also
  without user, password or query, which may carry a key.

Each returns the checked value and raises ``PrismError(message, param=name)``: the message names
the parameter and the bad value, ``param`` lets the CLI and the app point at their own control.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Collection
from urllib.parse import urlsplit

import numpy as np

from core.errors import PrismError

SEED_MAX = 2**32 - 1


def check_int(
    value: object, *, param: str, minimum: int, maximum: int | None = None, why: str = ""
) -> int:
    """``value`` as an int in [minimum, maximum]; a PrismError naming ``param`` otherwise (its
    message adds ``why``, e.g. " (the sketch gives at most 16,384 numbers)", after the range)."""
    number = int(value) if isinstance(value, numbers.Integral) else None
    if (
        isinstance(value, bool)
        or number is None
        or number < minimum
        or (maximum is not None and number > maximum)
    ):
        bound = f"≥ {minimum}" if maximum is None else f"from {minimum} to {maximum:,}"
        raise PrismError(f"{param} must be an integer {bound}{why}; got {value!r}.", param=param)
    return number


def check_number(
    value: object,
    *,
    param: str,
    above: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite float: > ``above``, ≥ ``minimum``, ≤ ``maximum`` (those given)."""
    number = float(value) if isinstance(value, numbers.Real) else math.nan
    if (
        isinstance(value, bool)
        or not math.isfinite(number)
        or (above is not None and not number > above)
        or (minimum is not None and not number >= minimum)
        or (maximum is not None and not number <= maximum)
    ):
        low = f"> {above:g}" if above is not None else None
        low = f"≥ {minimum:g}" if minimum is not None else low
        high = f"≤ {maximum:g}" if maximum is not None else None
        bound = " and ".join(b for b in (low, high) if b)
        raise PrismError(
            f"{param} must be a number{' ' + bound if bound else ''}; got {value!r}.", param=param
        )
    return number


def check_choice(value: object, choices: Collection[str], *, param: str) -> str:
    """``value`` when it is one of ``choices``; a PrismError listing them otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise PrismError(
            f"{param} must be one of {', '.join(choices)}; got {value!r}.", param=param
        )
    return value


def check_seed(seed: object, *, param: str = "seed") -> int:
    """A seed: an integer from 0 to 2**32 − 1 (the range every library Prism seeds accepts)."""
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= int(seed) <= SEED_MAX
    ):
        raise PrismError(
            f"{param} must be an integer from 0 to 2**32 − 1; got {seed!r}.", param=param
        )
    return int(seed)


def check_budget(budget: object, n: int, *, allow_none: bool = False) -> int | None:
    """A budget as a row count: an integer ≥ 1, or a fraction in (0, 1) of the ``n`` rows."""
    if budget is None:
        if allow_none:
            return None
        raise PrismError(
            "Give a budget: a number of rows (e.g. 200) or a fraction (e.g. 0.1).", param="budget"
        )
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise PrismError(
            f"budget must be a number of rows or a fraction, got {budget!r}.", param="budget"
        )
    value = float(budget)
    if 0 < value < 1:
        return max(1, round(value * n))
    if value < 1 or value != int(value):
        raise PrismError(
            f"budget must be a whole number of rows ≥ 1 or a fraction between 0 and 1, got "
            f"{budget!r}.",
            param="budget",
        )
    return int(value)


def check_features(
    features: object, *, param: str = "features", min_rows: int = 0, finite: bool = False
) -> np.ndarray:
    """A 2-D array of real numbers (n × d, d ≥ 1), at least ``min_rows`` rows.

    Float arrays (memmaps included) are returned as they are, never copied; integer arrays are
    converted to float64. ``finite`` also refuses NaN and infinite values (one pass over the data).
    """
    array = features if isinstance(features, np.ndarray) else np.asarray(features)
    if array.ndim != 2 or array.shape[1] == 0:
        raise PrismError(
            f"{param} must be a 2-D array (n_samples × d) with d ≥ 1; got shape "
            f"{tuple(array.shape)}.",
            param=param,
        )
    if (
        not np.issubdtype(array.dtype, np.number)
        or np.issubdtype(array.dtype, np.complexfloating)
        or array.dtype == np.bool_
    ):
        raise PrismError(f"{param} must hold real numbers; got dtype {array.dtype}.", param=param)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if array.shape[0] < min_rows:
        raise PrismError(
            f"{param} must have at least {min_rows} row{'s' if min_rows != 1 else ''}; got "
            f"{array.shape[0]}.",
            param=param,
        )
    if finite and not np.all(np.isfinite(array)):
        raise PrismError(f"{param} contains NaN or infinite values.", param=param)
    return array


def check_indices(
    indices: object, n: int, *, param: str = "indices", allow_empty: bool = False
) -> np.ndarray:
    """Row positions (1-D int64) into ``n`` rows, from integers or a boolean mask of length n.

    Order and repeats are kept. An empty selection is refused unless ``allow_empty``.
    """
    array = np.asarray(indices)
    if array.dtype == bool:
        if array.shape != (n,):
            raise PrismError(
                f"{param} given as a boolean mask must have length N={n}; got shape {array.shape}.",
                param=param,
            )
        rows = np.flatnonzero(array)
        if rows.size == 0 and not allow_empty:
            raise PrismError(f"{param} selects no rows.", param=param)
        return rows.astype(np.int64)
    if array.size == 0:
        if allow_empty:
            return np.zeros(0, dtype=np.int64)
        raise PrismError(f"{param} is empty; it must name at least one row.", param=param)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise PrismError(
            f"{param} must be a 1-D array of integer row numbers or a boolean mask; got dtype "
            f"{array.dtype} and shape {array.shape}.",
            param=param,
        )
    if n == 0:
        raise PrismError(f"{param} names rows, but there are none to name (N=0 rows).", param=param)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= n:
        raise PrismError(
            f"{param} must lie in [0, {n - 1}] (N={n} rows); got values from {low} to {high}.",
            param=param,
        )
    return array.astype(np.int64, copy=False)


def check_url(
    value: object, *, param: str, example: str = "http://127.0.0.1:8000/v1", secrets: bool = True
) -> str:
    """An http(s) URL with a host and, if given, a port from 1 to 65535.

    ``secrets=False`` also refuses a user, password or query string in it: those may carry a key,
    and a URL that is stored (to show, or to resume with) never holds one.
    """
    parts = None
    if isinstance(value, str) and value.strip() == value:
        try:
            parts = urlsplit(value)
            valid_port = parts.port != 0  # .port raises for a port that is not 0–65535
        except ValueError:
            parts = None
    if (
        not isinstance(value, str)
        or parts is None
        or not valid_port
        or parts.scheme not in ("http", "https")
        or not parts.hostname
    ):
        shown = re.sub(r"//[^/@]*@", "//…@", value) if isinstance(value, str) else value
        raise PrismError(  # a password in the URL is not repeated
            f"{param} must be an http(s) URL with a host, such as {example}; got {shown!r}.",
            param=param,
        )
    if not secrets and (parts.username is not None or parts.password is not None or parts.query):
        what = "a user or password" if parts.username is not None else "a query string"
        raise PrismError(
            f"{param} must not carry a user, password or query string: Prism never stores them, "
            f"so a resumed run could not use them; got a URL with {what}. Give the base URL "
            f"(such as {example}) and pass a key through an environment variable (api_key_env) "
            "or a file (api_key_file).",
            param=param,
        )
    return value
