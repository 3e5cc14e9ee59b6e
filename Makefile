# acsprov: the user's front door.  Every target installs what it needs first, from
# the pinned lock file, into .venv (no conda, no manual steps).

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.acsprov-installed
# the compiled kernels are rebuilt when the engine's code changes (acsprov.calib.kernels)
KERNELS  := $(VENV)/.acsprov-kernels
# acsprov's modules compiled to bytecode: an editable install leaves that to the first
# import, and where PYTHONDONTWRITEBYTECODE is set every command compiled them again
BYTECODE := $(VENV)/.acsprov-bytecode
INSTALLED := $(KERNELS) $(BYTECODE)
DATASET  ?= jd1y04010
WORKDIR  ?= work
PYTEST_ARGS ?=

# Tools installed into the venv (git-annex among them) come first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install reprocess test test-fast bench lint lock env clean chromium-for-tests

help:
	@echo "make reprocess DATASET=jd1y04010  obtain a dataset and run its recipe into $(WORKDIR)/DATASET/"
	@echo "make test                         run the test suite"
	@echo "make bench                        run the benchmarks (JSON in bench/results/)"
	@echo "make lint                         ruff"
	@echo "make env                          print export lines for crds/acstools by hand"

install: $(INSTALLED)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "acsprov needs Python 3.11 or newer as $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

KERNEL_SRC := $(addprefix acsprov/calib/,kernels.py warmup.py imarith.py acs2d.py \
  _cte_kernels.py acsccd/blevcorr.py acsccd/pixels.py acsrej/reject.py acsrej/sky.py)

$(KERNELS): $(STAMP) $(KERNEL_SRC)
	$(BIN)/python -m acsprov.calib.warmup
	@touch $@

$(BYTECODE): $(STAMP) $(shell find acsprov -name '*.py')
	$(BIN)/python -m compileall -q acsprov
	@touch $@

ifdef IN_CONTAINER
# the recipe runs inside $(IMAGE), WORKDIR mounted on /data (see the container block)
reprocess:
	@$(CONTAINER_ENV) DATA_DIR='$(WORKDIR)' container/engine.sh run \
	  acsprov reprocess '$(DATASET)' --workdir /data
else
reprocess: $(INSTALLED)
	$(BIN)/acsprov reprocess $(DATASET) --workdir $(WORKDIR)
	@echo "acsprov, datalad, git-annex and crds are in $(BIN); to use them by name:"
	@echo "    . $(BIN)/activate"
	@echo "    acsprov prov verify $(WORKDIR)/$(DATASET)"
endif

test: $(INSTALLED) chromium-for-tests
	$(BIN)/python -m pytest $(BROWSER_MARK) $(PYTEST_ARGS)

# Tests draw the HTML pages (audit report, lineage, campaign) in headless Chromium
# (Debian's package).  NO_CHROMIUM=1 runs everything else instead.
ifdef NO_CHROMIUM
BROWSER_MARK := -m "not browser"
chromium-for-tests:
	@echo "NO_CHROMIUM=1: the tests that screenshot the HTML pages in Chromium are deselected"
else
BROWSER_MARK :=
chromium-for-tests:
	@command -v chromium >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { \
	    echo "make test needs chromium (tests screenshot the HTML pages) and apt-get is not"; \
	    echo "available: install chromium and put it on PATH, or run make test NO_CHROMIUM=1"; \
	    exit 1; }; \
	  echo "chromium is not on PATH: installing Debian's chromium now with apt-get (as root;"; \
	  echo "on a bare Debian bookworm about 115 packages, 480 MB on disk)."; \
	  echo "Interrupt now (Ctrl-C) and run 'make test NO_CHROMIUM=1' to skip the browser tests."; \
	  sleep 5; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
endif

test-fast: $(INSTALLED) chromium-for-tests
	$(BIN)/python -m pytest -m "not slow$(if $(NO_CHROMIUM), and not browser)" $(PYTEST_ARGS)

bench: $(INSTALLED)
	$(BIN)/python bench/run.py --out bench/results

lint: $(STAMP)
	$(BIN)/ruff check acsprov tests bench
	$(BIN)/hadolint Containerfile

env: $(STAMP)
	@$(BIN)/acsprov env --workdir $(WORKDIR)

# Regenerate the lock file from requirements.in (needs network access to PyPI).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --generate-hashes \
	  --no-header -o requirements.lock.new
	{ echo "# Pinned, hashed dependencies of acsprov (Python 3.11), generated from requirements.in"; \
	  echo "# with \`make lock\`. Install with: pip install --require-hashes --no-deps -r requirements.lock"; \
	  cat requirements.lock.new; } > requirements.lock && rm requirements.lock.new

clean:
	rm -rf $(WORKDIR) .pytest_cache

# ---- the container image (Containerfile) ------------------------------------------------
# make container                        build $(IMAGE) with podman or docker, whichever runs
# make test-container                   build from a local debootstrap base, run a recipe in it
# make reprocess DATASET=... IN_CONTAINER=1   the same recipe inside $(IMAGE), WORKDIR on /data
# make hstcal-lock                      re-solve container/conda-hstcal.lock (needs conda-forge)
IMAGE          ?= localhost/acsprov:latest
HSTCAL         ?= none
CRDS_BAKE      ?= none
CRDS_CONTEXT   ?=
BASE_IMAGE     ?=
LOCAL_BASE     ?= localhost/acsprov-base:bookworm
HSTCAL_SPEC    ?= hstcal==3.1.0
MICROMAMBA_IMAGE ?= docker.io/mambaorg/micromamba:1.5.10-bookworm-slim
CONTAINER_ENV  := IMAGE='$(IMAGE)' HSTCAL='$(HSTCAL)' CRDS_BAKE='$(CRDS_BAKE)' \
                  CRDS_CONTEXT='$(CRDS_CONTEXT)' BASE_IMAGE='$(BASE_IMAGE)' \
                  MICROMAMBA_IMAGE='$(MICROMAMBA_IMAGE)'

.PHONY: container container-base test-container hstcal-lock

container:
	@$(CONTAINER_ENV) container/engine.sh build

container-base:
	@engine=$$(container/engine.sh check) && container/make-base.sh '$(LOCAL_BASE)' "$$engine"

test-container: $(STAMP)
	$(BIN)/python -m pytest -m container tests/test_container_image.py $(PYTEST_ARGS)

hstcal-lock:
	@engine=$$(container/engine.sh check) && \
	  "$$engine" run --rm '$(MICROMAMBA_IMAGE)' /bin/bash -c \
	    "micromamba create -q -y -p /tmp/h --override-channels -c conda-forge '$(HSTCAL_SPEC)' >&2 && \
	     micromamba env export -p /tmp/h --explicit --md5" > container/conda-hstcal.lock.new && \
	  grep -q '/hstcal-' container/conda-hstcal.lock.new && mv container/conda-hstcal.lock.new container/conda-hstcal.lock \
	  || { rm -f container/conda-hstcal.lock.new; echo "hstcal-lock: not regenerated" >&2; exit 1; }
