"""The layers of README.md ("Code layout"), checked on the parsed source of every module.

- ``core/`` is the engine: it never imports streamlit or ``ui``; only ``app.py``, ``pages/`` and
  ``ui/`` import streamlit.
- The pipeline stages (``core.data``, ``core.features``, ``core.measures``, ``core.select``) never
  import ``core.workspace``, ``core.cli`` or ``ui``: the store and the command line sit above them.
- Pages are thin: they import ``ui`` and nothing else but the standard library and streamlit.
- Every module of ``core/``, ``ui/``, ``pages/`` and ``app.py`` opens with a docstring, and no
  module of ``core/`` or ``ui/`` is above ``MAX_LINES`` lines.
- No import cycle between two files of ``core/``; no private name (``_x``) of one file used in
  another inside ``core/``, ``ui/``, ``pages/`` and ``app.py``; ``ui/events.py`` is streamlit-free.
- An import inside a function says why it is not at the top of its module: ``# heavy: …`` (a
  slow import kept off a path that does not need it, such as ``prism --help``), ``# optional: …``
  (a package that may be missing) or ``# cycle: …`` (the module it imports imports this one).

Imports are read from the syntax tree, wherever they sit (module level, inside a function, under
``TYPE_CHECKING``), relative ones resolved, and ``importlib.import_module("…")`` with a literal name
counted too, so a lazy import does not slip past. Tests and ``bench/`` may import anything.
"""

from __future__ import annotations

import ast
import io
import os
import re
import sys
import tokenize
import tomllib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "core"
MAX_LINES = 500

# The role subpackages of core/ (README.md, "Code layout").
SUBPACKAGES = ("data", "features", "measures", "select", "workspace", "cli")
# The stages below the store and the command line, and what they must never import.
STAGES = ("core.data", "core.features", "core.measures", "core.select", "core.synthesis")
ABOVE_STAGES = ("core.workspace", "core.cli", "ui")


