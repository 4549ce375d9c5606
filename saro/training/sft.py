"""Reasoning-style Warmup (RW) training: supervised fine-tuning on the synthesized reasoning chains, via TRL.

Input: an SFT JSONL with `messages` (from `saro synth rw`). Output: a loadable model folder at `output_dir`
(checkpoints inside it; a rerun with the same settings resumes from the last one, one with other settings is
refused) and `saro_training.json` with metrics and truncation counts. Loss is on assistant tokens only: through
the chat template's generation markers when it has them, otherwise by handing TRL prompt/completion pairs; a record's
`untrained_prefix` (the start of its assistant turn) is context without loss too. `step_loss_weights` shifts each
record's loss toward named reasoning steps (the intent and decision that carry the verdict) without changing its total.

    saro train rw --config configs/demo.yaml
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from saro.chat import keep_reasoning_for_training
from saro.errors import ConfigError, DataError
from saro.models import DEFAULT_MODEL, load_model, load_tokenizer
from saro.preference.steps import split_steps
from saro.records import THINK_CLOSE, THINK_OPEN, read_jsonl
from saro.training.common import LoraSettings, check_output_dir, last_checkpoint, record_settings, save_final

log = logging.getLogger(__name__)
_STEP_NAME = re.compile(r"\s*\d+[.)]\s+([A-Za-z]+)")


@dataclass
class SFTStageConfig(LoraSettings):
    """RW training settings: `model` (base), `data` (SFT JSONL) and LoRA options; every TRL `SFTConfig` field
    (learning_rate, num_train_epochs, max_length, output_dir, ...) is accepted in the same section."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model: path, hub id or 'smollm2'."})
    data: Path = field(default=Path("runs/demo/rw.jsonl"), metadata={"help": "SFT JSONL with `messages`."})
    step_loss_weights: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "help": "Loss weight of named reasoning steps ('1. Request: ...' -> request) or the answer, relative to "
            "1 for the rest of the assistant turn; each record's mean weight stays 1, so the loss only moves "
            "within a record. Example: {intent: 3, decision: 3}."
        },
    )
    DEFAULT_OUTPUT_DIR: ClassVar[str] = "runs/demo/rw-model"  # when the config sets no TRL output_dir


def load_sft_records(path: Path) -> list[dict]:
    """Read SFT records, checking each has a user turn and a final assistant turn."""
    records = []
    for where, record in read_jsonl(path, required=("id", "messages")):
        messages = record["messages"]
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
        ):
            raise DataError(f"{where}: field 'messages' must be a list of {{role, content}} objects")
        if messages[-1].get("role") != "assistant":
            raise DataError(f"{where}: field 'messages' must end with an assistant turn")
        if not messages[-1]["content"].strip():  # it would train the model to answer with nothing
            raise DataError(f"{where}: the final assistant turn is empty; nothing to learn from it")
        untrained = record.get("untrained_prefix")
        if untrained is None:
            records.append({"messages": messages})
            continue
        if not isinstance(untrained, str) or not messages[-1]["content"].startswith(untrained):
            raise DataError(f"{where}: field 'untrained_prefix' must be text the final assistant turn starts with")
        if not messages[-1]["content"][len(untrained) :].strip():
            raise DataError(f"{where}: field 'untrained_prefix' covers the whole assistant turn; nothing to learn")
        records.append({"messages": messages, "untrained_prefix": untrained})
    if not records:
        raise DataError(f"{path}: no training records")
    return records


def count_truncated(records: list[dict], tokenizer, max_length: int | None) -> dict:
    """How many conversations exceed `max_length` tokens (TRL cuts them silently) and how many tokens are lost."""
    lengths = [
        len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
        for r in records
    ]
    over = [n - max_length for n in lengths if max_length and n > max_length]
    return {
        "examples": len(lengths),
        "tokens": sum(lengths),
        "max_tokens": max(lengths),
        "truncated_examples": len(over),
        "truncated_tokens": sum(over),
    }


