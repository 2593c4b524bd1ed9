# detkit: the two quick-start commands (`make demo`, `make test`) set up .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.detkit-installed
DEMO_CONFIG ?= configs/demo/demo.yaml
DEMO_DIR    ?= work_dirs/demo
SHAPES      ?= data/shapes

.PHONY: install demo test test-all lint format clean-demo

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## The main job: make the shapes data (first use), train, evaluate, predict on validation images.
demo: $(STAMP)
	@test -f $(SHAPES)/val.json || $(BIN)/python tools/make_shapes.py $(SHAPES)
	$(BIN)/python tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(BIN)/python tools/eval.py $(DEMO_CONFIG) $(DEMO_DIR)/best.pth --out $(DEMO_DIR)/eval_metrics.json
	$(BIN)/python tools/infer.py $(DEMO_CONFIG) $(DEMO_DIR)/best.pth $(SHAPES)/val --out-dir $(DEMO_DIR)/predictions --draw-thr 0.1
	@echo "demo done: curves in $(DEMO_DIR)/*.png, metrics in $(DEMO_DIR)/eval_metrics.json, drawn predictions in $(DEMO_DIR)/predictions/"

## The tests (default run: everything not marked slow).
test: $(STAMP)
	$(BIN)/python -m pytest

## Lint and format check (ruff, configured in pyproject.toml); `make format` rewrites the tree.
lint: $(STAMP)
	$(BIN)/ruff check detkit tools tests
	$(BIN)/ruff format --check detkit tools tests

format: $(STAMP)
	$(BIN)/ruff check --fix detkit tools tests
	$(BIN)/ruff format detkit tools tests

## Every test, slow ones included.
test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

clean-demo:
	rm -rf $(DEMO_DIR)
