"""The ``prism`` command line (also ``python -m core``): the app, its commands, its error handling.

    prism features demo:gsm8k --workspace ws/gsm8k
    prism score ws/gsm8k --json
    prism cluster ws/gsm8k --k 130 --seed 0
    prism map ws/gsm8k
    prism info ws/gsm8k --json
    prism select ws/gsm8k --method vendi_greedy --k 200 --seed 0 --name diverse-200
    prism compare ws/gsm8k diverse-200 --curves
    prism export ws/gsm8k --subset diverse-200 --format jsonl --out diverse.jsonl
    prism find ws/gsm8k --where "loss > 2 AND cluster = 3" --name hard
    prism similar ws/gsm8k --row 12 --k 20
    prism tag ws/gsm8k --subset hard --as drop --note "garbled"
    prism quality ws/gsm8k --ifd

The commands live by job: ``features`` (features, resume, demo, info), ``analyses`` (score,
cluster, map, embed), ``curation`` (select, subset, compare, export), ``find`` (find, similar,
tag), ``targets`` (target sets, relevance), ``quality`` (outlier flags, IFD, the blend curve);
``render`` prints for people.
Every command prints one clear message and exits with status 2 on bad input, never a traceback.
Engine errors name the parameter (``PrismError.param``); ``flag_for`` maps it to the flag the
user typed, so the message says which option to change.
"""

from __future__ import annotations

import os
import sys

import click
import typer
from rich.markup import escape

from core.cli import (
    analyses,
    curation,
    features,
    find,
    flags,
    imported,
    quality,
    synthesis,
    targets,
)
from core.cli.flags import describe_error, flag_for, name_flags
from core.cli.render import console, err
from core.errors import JobStopped, PrismError

__all__ = ["app", "console", "describe_error", "err", "flag_for", "main", "name_flags"]

app = typer.Typer(
    name="prism",
    help="Gradient-space diversity of language-model training data (G-Vendi, clusters, maps).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(features.features)
app.command()(features.resume)
app.command("import-features")(imported.import_features)
app.command()(analyses.score)
app.command()(analyses.cluster)
app.command("map")(analyses.map_)
app.command()(analyses.embed)
app.command()(features.info)
app.command()(features.demo)
app.command()(curation.select)
app.command()(quality.quality)
app.add_typer(curation.subset_app, name="subset")
app.command()(curation.compare)
app.command()(curation.export)
app.command()(find.find)
app.command()(find.similar)
app.command()(find.tag)
app.command()(synthesis.synthesize)
app.add_typer(targets.target_app, name="target")
app.command()(targets.relevance)

flags.use_app(app)


def main() -> None:
    """Entry point: run the app, turning user errors into one-line messages (exit status 2)."""
    try:
        code = app(standalone_mode=False)
    except JobStopped as error:
        err.print(f"[bold yellow]stopped:[/] {escape(str(error))}", highlight=False)
        sys.exit(error.exit_code)
    except PrismError as error:
        message = describe_error(error, sys.argv[1:])
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; nothing was left half-written.")
        sys.exit(130)
    except Exception as error:  # usage errors and the like
        # Typer ≥ 0.20 raises its own vendored copy of click's exceptions (not click's classes),
        # so both families are handled; typer.TyperException is the base of its ClickException.
        if isinstance(error, (click.exceptions.ClickException, typer.TyperException)):
            error.show()  # type: ignore[union-attr]
            sys.exit(error.exit_code)
        if isinstance(error, (click.exceptions.Exit, typer.Exit)):
            sys.exit(error.exit_code)
        if isinstance(error, (click.exceptions.Abort, typer.Abort)):
            sys.exit(130)
        if os.environ.get("PRISM_DEBUG"):
            raise
        # Not a known kind of bad input: one line, not a traceback; PRISM_DEBUG=1 shows it.
        err.print(
            f"[bold red]error:[/] unexpected {type(error).__name__}: {escape(str(error))}\n"
            "This is a bug in Prism or an input it does not recognise; run again with "
            "PRISM_DEBUG=1 for the details.",
            highlight=False,
        )
        sys.exit(1)
    # Typer returns the exit code instead of exiting when standalone_mode is off (e.g. 130 for
    # a Ctrl-C it caught itself).
    if isinstance(code, int) and code:
        if code == 130:
            err.print("interrupted.")
        sys.exit(code)


if __name__ == "__main__":
    main()
