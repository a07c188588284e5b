# Storefront API — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export FLASK_APP := wsgi

.PHONY: run test test-services lint typecheck pytest worker bench clean help

help:
	@echo "make run            set up and serve the API on http://127.0.0.1:$(PORT) (SQLite, jobs in-process)"
	@echo "make test           set up, lint, type-check and run the tests (SQLite, fakeredis)"
	@echo "make test-services  the tests against PostgreSQL and Redis with a real RQ worker"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

# Local secrets, generated once; never committed (.gitignore).
.env:
	@$(PYTHON) -c "import secrets; print(f'SECRET_KEY={secrets.token_urlsafe(48)}'); print(f'JWT_SECRET_KEY={secrets.token_urlsafe(48)}')" > .env
	@echo "wrote .env with fresh local secrets"

run: $(VENV)/.runtime-installed .env
	$(BIN)/flask db upgrade
	@echo "Storefront API on http://127.0.0.1:$(PORT) — docs: http://127.0.0.1:$(PORT)/api/v1/docs"
	@echo "Demo data: .venv/bin/flask seed (in another terminal; see the README's quick start)"
	PORT=$(PORT) $(BIN)/flask run --host 127.0.0.1 --port $(PORT)

worker: $(VENV)/.runtime-installed
	$(BIN)/python worker.py

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

pytest: $(VENV)/.dev-installed
	APP_ENV=testing $(BIN)/pytest

test: lint typecheck pytest

test-services: $(VENV)/.dev-installed
	APP_ENV=testing TEST_SERVICES=1 TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest

bench: $(VENV)/.dev-installed
	bench/run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache instance/test.db*
