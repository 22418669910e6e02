# Two commands on a fresh machine with only Python 3.11+ and make: `make run`, `make test`.
# The virtualenv is created on first use and reinstalled whenever pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint format docs up down bench clean

help:
	@echo "make run     start ConexAPI on this machine (SQLite, no Redis needed)"
	@echo "make test    run the test suite"
	@echo "make test-fast  the pure unit tests only (no services, servers or processes; seconds)"
	@echo "make lint    ruff (lint + format check), mypy and the dead-code check (vulture)"
	@echo "make format  apply ruff's fixes and formatting"
	@echo "make up      start the production shape with docker compose"
	@echo "make bench   run the benchmarks"
	@echo "make docs    regenerate .env.example and the README configuration table"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# `conexapi demo` (API + worker + beat + sandboxes in one process) when it is available.
run: $(STAMP)
	@if $(BIN)/conexapi demo --help >/dev/null 2>&1; then \
		exec $(BIN)/conexapi demo; \
	else \
		$(BIN)/conexapi migrate && exec $(BIN)/conexapi api; \
	fi

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# The inner loop: tests tests/conftest.py marks ``unit`` (no MariaDB, Redis, SQLite file,
# server or process); `make test` before pushing.
test-fast: $(STAMP)
	$(BIN)/pytest -m unit -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/vulture

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(STAMP)
	$(BIN)/python -m conexapi.kit.settings_doc

up:
	docker compose up --build --detach

down:
	docker compose down

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
