# The two set-up commands: `make run` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# ARGS come from the command line only (`make run ARGS=...`): an ARGS in the environment is
# ignored, and ARGS is not exported to what the recipes run
ARGS   :=
unexport ARGS
# no "Entering directory" lines on stdout when make runs under another make (the README test)
MAKEFLAGS += --no-print-directory

.PHONY: run test test-arm lint bench demo clean prometheus

# setup.py builds the C block encoder; editing it or its source re-runs the install
$(STAMP): pyproject.toml setup.py shared/_fastcodecs.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing QAS and its dependencies into $(VENV)" >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' >&2
	@touch $(STAMP)

## make run ARGS="--duration 10 --json": the whole pipeline on the embedded bus (no broker needed);
## stdout holds only what qas prints (a line per decision and apply result, or JSON lines).
## The shipped S&P 500 sample is the market unless QAS_MARKET or --market says otherwise.
run: $(STAMP)
	@QAS_MARKET=$${QAS_MARKET:-sample} $(BIN)/qas run $(ARGS)

## make test ARGS=-q: lint, mypy --strict on every package, then the whole suite (starts its own
## Kafka broker). ARGS go to pytest only: make's own variables are not passed down to the `make`
## commands the suite runs (the README test), so they see a clean ARGS.
test: $(STAMP) lint prometheus
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(BIN)/python -m pytest $(ARGS)

## the real Prometheus and promtool the monitoring tests use (Debian package `prometheus`):
## installed here when missing and we are root with apt-get; QAS_SKIP_PROMETHEUS=1 skips them
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ "$$QAS_SKIP_PROMETHEUS" = 1 ]; then \
	  echo "QAS_SKIP_PROMETHEUS=1: the Prometheus tests will be skipped"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the Debian package prometheus (for prometheus and promtool)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; \
	else \
	  echo "make test needs the Debian package 'prometheus' (prometheus and promtool): run" \
	       "'sudo apt-get install prometheus', or set QAS_SKIP_PROMETHEUS=1 to skip those tests" >&2; \
	  exit 1; \
	fi

## make test-arm: the broker-free suite on aarch64 (a Raspberry Pi's userland) under qemu, as root;
## the sysroot and wheels are cached under .cache/arm64 (docs/raspberry-pi.md)
test-arm: $(STAMP)
	bash tools/arm/test-arm.sh

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
