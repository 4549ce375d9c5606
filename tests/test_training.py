import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from saro.cli.main import main
from saro.models import load_tokenizer
from saro.records import format_response
from saro.training.sft import count_truncated, load_sft_records


def _sft_file(path, n=12):
    rows = []
    for i in range(n):
        reply = format_response(f"1. Request: item {i}.\n2. Intent: fine.\n5. Decision: answer.", f"Answer {i}.")
        rows.append(
            {
                "id": str(i),
                "messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": reply}],
                "meta": {},
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("lora", [False, True])
def test_rw_training_updates_weights_and_saves_loadable_model(tmp_path, tiny_model, lora):
    data = _sft_file(tmp_path / "rw.jsonl")
    out = tmp_path / "model"
    args = [
        "train",
        "rw",
        f"model={tiny_model}",
        f"data={data}",
        f"output_dir={out}",
        "max_steps=3",
        "learning_rate=0.01",
        "per_device_train_batch_size=4",
        f"lora={str(lora).lower()}",
        "logging_steps=1",
    ]
    assert main(args) == 0
    before = AutoModelForCausalLM.from_pretrained(tiny_model)
    after = AutoModelForCausalLM.from_pretrained(out)  # LoRA merged: a plain model folder
    summary = json.loads((out / "saro_training.json").read_text())
    assert any("loss" in row for row in summary["log_history"])
    changed = [
        name for name, p in after.named_parameters() if not torch.equal(p, dict(before.named_parameters())[name])
    ]
    if lora:  # adapters on every linear layer: all attention and MLP weights move after merging
        assert {n for n, _ in after.named_parameters() if "proj" in n} <= set(changed)
    else:
        assert set(changed) == {n for n, _ in after.named_parameters()}
    assert summary["truncation"]["truncated_examples"] == 0


def test_truncation_is_counted(tmp_path, tiny_model):
    records = load_sft_records(_sft_file(tmp_path / "rw.jsonl", n=4))
    tokenizer = load_tokenizer(tiny_model, padding_side="right")
    counts = count_truncated(records, tokenizer, max_length=10)
    assert counts["truncated_examples"] == 4 and counts["truncated_tokens"] == counts["tokens"] - 40
    assert count_truncated(records, tokenizer, max_length=10_000)["truncated_examples"] == 0


def test_training_resumes_from_last_checkpoint(tmp_path, tiny_model):
    data = _sft_file(tmp_path / "rw.jsonl")
    out = tmp_path / "model"
    common = [
        f"model={tiny_model}",
        f"data={data}",
        f"output_dir={out}",
        "per_device_train_batch_size=4",
        "save_strategy=steps",
        "save_steps=2",
        "logging_steps=1",
    ]
    assert main(["train", "rw", *common, "max_steps=2"]) == 0
    assert (out / "checkpoint-2").is_dir()
    assert main(["train", "rw", *common, "max_steps=4"]) == 0
    summary = json.loads((out / "saro_training.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert [row["step"] for row in summary["log_history"] if "loss" in row] == [1, 2, 3, 4]  # none repeated


def test_bad_sft_record_names_line_and_field(tmp_path, tiny_model, capsys):
    data = tmp_path / "rw.jsonl"
    data.write_text('{"id": "1", "messages": [{"role": "user", "content": "hi"}]}\n')
    assert main(["train", "rw", f"model={tiny_model}", f"data={data}", f"output_dir={tmp_path / 'm'}"]) == 2
    assert (
        capsys.readouterr().err.strip() == f"saro: error: {data}:1: field 'messages' must end with an assistant turn"
    )


def test_checkpointing_takes_the_name_the_installed_transformers_knows(tmp_path):
    """transformers renamed gradient_checkpointing to activation_checkpointing; the GPU machine's 5.17 knew only
    the old name, and `saro train` failed there on an unknown key before any step. Either name, in the defaults or
    a config, reaches TRL under the installed release's name."""
    from dataclasses import fields

    from trl import SFTConfig

    from saro.training.common import (
        checkpointing_name,
        defaults_for,
        load_training_config,
        with_checkpointing_name,
    )
    from saro.training.sft import SFTStageConfig

    new, old = {"activation_checkpointing", "bf16"}, {"gradient_checkpointing", "bf16"}
    assert "activation_checkpointing" in defaults_for(new) and "gradient_checkpointing" not in defaults_for(new)
    assert "gradient_checkpointing" in defaults_for(old) and "activation_checkpointing" not in defaults_for(old)
    given = {"activation_checkpointing": True, "activation_checkpointing_kwargs": {"use_reentrant": False}, "bf16": 1}
    assert with_checkpointing_name(given, old) == {
        "gradient_checkpointing": True,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "bf16": 1,
    }
    assert with_checkpointing_name({"gradient_checkpointing": False}, new) == {"activation_checkpointing": False}

    # a config's old name is not silently overridden by saro's default under the new one
    installed = checkpointing_name({f.name for f in fields(SFTConfig)})
    config = tmp_path / "c.yaml"
    config.write_text("train_rw:\n  gradient_checkpointing: true\n")
    _, trl_config = load_training_config(
        SFTStageConfig, SFTConfig, config, "train_rw", [f"output_dir={tmp_path}"], ("train_rw",)
    )
    assert getattr(trl_config, installed) is True


def test_length_grouped_batches_pad_less_than_random_ones(tmp_path, tiny_model):
    # `train_sampling_strategy: group_by_length` in a train_rw section reaches TRL: batches hold similar lengths.
    from trl import SFTConfig

    from saro.training.common import cpu_safe_defaults
    from saro.training.sft import SFTStageConfig, build_sft_trainer

    rows = []
    for i in range(64):  # answers from 1 to 64 words: random batches of 4 pad most of them
        reply = format_response("1. Request: a list.\n5. Decision: answer.", " ".join(["word"] * (1 + i)))
        messages = [{"role": "user", "content": f"List {i}?"}, {"role": "assistant", "content": reply}]
        rows.append({"id": str(i), "messages": messages})
    data = tmp_path / "rw.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def padded_tokens(strategy):
        settings = {**cpu_safe_defaults(), "output_dir": str(tmp_path / strategy), "max_length": 512}
        args = SFTConfig(**settings, per_device_train_batch_size=4, train_sampling_strategy=strategy)
        trainer, _, truncation = build_sft_trainer(SFTStageConfig(model=tiny_model, data=data), args)
        batches = list(trainer.get_train_dataloader())
        assert sum(len(b["input_ids"]) for b in batches) == 64  # every example, once
        return sum(b["input_ids"].numel() for b in batches), truncation["tokens"]

    grouped, real = padded_tokens("group_by_length")
    shuffled, _ = padded_tokens("random")
    assert real <= grouped < shuffled
