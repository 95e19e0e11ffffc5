"""Engine parameters → the flags of the ``prism`` command being run.

Engine errors and notes name parameters (``PrismError.param``, `out` in backquotes); only the CLI
knows flags. ``flag_for`` maps a parameter to the flag of the command the user typed, so a message
says which option to change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import typer

from core.errors import PrismError

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
    "group_column": "--group-col",
    "texts": "--text",
}
COMMAND_FLAGS = {
    "embed": {"k": "--neighbours", "n_neighbors": "--neighbours"},
    "synthesize": {"budget": "--budget", "sparse_only": "--filter", "candidates": "--keep"},
    "select": {"target": "--target"},
    "similar": {"n_neighbors": "--k", "ids": "--row", "rows": "--row"},
    "tag": {"tag": "--as", "ids": "--rows"},
}


_APP: list[typer.Typer] = []


def use_app(app: typer.Typer) -> None:
    """Name the ``prism`` app whose commands ``flag_for`` looks up (set once by ``core.cli``, so
    this module imports nothing of the commands and every command module may import it)."""
    _APP[:] = [app]


def _invoked(argv: Sequence[str]) -> tuple[str, Any]:
    """(name, click command) of the command ``argv`` runs, e.g. ("subset list", …)."""
    if not _APP:
        return "", None
    command: Any = typer.main.get_command(_APP[0])
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
    # heavy: pandas, pyarrow and the engine, kept off `prism --help`
    from core.select.selectors import SELECTORS

    return {option for spec in SELECTORS.values() for option in spec.all_options}


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


def name_flags(message: str, argv: Sequence[str]) -> str:
    """``message`` with each parameter the engine names in backquotes (`out`) written as the flag
    that sets it in the command of ``argv`` (--out), where that command has one."""
    return re.sub(r"`([a-z_]+)`", lambda m: flag_for(m.group(1), argv) or m.group(0), message)


def describe_error(error: PrismError, argv: Sequence[str]) -> str:
    """The message of ``error`` naming the flag to change: "seed (--seed) must be …" when the
    message opens with the parameter, "--ids: 1 ids are not …" otherwise; unchanged when it
    already names the flag or the command has none for that parameter. A parameter the engine
    names in backquotes ("choose another `out`, or set `force`") becomes its flag (--out, --force)
    where the command has one."""
    message = name_flags(str(error), argv)
    param = error.param
    flag = flag_for(param, argv)
    if param is None or flag is None or re.search(rf"{re.escape(flag)}\b", message):
        return message
    if re.match(rf"{re.escape(param)}\b", message):
        return f"{param} ({flag}){message[len(param) :]}"
    return f"{flag}: {message}"
