"""Length caps on text: the longest content cell a dataset may hold and the one rule that says a
text is over a cap (dataset cells and generator replies alike). No pandas here, so the command
line's start-up can read the caps."""

from __future__ import annotations

# Longest content cell (prompt, response, text, or all messages of a chat together) a dataset may
# hold: the tokenizer needs gigabytes for a cell of tens of megabytes, so it is refused up front.
MAX_CELL_CHARS = 1_000_000


def over_limit(size: int, limit: int, *, unit: str = "characters") -> str | None:
    """ "holds 1,200 characters, more than the limit of 1,000" when ``size`` exceeds ``limit``,
    else None: the one length cap of dataset cells and of generator replies."""
    if size <= limit:
        return None
    return f"holds {size:,} {unit}, more than the limit of {limit:,}"