def step_spans(content: str) -> list[tuple[str, int, int]]:
    """(name, start, end) character spans of an assistant turn's numbered reasoning steps ("2. Intent: ..." ->
    intent) and of the answer after `</think>`. Unnumbered steps and text the format does not name get no span."""
    opened = content.find(THINK_OPEN)
    closed = content.find(THINK_CLOSE)
    spans = []
    if closed >= 0:
        start = opened + len(THINK_OPEN) if 0 <= opened < closed else 0
        offset = start
        for step in split_steps(content[start:closed])[0]:
            match = _STEP_NAME.match(step)
            if match:
                spans.append((match.group(1).lower(), offset, offset + len(step)))
            offset += len(step)
        spans.append(("answer", closed + len(THINK_CLOSE), len(content)))
    return spans


def token_steps(record: dict, tokenizer, input_ids: list[int], labels: list[int]) -> list[str | None]:
    """For each token of a tokenized record, the reasoning step or "answer" it belongs to ("" for trained text the
    format names no step for), None for tokens without loss."""
    rendered = tokenizer.apply_chat_template(record["messages"], tokenize=False)
    encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    content = record["messages"][-1]["content"]
    base = rendered.rfind(content)
    if encoded["input_ids"] != input_ids or base < 0:
        raise DataError(
            f"record {record.get('id', '?')}: the chat template's tokens cannot be mapped back to the assistant "
            "text, so its reasoning steps cannot be located"
        )
    spans = [(base + a, base + b, name) for name, a, b in step_spans(content)]
    return [
        next((name for a, b, name in spans if a <= start < b), "") if label != -100 else None
        for (start, _), label in zip(encoded["offset_mapping"], labels, strict=True)
    ]


def step_loss_weights(steps: list[str | None], weights: dict) -> list[float]:
    """One weight a token, from its step (`token_steps`): `weights[name]` inside the named steps, 1 elsewhere, 0
    without loss, scaled so the tokens with a loss average 1 (the record's share of the batch loss is unchanged)."""
    raw = [0.0 if step is None else weights.get(step, 1.0) for step in steps]
    trained = [w for w, step in zip(raw, steps, strict=True) if step is not None]
    mean = sum(trained) / len(trained) if trained else 1.0
    return [w / mean for w in raw]


def tokenize_with_labels(record: dict, tokenizer) -> dict:
    """`input_ids` and `labels` (-100: no loss) for one conversation, as TRL builds them for a prompt/completion
    pair (the loss from where the prompt with its generation prompt and the whole conversation diverge), with the
    `untrained_prefix` of the assistant turn also left out of the loss."""
    from trl.data_utils import common_prefix_length  # what TRL's own prompt/completion path measures with

    messages = record["messages"]

    def ids(conversation: list[dict] | str, **kwargs) -> list[int]:
        if isinstance(conversation, str):
            return tokenizer(conversation, add_special_tokens=False)["input_ids"]
        return tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True, **kwargs)["input_ids"]

    full = ids(messages)
    start = common_prefix_length(ids(messages[:-1], add_generation_prompt=True), full)
    if record.get("untrained_prefix"):
        context = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        start = max(start, common_prefix_length(ids(context + record["untrained_prefix"]), full))
    return {"input_ids": full, "labels": [-100] * start + full[start:]}


def run_sft(config: SFTStageConfig, trl_config) -> Path:
    """Fine-tune `config.model` on `config.data`; returns the saved model folder."""
    started = time.time()
    settings = check_output_dir(config, trl_config)
    trainer, original_template, truncation = build_sft_trainer(config, trl_config)
    tokenizer = trainer.processing_class
    checkpoint = last_checkpoint(trl_config.output_dir)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    record_settings(trl_config, settings)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    info = {
        "stage": "rw_sft",
        "config": config,
        "trl": trl_config.to_dict(),
        "truncation": truncation,
        "resumed_from": checkpoint,
        "metrics": result.metrics,
        "log_history": trainer.state.log_history,
        "seconds": round(time.time() - started, 1),
    }
    if original_template is not None:  # the saved model keeps its own template for inference
        tokenizer.chat_template = original_template
    return save_final(trainer, tokenizer, trl_config.output_dir, config.lora and config.merge_lora, info)


