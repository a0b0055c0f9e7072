# The two commands a fresh user needs: `make run` and `make test`. Both create the virtualenv first:
# `make run` with what serving needs, `make test`, `make lint` and `make bench` add the development tools.
# Everything installed is pinned in uv.lock; uv itself is installed from PyPI into the venv .tools/ by pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
UV_PIN = $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["tool"]["uv"]["required-version"])')
# One test process per CPU (pytest-xdist); each test file stays in one process, so its module fixtures
# (a moto server stack, a live server) start once. Files are handed out in collection order, which
# tests/conftest.py starts with the longest (tests/faults, tests/api), so the run does not end on a long
# one; xdist's own reordering (most tests first) would put those files last. Two per CPU measured slower
# (16 min 40 s against 10 min 38 s on 2 cores): the live servers and moto the tests start need the CPUs too.
PARALLEL := -n auto --dist loadfile --no-loadscope-reorder
# uv uses the interpreter given, never one it would download; --frozen installs uv.lock as it is.
SYNC := $(UV) sync --frozen --python $(PYTHON) --no-python-downloads --quiet

.PHONY: run test test-fast lint fmt bench lock clean

# A venv of its own, so only `python3 -m venv` is needed (Debian's python3 has no pip outside one).
$(UV):
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv$(UV_PIN)"

$(RUNTIME): $(UV) pyproject.toml uv.lock
	$(SYNC) --no-dev
	touch $(RUNTIME)

$(DEV): $(UV) pyproject.toml uv.lock
	$(SYNC) --all-extras
	touch $(RUNTIME) $(DEV)

run: $(RUNTIME)
	$(BIN)/docpipe serve

# tus-js-client for tests/http/test_tus_js.py, as tests/tus-js/package-lock.json pins it (npm ci installs
# exactly the lockfile, from npm's cache when it has it; npm writes node_modules/.package-lock.json).
TUS_JS := tests/tus-js
TUS_JS_INSTALLED := $(TUS_JS)/node_modules/.package-lock.json

$(TUS_JS_INSTALLED): $(TUS_JS)/package.json $(TUS_JS)/package-lock.json
	cd $(TUS_JS) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error

test: $(DEV) $(TUS_JS_INSTALLED)
	$(BIN)/pytest $(PARALLEL)

test-fast: $(DEV) $(TUS_JS_INSTALLED)
	$(BIN)/pytest $(PARALLEL) -m "not slow"

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(DEV)
	$(BIN)/python -m bench

# After editing the dependency lists in pyproject.toml: resolve them again into uv.lock.
lock: $(UV)
	$(UV) lock --python $(PYTHON) --no-python-downloads

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache $(TUS_JS)/node_modules
