# Two entry points, each working from a fresh clone:
#   make run   - set up the environment and run the main job (causalab dilemma, quick profile)
#   make test  - set up the environment and run the test suite
#   make lint  - the linter CI runs (ruff, configured in pyproject.toml)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.causalab-installed

.PHONY: setup run test lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/causalab dilemma

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
