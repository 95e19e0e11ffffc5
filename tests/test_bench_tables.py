"""The READMEs' benchmark tables are what bench/tables.py renders from bench/results/*.json."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_tables", REPO / "bench" / "tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _load_tables()


@pytest.mark.parametrize("path", tables.DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_readme_tables_match_the_committed_results(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    rendered = tables.render(text, tables.load_results())
    assert rendered == text, (
        f"{path.relative_to(REPO)}: the benchmark tables differ from bench/results/*.json; "
        "run `make bench-tables`"
    )


def test_every_table_is_shown_once() -> None:
    shown = [
        name
        for path in tables.DOCUMENTS
        for name in re.findall(r"<!-- bench:([a-z0-9-]+) -->", path.read_text(encoding="utf-8"))
    ]
    assert sorted(shown) == sorted(tables.TABLES)


def test_render_replaces_only_the_marked_table() -> None:
    results = tables.load_results()
    text = "before\n<!-- bench:vendi -->\nstale | table\n<!-- /bench:vendi -->\nafter\n"
    rendered = tables.render(text, results)
    assert rendered.startswith("before\n<!-- bench:vendi -->\n")
    assert rendered.endswith("<!-- /bench:vendi -->\nafter\n")
    assert "stale" not in rendered and "| streamed G-Vendi from `.npy` | 1,000,000 |" in rendered
    assert tables.render(rendered, results) == rendered


def test_an_unknown_table_is_refused() -> None:
    with pytest.raises(KeyError, match="nosuch"):
        tables.render("<!-- bench:nosuch -->\n<!-- /bench:nosuch -->", {})


def test_targets_are_judged_from_the_numbers() -> None:
    results = tables.load_results()

    def with_speedup(speedup: float) -> str:
        return tables.features({"features": {**results["features"], "speedup_vs_naive": speedup}})

    assert "≥ 5×: missed" in with_speedup(4.9)
    assert "≥ 5×: met" in with_speedup(5.0)
