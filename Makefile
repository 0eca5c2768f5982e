# photo-mosaic: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The virtual environment is reinstalled when the project's dependencies or its C
# extensions change (an old extension would not take a newer module's arguments).
EXT_SOURCES := $(wildcard mosaic/*.c mosaic/assign/*.c mosaic/assign/*.h)
INSTALL_HASH := $(shell cat pyproject.toml $(EXT_SOURCES) | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(INSTALL_HASH)

BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PEERS := .venv-peers

.PHONY: setup viewer-assets setup-bench setup-312 test-312 system-deps demo test lint bench bench-weights bench-face-weight bench-detail bench-peers bench-mosaicraft bench-quality bench-scale bench-faces clean ui stop-ui deploy

setup: $(STAMP) viewer-assets

$(STAMP): pyproject.toml $(EXT_SOURCES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# OpenSeadragon, the Deep Zoom viewer of `--format dzi`, at package-lock.json's version:
# `npm ci` when node_modules/openseadragon is missing or older than the lock, then its
# script, button images and licence go to mosaic/viewer_assets/ (built, not committed).
OSD_MODULE := node_modules/openseadragon
OSD_BUILD := $(OSD_MODULE)/build/openseadragon
VIEWER_ASSETS := mosaic/viewer_assets/openseadragon

viewer-assets: $(VIEWER_ASSETS)/openseadragon.min.js

$(OSD_MODULE): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found: install Node.js and npm" \
	  "(Debian: apt-get install nodejs npm) for the Deep Zoom viewer" >&2; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

# The script is copied last: it is the target, so a copy cut short is redone.
$(VIEWER_ASSETS)/openseadragon.min.js: $(OSD_MODULE)
	@rm -rf $(VIEWER_ASSETS) && mkdir -p $(VIEWER_ASSETS)
	cp -R $(OSD_BUILD)/images $(OSD_MODULE)/LICENSE.txt $(VIEWER_ASSETS)/
	cp $(OSD_BUILD)/openseadragon.min.js $@

# The benchmarks also need the `bench` extra (lapx, the reference solver).
setup-bench: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@rm -f $(VENV)/.bench-* && touch $@

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
	$(BIN)/ruff check mosaic tasks flows cli tests benchmarks deployments

test: setup system-deps lint
	$(BIN)/python -m pytest

# Python 3.12: the fast tests in a second environment, .venv-312/. The interpreter is
# PYTHON312, else the first python3.12 that runs (a pyenv shim may not), else pyenv's newest
# 3.12.x. The fast tests are the core library's files (layout, cost, assignment, exact and
# regional solvers, blocks, images and phone photos, library, importance with mediapipe,
# pipeline, downloads and exports), not marked slow: 1-1.5 minutes. The Prefect, CLI,
# scraper and cluster files (10+ minutes) run with the whole suite, on 3.11.
VENV312 := .venv-312
STAMP312 := $(VENV312)/.installed-$(INSTALL_HASH)
PYTHON312 ?= $(shell for p in $$(command -v python3.12) $$(ls -d \
  $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do \
  "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null \
  && { echo "$$p"; break; }; done)
FAST_TESTS := tests/test_layout.py tests/test_cost.py tests/test_assign.py \
  tests/test_exact.py tests/test_blocks.py tests/test_images.py tests/test_library.py \
  tests/test_files.py tests/test_folder.py tests/test_importance*.py tests/test_pipeline.py \
  tests/test_method_choice.py tests/test_regional.py tests/test_regional_allocation.py \
  tests/test_render.py tests/test_structure.py tests/test_phone_photos.py \
  tests/test_download.py tests/test_instagram_export.py tests/test_manifest_entries.py \
  tests/test_forked.py tests/test_regional_sparse.py tests/test_rotated_only.py

setup-312: $(STAMP312)

$(STAMP312): pyproject.toml $(EXT_SOURCES)
	@if [ -z "$(PYTHON312)" ]; then \
	  echo "error: no Python 3.12 found (python3.12 on PATH, or pyenv's versions/3.12*):" \
	    "install one (pyenv install 3.12) or pass PYTHON312=/path/to/python3.12" >&2; \
	  exit 1; fi
	@test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet --upgrade pip
	$(VENV312)/bin/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV312)/.installed-* && touch $@

test-312: setup-312
	$(VENV312)/bin/python -m pytest -m "not slow" $(FAST_TESTS)

# Benchmarks print tables; they need the shared photo set in ../shared/data/.
bench: setup-bench
	$(BIN)/python -m benchmarks

bench-weights: setup-bench
	$(BIN)/python -m benchmarks.bench_weights

# The face weight measured on the default command's rendered posters (about 12 minutes).
bench-face-weight: setup-bench
	$(BIN)/python -m benchmarks.bench_face_weight

# --detail faces against the uniform grid, default command, 400 photos (part of make bench;
# about 5 minutes) and then the whole shared library.
bench-detail: setup-bench
	$(BIN)/python -m benchmarks.bench_detail --first 400
	$(BIN)/python -m benchmarks.bench_detail

bench-faces: setup-bench
	$(BIN)/python -m benchmarks.bench_faces

# The solver at 2,500-50,000 photos, then whole default-command builds at 10,000 (and
# BUILD_PHOTOS=10000,50000,100000 for the big rows; each takes minutes to an hour).
BUILD_PHOTOS ?= 10000
bench-scale: setup-bench
	$(BIN)/python -m benchmarks.bench_scale
	$(BIN)/python -m benchmarks.bench_builds --photos $(BUILD_PHOTOS) --cluster

# phomo (PyPI) in a side virtual environment, compared on the shared photos and targets.
$(PEERS)/bin/phomo:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet phomo==1.2.0

bench-peers: setup-bench $(PEERS)/bin/phomo
	$(BIN)/python -m benchmarks.bench_peers

# mosaicraft (PyPI, with opencv-python) in the same side environment: its default preset
# and an "honest" profile (no recolouring, no blend, one use per photo) against ours.
$(PEERS)/bin/mosaicraft:
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet mosaicraft==0.4.2

bench-mosaicraft: setup-bench $(PEERS)/bin/mosaicraft
	$(BIN)/python -m benchmarks.bench_mosaicraft

# One table, every shared target: ours (default, greedy, unweighted, colour-corrected),
# phomo -m norm (optimal, greedy) and mosaicraft (default, honest), with the same grid.
bench-quality: setup-bench $(PEERS)/bin/phomo $(PEERS)/bin/mosaicraft
	$(BIN)/python -m benchmarks.bench_quality

# Prefect server + UI on 127.0.0.1:4200 and a process worker (pool "mosaic"), in the background.
ui: setup
	$(BIN)/python deployments/service.py start

# Stops the worker, the runs it started and the server: nothing is left running.
stop-ui:
	@if [ -x $(BIN)/python ]; then $(BIN)/python deployments/service.py stop; fi

# Work pool and Instagram rate limit if missing, then `prefect deploy --all` (prefect.yaml).
deploy: setup
	$(BIN)/python deployments/deploy.py

clean:
	rm -rf mosaic-runs build *.egg-info $(PEERS) node_modules mosaic/viewer_assets
