"""STYLE.md, checked: core/ never imports streamlit, and every core module opens with a docstring."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core"
MODULES = sorted(CORE.rglob("*.py"))
STREAMLIT_IMPORT = re.compile(r"^\s*(import\s+streamlit\b|from\s+streamlit\b)", re.MULTILINE)


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CORE)) for p in paths]


def test_core_has_modules() -> None:
    names = {p.name for p in MODULES}
    assert {"cli.py", "jobs.py", "workspace.py", "data.py", "gradients.py"} <= names


def test_the_streamlit_pattern_matches_what_it_should() -> None:
    assert STREAMLIT_IMPORT.search("import streamlit as st\n")
    assert STREAMLIT_IMPORT.search("x = 1\n    from streamlit.testing import AppTest\n")
    assert not STREAMLIT_IMPORT.search("# the UI uses streamlit\nimport streamlit_foo\n")


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_core_never_imports_streamlit(path: Path) -> None:
    match = STREAMLIT_IMPORT.search(path.read_text(encoding="utf-8"))
    assert match is None, f"{path.relative_to(CORE)} imports streamlit: {match.group(0).strip()!r}"


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_core_module_opens_with_a_docstring(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and docstring.strip(), (
        f"{path.relative_to(CORE)} does not open with a docstring saying what it holds"
    )
