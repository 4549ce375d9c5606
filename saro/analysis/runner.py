"""`saro analyze`: why SaRO works, or does not, on your models: prompt-embedding overlap, layer-wise probes, transfer
probes for data mixes, and reflection faithfulness (one module each in `saro.analysis`).

Inputs: prompt sets (any prompt source or saro prompt-record file; every prompt keeps its kind), the models to
compare, a sentence encoder. Output folder:
- `analysis.json`: every number, one section per analysis (per model where a model is involved); rewritten
  atomically after each section, and a rerun with the same settings skips the finished sections;
- `overlap-pca.png` (and `overlap-umap.png` where umap-learn is installed), `probes.png`, `faithfulness.png`;
- `faithfulness/<model>.own.jsonl`, `<model>.edited.jsonl`: the generations, appended and resumed.

    saro analyze --config configs/analyze.yaml
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from saro.config import FieldError, RangeChecked, config_hash, to_plain
from saro.errors import ConfigError
from saro.evaluation.suites import GENERATED, load_records
from saro.models import DEFAULT_MODEL
from saro.records import KINDS, PromptRecord, output_folder
from saro.sources import SOURCES, SourceSpec, sample_records

log = logging.getLogger(__name__)

ANALYSES = ("overlap", "probes", "transfer", "faithfulness")
MODEL_ANALYSES = ("probes", "transfer", "faithfulness")


@dataclass
class TransferSpec:
    """A transfer probe: trained on `train` (a candidate training mix), scored on `test` (a validation set)."""

    name: str = field(default="mix", metadata={"help": "Label in the results."})
    train: SourceSpec = field(default_factory=SourceSpec, metadata={"help": "Prompts the probe is trained on."})
    test: SourceSpec = field(default_factory=SourceSpec, metadata={"help": "Prompts the probe is scored on."})


@dataclass
class AnalyzeConfig(RangeChecked):
    """What to analyse: `models` (label -> path, hub id or 'smollm2'), `prompts` (sources or prompt-record files;
    `per_kind` prompts of each kind, seeded), `analyses` (which to run). Overlap: `encoder`, `neighbours`.
    Probes: `folds`; `transfer` pairs (first model only; each set used whole). Faithfulness:
    `faithfulness_per_kind` prompts, `max_new_tokens` for the model's own reasoning and answer, `answer_tokens` after
    edited reasoning. `output` folder, `seed`."""

    models: dict[str, str] = field(
        default_factory=lambda: {"base": DEFAULT_MODEL}, metadata={"help": "Label -> model path, hub id or 'smollm2'."}
    )
    prompts: list[SourceSpec] = field(
        default_factory=list, metadata={"help": "Prompt sets or files ({name: prompts, path: ...}); kinds kept."}
    )
    per_kind: int = field(default=100, metadata={"help": "Prompts of each kind (seeded sample).", "min": 2})
    analyses: list[str] = field(
        default_factory=lambda: ["overlap", "probes", "faithfulness"],
        metadata={"help": "Any of " + ", ".join(ANALYSES) + " (transfer needs `transfer` pairs)."},
    )
    encoder: str = field(
        default="minilm",
        metadata={"help": "Sentence encoder: 'minilm' (packaged all-MiniLM-L6-v2), a folder or a hub id."},
    )
    neighbours: int = field(default=10, metadata={"help": "k of the k-nearest-neighbour kind agreement.", "min": 1})
    folds: int = field(default=5, metadata={"help": "Cross-validation folds of every probe.", "min": 2})
    transfer: list[TransferSpec] = field(
        default_factory=list, metadata={"help": "Transfer probes: {name, train: SOURCE, test: SOURCE}."}
    )
    faithfulness_per_kind: int = field(
        default=30, metadata={"help": "Prompts of each kind the models answer (from the sample above).", "min": 1}
    )
    max_new_tokens: int = field(default=160, metadata={"help": "Cap on the model's own reasoning + answer.", "min": 1})
    answer_tokens: int = field(default=48, metadata={"help": "Cap on an answer after edited reasoning.", "min": 1})
    batch_size: int = field(default=16, metadata={"help": "Forward and generation batch size.", "min": 1})
    output: Path = field(default=Path("runs/analysis"), metadata={"help": "Output folder."})
    seed: int = field(default=0, metadata={"help": "Sampling and cross-validation seed."})

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [a for a in self.analyses if a not in ANALYSES]
        if unknown:
            raise FieldError("analyses", f"unknown analysis {unknown[0]!r}; analyses: {', '.join(ANALYSES)}")
        for label, path in self.models.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(label)) or not isinstance(path, str) or not path:
                raise ValueError(
                    f"models: expected label: path (labels of letters, digits, '.', '_', '-'), got {label!r}: {path!r}"
                )
        if not self.models and set(self.analyses) & set(MODEL_ANALYSES):
            raise ValueError(f"models: {', '.join(MODEL_ANALYSES)} need at least one model")
        specs = [*self.prompts, *(s for t in self.transfer for s in (t.train, t.test))]
        for spec in specs:
            if spec.name not in SOURCES and spec.name not in GENERATED:
                raise ValueError(f"unknown prompt source {spec.name!r}; known: {', '.join([*GENERATED, *SOURCES])}")
        names = [t.name for t in self.transfer]
        if len(set(names)) != len(names):
            raise ValueError(f"transfer names must be unique, got {names}")
        if "transfer" in self.analyses and not self.transfer:
            raise ValueError("analyses has transfer but no transfer pairs are given (transfer: [{name, train, test}])")
        if set(self.analyses) - {"transfer"} and not self.prompts:
            raise ValueError("no prompts to analyse (prompts: [...]; see configs/analyze.yaml)")


def _load(specs: list[SourceSpec], per_kind: int | None, seed: int) -> list[PromptRecord]:
    """Prompts of every source (first of each id), at most `per_kind` of each kind (None: all), in kind order."""
    unique: dict[str, PromptRecord] = {}
    for spec in specs:
        for record in load_records(spec, seed):
            unique.setdefault(record.id, record)
    records = list(unique.values())
    return [r for kind in KINDS for r in sample_records([r for r in records if r.kind == kind], per_kind, seed)]


def _write(path: Path, results: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_analysis(config: AnalyzeConfig) -> dict:
    """Run the configured analyses and write `analysis.json` and the figures; returns the results."""
    from saro.models import load_model, load_tokenizer
    from saro.policy import load_policy

    started = time.time()
    missing = [name for name in ("sklearn", "sentence_transformers") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"analyze needs {', '.join(missing)}: pip install 'saro[analysis]'")
    records = _load(config.prompts, config.per_kind, config.seed)  # bad sources fail here, before any model loads
    if set(config.analyses) - {"transfer"} and len(records) < 2:
        raise ConfigError(f"analyze: the prompt sources give {len(records)} prompt(s); at least 2 are needed")
    transfer_sets = {
        t.name: (_load([t.train], None, config.seed), _load([t.test], None, config.seed))  # whole mixes
        for t in config.transfer
        if "transfer" in config.analyses
    }
    out = output_folder(config.output)
    if set(config.analyses) & set(MODEL_ANALYSES):
        for path in config.models.values():
            load_tokenizer(path)  # a wrong model path fails now, not after the first analyses
    json_path = out / "analysis.json"
    settings = {k: v for k, v in to_plain(config).items() if k not in ("analyses", "output")}
    digest = config_hash(settings)
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    if results.get("config_hash") != digest:
        if results:
            log.info("%s: made with other settings; starting over", json_path)
        results = {"config_hash": digest, "config": settings}
    results["prompts"] = {kind: sum(r.kind == kind for r in records) for kind in KINDS}

    timings = results.setdefault("timings", {})  # seconds per section, so a user sees what to trim

    def finish(section: str, since: float) -> None:
        timings[section] = round(time.time() - since, 1)
        _write(json_path, results)

    if "overlap" in config.analyses and "overlap" not in results:
        from saro.analysis.overlap import run_overlap

        since = time.time()
        results["overlap"] = run_overlap(records, config.encoder, out, config.neighbours, config.folds, config.seed)
        finish("overlap", since)

    first = next(iter(config.models), None)
    policy = load_policy()
    for label, path in config.models.items():
        pending = [
            a
            for a in MODEL_ANALYSES
            if a in config.analyses and label not in results.get(a, {}) and (a != "transfer" or label == first)
        ]
        if not pending:
            continue
        log.info("analyze %s (%s): %s", label, path, ", ".join(pending))
        since = time.time()
        model, tokenizer = load_model(path), load_tokenizer(path)
        if "probes" in pending:
            from saro.analysis.probes import probe_contrasts, prompt_states

            states = prompt_states(model, tokenizer, [r.prompt for r in records], config.batch_size)
            results.setdefault("probes", {})[label] = probe_contrasts(states, records, config.folds, config.seed)
            finish(f"probes.{label}", since)  # with the model's loading
            since = time.time()
        if "transfer" in pending:
            results.setdefault("transfer", {})[label] = _transfer(model, tokenizer, transfer_sets, config)
            finish(f"transfer.{label}", since)
            since = time.time()
        if "faithfulness" in pending:
            from saro.analysis.faithfulness import (
                counterfactual_generations,
                faithfulness_metrics,
                own_generations,
            )

            chosen = [
                r
                for kind in KINDS
                for r in sample_records(
                    [r for r in records if r.kind == kind], config.faithfulness_per_kind, config.seed
                )
            ]
            folder = out / "faithfulness"
            own = own_generations(
                model, tokenizer, chosen, folder / f"{label}.own.jsonl", path, config.max_new_tokens, config.batch_size
            )
            edited = counterfactual_generations(
                model,
                tokenizer,
                {r.id: r.prompt for r in chosen},
                own,
                folder / f"{label}.edited.jsonl",
                policy,
                config.answer_tokens,
                config.batch_size,
            )
            results.setdefault("faithfulness", {})[label] = faithfulness_metrics(own, edited, policy)
            finish(f"faithfulness.{label}", since)
        del model

    figures = [*results.get("overlap", {}).get("figures", [])]
    if results.get("probes"):
        from saro.analysis.probes import plot_probes

        behaviour = {
            label: r["behaviour"]["balanced_accuracy"] for label, r in results.get("faithfulness", {}).items()
        }
        figures.append(str(plot_probes(results["probes"], behaviour, out / "probes.png")))
    if results.get("faithfulness"):
        from saro.analysis.faithfulness import plot_faithfulness

        figures.append(str(plot_faithfulness(results["faithfulness"], out / "faithfulness.png")))
    results["figures"] = figures
    results["seconds"] = round(time.time() - started, 1)
    _write(json_path, results)
    return results


def _transfer(model, tokenizer, sets: dict, config: AnalyzeConfig) -> dict:
    """Each transfer pair and contrast: both sets' states, a probe per layer trained on one and scored on the other."""
    from saro.analysis.probes import CONTRASTS, contrast_labels, prompt_states, transfer_probe

    results, cache = {}, {}

    def states_of(records: list[PromptRecord]):
        key = tuple(r.id for r in records)  # pairs often share one validation set: its states are computed once
        if key not in cache:
            cache[key] = prompt_states(model, tokenizer, [r.prompt for r in records], config.batch_size)
        return cache[key]

    for name, (train, test) in sets.items():
        train_states, test_states = states_of(train), states_of(test)
        results[name] = {}
        for contrast in CONTRASTS:
            train_pos, train_labels = contrast_labels(train, contrast)
            test_pos, test_labels = contrast_labels(test, contrast)
            results[name][contrast] = transfer_probe(
                (train_states[train_pos], train_labels),
                (test_states[test_pos], test_labels),
                config.folds,
                config.seed,
            )
    return results
