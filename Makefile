# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv and install
# the pinned versions from constraints.txt; the install re-runs only when pyproject.toml or
# constraints.txt change (the stamp file below).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.artctl-installed
PYTEST_ARGS ?=

.PHONY: demo test lint e2e install proto clean help

help:
	@echo "make demo   - train a small model, export it, serve it and mint a 16-token drop"
	@echo "make test   - run the test suite (unit + end-to-end)"
	@echo "make lint   - ruff + mypy"
	@echo "make proto  - regenerate the committed gRPC stubs from proto/"

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "artctl needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy artctl serving

demo: $(STAMP)
	$(BIN)/artctl demo --out demo

proto: $(STAMP)
	$(BIN)/python -m artctl.protogen

clean:
	rm -rf $(VENV) demo runs .pytest_cache .mypy_cache .ruff_cache
