# The two commands of the README: `make run` and `make test`.
# Both create/refresh the .venv at the repo root and node_modules/, then do their job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
ARGS ?=

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml package.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm install --no-audit --no-fund --loglevel=error
	touch $(STAMP)

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

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
