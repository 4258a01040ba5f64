# tbmon: `make demo` runs the local stack with the demo bot; `make test` runs every check CI runs.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
DURATION ?= 0
SCENARIO ?= normal
# The folders pyproject.toml maps to tbmon.<folder> (package-dir); tests/test_packaging.py checks.
MAPPED := stack instrumentation processors health alert_bridge

.PHONY: install demo test lint typecheck pytest bench down

install: ## Provision everything (idempotent; seconds when already done).
	@bash stack/provision/install.sh

demo: install ## Start the stack, run the demo bot (DURATION=seconds, 0 = until Ctrl-C), say where to look.
	@$(BIN)/tbmon stack up
	@$(BIN)/tbmon demo --duration $(DURATION) --scenario $(SCENARIO)

down: ## Stop the local stack.
	@$(BIN)/tbmon stack down

test: install lint typecheck pytest ## Everything CI runs.

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow setuptools' editable finder, so it checks a tree of links shaped like the
# installed package (build/typecheck/tbmon/...).
typecheck:
	@rm -rf build/typecheck && mkdir -p build/typecheck/tbmon
	@ln -s $(CURDIR)/tbmon/* build/typecheck/tbmon/
	@for folder in $(MAPPED); do ln -s $(CURDIR)/$$folder build/typecheck/tbmon/$$folder; done
	MYPYPATH=build/typecheck $(BIN)/mypy build/typecheck/tbmon tests bench

pytest:
	$(BIN)/pytest

bench: install ## The benchmarks under bench/ (figures go to docs/performance.md).
	$(BIN)/python -m bench
