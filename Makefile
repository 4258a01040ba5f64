# tbmon: `make demo` runs the local stack with the demo bot; `make test` runs every check CI runs.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
DURATION ?= 0
SCENARIO ?= normal
# Every distribution's source root (tests/test_packaging.py checks each is one).
SOURCES := core/src instrumentation/src processors/src health/src alert_bridge/src otel-collector/src stack/src

.PHONY: install demo test lint typecheck pytest bench down

install: ## Provision everything (idempotent; seconds when already done).
	@bash stack/src/tbmon/stack/provision/install.sh --checkout .

demo: install ## Start the stack, run the demo bot (DURATION=seconds, 0 = until Ctrl-C), say where to look.
	@$(BIN)/tbmon stack up
	@$(BIN)/tbmon demo --duration $(DURATION) --scenario $(SCENARIO)

down: ## Stop the local stack.
	@$(BIN)/tbmon stack down

test: install lint typecheck pytest ## Everything CI runs.

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The source roots are mypy's path (pyproject.toml: mypy_path), tbmon a namespace package.
typecheck:
	$(BIN)/mypy $(SOURCES) tests bench

pytest:
	$(BIN)/pytest

bench: install ## The benchmarks under bench/ (figures go to docs/performance.md).
	$(BIN)/python -m bench
