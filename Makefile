# The README's commands. Tools (uv, helm, helm3, kubectl) live in ~/.cache/helmdeck/tools/bin,
# first on PATH for every target (scripts/dev/venv installs uv there when PATH has none).
SHELL := /bin/bash
HELMDECK_CACHE ?= $(HOME)/.cache/helmdeck
export HELMDECK_CACHE
export PATH := $(HELMDECK_CACHE)/tools/bin:$(CURDIR)/.venv/bin:$(PATH)
UV ?= uv

.PHONY: run test lint sandbox sandbox-down bench venv

venv:
	@scripts/dev/venv

run: venv
	@scripts/dev/run

test: venv
	@UV=$(UV) scripts/dev/test $(PYTEST_ARGS)

lint: venv
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync mypy

sandbox:
	@scripts/sandbox/up

sandbox-down:
	@scripts/sandbox/down

bench: venv
	$(UV) run --no-sync python -m benchmarks $(BENCH_ARGS)
