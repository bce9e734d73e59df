# Two commands on a fresh clone: `make up` runs the gateway, `make test` runs the tests.
# Everything they need is installed here, into the project (.tools, .venv, node_modules).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin

# Python sources that exist in this checkout (scripts/ and bench/ may be absent early on).
PY_PATHS := $(wildcard gateway client tests bench scripts examples)

.PHONY: up test test-fast lint format typecheck bench setup clean web

setup: $(VENV)/.synced node_modules/.installed web/dist/.built

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet --python $(PYTHON)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# the web app served at /app: esbuild bundles web/src (preact, htm, viem, lightweight-charts)
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/build.mjs
web/dist/.built: node_modules/.installed $(WEB_SOURCES)
	node web/build.mjs
	touch $@

web: web/dist/.built

up: setup
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/isthmus up

# both cores: whole test files per worker (their module- and session-scoped chains and
# clusters stay together), handed out in collection order as workers free, the longest files
# first (tests/conftest.py); the slowest tests' times printed at the end
test: setup
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/pytest -n auto --dist loadfile \
		--no-loadscope-reorder --durations=25

test-fast: setup
	$(BIN)/pytest -m "not slow and not postgres"

lint: setup
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS)

format: setup
	$(BIN)/ruff format $(PY_PATHS)
	$(BIN)/ruff check --fix $(PY_PATHS)

typecheck: setup
	$(BIN)/mypy gateway client/isthmus_client

bench: setup
	$(BIN)/python bench/api_orders.py
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/python bench/signed_orders.py
	$(BIN)/python bench/book.py
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/python bench/gas.py
	$(BIN)/python bench/risk.py
	$(BIN)/python bench/sor.py
	$(BIN)/python bench/pipeline.py
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/python bench/failover.py
	$(BIN)/python bench/fix.py

clean:
	rm -rf .tools $(VENV) node_modules web/dist .build .isthmus .pytest_cache .mypy_cache
