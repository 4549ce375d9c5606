"""What SFT and DPO training share: model + LoRA set-up, TRL config defaults for CPU, resume (refused over a run
with other settings), final save."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from saro.config import (
    RangeChecked,
    RangeError,
    build_dataclass,
    check_range,
    read_config_data,
    split_trl_keys,
    to_plain,
)
from saro.errors import ConfigError
from saro.records import output_folder

log = logging.getLogger(__name__)


@dataclass
class LoraSettings(RangeChecked):
    """LoRA via peft. `lora_last_layers` adapts only the top N decoder layers: on CPU this also shortens the
    backward pass, since gradients stop below the lowest adapted layer."""

    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank.", "min": 1})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha.", "above": 0})
    lora_dropout: float = field(
        default=0.0, metadata={"help": "LoRA dropout (0 is ~25% faster on CPU).", "min": 0, "max": 1}
    )
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata={"help": "Modules."})
    lora_last_layers: int | None = field(default=None, metadata={"help": "Adapt only the top N layers.", "min": 1})
    merge_lora: bool = field(default=True, metadata={"help": "Merge adapters into the saved model."})

    def peft_config(self, model):
        from peft import LoraConfig

        num_layers = model.config.num_hidden_layers
        targets = self.lora_target_modules
        names = [name for name, _ in model.named_modules()]
        for target in targets if targets != ["all-linear"] else []:  # peft's own error is a traceback
            if not any(name == target or name.endswith("." + target) for name in names):
                linear = sorted(
                    {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"}
                )
                raise ConfigError(
                    f"lora_target_modules: {target!r} names no module of the model; its linear layers: "
                    f"{', '.join(linear)} (or all-linear)"
                )
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


# transformers renamed gradient_checkpointing to activation_checkpointing (5.17 and older know only the old name; newer
# ones keep it but ignore it once the new one is set). A config may use either; saro passes the one installed.
CHECKPOINTING_NAMES = ("activation_checkpointing", "gradient_checkpointing")


def checkpointing_name(trl_fields: set[str]) -> str:
    return next((name for name in CHECKPOINTING_NAMES if name in trl_fields), CHECKPOINTING_NAMES[0])


def with_checkpointing_name(data: dict, trl_fields: set[str]) -> dict:
    """`data` with a checkpointing key under the name this transformers release knows (its `_kwargs` too)."""
    known = checkpointing_name(trl_fields)
    aliases = {name + suffix: known + suffix for name in CHECKPOINTING_NAMES for suffix in ("", "_kwargs")}
    return {aliases.get(key, key): value for key, value in data.items()}


def defaults_for(trl_fields: set[str]) -> dict:
    """`cpu_safe_defaults` under the key names this transformers release knows."""
    return with_checkpointing_name(cpu_safe_defaults(), trl_fields)


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
    trl_fields = {f.name for f in fields(trl_cls)}
    ours, theirs = split_trl_keys(with_checkpointing_name(data, trl_fields), saro_cls, trl_cls, source)
    saro_config = build_dataclass(saro_cls, ours, source)
    trl_kwargs = {**defaults_for(trl_fields), **theirs}
    trl_kwargs.setdefault("output_dir", saro_cls.DEFAULT_OUTPUT_DIR)
    trl_config = build_dataclass(trl_cls, trl_kwargs, source)
    return saro_config, trl_config


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


SETTINGS_FILE = "saro_settings.json"

# Settings that leave the trained weights as they are: where and how often a run logs, saves and evaluates (saro's
# margin evaluation too), and how the result is saved (saro's `merge_lora`). A rerun may change them and resume.
_NOT_WEIGHTS = frozenset(
    """
    output_dir logging_dir logging_strategy logging_steps logging_first_step logging_nan_inf_filter log_level
    log_level_replica log_on_each_node report_to run_name project trackio_space_id trackio_bucket_id
    trackio_static_space_id disable_tqdm skip_memory_metrics save_strategy save_steps save_total_limit
    save_on_each_node save_only_model resume_from_checkpoint push_to_hub hub_model_id hub_strategy hub_token
    hub_private_repo hub_always_push hub_revision eval_strategy eval_steps eval_delay eval_on_start
    eval_accumulation_steps eval_do_concat_batches eval_use_gather_object per_device_eval_batch_size bf16_full_eval
    fp16_full_eval batch_eval_metrics prediction_loss_only include_for_metrics include_num_input_tokens_seen do_eval
    do_predict dataloader_num_workers dataloader_pin_memory dataloader_persistent_workers dataloader_prefetch_factor
    dataloader_multiprocessing_context dataset_num_proc ddp_timeout local_rank torch_empty_cache_steps
    gradient_checkpointing gradient_checkpointing_kwargs activation_checkpointing activation_checkpointing_kwargs
    eval_train_pairs eval_points merge_lora
    """.split()
)
# How long to train: a rerun may lengthen a run (it resumes from the last checkpoint and trains on), not shorten it.
_LENGTH = ("max_steps", "num_train_epochs")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def training_settings(config, trl_config) -> dict:
    """What decides a run's weights, as JSON: saro's and TRL's settings minus those in `_NOT_WEIGHTS`, a local
    model as its real path, and the data files by content (data regenerated at the same path is other data)."""
    ours = {k: v for k, v in to_plain(config).items() if k not in _NOT_WEIGHTS}
    for key in ("data", "eval_data"):
        if ours.get(key) and Path(ours[key]).is_file():
            ours[key] = {"sha256": _sha256(Path(ours[key]))}
    if Path(config.model).is_dir():
        ours["model"] = os.path.realpath(config.model)
    theirs = {k: v for k, v in trl_config.to_dict().items() if k not in _NOT_WEIGHTS}
    return json.loads(json.dumps({"saro": ours, "trl": theirs}, default=str))


def _changed(old: dict, new: dict) -> list[str]:
    """The settings that differ between two runs; a longer run than before is no change (it resumes)."""
    names = [
        key
        for part in ("saro", "trl")
        for key in sorted(set(old.get(part, {})) | set(new[part]))
        if key not in _LENGTH and old.get(part, {}).get(key) != new[part].get(key)
    ]
    before, after = old.get("trl", {}), new["trl"]
    steps_before, steps_after = before.get("max_steps", -1), after.get("max_steps", -1)
    if steps_before > 0 and steps_after > 0:  # max_steps rules; epochs are ignored
        shorter = ["max_steps"] if steps_after < steps_before else []
    elif steps_before <= 0 and steps_after <= 0:
        shorter = ["num_train_epochs"] if after.get("num_train_epochs") < before.get("num_train_epochs") else []
    else:  # steps against epochs: cannot tell which is longer without the data
        shorter = [key for key in _LENGTH if before.get(key) != after.get(key)]
    return list(dict.fromkeys(names + shorter))


def check_output_dir(config, trl_config) -> dict:
    """Refuse an `output_dir` holding a run (a checkpoint or a saved model) trained with other settings, since
    resuming it would keep its weights under the new settings' name; returns this run's settings for
    `record_settings`. Nothing is written.

    Raises:
        ConfigError: the folder cannot be written, or holds a run with other settings (the message names them).
    """
    output_dir = output_folder(trl_config.output_dir, "output_dir", create=False)
    settings = training_settings(config, trl_config)
    path = output_dir / SETTINGS_FILE
    trained = last_checkpoint(output_dir) or (output_dir / "saro_training.json").exists()
    if trained and path.exists():  # a run from before saro recorded settings resumes as it always did
        changed = _changed(json.loads(path.read_text(encoding="utf-8")), settings)
        if changed:
            raise ConfigError(
                f"{output_dir} holds a run with other settings ({', '.join(changed)}): choose another output_dir "
                "or remove it"
            )
    return settings


def record_settings(trl_config, settings: dict) -> None:
    """Write the settings of the run about to train into its `output_dir` (one process writes)."""
    if trl_config.process_index != 0:
        return
    path = Path(trl_config.output_dir) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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


__all__ = [
    "LoraSettings",
    "check_output_dir",
    "cpu_safe_defaults",
    "defaults_for",
    "with_checkpointing_name",
    "last_checkpoint",
    "load_training_config",
    "record_settings",
    "save_final",
]