def _modules(*roots: str) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        path = REPO / root
        found.extend([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))
    return sorted(p for p in found if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    """The dotted module name of a file under the repository (``core/data/__init__.py`` → core.data)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def imported_names(source: str, module: str = "", is_package: bool = False) -> dict[str, int]:
    """Every module name ``source`` imports, anywhere in it, with the line of its first import.

    Relative imports are made absolute; ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (``c``
    may be a submodule); a literal ``importlib.import_module("x")`` or ``__import__("x")`` yields
    ``x``.
    """
    return _names_in(ast.parse(source), module, is_package)


def _names_in(tree: ast.AST, module: str, is_package: bool) -> dict[str, int]:
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            found.append((prefix, node.lineno))
            found.extend(
                (f"{prefix}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"
            )
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (
                    isinstance(node.func, ast.Name)
                    and node.func.id in {"__import__", "import_module"}
                )
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append((node.args[0].value, node.lineno))
    names: dict[str, int] = {}
    for name, line in found:
        if name:
            names[name] = min(line, names.get(name, line))
    return names


def _imports(path: Path) -> dict[str, int]:
    return imported_names(
        path.read_text(encoding="utf-8"), _name(path), is_package=path.name == "__init__.py"
    )


def _within(name: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(name == p or name.startswith(p + ".") for p in packages)


def _report(names: dict[str, int]) -> str:
    """``a.b (line 3), c (line 9)``: the imported names, a name's members left out."""
    shown = [n for n in names if n.rpartition(".")[0] not in names]
    return ", ".join(f"{n} (line {names[n]})" for n in sorted(shown, key=lambda n: names[n]))


def _offending(path: Path, packages: tuple[str, ...] | str) -> str:
    return _report({n: line for n, line in _imports(path).items() if _within(n, packages)})


CORE_MODULES = _modules("core")
UI_MODULES = _modules("ui")
PAGE_MODULES = _modules("pages")
APP_MODULES = [*CORE_MODULES, *UI_MODULES, *PAGE_MODULES, *_modules("app.py")]
STAGE_MODULES = [p for p in CORE_MODULES if _within(_name(p), STAGES)]
# Not product code: tests and benchmarks may import anything; the rest are outputs.
NOT_PRODUCT = {"tests", "bench", "artifacts", "ws", "build", "dist", "__pycache__"}


def _product_modules() -> list[Path]:
    """Every module of the repository but tests, benchmarks and hidden or build folders."""
    found = []
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [
            d
            for d in subfolders
            if not d.startswith(".") and d not in NOT_PRODUCT and not d.endswith(".egg-info")
        ]
        found.extend(Path(folder) / f for f in files if f.endswith(".py"))
    return sorted(found)


# Everything but app.py, pages/ and ui/: core/ today, and any package added beside it later.
NOT_UI = [
    p for p in _product_modules() if _name(p) != "app" and not _within(_name(p), ("ui", "pages"))
]


def _ids(paths: list[Path]) -> list[str]:
    return [_id(p) for p in paths]


# --- the tree ------------------------------------------------------------------------------------


def test_core_has_modules() -> None:
    """The pipeline is the folder list: one subpackage of core/ per role."""
    for sub in SUBPACKAGES:
        assert (CORE / sub / "__init__.py").is_file(), f"core/{sub}/ is not a package"
    assert len(STAGE_MODULES) > len(STAGES), "the stage subpackages hold no modules"
    assert UI_MODULES and PAGE_MODULES


def test_readme_code_layout_shows_the_tree() -> None:
    """README.md's "Code layout" has a line per folder, and every folder it names exists."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Code layout", 1)[1]
    block = section.split("```", 2)[1]
    listed = [line.split()[0] for line in block.splitlines()[1:] if line.strip()]
    for entry in listed:
        assert (REPO / entry).exists(), f"README's code layout names {entry}, which does not exist"
    packages = {f"core/{p.parent.relative_to(CORE)}/" for p in CORE.glob("*/__init__.py")}
    missing = sorted(packages - set(listed))
    assert not missing, f"README's code layout leaves out {', '.join(missing)}"


# --- the import reader itself ----------------------------------------------------------------


def test_the_streamlit_pattern_matches_what_it_should() -> None:
    def streamlit_in(source: str) -> bool:
        return any(_within(name, "streamlit") for name in imported_names(source))

    assert streamlit_in("import streamlit as st\n")
    assert streamlit_in("x = 1\ndef f():\n    from streamlit.testing import AppTest\n")
    assert not streamlit_in("# the UI uses streamlit\nimport streamlit_foo\n")


def test_the_import_reader_resolves_relative_and_lazy_imports() -> None:
    source = (
        "from . import vendi\n"
        "from ..workspace.store import Workspace\n"
        "import importlib\n"
        "def later():\n"
        "    return importlib.import_module('ui.state')\n"
        "if TYPE_CHECKING:\n"
        "    from core.cli import app\n"
    )
    names = imported_names(source, "core.measures.clusters")
    assert {"core.measures.vendi", "core.workspace.store", "ui.state", "core.cli"} <= names.keys()
    assert names["core.cli"] == 7
    assert "core.measures" in imported_names("from . import x\n", "core.measures", is_package=True)
    assert _within("core.workspace.store", "core.workspace")
    assert not _within("core.workspaces", "core.workspace")


# --- layers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORE_MODULES, ids=_ids(CORE_MODULES))
def test_core_never_imports_streamlit(path: Path) -> None:
    bad = _offending(path, "streamlit")
    assert not bad, f"{_id(path)} imports {bad}: only app.py, pages/ and ui/ may"


@pytest.mark.parametrize("path", NOT_UI, ids=_ids(NOT_UI))
def test_only_app_pages_and_ui_import_streamlit_or_ui(path: Path) -> None:
    bad = _offending(path, ("streamlit", "ui", "pages", "app"))
    assert not bad, f"{_id(path)} imports {bad}: the engine never reaches into the UI"


@pytest.mark.parametrize("path", STAGE_MODULES, ids=_ids(STAGE_MODULES))
def test_pipeline_stages_never_import_workspace_cli_or_ui(path: Path) -> None:
    bad = _offending(path, ABOVE_STAGES)
    assert not bad, (
        f"{_id(path)} imports {bad}: data/features/measures/select take arrays and "
        "configs; the workspace and the CLI call them, not the other way round"
    )


STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("path", PAGE_MODULES, ids=_ids(PAGE_MODULES))
def test_pages_import_only_ui(path: Path) -> None:
    bad = _report(
        {
            name: line
            for name, line in _imports(path).items()
            if name.split(".")[0] not in STDLIB and not _within(name, ("ui", "streamlit"))
        }
    )
    assert not bad, f"{_id(path)} imports {bad}: a page calls ui/, which calls core/"


# --- module shape --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", APP_MODULES, ids=_ids(APP_MODULES))
def test_core_module_opens_with_a_docstring(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and docstring.strip(), (
        f"{_id(path)} does not open with a docstring saying what it holds"
    )


SIZED = [*CORE_MODULES, *UI_MODULES]


@pytest.mark.parametrize("path", SIZED, ids=_ids(SIZED))
def test_modules_do_one_job(path: Path) -> None:
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_LINES, (
        f"{_id(path)} has {n_lines} lines (at most {MAX_LINES}): split it by what its parts do"
    )


# --- the manifest is the store's ------------------------------------------------------------------

# The only modules that read or write a workspace's manifest as JSON; everything else goes through the
# typed sections (``ws.clusters``, ``ws.set_section``…, ``core.workspace.manifest.TypedSections``).
MANIFEST_OWNERS = ("core/workspace/store.py", "core/workspace/manifest.py")


def raw_manifest_uses(source: str) -> list[str]:
    """Where ``source`` touches a workspace's manifest as a dict: any ``x.manifest`` (read, write,
    ``.get``, ``[...]``, ``.pop``) or a call ``x.update("section", {...})`` with a section name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "manifest":
            found.append(f"line {node.lineno}: .manifest")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "update"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.Name)
            and isinstance(node.args[1], ast.Dict)
        ):
            found.append(f"line {node.lineno}: .update(section, {{...}})")
    return sorted(found, key=lambda text: int(text.split()[1].rstrip(":")))


