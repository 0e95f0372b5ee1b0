# Everything from nothing: `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
BUDGET ?=                # empty: each suite's designed budget (20 min; carphone 5)
export STPATCH_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test lint bench docs clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# Pinned so that this machine takes the local CPU wheel; elsewhere it is the normal build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/stpatch demo

# the tests and every docstring example of src/ (pyproject's testpaths), with line coverage of src/stpatch
# the report's browser test needs headless Chromium: installed here when absent (the test skips, saying
# why, only where it cannot be installed)
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); $$SUDO apt-get update -qq && $$SUDO apt-get install -y chromium; } || \
	  echo "chromium could not be installed: the browser test of the report will skip"
	$(PY) -m pytest -q --cov=stpatch --cov-report=term:skip-covered

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(if $(BUDGET),--budget $(BUDGET))

# the README's data-set table is generated from the registry (a test fails when it is stale)
docs: $(STAMP)
	$(PY) -c "from stpatch.data.registry import write_dataset_table; write_dataset_table('README.md')"

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
