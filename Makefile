# The two commands of the README: `make run` and `make test`.
# Both create/refresh the .venv at the repo root and node_modules/, then do their job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
ARGS ?=

.PHONY: install run test lint bench lock clean

# Exact versions, with hashes, from the lock files; then the project itself, without
# resolving anything again. `make lock` writes requirements-dev.lock (runtime and dev) and
# requirements.lock (runtime, what the Dockerfile installs) after a change to
# pyproject.toml's dependencies (npm writes package-lock.json on `npm install <pkg>`).
$(STAMP): pyproject.toml requirements-dev.lock package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@$(RIC_TOOLS_PRESENT) || { \
	  echo "installing Debian's build tools for aws-lambda-ric (the Node.js runtime client)"; \
	  (apt-get update -qq && apt-get install -y -qq $(RIC_TOOLS)) >/dev/null 2>&1 || \
	  sudo -n sh -c 'apt-get update -qq && apt-get install -y -qq $(RIC_TOOLS)' >/dev/null 2>&1 || \
	  echo "could not install $(RIC_TOOLS): Node.js functions will not run (README)"; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

# npm ci builds aws-lambda-ric's native addon from the curl and aws-lambda-cpp sources it
# ships (no download); it needs these tools, installed from Debian when missing. Without
# them npm leaves the optional package out and Node.js functions fail saying so.
RIC_TOOLS := cmake make g++ autoconf automake libtool
RIC_TOOLS_PRESENT := command -v cmake >/dev/null && command -v g++ >/dev/null && \
  command -v autoreconf >/dev/null && command -v automake >/dev/null && \
  command -v libtoolize >/dev/null

install: $(STAMP)

run: install
	$(PY) -m emulator up $(ARGS)

# Browser tests need Debian's Chromium; install it when missing (we run as root on CI).
test: install
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  sudo sh -c 'apt-get update -qq && apt-get install -y -qq chromium' ; }
	$(PY) -m ruff check emulator tests benchmarks lambdas
	$(PY) -m mypy
	$(PY) -m pytest $(ARGS)

lint: install
	$(PY) -m ruff check emulator tests benchmarks lambdas
	$(PY) -m ruff format --check emulator tests benchmarks lambdas
	$(PY) -m mypy

bench: install
	$(PY) -m benchmarks $(ARGS)

# pyproject.toml's dependencies resolved for every platform and Python 3.11+ (markers
# kept), each pinned with the hashes of all its files on PyPI; the versions already locked
# are kept unless pyproject.toml needs others, and the runtime lock takes the dev lock's.
UV_COMPILE := $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
  --generate-hashes --custom-compile-command "make lock"
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(UV_COMPILE) --extra dev -o requirements-dev.lock
	$(UV_COMPILE) -c requirements-dev.lock -o requirements.lock

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