def test_raw_manifest_reader_finds_planted_uses() -> None:
    planted = (
        "def panel(ws):\n"
        "    g = ws.manifest.get('scores', {}).get('g_vendi')\n"
        "    ws.manifest['clusters'] = {}\n"
        "    ws.update('lexical', {'n': 1})\n"
        "    return ws.scores.g_vendi, ws.set_section(ws.clusters), result.manifest_path\n"
    )
    assert raw_manifest_uses(planted) == [
        "line 2: .manifest",
        "line 3: .manifest",
        "line 4: .update(section, {...})",
    ]


def test_only_the_store_reads_the_manifest() -> None:
    """Rule: the manifest is read and written in the store alone (example: ``ui/panels/selection.py``
    reads ``ws.clusters`` and ``ws.g_vendi``, as ``ui/panels/grow_map.py`` does)."""
    from core.workspace.store import Workspace

    bad = {
        _id(path): uses
        for path in APP_MODULES
        if _id(path) not in MANIFEST_OWNERS
        and (uses := raw_manifest_uses(path.read_text(encoding="utf-8")))
    }
    assert not bad, f"raw manifest reads outside the store (use the typed sections): {bad}"
    assert not hasattr(Workspace, "update"), "Workspace.update(str, dict) is gone: set_section"


# --- only the command line knows flags ------------------------------------------------------------

FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
# A command the user may type, quoted whole in a message (`prism resume WS`, `pip install …`).
QUOTED_COMMAND = re.compile(r"`(?:prism|pip|python|make) [^`]*`")
# Functions that build the argv of a `python -m core …` child process: flags there are arguments.
ARGV_BUILDERS = {
    ("core/workspace/jobs/extraction.py", "start_background"),
    ("core/workspace/synthesis/loop.py", "start"),
}


