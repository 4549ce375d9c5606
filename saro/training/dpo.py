"""Safety-oriented Reasoning Process Optimization (SRPO) training: DPO on the SRPO pairs, via TRL's DPOTrainer.

Input: DPO JSONL (`prompt` / `chosen` / `rejected`, from `saro synth srpo`) and held-out pairs. The RW model is
both the starting point and the reference (LoRA: the adapters switched off; full fine-tuning: an explicit copy,
or reference log-probs precomputed once). `max_length` is set from the data (capped by the configured value), and
pairs longer than the cap are counted and reported, because TRL truncates them silently. Reward margins and
accuracies are evaluated on held-out pairs and on a sample of training pairs during training, and plotted.

    saro train srpo --config configs/demo.yaml
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from saro.config import FieldError
from saro.errors import ConfigError, DataError
from saro.preference.pairs import CHOSEN_SOURCES, PAIR_TYPES
from saro.records import HARMFUL_KINDS, read_jsonl, write_jsonl
from saro.training.common import LoraSettings, check_output_dir, last_checkpoint, record_settings, save_final

log = logging.getLogger(__name__)


@dataclass
class DPOStageConfig(LoraSettings):
    """SRPO training settings: `model` (the RW model: start and reference), `data`, `eval_data` (held-out pairs),
    `pair_types` (ablation: [pp], [op] or both), `max_pairs` and `balance_sides` (sub-sampling), margin evaluation
    (`eval_train_pairs`, `eval_points`) and LoRA options; every TRL `DPOConfig` field (beta, learning_rate,
    precompute_ref_log_probs, max_length, output_dir, ...) is accepted in the same section."""

    model: str = field(default="runs/demo/rw-model", metadata={"help": "RW model: policy start and reference."})
    data: Path = field(default=Path("runs/demo/srpo.jsonl"), metadata={"help": "DPO pairs JSONL."})
    eval_data: Path | None = field(
        default=Path("runs/demo/srpo.heldout.jsonl"), metadata={"help": "Held-out pairs for margins (or null)."}
    )
    pair_types: list[str] = field(default_factory=lambda: list(PAIR_TYPES), metadata={"help": "pp, op or both."})
    chosen_from: list[str] = field(
        default_factory=lambda: ["sibling", "trace", "teacher"],
        metadata={
            "help": "Train on pairs whose chosen side came from these: the model's own samples (sibling, "
            "trace), an LLM teacher, the offline composer (composed)."
        },
    )
    max_pairs: int | None = field(
        default=None, metadata={"help": "Train on at most this many pairs (balanced).", "min": 1}
    )
    balance_sides: bool = field(
        default=True, metadata={"help": "As many refuse-preferring (harmful) as answer-preferring (benign) pairs."}
    )
    eval_train_pairs: int = field(
        default=32, metadata={"help": "Training pairs re-evaluated for the margin curve.", "min": 0}
    )
    eval_points: int = field(
        default=4, metadata={"help": "Margin evaluations during training (0: end only).", "min": 0}
    )
    seed: int = field(default=0, metadata={"help": "Seed for sub-sampling pairs."})
    DEFAULT_OUTPUT_DIR: ClassVar[str] = "runs/demo/srpo-model"

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = set(self.pair_types) - set(PAIR_TYPES)
        if unknown or not self.pair_types:
            raise FieldError("pair_types", f"expected a non-empty subset of {list(PAIR_TYPES)}, got {self.pair_types}")
        if set(self.chosen_from) - set(CHOSEN_SOURCES) or not self.chosen_from:
            raise FieldError(
                "chosen_from", f"expected a non-empty subset of {list(CHOSEN_SOURCES)}, got {self.chosen_from}"
            )


def load_pairs(path: Path, pair_types: list[str] | None = None, chosen_from: list[str] | None = None) -> list[dict]:
    """Read DPO pairs, checking the three text fields; pairs of other types (meta.pair_type) or whose chosen side
    came from elsewhere (meta.chosen_from) are left out. Pairs without those fields (baselines) always pass."""
    pairs, dropped = [], 0
    for where, record in read_jsonl(path, required=("prompt", "chosen", "rejected")):
        for name in ("prompt", "chosen", "rejected"):
            if not isinstance(record[name], str) or (name != "prompt" and not record[name].strip()):
                raise DataError(f"{where}: field '{name}' must be a non-empty string")
        if record["chosen"].strip() == record["rejected"].strip():  # no preference: zero gradient, margin 0
            raise DataError(f"{where}: 'chosen' and 'rejected' are the same text; a pair must differ")
        meta = record.get("meta") or {}
        pair_type, source = meta.get("pair_type"), meta.get("chosen_from")
        if pair_types is not None and pair_type is not None and pair_type not in pair_types:
            continue
        if chosen_from is not None and source is not None and source not in chosen_from:
            dropped += 1
            continue
        pairs.append(record)
    if dropped:
        log.info("%s: %d pairs left out, their chosen side not from %s", path, dropped, chosen_from)
    if not pairs:
        raise DataError(f"{path}: no pairs of types {pair_types} with a chosen side from {chosen_from}")
    return pairs


def _group(pair: dict) -> tuple:
    meta = pair.get("meta") or {}
    return meta.get("kind"), meta.get("pair_type")


def _round_robin(pairs: list[dict], limit: int, rng: random.Random) -> list[dict]:
    """`limit` pairs taken in turn from each (kind, pair type) group, so no group crowds out the others."""
    groups: dict[tuple, list[dict]] = {}
    for pair in pairs:
        groups.setdefault(_group(pair), []).append(pair)
    for key in sorted(groups, key=str):
        rng.shuffle(groups[key])
    chosen: list[dict] = []
    while len(chosen) < min(limit, len(pairs)):
        for key in sorted(groups, key=str):
            if groups[key] and len(chosen) < limit:
                chosen.append(groups[key].pop())
    return chosen


def balanced_subset(pairs: list[dict], limit: int | None, seed: int, balance_sides: bool = True) -> list[dict]:
    """At most `limit` pairs, round-robin over (kind, pair type) groups. With `balance_sides`, as many pairs
    prefer refusing (harmful, jailbreak) as prefer answering (benign, general): a majority on either side moves
    the model's overall readiness to refuse instead of teaching it to tell the two apart."""
    rng = random.Random(seed)
    refuse = [p for p in pairs if _group(p)[0] in HARMFUL_KINDS]  # these pairs prefer refusing
    answer = [p for p in pairs if _group(p)[0] not in HARMFUL_KINDS]
    if balance_sides and refuse and answer:
        per_side = min(len(refuse), len(answer), (limit or len(pairs)) // 2)
        return _round_robin(refuse, per_side, rng) + _round_robin(answer, per_side, rng)
    return _round_robin(pairs, limit or len(pairs), rng)


def pair_lengths(pairs: list[dict], tokenizer) -> list[int]:
    """Tokens of the longer side of each pair (prompt + completion + end-of-turn), as TRL will see it."""
    eos = tokenizer.eos_token or ""
    lengths = []
    for pair in pairs:
        sides = (pair["prompt"] + pair["chosen"] + eos, pair["prompt"] + pair["rejected"] + eos)
        lengths.append(max(len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in sides))
    return lengths


def fit_max_length(lengths: list[int], cap: int | None) -> tuple[int, dict]:
    """`max_length` from the data: the longest pair, or `cap` when pairs are longer; counts what gets cut."""
    longest = max(lengths)
    max_length = min(longest, cap) if cap else longest
    over = [n - max_length for n in lengths if n > max_length]
    return max_length, {
        "pairs": len(lengths),
        "max_tokens": longest,
        "max_length": max_length,
        "truncated_pairs": len(over),
        "truncated_tokens": sum(over),
    }


def _strip(pairs: list[dict]) -> list[dict]:
    return [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]


def _dataset(pairs: list[dict], path: Path):
    """The pairs as a dataset backed by `path` (the exact pairs trained on, kept beside the model). TRL caches
    precomputed reference log-probs next to a dataset's files; an in-memory dataset gets a temporary folder per
    process, and under several processes the others then miss the main process's cache."""
    from datasets import load_dataset

    rows = _strip(pairs)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # same file, same mtime: one dataset cache
        write_jsonl(path, rows)
    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(path.parent / "cache"))


