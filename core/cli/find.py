"""The hand-curation commands: ``find`` (text, regex, a condition), ``similar`` (nearest rows in
gradient space) and ``tag`` (keep / drop / flag, list, undo).

Each parses its options, calls the workspace function that does the work
(``core.workspace.find``, ``core.workspace.similar``, ``core.workspace.tags``) and says what it
did; row text and notes are user text and are always printed escaped.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape

from core.cli.options import JsonOpt, WorkspaceArg, open_workspace
from core.cli.render import console, print_fitted, print_json
from core.cli.tables import Column
from core.errors import PrismError

SHOWN = 10  # rows a listing prints (--json gives them all)


def _one_of(**given: Any) -> str:
    chosen = [name for name, value in given.items() if value is not None]
    if len(chosen) != 1:
        flags = ", ".join(f"--{name}" for name in given)
        raise PrismError(f"Give exactly one of {flags}; got {len(chosen)}.")
    return chosen[0]


def _ids_of(ws: Any, rows: np.ndarray) -> list[str]:
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.find import rows_of_samples

    return [str(i) for i in rows_of_samples(ws, rows, ["id"]).column("id").to_pylist()]


def _print_rows(ws: Any, rows: np.ndarray, extra: dict[str, list[str]] | None = None) -> None:
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.find import previews

    shown = rows[:SHOWN]
    if len(shown) == 0:
        return
    extra = extra or {}
    columns = [Column("row"), Column("id", numeric=False), *(Column(h) for h in extra)]
    columns.append(Column("text", numeric=False, fold=40))
    texts = previews(ws, shown, max_chars=100)
    ids = _ids_of(ws, shown)
    table = [
        [f"{r:,}", escape(i), *(values[n] for values in extra.values()), escape(t)]
        for n, (r, i, t) in enumerate(zip(shown.tolist(), ids, texts, strict=True))
    ]
    print_fitted(None, columns, table)
    if len(rows) > SHOWN:
        console.print(f"… and {len(rows) - SHOWN:,} more (--json lists them all)", style="dim")


def find(
    workspace: WorkspaceArg,
    text: Annotated[
        str | None, typer.Option(help="Rows whose content holds this text (any case).")
    ] = None,
    regex: Annotated[
        str | None, typer.Option(help="Rows whose content matches this regular expression.")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(help='A SQL condition over the columns, e.g. "loss > 2 AND cluster = 3".'),
    ] = None,
    case_sensitive: Annotated[
        bool, typer.Option(help="--text and --regex tell upper from lower case.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Store the rows found as this subset.")] = None,
    force: Annotated[bool, typer.Option(help="Replace a subset of the same name.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Find rows by their text (--text, --regex) or by a condition over the columns (--where)."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.find import find_text, find_where
    from core.workspace.subsets import save_subset

    ws = open_workspace(workspace)
    how = _one_of(text=text, regex=regex, where=where)
    if how == "where":
        found = find_where(ws, str(where))
    else:
        pattern = str(text if how == "text" else regex)
        found = find_text(ws, pattern, regex=how == "regex", case_sensitive=case_sensitive)
    stored = None
    if name is not None:
        if found.n_rows == 0:
            raise PrismError("Nothing was found, so no subset was stored.", param="name")
        ids = _ids_of(ws, found.rows)
        stored = save_subset(ws, name, ids, how=dict(found.how), overwrite=force)
    if as_json:
        print_json(
            {
                "n_rows": found.n_rows,
                "rows": found.rows.tolist(),
                "ids": _ids_of(ws, found.rows),
                "how": dict(found.how),
                "subset": stored,
            }
        )
        return
    console.print(f"found {found.n_rows:,} of {ws.n_samples:,} rows")
    _print_rows(ws, found.rows)
    if stored is not None:
        console.print(f"stored subset “{escape(stored)}”: {found.n_rows:,} rows")


def similar(
    workspace: WorkspaceArg,
    row: Annotated[str | None, typer.Option(help="Id of the row to start from.")] = None,
    subset: Annotated[
        str | None, typer.Option(help="Start from the centroid of this subset's rows.")
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(help="Start from this text (its features computed with the proxy)."),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option(help="With --text: the prompt the text answers.")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="How many rows to list.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The nearest rows in gradient space to a row, a subset's centroid or pasted text."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.similar import similar_to_rows, similar_to_text
    from core.workspace.subsets import rows_of

    ws = open_workspace(workspace)
    start = _one_of(row=row, subset=subset, text=text)
    if start == "text":
        result = similar_to_text(ws, str(text), prompt=prompt, n_neighbors=k)
    else:
        rows = rows_of(ws, "", ids=[str(row)]) if start == "row" else rows_of(ws, str(subset))
        result = similar_to_rows(ws, rows, n_neighbors=k)
    ids = _ids_of(ws, result.rows)
    if as_json:
        print_json(
            {
                "query": result.query,
                "exact": result.exact,
                "neighbours": [
                    {"row": int(r), "id": i, "cosine": float(c)}
                    for r, i, c in zip(result.rows, ids, result.cosines, strict=True)
                ],
            }
        )
        return
    how = "exact, every row compared" if result.exact else "through the workspace's index"
    built = "; built the index first" if result.built_index else ""
    console.print(f"{len(result.rows):,} nearest rows to {escape(result.query)} ({how}{built})")
    _print_rows(ws, result.rows, {"cosine": [f"{c:.3f}" for c in result.cosines[:SHOWN]]})


def tag(
    workspace: WorkspaceArg,
    rows: Annotated[
        str | None, typer.Option(help="Ids of the rows to tag, comma-separated.")
    ] = None,
    subset: Annotated[str | None, typer.Option(help="Tag every row of this subset.")] = None,
    where: Annotated[
        str | None, typer.Option(help="Tag the rows for which this SQL condition holds.")
    ] = None,
    as_tag: Annotated[
        str | None, typer.Option("--as", help="keep, drop, flag, or clear (remove the tag).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the tag.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the tagged rows.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Undo the newest change of tags.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag rows keep, drop or flag (with a note); --list them; --undo the newest change."""
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.workspace.find import find_where
    from core.workspace.subsets import rows_of
    from core.workspace.tags import tag_counts, tag_rows, tag_table, undo_tags

    ws = open_workspace(workspace)
    if list_:
        table = tag_table(ws)
        if as_json:
            print_json({"counts": tag_counts(ws), "tags": table.to_dict(orient="records")})
            return
        counts = ", ".join(f"{n:,} {t}" for t, n in tag_counts(ws).items())
        console.print(f"tagged rows: {counts}")
        if len(table):
            print_fitted(
                None,
                [Column("row"), Column("id", numeric=False), Column("tag", numeric=False),
                 Column("note", numeric=False, fold=40)],
                [[f"{r:,}", escape(i), t, escape(n if isinstance(n, str) else "")]
                 for r, i, t, n in table[["row", "id", "tag", "note"]].itertuples(index=False)],
            )  # fmt: skip
        return
    if undo:
        change = undo_tags(ws)
    else:
        source = _one_of(rows=rows, subset=subset, where=where)
        if as_tag is None:
            raise PrismError("Say which tag to give with --as keep, drop, flag or clear.")
        if source == "rows":
            ids = [i.strip() for i in str(rows).split(",") if i.strip()]
            positions = rows_of(ws, "", ids=ids)
        elif source == "subset":
            positions = rows_of(ws, str(subset))
        else:
            positions = find_where(ws, str(where)).rows
            if len(positions) == 0:
                raise PrismError("The condition holds for no row; nothing was tagged.")
        change = tag_rows(ws, positions, as_tag, note=note)
    if as_json:
        print_json({"what": change.what, "n_rows": change.n_rows, "counts": tag_counts(ws)})
        return
    counts = ", ".join(f"{n:,} {t}" for t, n in tag_counts(ws).items())
    console.print(f"{escape(change.what)}; tagged rows now: {counts}")