def flag_texts(source: str, *, argv_builders: frozenset[str] = frozenset()) -> list[str]:
    """Flags (``--name``) written in the string literals of ``source``: its messages. Docstrings,
    whole commands in backquotes and the functions named in ``argv_builders`` are left out."""
    tree = ast.parse(source)
    skipped: set[int] = set()  # ids of nodes not to read: docstrings, parts of an f-string
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skipped.add(id(first.value))
        if isinstance(node, ast.FunctionDef) and node.name in argv_builders:
            skipped.update(id(inner) for inner in ast.walk(node))
        if isinstance(node, ast.JoinedStr):
            skipped.update(id(part) for part in node.values)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                str(part.value) if isinstance(part, ast.Constant) else "{…}" for part in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        found += [
            f"line {node.lineno}: {flag}" for flag in FLAG.findall(QUOTED_COMMAND.sub("", text))
        ]
    return sorted(found, key=lambda text: int(text.split()[1].rstrip(":")))


def test_flag_reader_finds_planted_flags() -> None:
    planted = (
        "def export(out, force):\n"
        '    """Refuse to overwrite (``--force`` in the docstring is documentation)."""\n'
        '    raise PrismError(f"{out} exists; choose another --out, or pass --force.", param="out")\n'
        "def rebuild(ws):\n"
        '    return f"Rebuild it with `prism features DATA --workspace {ws} --force`."\n'
        "def start(ws):\n"
        '    return ["core", "resume", ws, "--quiet"]\n'
        'HINT = "pass --model default"\n'
    )
    assert flag_texts(planted, argv_builders=frozenset({"start"})) == [
        "line 3: --out",
        "line 3: --force",
        "line 8: --model",
    ]
    assert "line 7: --quiet" in flag_texts(planted)


def test_engine_messages_name_parameters_not_flags() -> None:
    """Rule: no ``--flag`` in a message of ``core/`` outside ``core/cli/``; a ``PrismError`` names
    its parameter (``param=``, and others in backquotes) and the CLI writes the flag (example:
    ``core/workspace/publish.py``'s "choose another `out`, or set `force`")."""
    bad = {}
    for path in CORE_MODULES:
        if _within(_name(path), "core.cli"):
            continue
        builders = frozenset(name for file, name in ARGV_BUILDERS if file == _id(path))
        if found := flag_texts(path.read_text(encoding="utf-8"), argv_builders=builders):
            bad[_id(path)] = found
    assert not bad, f"flags in engine messages (name the parameter, the CLI adds its flag): {bad}"


def test_the_cli_writes_the_flags_of_named_parameters() -> None:
    from core.cli import describe_error
    from core.errors import PrismError

    error = PrismError("x.jsonl already exists; choose another `out`, or set `force`.", param="out")
    argv = ["export", "ws", "--subset", "a", "--out", "x.jsonl"]
    assert (
        describe_error(error, argv)
        == "x.jsonl already exists; choose another --out, or set --force."
    )
    # A command without that option keeps the parameter's name.
    assert "`force`" in describe_error(error, ["score", "ws"])


# --- every config value through core/validate.py ----------------------------------------------------

ERRORS = {"PrismError", "DataError", "WorkspaceError", "ModelError"}
# Run settings that are no dataclass field (the job's shards), checked like one.
RUN_SETTINGS = {"shard_size", "shard_seconds"}


def config_fields(sources: list[str]) -> set[str]:
    """The field names of every dataclass that validates on construction (has ``__post_init__``)."""
    names = set(RUN_SETTINGS)
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.FunctionDef) and b.name == "__post_init__" for b in node.body
            ):
                names |= {
                    b.target.id
                    for b in node.body
                    if isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)
                }
    return names


