# Every target does its own set-up: the venv (.venv) is created on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHAPTER ?=
PROFILE ?= smoke
PARAMS ?=
DATASETS ?=
DEVICE ?= auto
# test workers and chapters rendered at once: one per core, each with one torch thread (no oversubscription)
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
# offline dataset mirror (a folder of archives + SHA256SUMS): make data MIRROR=<folder>
MIRROR ?=
ifneq ($(MIRROR),)
export HYPERBOOK_DATA_MIRROR := $(abspath $(MIRROR))
endif

.PHONY: setup data book test unit nbval reuse-test-smoke site-test run lab status clean help

help:
	@echo "make book   execute every chapter (reusing recorded results) and build the site in book/_build/html"
	@echo "make test   unit tests + every chapter under nbval in the smoke profile + the built-site check"
	@echo "make data   fetch datasets into data/ (offline: make data MIRROR=<folder>; STL-10 only when named: make data DATASETS=stl10)"
	@echo "make run CHAPTER=hypernets PROFILE=smoke|reduced|full [DEVICE=cuda] [PARAMS='-p seed=1']"
	@echo "make lab    JupyterLab on the book;  make clean   remove builds and checkpoints"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(PY) -m hyperbook.cli data $(DATASETS)

book: data
	$(PY) -m hyperbook.cli book --jobs $(JOBS)

# The test run: fresh results in a scratch folder so smoke runs really train.
TEST_RESULTS := $(CURDIR)/book/_build/test-results
unit: data
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -q -m "not site" -n $(JOBS) --dist loadfile --durations=10

nbval: data
	rm -rf $(TEST_RESULTS)
	HYPERBOOK_PROFILE=smoke HYPERBOOK_REUSE=0 HYPERBOOK_RESULTS_DIR=$(TEST_RESULTS) OMP_NUM_THREADS=1 \
	  $(PY) -m pytest -q --nbval-lax --nbval-current-env -n $(JOBS) --dist loadfile --durations=15 book/chapters

site-test: book
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the screenshot checks"; \
	  (apt-get update && apt-get install -y chromium) >/dev/null 2>&1 || echo "could not install chromium: screenshot checks will skip"; }
	$(PY) -m pytest tests -q -m site

# The book build of `make test` reuses the smoke runs nbval has just made on this same commit (copied into the
# git-ignored results/**/smoke-*), instead of training every unrecorded experiment a second time.
reuse-test-smoke:
	@test -d $(TEST_RESULTS) && cd $(TEST_RESULTS) && find . -mindepth 3 -maxdepth 3 -type d -name 'smoke-*' | \
	  while read d; do mkdir -p "$(CURDIR)/results/$${d%/*}"; cp -rn "$$d" "$(CURDIR)/results/$${d%/*}/"; done; true

test: unit nbval reuse-test-smoke site-test

run: $(STAMP)
	@test -n "$(CHAPTER)" || { echo "CHAPTER is required: make run CHAPTER=<name> PROFILE=<profile>"; $(PY) -m hyperbook.cli chapters; exit 2; }
	$(PY) -m hyperbook.cli run $(CHAPTER) $(PROFILE) --device $(DEVICE) $(PARAMS)

status: $(STAMP)
	$(PY) -m hyperbook.cli status

lab: $(STAMP)
	$(VENV)/bin/jupyter lab book/

clean:
	rm -rf book/_build results/_checkpoints
	find . -name __pycache__ -prune -exec rm -rf {} +
