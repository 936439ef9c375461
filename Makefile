# Two commands do all the set-up on a fresh Linux machine with python3, git and make:
#   make demo   creates .venv, installs, and runs the whole path once on a throwaway vault,
#               against a local Gmail stand-in (tests/fakes/gmail_demo.py starts it)
#   make test   installs dev dependencies (and, as root on Debian, systemd's unit checker)
#               and runs the whole suite (lint first)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: demo test bench lint clean system-tools

demo: $(STAMP)
	$(BIN)/python -m tests.fakes.gmail_demo -- $(BIN)/ai-employee demo --gmail {gmail}

test: $(STAMP) system-tools
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

# The deploy tests check the systemd units with systemd-analyze.
system-tools:
	@command -v systemd-analyze >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing systemd (for systemd-analyze)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; \
	  else \
	    echo "systemd-analyze is missing: install systemd (Debian: apt-get install systemd)"; \
	  fi; }

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .bench_tmp *.egg-info
