"""Reasoning-style Warmup (RW) training: supervised fine-tuning on the synthesized reasoning chains, via TRL.

Input: an SFT JSONL with `messages` (from `saro synth rw`). Output: a loadable model folder at `output_dir`
(checkpoints inside it; a rerun with the same settings resumes from the last one, one with other settings is
refused) and `saro_training.json` with metrics and truncation counts. Loss is on assistant tokens only: through
the chat template's generation markers when it has them, otherwise by handing TRL prompt/completion pairs; a record's
`untrained_prefix` (the start of its assistant turn) is context without loss too.

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
from saro.errors import DataError
from saro.models import DEFAULT_MODEL, load_model, load_tokenizer
from saro.records import read_jsonl
from saro.training.common import LoraSettings, check_output_dir, last_checkpoint, record_settings, save_final

log = logging.getLogger(__name__)


@dataclass
class SFTStageConfig(LoraSettings):
    """RW training settings: `model` (base), `data` (SFT JSONL) and LoRA options; every TRL `SFTConfig` field
    (learning_rate, num_train_epochs, max_length, output_dir, ...) is accepted in the same section."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model: path, hub id or 'smollm2'."})
    data: Path = field(default=Path("runs/demo/rw.jsonl"), metadata={"help": "SFT JSONL with `messages`."})
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
    if any("untrained_prefix" in r for r in records):  # TRL has no span mask: hand it tokens and labels
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
    trainer = SFTTrainer(
        model=model, args=trl_config, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    if len(trainer.train_dataset) == 0:  # TRL drops examples whose answer tokens were all cut by max_length
        raise DataError(
            f"{config.data}: no example keeps an answer token within max_length={trl_config.max_length} "
            f"(the longest has {truncation['max_tokens']} tokens); raise max_length"
        )
    return trainer, original_template, truncation
