"""Numbers and words for people: "1,319 rows", "G-Vendi 87.4", "2 min 05 s". No streamlit here."""

from __future__ import annotations

import math


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1319, "row")`` → "1,319 rows"; ``count(1, "row")`` → "1 row"."""
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n:,} {word}"


def score(value: float | None) -> str:
    """A Vendi score with one decimal, thousands separated ("1,024.0"); "—" when unknown."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.1f}"


def percent(fraction: float | None, *, digits: int = 0) -> str:
    if fraction is None or not math.isfinite(fraction):
        return "—"
    return f"{100 * fraction:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """ "45 s", "2 min 05 s", "1 h 03 min"; "—" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def rate(per_second: float | None) -> str:
    if not per_second:
        return "—"
    return f"{per_second:,.1f} samples/s" if per_second < 100 else f"{per_second:,.0f} samples/s"


def shorten(text: object, max_chars: int = 120) -> str:
    """One line, at most ``max_chars`` characters (an ellipsis marks a cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1].rstrip() + "…"
