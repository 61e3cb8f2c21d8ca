# Two commands from a fresh clone: `make up` (install, run every service) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install up test stubs lint bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch first, so nothing below pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@

install: $(BIN)/.installed

up: install
	$(BIN)/iforge up

test: install
	$(BIN)/pytest

stubs: install
	$(BIN)/python tools/gen_protos.py

lint: install
	$(BIN)/python tools/proto_lint.py
	$(BIN)/ruff check clients services tools tests
