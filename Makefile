# Two commands for a newcomer: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: setup browser demo test lint typecheck unit bench fixtures clean

$(PY_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(PY_STAMP) $(NPM_STAMP)

# Debian's chromium and its chromedriver, for the dashboard's browser tests (root installs them).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "the dashboard's browser tests need Debian's chromium and chromium-driver:" \
			"run 'sudo apt-get install chromium chromium-driver' (or make test as root)" >&2; \
		exit 1; \
	fi

demo: setup
	@chmod 600 examples/keys/*.json  # git does not keep file modes; key files must be private
	$(BIN)/rebalancer demo -c examples/local.toml

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# NOTE: two workers, whole files each (module fixtures stay together; every worker starts its
# own local worlds on free ports): the suite in ~6.5 min on 2 cores instead of ~11
test: setup browser lint typecheck
	$(BIN)/pytest -n 2 --dist loadfile

bench: setup
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Rebuild the committed local-world states from npm bytecode (deterministic).
fixtures: setup
	$(BIN)/python -m rebalancer.localnet.build
	$(BIN)/python -m rebalancer.localnet.solana_fixtures
	$(BIN)/python -m rebalancer.localnet.pyth_fixtures

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