def build_trainer(config: DPOStageConfig, trl_config):
    """The configured DPOTrainer (datasets tokenized, reference log-probs precomputed if asked) and what was
    measured on the data on the way: pair counts and truncation."""
    import torch
    from trl import DPOTrainer

    from saro.models import load_model, load_tokenizer

    if config.eval_data and Path(config.eval_data).resolve() == Path(config.data).resolve():
        raise ConfigError(
            f"eval_data {config.eval_data} is the training data file; held-out margins need pairs never trained on "
            "(eval_data: null for none)"
        )
    # Held-out pairs are not filtered by source: one fixed yardstick for the margins of every setting.
    pairs = load_pairs(config.data, config.pair_types, config.chosen_from)
    train_pairs = balanced_subset(pairs, config.max_pairs, config.seed, config.balance_sides)
    heldout = load_pairs(config.eval_data, config.pair_types) if config.eval_data else []
    tokenizer = load_tokenizer(config.model, padding_side="right")
    if tokenizer.eos_token is None:
        raise DataError(f"{config.model}: the tokenizer has no eos_token to end completions with")
    lengths = pair_lengths(train_pairs + heldout, tokenizer)
    trl_config.max_length, truncation = fit_max_length(lengths, trl_config.max_length)
    if truncation["truncated_pairs"]:
        log.warning(
            "%d of %d pairs exceed max_length=%d and will be truncated (%d tokens lost)",
            truncation["truncated_pairs"],
            truncation["pairs"],
            trl_config.max_length,
            truncation["truncated_tokens"],
        )
    eval_sets = {}
    data_dir = Path(trl_config.output_dir) / "pairs"
    with trl_config.main_process_first(desc="pair files"):  # the others then read the main process's files
        train_dataset = _dataset(train_pairs, data_dir / "train.jsonl")
        if heldout:
            eval_sets["heldout"] = _dataset(heldout, data_dir / "heldout.jsonl")
        if config.eval_train_pairs:
            sample = random.Random(config.seed).sample(train_pairs, min(config.eval_train_pairs, len(train_pairs)))
            eval_sets["train"] = _dataset(sample, data_dir / "train-sample.jsonl")
    steps_per_epoch = math.ceil(
        len(train_pairs) / (trl_config.per_device_train_batch_size * trl_config.gradient_accumulation_steps)
    )
    total_steps = trl_config.max_steps if trl_config.max_steps > 0 else steps_per_epoch * trl_config.num_train_epochs
    if eval_sets and config.eval_points and trl_config.eval_strategy == "no":
        trl_config.eval_strategy = "steps"
        trl_config.eval_steps = max(1, math.ceil(total_steps / config.eval_points))

    torch.manual_seed(trl_config.seed)
    model = load_model(config.model, place=False)  # the trainer puts it on this process's device
    model.train()
    peft_config = config.peft_config(model) if config.lora else None
    # Full fine-tuning needs a frozen copy as reference unless its log-probs are precomputed before training.
    frozen_reference = not (config.lora or trl_config.precompute_ref_log_probs)
    ref_model = load_model(config.model, place=False) if frozen_reference else None
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=trl_config,
        train_dataset=train_dataset,
        eval_dataset=eval_sets or None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    kinds = Counter("/".join(map(str, _group(p))) for p in train_pairs)
    return trainer, {"pairs": dict(sorted(kinds.items())), "heldout_pairs": len(heldout), "truncation": truncation}