def hand_checks(source: str, fields: set[str]) -> list[str]:
    """``if …: raise PrismError`` tests that check a config value by hand: compare it with a number
    (``x < 1``, ``not 0 < x <= 1``) or ask ``isinstance(x, int | float | bool)``."""

    def name_of(node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return node.attr if node.value.id == "self" else None
        return None

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.If) or not any(
            isinstance(x, ast.Raise)
            and isinstance(x.exc, ast.Call)
            and isinstance(x.exc.func, ast.Name)
            and x.exc.func.id in ERRORS
            for statement in node.body
            for x in ast.walk(statement)
        ):
            continue
        for x in ast.walk(node.test):
            if isinstance(x, ast.Compare):
                operands = [x.left, *x.comparators]
                if any(
                    isinstance(o, ast.Constant) and type(o.value) in (int, float) for o in operands
                ):
                    found += [
                        f"line {node.lineno}: {n}" for o in operands if (n := name_of(o)) in fields
                    ]
            elif (
                isinstance(x, ast.Call)
                and isinstance(x.func, ast.Name)
                and x.func.id == "isinstance"
            ):
                kinds = {n.id for n in ast.walk(x.args[1]) if isinstance(n, ast.Name)}
                if kinds & {"int", "float", "bool"} and (n := name_of(x.args[0])) in fields:
                    found.append(f"line {node.lineno}: {n}")
    return sorted(set(found), key=lambda text: int(text.split()[1].rstrip(":")))


def test_hand_check_reader_finds_planted_checks() -> None:
    planted = (
        "@dataclass(frozen=True)\n"
        "class Config:\n"
        "    seed: int = 0\n"
        "    duplicate_cosine: float = 0.9\n"
        "    def __post_init__(self):\n"
        "        if not isinstance(self.seed, int) or self.seed < 0:\n"
        "            raise PrismError('seed must be ≥ 0', param='seed')\n"
        "        check_number(self.duplicate_cosine, param='duplicate_cosine', above=0, maximum=1)\n"
        "def judge(duplicate_cosine, n):\n"
        "    if not 0 < duplicate_cosine <= 1:\n"
        "        raise PrismError('duplicate_cosine must be in (0, 1]', param='duplicate_cosine')\n"
        "    if n < 2:\n"
        "        raise PrismError('need two rows', param='features')\n"
    )
    fields = config_fields([planted])
    assert {"seed", "duplicate_cosine", "shard_size"} <= fields
    assert hand_checks(planted, fields) == ["line 6: seed", "line 10: duplicate_cosine"]


def test_config_values_are_checked_by_core_validate() -> None:
    """Rule: one validator per kind of value, in ``core/validate.py`` (example: ``FeatureConfig``
    checks its seed with ``check_seed`` and its sizes with ``check_int``)."""
    from core.errors import PrismError
    from core.features.extract import FeatureConfig

    sources = {_id(p): p.read_text(encoding="utf-8") for p in CORE_MODULES}
    fields = config_fields(list(sources.values()))
    bad = {
        path: found
        for path, source in sources.items()
        if path != "core/validate.py" and (found := hand_checks(source, fields))
    }
    assert not bad, f"config values checked by hand (use core/validate.py): {bad}"
    for seed in (True, 2**32, -1):
        with pytest.raises(PrismError, match="seed must be an integer from 0 to 2\\*\\*32"):
            FeatureConfig(model="tiny", seed=seed)
    assert type(FeatureConfig(model="tiny", seed=np.int64(7)).seed) is int  # JSON-ready


# --- tooling -------------------------------------------------------------------------------------


def _requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_pyproject_declares_what_requirements_install() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = _requirement_names((REPO / "requirements.txt").read_text().splitlines())
    dev = _requirement_names((REPO / "requirements-dev.txt").read_text().splitlines())
    assert _requirement_names(project["dependencies"]) == runtime
    assert _requirement_names(project["optional-dependencies"]["dev"]) == dev
    # One version, written in core/__init__.py and read from there.
    assert "version" not in project and "version" in project["dynamic"]


def test_make_help_lists_every_target() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = re.findall(r"^([a-zA-Z_-]+):(?!=)", makefile, flags=re.MULTILINE)
    described = re.findall(r"^([a-zA-Z_-]+):.*?## ", makefile, flags=re.MULTILINE)
    missing = sorted(set(targets) - set(described))
    assert targets and not missing, f"Makefile targets without a `## …` help line: {missing}"


