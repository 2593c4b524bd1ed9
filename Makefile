# detkit: the two quick-start commands (`make demo`, `make test`) set up .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.detkit-installed
PEERS_STAMP := $(VENV)/.detkit-peers
# the Ultralytics release the equivalence tests and docs/benchmarks.md were written against
ULTRALYTICS ?= ultralytics==8.4.190
DEMO_CONFIG ?= configs/demo/demo.yaml
DEMO_DIR    ?= work_dirs/demo
SHAPES      ?= data/shapes

.PHONY: install peers demo test test-all test-packaging lint format clean-demo

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## The main job: make the shapes data (first use), train, evaluate, predict on validation images.
## A second `make demo` moves the previous run into $(DEMO_DIR)/previous-N/ (--exist-ok); nothing is deleted.
demo: $(STAMP)
	@test -f $(SHAPES)/val.json || $(BIN)/python tools/make_shapes.py $(SHAPES)
	$(BIN)/python tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR) --exist-ok
	$(BIN)/python tools/eval.py $(DEMO_CONFIG) $(DEMO_DIR)/best.pth --out $(DEMO_DIR)/eval_metrics.json
	$(BIN)/python tools/infer.py $(DEMO_CONFIG) $(DEMO_DIR)/best.pth $(SHAPES)/val --out-dir $(DEMO_DIR)/predictions --draw-thr 0.1
	@echo "demo done: curves in $(DEMO_DIR)/*.png, metrics in $(DEMO_DIR)/eval_metrics.json, drawn predictions in $(DEMO_DIR)/predictions/"

## The peers the comparison tests run against (setup.cfg's `peers` extra; Ultralytics with --no-deps so that
## its opencv-python requirement does not replace the cv2 of opencv-python-headless). Test-only, once per venv.
$(PEERS_STAMP): $(STAMP) Makefile
	$(BIN)/python -m pip install -q -e ".[peers]"
	$(BIN)/python -m pip install -q --no-deps "$(ULTRALYTICS)"
	$(BIN)/python -c "import importlib.metadata as m, cv2, ultralytics.nn.tasks, faster_coco_eval; \
	assert not any(d.metadata['Name'].lower() == 'opencv-python' for d in m.distributions()), 'opencv-python installed'; \
	print('peers ready: cv2', cv2.__version__, '(opencv-python-headless)')"
	@touch $(PEERS_STAMP)

peers: $(PEERS_STAMP)

## The tests (default run: everything not marked slow). DETKIT_REQUIRE_PEERS: a missing peer fails the run.
test: $(PEERS_STAMP)
	DETKIT_REQUIRE_PEERS=1 $(BIN)/python -m pytest

## Lint and format check (ruff, configured in pyproject.toml); `make format` rewrites the tree.
lint: $(STAMP)
	$(BIN)/ruff check detkit tools tests
	$(BIN)/ruff format --check detkit tools tests

format: $(STAMP)
	$(BIN)/ruff check --fix detkit tools tests
	$(BIN)/ruff format detkit tools tests

## Every test, slow ones included.
test-all: $(PEERS_STAMP)
	DETKIT_REQUIRE_PEERS=1 $(BIN)/python -m pytest -m "slow or not slow"

clean-demo:
	rm -rf $(DEMO_DIR)
