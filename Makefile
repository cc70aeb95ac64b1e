# `make run` and `make test` work on a fresh machine: each creates .venv if missing and installs lowbit.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core
EXTRAS := dev,audio,deploy,segmentation,digits,zoo,docs,cluster,tracking
# pytest-xdist processes (each test runs on one thread: tests/conftest.py); TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2

.PHONY: run test test-fast core-check docs lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP) $(CORE_STAMP)

# the main job needs the core alone (torch, numpy, matplotlib, ...): a fresh clone's `make run` does not wait for the
# extras the tests use (ray, transformers, mkdocs, ...); `make test` adds them to the same .venv
$(CORE_STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $(CORE_STAMP)

run: $(CORE_STAMP)
	$(BIN)/lowbit reproduce spirals --out runs/spirals --resume $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks .ci
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(ARGS)

# everything not marked `slow` (the chaos suite, every study's end-to-end run, the zoo's long checks): under a minute
test-fast: $(STAMP)
	$(BIN)/ruff check src tests benchmarks .ci
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" $(ARGS)

# the core install alone (no extras; venv kept in /tmp/lowbit-core-venv, ARGS=--fresh rebuilds it): import, --help,
# reproduce --list, quantize_, fit, INQ, summary, packed files; a feature that needs an extra fails with one line
core-check:
	PY=$(PY) .ci/core_check.sh $(ARGS)

# the docs site (mkdocs.yml, docs/) into site/; --strict: a broken link or a page missing from the nav fails
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks .ci
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/qat_speed.py --quick

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
