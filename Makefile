# Two commands do all the set-up on a fresh Linux machine with python3, git and make:
#   make demo   creates .venv, installs, and runs the mail path on a throwaway vault, live
#               against a local Gmail stand-in (tests/fakes/gmail_demo.py starts it)
#   make test   installs dev dependencies and runs the whole suite (lint first)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: demo test bench lint clean

demo: $(STAMP)
	$(BIN)/python -m tests.fakes.gmail_demo -- $(BIN)/ai-employee demo --gmail {gmail}

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): install Python 3.11+ with venv (Debian: apt-get install python3-venv)"; exit 1; }

# Reinstall only when the declared dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[dev]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .bench_tmp *.egg-info
