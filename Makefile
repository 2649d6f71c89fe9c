# cxprobe — `make demo` runs the monitor against the local sandbox; `make test` runs the tests
# (the fault suite, tests/faults, included); `make faults` runs the fault suite alone, with its
# figures lines shown (docs/faults.md).
# Both install what is missing (system packages via apt, Python packages into .venv).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test faults lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

system-deps:
	@scripts/install-system-deps.sh

demo: system-deps $(STAMP)
	@PATH="$(abspath $(BIN)):$$PATH" scripts/demo.sh

test: system-deps $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

faults: system-deps $(STAMP)
	$(BIN)/pytest -q -s $(PYTEST_ARGS) tests/faults

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: system-deps $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data/demo .pytest_cache .mypy_cache .ruff_cache
