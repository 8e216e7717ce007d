# The two set-up commands: `make run` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: run test lint bench demo clean

# setup.py builds the C block encoder; editing it or its source re-runs the install
$(STAMP): pyproject.toml setup.py shared/_fastcodecs.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## make run ARGS="--duration 10 --json": the whole pipeline on the embedded bus (no broker needed)
run: $(STAMP)
	$(BIN)/qas run $(ARGS)

## make test: lint, mypy --strict on every package, then the whole suite (starts its own Kafka broker)
test: $(STAMP) lint
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy shared services core app

## make bench: every benchmark in bench/, ratios measured side by side in one run
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

demo: $(STAMP)
	$(BIN)/python demo_quantum_auto_scaling.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info shared/*.so
