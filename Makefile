# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv as needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test test-slow lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: anything that depends on torch must find it already installed.
	$(BIN)/pip install --quiet torch==2.13.0
	# The nnunet extra too, so that the nnU-Net tests run in CI.
	$(BIN)/pip install --quiet -e ".[dev,nnunet]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sidepair demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python scripts/check_imports.py
	$(BIN)/python -m pytest -q

# The few tests of several minutes each (the survey of all 210 KiTS19 masks, an experiment killed and
# resumed): CI runs them after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The documentation site, in its own venv (MkDocs needs neither torch nor sidepair installed: the API
# pages are read from src/ by mkdocstrings); --strict turns every warning (a broken link) into an error.
DOCS_VENV ?= .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed

$(DOCS_STAMP): docs/requirements.txt
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install --quiet -r docs/requirements.txt
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

clean:
	rm -rf $(VENV) $(DOCS_VENV) site runs .pytest_cache
