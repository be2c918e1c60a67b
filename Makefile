# dialguard — every target works from a fresh clone: it installs what is missing first.
SHELL := /bin/bash
PY ?= python3
UV_HOME := .local/uv
UV := $(UV_HOME)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
ACCOUNT ?= acme
ROLES ?= OUTBOUND_MANAGER
PYTEST_ARGS ?=

export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: deps run test lint typecheck unit chaos soak bench token migrate up down schemas demo clean

$(UV):
	@mkdir -p .local
	$(PY) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install -q --disable-pip-version-check uv

$(BIN)/python: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-packages
	@touch $(BIN)/python

deps: $(BIN)/python ## install the project and dev tools into .venv

run: deps ## local stack without Docker + the four services; Ctrl-C stops everything
	$(BIN)/python tools/run.py

demo: deps ## drives flows (1) and (3) against a running make run stack
	$(BIN)/python tools/demo.py

lint: deps ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/*/src services/*/src

test: lint ## every test (unit + integration + e2e) on a real broker, Postgres and Redis
	$(BIN)/pytest -q $(PYTEST_ARGS)

soak: deps ## all services under a steady mixed load; memory and lag to bench/results/soak.png (SOAK_MINUTES=30)
	$(BIN)/python bench/soak.py

chaos: deps ## the fault suite (long form); make test runs its short form
	CHAOS_LONG=1 $(BIN)/pytest -q tests/chaos $(PYTEST_ARGS)

bench: deps ## benchmarks: prints a table, writes bench/results/latest.json
	$(BIN)/python bench/run.py

token: deps ## make token ACCOUNT=acme ROLES=OUTBOUND_MANAGER[,DIALER]
	@$(BIN)/python tools/mint_token.py --account "$(ACCOUNT)" --roles "$(ROLES)"

migrate: deps ## apply every service's migrations (against the running make-run stack or DATABASE_URL)
	$(BIN)/python tools/migrate.py

schemas: deps ## JSON Schema of every event into docs/schemas
	$(BIN)/python -m dialguard.events.schemas docs/schemas

up: ## the same system on Docker: Kafka (KRaft), PostgreSQL 16, Redis Stack, four service images
	docker compose up -d --build --wait

down:
	docker compose down -v

clean:
	rm -rf .local/test-* .local/test-logs
