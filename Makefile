# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv as needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test test-slow lint clean

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

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