# --- no cycles, no private names across files --------------------------------------------------


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def runtime_imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """The modules ``source`` imports when it runs, anywhere in it (a function body included);
    imports under ``if TYPE_CHECKING:`` are left out: they are annotations, never executed."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if _type_checking_only(node):
            node.body = [ast.Pass()]  # type: ignore[attr-defined]
    return set(_names_in(tree, module, is_package))


def import_cycles(sources: dict[str, tuple[str, bool]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (strongly
    connected components of more than one module); ``sources``: name → (source, is_package)."""
    graph = {
        name: sorted(runtime_imports(source, name, is_package) & sources.keys() - {name})
        for name, (source, is_package) in sources.items()
    }
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(name: str) -> None:  # Tarjan's algorithm
        order[name] = low[name] = len(order)
        stack.append(name)
        for other in graph[name]:
            if other not in order:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], order[other])
        if low[name] == order[name]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == name:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for name in sorted(graph):
        if name not in order:
            visit(name)
    return cycles


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    planted = {
        "core.a": ("from core.b import x\n", False),
        "core.b": ("def later():\n    from core.c import y\n", False),
        "core.c": ("import core.a\n", False),
        "core.d": ("from core.a import z\n", False),
    }
    assert import_cycles(planted) == [["core.a", "core.b", "core.c"]]
    # An annotation-only import back is not a cycle: it never runs.
    typed = {
        "core.a": ("from core.b import x\n", False),
        "core.b": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import core.a\n",
            False,
        ),
    }
    assert import_cycles(typed) == []


