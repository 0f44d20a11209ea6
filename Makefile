# Two commands for a new user: `make dev` runs the application locally, `make test` runs every test.
# Both install from the locks (exact versions with hashes) into the virtualenv .venv with uv: `make dev`
# only the local application's set, `make test` the developers' set (a superset). `make lock` remakes
# every lock from its `.in` file.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# uv from PATH, else run from this Python; a machine with neither gets it with pip on first use.
UV ?= $(if $(shell command -v uv 2>/dev/null),uv,$(PYTHON) -m uv)
UV_INSTALL = $(UV) pip install --quiet --python $(PY) --require-hashes
LOCAL_STAMP := $(VENV)/.local-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: dev test lint format typecheck install-dev lock clean bench-coldstart bench-power web screenshots

# --seed puts pip in the virtualenv: Pulumi's `toolchain: pip` installs requirements.txt with it.
$(PY):
	@command -v uv >/dev/null || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
	  || { echo "uv is needed: python3 -m pip install --user uv (or pipx install uv)" >&2; exit 1; }
	$(UV) venv --quiet --seed --python $(PYTHON) $(VENV)

$(LOCAL_STAMP): requirements-local.txt | $(PY)
	$(UV_INSTALL) -r requirements-local.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt | $(PY)
	$(UV_INSTALL) -r requirements-dev.txt
	touch $@

# The offline Amazon States Language validator (tests/test_state_machines.py), from its npm lock.
ASL_STAMP := tests/asl/node_modules/.package-lock.json
$(ASL_STAMP): tests/asl/package-lock.json
	npm ci --prefix tests/asl --no-audit --no-fund --silent

# Swagger UI for the web client's API reference page, from web-vendor/'s npm lock; its install scripts
# (telemetry) are not run. `make web` completes web/ with it and the API document: web/ is then the
# whole site, served by `make dev` and uploaded by a deployment (docs/web-client.md).
WEB_STAMP := web-vendor/node_modules/.package-lock.json
$(WEB_STAMP): web-vendor/package-lock.json
	npm ci --prefix web-vendor --ignore-scripts --no-audit --no-fund --silent

web: $(WEB_STAMP)
	$(PYTHON) -m scripts.build_web

install-dev: $(DEV_STAMP) $(ASL_STAMP) $(WEB_STAMP)

# Without npm the client still runs; its API reference page then says to run `make web`.
dev: $(LOCAL_STAMP) $(if $(shell command -v npm 2>/dev/null),$(WEB_STAMP))
	$(PY) -m local $(if $(PORTS),--ports '$(PORTS)')

test: lint typecheck $(DEV_STAMP) $(ASL_STAMP) $(WEB_STAMP)
	$(PY) -m pytest

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/dsql-lint migrations/*.sql

format: $(DEV_STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: $(DEV_STAMP)
	$(PY) -m mypy .

# The developers' set is resolved first, from every `.in` file and the tools together; each other lock is
# constrained by it, so a package has one version in every set. Universal locks (environment markers,
# hashes of every wheel of each pin): one file serves every platform; uv evaluates the markers at install
# time, for Lambda's platform in scripts/build_artifacts.py. `make lock LOCK_ARGS=--upgrade` moves to
# the newest versions the ranges allow.
UV_COMPILE = $(UV) pip compile --quiet --universal --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)
lock:
	$(UV_COMPILE) --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(UV_COMPILE) --python-version 3.11 -c requirements-dev.txt requirements.in -o requirements.txt
	$(UV_COMPILE) --python-version 3.11 -c requirements-dev.txt requirements-local.in -o requirements-local.txt
	$(UV_COMPILE) --python-version 3.12 --only-binary :all: -c requirements-dev.txt handler/requirements.in \
	  -o handler/requirements.txt
	$(UV_COMPILE) --python-version 3.12 --only-binary :all: -c requirements-dev.txt probe/requirements.in \
	  -o probe/requirements.txt

# Cold start as Lambda runs it (docs/handler.md): builds the artifacts for this machine, needs the
# runtime's Python (3.12/3.13) and PostgreSQL's server binaries; prints figures, takes a few minutes.
bench-coldstart: $(DEV_STAMP)
	$(PY) benchmarks/coldstart_bench.py $(BENCH_ARGS)

# The power curve (docs/capacity.md): the same artifacts under each memory size's CPU share (a cgroup CPU
# quota: run as root), against a local PostgreSQL; writes build/power/power-curve.{md,png}.
bench-power: $(DEV_STAMP)
	$(PY) benchmarks/power_bench.py $(BENCH_ARGS)
# The README's screenshots of the web client, taken by its browser tests (Debian's chromium).
screenshots: $(DEV_STAMP) $(WEB_STAMP)
	WEB_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/test_web_browser.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache tests/asl/node_modules web-vendor/node_modules web/vendor web/openapi.yaml
