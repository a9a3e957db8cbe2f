# The README's two quick-start commands: `make demo` and `make test`; `make test-fast` for the edit loop.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/sensorium demo

# The whole suite; the 25 slowest tests are listed at the end (CI runs exactly this).
test: $(VENV)/.installed-test
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --durations=25

# Unit tests and SQLite only: no PostgreSQL/Redis (`integration`) and no `slow` tests.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow and not integration" --durations=10

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy core index generators agent api
