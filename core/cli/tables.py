"""Tables that fit the terminal: a number never breaks, text folds, extra columns are left out.

- ``table``: a light table whose number columns never break and text columns fold.
- ``fitted``: a table of ready cells no wider than the terminal (80 columns included): number
  columns keep their widest cell on one line, text columns keep a readable width before folding,
  and columns marked ``drop`` are left out, the least needed first, until it fits.
- ``key_value_table``: a headerless label → value table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def table(title: str | None, columns: list[tuple[str, bool]]) -> Table:
    """A table that fits a 100-column terminal: number columns never break (``True``), text
    columns fold onto more lines; light borders leave the width to the numbers."""
    result = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False
    )
    for header, numeric in columns:
        if numeric:
            result.add_column(header, justify="right", no_wrap=True)
        else:
            result.add_column(header, overflow="fold", min_width=8)
    return result


@dataclass(frozen=True)
class Column:
    """A column of a ``fitted`` table."""

    header: str
    numeric: bool = True  # right-aligned, never broken over lines
    drop: int = 0  # 0: always shown; else left out on a narrow terminal, the highest first
    fold: int = 14  # text: the width it keeps before folding onto more lines


def _widths(markup: str) -> tuple[int, int]:
    """(widest line, widest word) of a cell written in rich markup, in terminal cells."""
    plain = Text.from_markup(markup).plain
    line = max((cell_len(x) for x in plain.splitlines()), default=0)
    return line, max((cell_len(w) for w in plain.split()), default=0)


def fitted(
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    ends: Sequence[bool] | None = None,
    width: int | None = None,
    console: Console | None = None,
) -> tuple[Table, list[str]]:
    """A table of ``rows`` (cells in markup) no wider than ``width`` (default: ``console``'s).

    Number columns keep their widest cell on one line; a text column keeps its widest word and up
    to ``fold`` cells before it folds. Columns with ``drop`` are left out, the highest first, until
    the table fits. ``ends[i]`` closes a section after row i. Returns the table and the headers
    left out.
    """
    console = console or Console()
    width = width or console.width
    need, natural = [], []
    for i, col in enumerate(columns):
        line, word = _widths(escape(col.header))
        for row in rows:
            cell_line, cell_word = _widths(row[i])
            line, word = max(line, cell_line), max(word, cell_word)
        need.append(line if col.numeric else max(word, min(line, col.fold), 1))
        natural.append(max(line, need[-1]))

    def build(keep: list[int], *, final: bool) -> Table:
        result = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            expand=False,
            min_width=min(cell_len(Text.from_markup(title or "").plain), width) if final else None,
        )
        for i in keep:
            col = columns[i]
            if col.numeric:
                result.add_column(col.header, justify="right", no_wrap=True)
            else:  # a fixed width: rich never squeezes it below its longest word
                result.add_column(col.header, overflow="fold", min_width=need[i], max_width=need[i])
        for j, row in enumerate(rows):
            result.add_row(*(row[i] for i in keep), end_section=bool(ends and ends[j]))
        return result

    def total(keep: list[int]) -> int:
        options = console.options.update(width=1_000_000)
        return Measurement.get(console, options, build(keep, final=False)).maximum

    shown = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop)
    dropped: list[str] = []
    while droppable and total(shown) > width:
        i = droppable.pop(0)
        shown.remove(i)
        dropped.append(columns[i].header)
    spare = width - total(shown)
    for i in shown:  # room left over goes to the text columns, in order, up to their widest line
        if not columns[i].numeric and spare > 0:
            grow = min(natural[i] - need[i], spare)
            need[i], spare = need[i] + grow, spare - grow
    return build(shown, final=True), dropped


def key_value_table(title: str, *, key_style: str) -> Table:
    """A headerless two-column table: a label, then its value folded onto more lines."""
    result = table(title, [])
    result.show_header = False
    result.add_column(no_wrap=True, style=key_style)
    result.add_column(overflow="fold")
    return result
