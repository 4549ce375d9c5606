"""What SFT and DPO training share: model + LoRA set-up, TRL config defaults for CPU, resume, final save."""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

from saro.config import RangeError, build_dataclass, check_range, read_config_data, split_trl_keys, to_plain
from saro.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    """LoRA via peft. `lora_last_layers` adapts only the top N decoder layers: on CPU this also shortens the
    backward pass, since gradients stop below the lowest adapted layer."""

    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (0 is ~25% faster on CPU)."})
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata={"help": "Modules."})
    lora_last_layers: int | None = field(default=None, metadata={"help": "Adapt only the top N layers."})
    merge_lora: bool = field(default=True, metadata={"help": "Merge adapters into the saved model."})

    def peft_config(self, num_layers: int):
        from peft import LoraConfig

        targets = self.lora_target_modules
        layers = None
        if self.lora_last_layers:
            layers = list(range(max(0, num_layers - self.lora_last_layers), num_layers))
            if targets == ["all-linear"]:  # layers_to_transform needs explicit module names
                targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            task_type="CAUSAL_LM",
            target_modules=targets if targets != ["all-linear"] else "all-linear",
            layers_to_transform=layers,
        )


def cpu_safe_defaults() -> dict:
    """TRL defaults that fail or crawl without a GPU, replaced; a config file or flag still wins."""
    import torch

    gpu = torch.cuda.is_available()
    return {
        "bf16": gpu,
        "use_cpu": not gpu,  # also what makes several CPU processes (gloo) train as one DDP job
        "report_to": "none",
        "logging_steps": 5,
        "save_strategy": "epoch",
        "save_total_limit": 1,
        "activation_checkpointing": gpu,
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,  # every trained parameter gets a gradient; True costs a graph walk
        "seed": 0,
    }


# Allowed ranges of the TRL keys saro passes on. TRL checks few values, and only once the model has loaded (or not
# at all: num_train_epochs=0 saves the untrained model, beta=0 gives no gradient), so they are checked on load.
TRL_RANGES: dict[str, dict[str, float]] = {
    "learning_rate": {"above": 0},
    "num_train_epochs": {"above": 0},
    "per_device_train_batch_size": {"min": 1},
    "per_device_eval_batch_size": {"min": 1},
    "gradient_accumulation_steps": {"min": 1},
    "weight_decay": {"min": 0},
    "max_grad_norm": {"min": 0},
    "warmup_ratio": {"min": 0, "max": 1},
    "warmup_steps": {"min": 0},
    "logging_steps": {"above": 0},
    "save_total_limit": {"min": 1},
    "max_length": {"min": 1},
    "beta": {"above": 0},
    "label_smoothing": {"min": 0, "max": 0.5},
}


def load_training_config(saro_cls, trl_cls: type | str, path, section: str, overrides, sections):
    """Load saro's dataclass and TRL's config from one section: saro keys to ours, TRL keys to theirs.

    `trl_cls` is TRL's config class or its name in `trl` (`"SFTConfig"`); a name defers TRL's slow import until
    the section's TRL values are range-checked, so a wrong one fails at once."""
    data, source = read_config_data(path, section, overrides, sections)
    own = {f.name for f in fields(saro_cls)}
    try:
        for key, value in data.items():
            if key not in own:
                check_range(key, value, TRL_RANGES.get(key, {}))
    except RangeError as exc:
        raise ConfigError(f"{source.where((exc.name,))}: {exc.detail}") from None
    if isinstance(trl_cls, str):
        trl_cls = getattr(importlib.import_module("trl"), trl_cls)
    ours, theirs = split_trl_keys(data, saro_cls, trl_cls, source)
    saro_config = build_dataclass(saro_cls, ours, source)
    trl_kwargs = {**cpu_safe_defaults(), **theirs}
    trl_kwargs.setdefault("output_dir", saro_cls.DEFAULT_OUTPUT_DIR)
    trl_config = build_dataclass(trl_cls, trl_kwargs, source)
    return saro_config, trl_config


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def save_final(trainer, tokenizer, output_dir: str | Path, merge: bool, info: dict) -> Path:
    """Save a loadable model folder (adapters merged when asked) with the tokenizer and a training summary.

    Under several processes (DDP, DeepSpeed ZeRO-3, FSDP) the trainer gathers the weights and the main process
    writes them; LoRA adapters are then saved unmerged (merge them later with peft's `merge_and_unload`)."""
    output_dir = Path(output_dir)
    model = trainer.model
    if trainer.args.world_size > 1:
        trainer.save_model(str(output_dir))
        if merge and hasattr(model, "merge_and_unload"):
            log.warning("LoRA adapters saved unmerged: merging needs the full weights in one process")
    elif merge and hasattr(model, "merge_and_unload"):
        model.merge_and_unload().save_pretrained(output_dir)
    else:
        model.save_pretrained(output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(output_dir)
        info = {**info, "processes": trainer.args.world_size}
        (output_dir / "saro_training.json").write_text(json.dumps(to_plain(info), indent=2, default=str) + "\n")
    return output_dir


__all__ = ["LoraSettings", "cpu_safe_defaults", "last_checkpoint", "load_training_config", "save_final"]
