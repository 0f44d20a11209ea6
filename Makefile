# Two commands for a new user: `make dev` runs the application locally, `make test` runs every test.
# Both create or reuse the virtualenv in .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test lint format typecheck layer clean
STACK ?= prod

$(STAMP): requirements.txt requirements-dev.txt handler/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

dev: $(STAMP)
	$(PY) -m local

test: lint typecheck $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/dsql-lint migrations/*.sql

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: $(STAMP)
	$(PY) -m mypy .

# The stack's Lambda layer zip (under build/, not in Pulumi's state): run before a preview on a fresh checkout.
layer: $(STAMP)
	$(PY) scripts/build_stack_layer.py --stack $(STACK)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache
