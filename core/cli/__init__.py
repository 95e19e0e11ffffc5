"""The ``prism`` command line (also ``python -m core``): the app, its commands, its error handling.

    prism features demo:gsm8k --workspace ws/gsm8k
    prism score ws/gsm8k --json
    prism cluster ws/gsm8k --k 130 --seed 0
    prism map ws/gsm8k
    prism info ws/gsm8k --json
    prism select ws/gsm8k --method vendi_greedy --k 200 --seed 0 --name diverse-200
    prism compare ws/gsm8k diverse-200 --curves
    prism export ws/gsm8k --subset diverse-200 --format jsonl --out diverse.jsonl

The commands live by job: ``features`` (features, resume, demo, info), ``analyses`` (score,
cluster, map, embed), ``curation`` (select, subset, compare, export); ``render`` prints for people.
Every command prints one clear message and exits with status 2 on bad input, never a traceback.
Engine errors name the parameter (``PrismError.param``); ``flag_for`` maps it to the flag the
user typed, so the message says which option to change.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import click
import typer
from rich.markup import escape

from core.cli import analyses, curation, features, imported, synthesis
from core.cli.render import console, err
from core.errors import JobStopped, PrismError

__all__ = ["app", "console", "describe_error", "err", "flag_for", "main"]

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
app.add_typer(curation.subset_app, name="subset")
app.command()(curation.compare)
app.command()(curation.export)
app.command()(synthesis.synthesize)

# Engine parameter → flag, where the flag is not the parameter spelled with dashes
# (``batch_size`` → ``--batch-size`` needs no entry). ``COMMAND_FLAGS`` overrides it per command.
FLAGS = {
    "budget": "--k",
    "n_clusters": "--k",
    "qs": "--q",
    "fmt": "--format",
    "prompt": "--prompt-col",
    "response": "--response-col",
    "messages": "--messages-col",
    "text": "--text-col",
    "id": "--id-col",
    "options": "--option",
    "manifest": "--from-manifest",
    "methods": "--method",
}
COMMAND_FLAGS = {
    "embed": {"k": "--neighbours", "n_neighbors": "--neighbours"},
    "synthesize": {"budget": "--budget", "sparse_only": "--filter", "candidates": "--keep"},
}


def _invoked(argv: Sequence[str]) -> tuple[str, Any]:
    """(name, click command) of the command ``argv`` runs, e.g. ("subset list", …)."""
    command: Any = typer.main.get_command(app)
    names: list[str] = []
    for arg in argv:
        if arg.startswith("-") or not hasattr(command, "commands"):
            break
        sub = command.commands.get(arg)
        if sub is None:
            break
        command, names = sub, [*names, arg]
    return " ".join(names), (command if names else None)


def _selector_options() -> set[str]:
    """Every option name a selector takes (set through ``prism select --option name=value``)."""
    # heavy: scipy (the selectors), kept off `prism --help`
    from core.select.selectors import SELECTORS

    return {option for spec in SELECTORS.values() for option in spec.options}


def flag_for(param: str | None, argv: Sequence[str]) -> str | None:
    """The flag of the command in ``argv`` that sets engine parameter ``param``, if it has one."""
    if not param:
        return None
    name, command = _invoked(argv)
    if command is None:
        return None
    flag = COMMAND_FLAGS.get(name, {}).get(param) or FLAGS.get(param)
    if flag is None and name == "select" and param in _selector_options():
        flag = "--option"  # a selector's own option: `--option threshold=0.9`
    flag = flag or "--" + param.replace("_", "-")
    options = {opt for p in command.params for opt in p.opts if opt.startswith("--")}
    return flag if flag in options else None


def describe_error(error: PrismError, argv: Sequence[str]) -> str:
    """The message of ``error`` naming the flag to change: "seed (--seed) must be …" when the
    message opens with the parameter, "--ids: 1 ids are not …" otherwise; unchanged when it
    already names the flag or the command has none for that parameter."""
    message = str(error)
    param = error.param
    flag = flag_for(param, argv)
    if param is None or flag is None or re.search(rf"{re.escape(flag)}\b", message):
        return message
    if re.match(rf"{re.escape(param)}\b", message):
        return f"{param} ({flag}){message[len(param) :]}"
    return f"{flag}: {message}"


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
