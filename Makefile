# photo-mosaic: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The virtual environment is rebuilt when the project's dependencies change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

PEERS := .venv-peers

.PHONY: setup system-deps demo test lint bench bench-weights bench-peers clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# Debian packages: headless Chromium and its driver, for the Instagram scraper and its tests.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing chromium and chromium-driver (Debian packages)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null; \
	fi

demo: setup
	$(BIN)/mosaic demo

lint: setup
	$(BIN)/ruff check mosaic tasks flows tests benchmarks

test: setup system-deps lint
	$(BIN)/python -m pytest

# Benchmarks print tables; they need the shared photo set in ../shared/data/.
bench: setup
	$(BIN)/python -m benchmarks

bench-weights: setup
	$(BIN)/python -m benchmarks.bench_weights

# phomo (PyPI) in a side virtual environment, compared on the shared photos and targets.
$(PEERS)/bin/phomo:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet phomo==1.2.0

bench-peers: setup $(PEERS)/bin/phomo
	$(BIN)/python -m benchmarks.bench_peers

clean:
	rm -rf mosaic-runs build *.egg-info $(PEERS)
