# Each target creates .venv with the project installed when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kerasdrop needs Python >= 3.11; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded digits data set; runs/demo is the demo's own run directory.
demo: $(STAMP)
	$(BIN)/kerasdrop models
	$(BIN)/python -m kerasdrop.demo tour
	rm -rf runs/demo
	$(BIN)/kerasdrop train models/lenet5_digits.toml --out runs/demo
	$(BIN)/kerasdrop export runs/demo/model.keras --name lenet5
	@echo "--- the classic mistake, Dropout called with training=True, is refused (exit 1):"
	$(BIN)/python -m kerasdrop.demo make-broken runs/demo/model.keras runs/demo/broken.keras
	$(BIN)/kerasdrop export runs/demo/broken.keras --name lenet5_broken; test $$? -eq 1
	@echo "--- serve the exported model over TF Serving's REST and gRPC APIs, ask it about a test digit:"
	$(BIN)/python -m kerasdrop.demo serve-and-predict export lenet5

test: $(STAMP)
	$(BIN)/python -m pytest

# The inner loop: everything but the end-to-end tests marked slow (CI runs them all, through `make test`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The serving benchmark loads the servers with C load generators (wrk, h2load from nghttp2-client)
# and compares against a bare Starlette app (the `bench` extra).
bench: $(STAMP)
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq wrk nghttp2-client >/dev/null; }
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@ls bench/*.py >/dev/null 2>&1 || { echo "no benchmarks yet (bench/ is empty)"; exit 0; }; \
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