def run_dpo(config: DPOStageConfig, trl_config, stage: str = "srpo") -> Path:
    """Train `config.model` with DPO on `config.data`; returns the saved model folder. `stage` names the run in
    its plot and record (srpo, or safety-dpo for the baseline)."""
    from saro.training.margins import margin_history, plot_margins

    started = time.time()
    settings = check_output_dir(config, trl_config)
    trainer, data_info = build_trainer(config, trl_config)
    checkpoint = last_checkpoint(trl_config.output_dir)
    record_settings(trl_config, settings)
    start_metrics = {}
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    elif "heldout" in (trainer.eval_dataset or {}):  # the reference itself: reward margin 0; log-probs differ
        start_metrics = trainer.evaluate(eval_dataset="heldout", metric_key_prefix="eval_heldout")
    result = trainer.train(resume_from_checkpoint=checkpoint)
    step = trainer.state.global_step
    if trainer.eval_dataset and not any(
        e.get("step") == step and "eval_rewards/margins" in e for e in trainer.state.log_history
    ):
        trainer.evaluate()  # the curve must end at the trained model
    # step 0 is the RW model itself (the reference): margin 0 by definition, the curve starts there
    start = [{**start_metrics, "step": 0}] if start_metrics else []
    margins = margin_history(start + trainer.state.log_history)
    plot_path = Path(trl_config.output_dir) / "margins.png"
    if trainer.is_world_process_zero():
        plot_margins(margins, plot_path, title=f"{stage}: {config.model}")
    info = {
        "stage": f"{stage}_dpo" if stage == "srpo" else stage,
        "config": config,
        "trl": trl_config.to_dict(),
        **data_info,
        "resumed_from": checkpoint,
        "start": start_metrics,
        "margins": margins,
        "margin_plot": str(plot_path),
        "metrics": result.metrics,
        "log_history": trainer.state.log_history,
        "seconds": round(time.time() - started, 1),
    }
    tokenizer = trainer.processing_class
    return save_final(trainer, tokenizer, trl_config.output_dir, config.lora and config.merge_lora, info)
