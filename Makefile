# Two commands for a new user: `make report` (the Plan B capacity report, no services needed)
# and `make test` (the test suite against real PostgreSQL, Redis and Dovecot).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install report compiled test lint typecheck services dovecot browser notebooks clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,loadtest]'
	touch $@

install: $(BIN)/.installed

# JupyterLab (the `notebooks` extra) on top of the development install.
$(BIN)/.notebooks: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[dev,loadtest,notebooks]'
	touch $@

# Opens notebooks/ in JupyterLab; the kernel is this venv's Python.
notebooks: $(BIN)/.notebooks
	$(BIN)/jupyter lab --notebook-dir=notebooks

report: install
	$(BIN)/mailsync report

# Optional: the event model compiled with mypyc into build/compiled (about twice as fast; needs
# a C compiler and Python's headers). Used by `PYTHONPATH=build/compiled mailsync ...` and
# `benchmarks/sim_speed.py --compiled`; the same seeded results as the plain sources.
compiled: install
	$(BIN)/python -m simulator.compiled

services:
	bash scripts/ensure-services.sh

dovecot:
	bash loadtest/dovecot/install.sh

browser:
	bash scripts/install-browser.sh

test: install services dovecot browser
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check mailsync daemon simulator loadtest tests benchmarks

typecheck: install
	$(BIN)/mypy mailsync daemon simulator

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build/compiled
