# Each target creates .venv with the project installed when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint docs bench studies clean

CHECK_PYTHON := import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kerasdrop needs Python >= 3.11; set PYTHON=python3.11")

$(STAMP): pyproject.toml
	@$(PYTHON) -c '$(CHECK_PYTHON)'
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
	$(BIN)/kerasdrop calibrate runs/demo --repeats 3
	$(BIN)/kerasdrop export runs/demo/model.keras --name lenet5
	@echo "--- the model card published with that version:"
	$(BIN)/kerasdrop card export/lenet5
	@echo "--- the classic mistake, Dropout called with training=True, is refused (exit 1):"
	$(BIN)/python -m kerasdrop.demo make-broken runs/demo/model.keras runs/demo/broken.keras
	$(BIN)/kerasdrop export runs/demo/broken.keras --name lenet5_broken; test $$? -eq 1
	@echo "--- serve the exported model over TF Serving's REST and gRPC APIs, ask it about a test digit:"
	$(BIN)/python -m kerasdrop.demo serve-and-predict export lenet5

# pytest-xdist workers; each takes a whole test file at a time (--dist loadfile), so a module's
# fixtures (an export, a running server) are still built once; measured against one process in
# docs/speed.md, section 5. TEST_WORKERS=0 runs the suite in one process; the slowest tests are
# listed at the end either way.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

test: $(STAMP)
	$(PYTEST)

# The inner loop: everything but the end-to-end tests marked slow (CI runs them all, through `make test`).
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

# `make docs` and `make lint` need no TensorFlow: a venv of their own holds only the `docs` and `lint`
# extras of pyproject.toml (read from it, so the versions are written once), installed in seconds.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
TOOLS_REQUIREMENTS := import tomllib; extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; \
	print("\n".join(extras["docs"] + extras["lint"]))

$(TOOLS_STAMP): pyproject.toml
	@$(PYTHON) -c '$(CHECK_PYTHON)'
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -c '$(TOOLS_REQUIREMENTS)' > $(TOOLS_VENV)/requirements.txt
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $(TOOLS_VENV)/requirements.txt
	touch $(TOOLS_STAMP)

# The documentation site (mkdocs.yml, docs/, README.md as its front page) into site/; --strict turns
# a broken link or anchor, or a page missing from the nav, into a failure.
docs: $(TOOLS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(TOOLS_VENV)/bin/mkdocs build --strict --quiet

# The lint and the formatter's check, with pyproject.toml's [tool.ruff] settings; nothing is rewritten.
lint: $(TOOLS_STAMP)
	$(TOOLS_VENV)/bin/ruff check .
	$(TOOLS_VENV)/bin/ruff format --check .

# The serving benchmark loads the servers with C load generators (wrk, h2load from nghttp2-client)
# and compares against a bare Starlette app (the `bench` extra).
bench: $(STAMP)
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq wrk nghttp2-client >/dev/null; }
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@ls bench/*.py >/dev/null 2>&1 || { echo "no benchmarks yet (bench/ is empty)"; exit 0; }; \
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# The dropout studies of docs/dropout-studies.md: data-size sweeps
# (36 runs per model in one process, on one compiled model per dropout rate: a TrainingSession) and
# calibration / MC averaging of the full-data dropout-0.5 runs. Runs go to runs/studies/ (finished
# runs are reused); summaries are copied to models/studies/.
STUDY_SIZES := 50,100,200,400,800,all
studies: $(STAMP)
	for model in mlp lenet5; do \
	  $(BIN)/kerasdrop sweep models/$${model}_digits.toml --train-sizes $(STUDY_SIZES) --rates 0,0.5 --seeds 3 \
	    --out runs/studies/$${model}_digits_datasize || exit 1; \
	  mkdir -p models/studies/$${model}_digits_datasize models/studies/$${model}_digits_calibration; \
	  cp runs/studies/$${model}_digits_datasize/sweep.json runs/studies/$${model}_digits_datasize/sweep.md \
	    runs/studies/$${model}_digits_datasize/sweep.png models/studies/$${model}_digits_datasize/; \
	  run=runs/studies/$${model}_digits_datasize/size-all/rate-0.5/seed-0; \
	  $(BIN)/kerasdrop calibrate $$run | tee models/studies/$${model}_digits_calibration/calibrate.txt || exit 1; \
	  cp $$run/calibration.json $$run/reliability.png $$run/mc_averaging.json $$run/mc_averaging.png \
	    models/studies/$${model}_digits_calibration/; \
	done

clean:
	rm -rf $(VENV) $(TOOLS_VENV) site build *.egg-info