def test_core_has_no_import_cycle() -> None:
    sources = {
        _name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in CORE_MODULES
    }
    cycles = import_cycles(sources)
    assert not cycles, "modules of core/ that import each other: " + "; ".join(
        " ↔ ".join(group) for group in cycles
    )


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _project_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_crossings(source: str, module: str, is_package: bool = False) -> list[str]:
    """``from m import _x`` and ``m._x`` in ``source``, for ``m`` a module of this repository."""
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name → the repository module it names
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = (
                package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            )
            origin = ".".join([*base, node.module] if node.module else base)
            if not _project_module(origin):
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"line {node.lineno}: from {origin} import {alias.name}")
                elif _project_module(f"{origin}.{alias.name}"):
                    bound[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _project_module(alias.name):
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                target = ".".join([bound[value.id], *reversed(chain)])
                if _project_module(target):
                    found.append(f"line {node.lineno}: {target}.{node.attr}")
    return found


def test_the_private_name_check_finds_planted_crossings() -> None:
    planted = (
        "from core.measures.clusters import _sort_by_size, unit_rows\n"
        "from ui import cache\n"
        "import core.measures.kmeans as km\n"
        "def f(ws):\n"
        "    return cache._private(ws), km._SIM_BLOCK_BYTES, cache.samples(ws)._x\n"
    )
    found = private_crossings(planted, "ui.panels.example")
    assert sorted(f.split(": ", 1)[1] for f in found) == [
        "core.measures.kmeans._SIM_BLOCK_BYTES",
        "from core.measures.clusters import _sort_by_size",
        "ui.cache._private",
    ]
    # Its own private names, dunders and relative imports of public names are fine.
    assert not private_crossings(
        "from . import kmeans\nfrom core import __version__\n_x = 1\nprint(_x, self._y)\n",
        "core.measures.clusters",
    )
    assert private_crossings("from .kmeans import _INIT_ROUNDS\n", "core.measures.clusters")


@pytest.mark.parametrize("path", APP_MODULES, ids=_ids(APP_MODULES))
def test_no_private_name_crosses_a_file(path: Path) -> None:
    found = private_crossings(
        path.read_text(encoding="utf-8"), _name(path), is_package=path.name == "__init__.py"
    )
    assert not found, (
        f"{_id(path)} uses private names of other files: {'; '.join(found)}. Give the name a "
        "public spelling where it is defined (tests may use private names; product code may not)"
    )


def test_plotly_events_are_read_without_streamlit() -> None:
    path = REPO / "ui" / "events.py"
    assert not _offending(path, "streamlit"), "ui/events.py must stay importable without streamlit"


# --- imports inside functions ------------------------------------------------------------------

# A reason: the comment opens with its kind, a colon and some words.
IMPORT_REASON = re.compile(r"#\s*(heavy|optional|cycle):\s*\S")
IMPORTS = (ast.Import, ast.ImportFrom)


def _comments(source: str) -> dict[int, str]:
    """Line → the comment on it (real comments only, never a ``#`` inside a string)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {token.start[0]: token.string for token in tokens if token.type == tokenize.COMMENT}


def _function_import_runs(tree: ast.AST) -> list[list[ast.stmt]]:
    """The imports inside function bodies (nested blocks and methods too), in runs of imports on
    adjacent lines of one block."""
    runs: list[list[ast.stmt]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for _, value in ast.iter_fields(node):
            if not (in_function and isinstance(value, list)):
                continue
            run: list[ast.stmt] = []
            for statement in value:
                if not isinstance(statement, IMPORTS):
                    run = []
                    continue
                if run and statement.lineno != (run[-1].end_lineno or 0) + 1:
                    run = []
                if not run:
                    runs.append(run)
                run.append(statement)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return runs


def unexplained_imports(source: str) -> list[str]:
    """The imports inside functions of ``source`` that give no reason: a reason is a
    ``# heavy: …``, ``# optional: …`` or ``# cycle: …`` comment on the import's own lines, or on
    the line above it (for a run of imports on adjacent lines, the line above the run)."""
    comments = _comments(source)
    lines = source.splitlines()

    def has_reason(first: int, last: int) -> bool:
        return any(IMPORT_REASON.match(comments.get(n, "")) for n in range(first, last + 1))

    found = []
    for run in _function_import_runs(ast.parse(source)):
        run_has_reason = has_reason(run[0].lineno - 1, run[0].lineno - 1)
        for node in run:
            if not (run_has_reason or has_reason(node.lineno, node.end_lineno or node.lineno)):
                found.append(f"line {node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_the_import_reason_check_finds_planted_unexplained_imports() -> None:
    planted = (
        "import os\n"  # 1: module level needs no reason
        "def extract():\n"
        "    import torch  # heavy: torch, only when extracting\n"
        "    import json\n"  # 4: the comment above belongs to torch, not to the run
        "    # optional: faiss may be missing\n"
        "    import faiss\n"
        "    from core import (  # cycle: core imports this module\n"
        "        x,\n"
        "    )\n"
        "def layout():\n"
        "    # heavy: umap pulls in numba\n"
        "    import umap\n"
        "    import numba\n"
        "\n"
        "    import scipy  # imported here\n"  # 15: a comment that gives no reason
        "    s = '# heavy: a string, not a comment'\n"
        "    import pandas\n"  # 17
        "    class Local:\n"
        "        def method(self):\n"
        "            try:  # optional: threadpoolctl ships with scikit-learn\n"
        "                from threadpoolctl import threadpool_limits\n"
        "            except ImportError:\n"
        "                from core import y\n"  # 23: each block is its own run
        "class Top:\n"
        "    import sys\n"  # 25: a class body runs at import time, like the module
    )
    assert [f.split(":")[0] for f in unexplained_imports(planted)] == [
        "line 4",
        "line 15",
        "line 17",
        "line 23",
    ]
    assert not unexplained_imports("def f():\n    import torch  # heavy: torch\n")
    assert unexplained_imports("def f():\n    import torch  # heavy:\n")  # a kind, no words


@pytest.mark.parametrize("path", APP_MODULES, ids=_ids(APP_MODULES))
def test_imports_inside_functions_say_why(path: Path) -> None:
    found = unexplained_imports(path.read_text(encoding="utf-8"))
    assert not found, (
        f"{_id(path)} imports inside functions without a reason: {'; '.join(found)}. Move the "
        "import to the top of the module, or say why it waits on its line or the line above: "
        "`# heavy: …` (slow, and kept off a path that does not need it), `# optional: …` (a "
        "package that may be missing) or `# cycle: …` (that module imports this one)"
    )