def build_sft_trainer(config: SFTStageConfig, trl_config):
    """The TRL trainer over `config.data`, its dataset tokenized (the loss on the assistant turn only), and the
    tokenizer's original template when it had to be patched to keep the reasoning (else None), and truncation."""
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    records = load_sft_records(config.data)
    tokenizer = load_tokenizer(config.model, padding_side="right")
    original_template = keep_reasoning_for_training(tokenizer, config.model)
    truncation = count_truncated(records, tokenizer, trl_config.max_length)
    if truncation["truncated_examples"]:
        log.warning(
            "%d of %d examples exceed max_length=%s and will be truncated (%d tokens lost)",
            truncation["truncated_examples"],
            truncation["examples"],
            trl_config.max_length,
            truncation["truncated_tokens"],
        )
    if config.step_loss_weights:  # TRL has no per-token weights: hand it tokens, labels and weights
        dataset = Dataset.from_list(weighted_rows(records, tokenizer, config.step_loss_weights, trl_config))
    elif any("untrained_prefix" in r for r in records):  # TRL has no span mask: hand it tokens and labels
        dataset = Dataset.from_list([tokenize_with_labels(r, tokenizer) for r in records])
    elif re.search(r"\{%-?\s*generation\s*-?%\}", tokenizer.chat_template or ""):
        trl_config.assistant_only_loss = True
        dataset = Dataset.from_list(records)
    else:  # no generation markers: prompt/completion pairs make TRL mask the prompt instead
        dataset = Dataset.from_list(
            [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records]
        )
    torch.manual_seed(trl_config.seed)
    model = load_model(config.model, place=False)  # the trainer puts it on this process's device
    model.train()
    peft_config = config.peft_config(model) if config.lora else None
    trainer_class = weighted_sft_trainer() if config.step_loss_weights else SFTTrainer
    trainer = trainer_class(
        model=model, args=trl_config, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    if len(trainer.train_dataset) == 0:  # TRL drops examples whose answer tokens were all cut by max_length
        raise DataError(
            f"{config.data}: no example keeps an answer token within max_length={trl_config.max_length} "
            f"(the longest has {truncation['max_tokens']} tokens); raise max_length"
        )
    return trainer, original_template, truncation


def weighted_rows(records: list[dict], tokenizer, weights: dict[str, float], trl_config) -> list[dict]:
    """Tokens, labels and `loss_weights` for every record; a weight for a step no record trains, a negative weight or
    packed batches (whose rows the weights cannot follow) are config errors, not a run that silently ignores them."""
    if getattr(trl_config, "packing", False) or getattr(trl_config, "padding_free", False):
        raise ConfigError("train_rw.step_loss_weights: not available with packing or padding_free")
    negative = sorted(name for name, weight in weights.items() if weight < 0)
    if negative:
        raise ConfigError(f"train_rw.step_loss_weights: weight of {negative[0]!r} must be >= 0")
    rows, seen = [], set()
    for record in records:
        row = tokenize_with_labels(record, tokenizer)
        steps = token_steps(record, tokenizer, row["input_ids"], row["labels"])
        seen.update(step for step in steps if step)
        rows.append({**row, "loss_weights": step_loss_weights(steps, weights)})
    missing = sorted(set(weights) - seen)
    if missing:
        raise ConfigError(
            f"train_rw.step_loss_weights: no record has a step named {missing[0]!r} (steps found: "
            f"{', '.join(sorted(seen)) or 'none'})"
        )
    return rows


def weighted_sft_trainer():
    """TRL's SFTTrainer with a per-token `loss_weights` column: kept through data preparation, padded with the batch
    (cut to the tokens TRL kept), and multiplied into the per-token loss TRL's fused head computes."""
    import torch
    from trl import SFTTrainer

    class WeightedSFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            collate = self.data_collator

            def collate_with_weights(examples: list[dict]) -> dict:
                weights = [
                    torch.tensor(e["loss_weights"][: len(e["input_ids"])], dtype=torch.float32) for e in examples
                ]
                batch = collate([{k: v for k, v in e.items() if k != "loss_weights"} for e in examples])
                padded = torch.zeros(batch["labels"].shape, dtype=torch.float32)
                for row, w in enumerate(weights):
                    padded[row, : len(w)] = w
                batch["loss_weights"] = padded
                return batch

            self.data_collator = collate_with_weights

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "loss_weights" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "loss_weights"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weights = inputs.pop("loss_weights")
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)  # log-probs of labels[:, 1:], zero where no loss
            tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = -(outputs.log_probs * weights[:, 1:].to(outputs.log_probs.dtype)).sum()
            loss = loss / torch.as_tensor(tokens).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as TRL's own loss: DDP averages the gradients
            return (loss, outputs) if return_outputs else loss

    return WeightedSFTTrainer
