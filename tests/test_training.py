import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from saro.cli.main import main
from saro.errors import DataError
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


def _trl_processed(records, tokenizer, tmp_path):
    """The dataset as TRL itself tokenizes the prompt/completion pairs saro hands it (no untrained prefix)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from saro.models import load_model

    pairs = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records])
    args = SFTConfig(output_dir=str(tmp_path / "trl"), bf16=False, max_length=None, report_to=[])
    model = load_model(tokenizer.name_or_path, place=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=pairs, processing_class=tokenizer)
    return trainer.train_dataset


def test_untrained_prefix_is_context_without_loss(tmp_path, tiny_model):
    """A composed misreading before its correction: the tokens of the prompt and of the prefix get no loss, the rest
    of the turn does; a record without the prefix gets exactly the labels TRL's own prompt/completion path gives."""
    from saro.training.sft import tokenize_with_labels

    path = _sft_file(tmp_path / "rw.jsonl", n=3)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    reply = rows[0]["messages"][1]["content"]
    rows[0]["untrained_prefix"] = reply[: reply.index("5. Decision")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = load_sft_records(path)
    tokenizer = load_tokenizer(tiny_model, padding_side="right")
    ours = [tokenize_with_labels(r, tokenizer) for r in records]
    trl = _trl_processed(records, tokenizer, tmp_path)
    for mine, theirs in zip(ours[1:], list(trl)[1:]):
        assert mine["input_ids"] == theirs["input_ids"]
        assert mine["labels"] == theirs["labels"]
    masked, plain = ours[0], list(trl)[0]
    assert masked["input_ids"] == plain["input_ids"]
    trained = tokenizer.decode([t for t in masked["labels"] if t != -100])
    assert trained.startswith("5. Decision: answer.") and "Answer 0." in trained and "Intent" not in trained
    assert sum(t != -100 for t in masked["labels"]) < sum(t != -100 for t in plain["labels"])


def test_untrained_prefix_must_start_the_turn(tmp_path):
    path = _sft_file(tmp_path / "rw.jsonl", n=2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["untrained_prefix"] = "not the start"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"{path}:2: field 'untrained_prefix' must be text"):
        load_sft_records(path)


def test_step_loss_weights_move_the_loss_to_named_steps_and_keep_its_total(tmp_path, tiny_model):
    """Intent tokens weigh 4x the rest of the turn, the prompt nothing, and the trained tokens still average 1;
    a step the record lacks changes nothing."""
    from saro.training.sft import step_loss_weights, step_spans, token_steps, tokenize_with_labels

    records = load_sft_records(_sft_file(tmp_path / "rw.jsonl", n=2))
    reply = records[0]["messages"][-1]["content"]
    assert [name for name, _, _ in step_spans(reply)] == ["request", "intent", "decision", "answer"]
    assert all(reply[a:b].lstrip().startswith(("1.", "2.", "5.", "Answer")) for _, a, b in step_spans(reply))
    tokenizer = load_tokenizer(tiny_model, padding_side="right")
    row = tokenize_with_labels(records[0], tokenizer)
    steps = token_steps(records[0], tokenizer, row["input_ids"], row["labels"])
    weights = step_loss_weights(steps, {"intent": 4.0})
    trained = [w for w, label in zip(weights, row["labels"]) if label != -100]
    assert all(w == 0 for w, label in zip(weights, row["labels"]) if label == -100)
    assert sum(trained) / len(trained) == pytest.approx(1.0)
    heavy = [t for t, w in zip(row["input_ids"], weights) if w == max(trained)]
    assert "Intent: fine." in tokenizer.decode(heavy) and "Answer" not in tokenizer.decode(heavy)
    assert max(trained) / min(trained) == pytest.approx(4.0)
    same = step_loss_weights(steps, {"policy": 4.0})
    assert set(same) == {0.0, 1.0}


def test_weighted_loss_is_trls_loss_with_each_token_weighted(tmp_path, tiny_model):
    """On one batch: at weight 1 the weighted trainer's loss is TRL's own on the same tokens; at weight 5 on the
    intent step it is the weighted mean of the per-token losses computed by hand from the logits."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from saro.training.sft import step_loss_weights, token_steps, tokenize_with_labels, weighted_sft_trainer

    records = load_sft_records(_sft_file(tmp_path / "rw.jsonl", n=4))
    tokenizer = load_tokenizer(tiny_model, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    rows = [tokenize_with_labels(r, tokenizer) for r in records]

    def loss(trainer_class, weights=None):
        data = [
            {
                **row,
                "loss_weights": step_loss_weights(token_steps(r, tokenizer, row["input_ids"], row["labels"]), weights),
            }
            if weights
            else row
            for r, row in zip(records, rows)
        ]
        args = SFTConfig(output_dir=str(tmp_path / "trl"), bf16=False, report_to=[], max_length=None)
        trainer = trainer_class(
            model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tokenizer
        )
        batch = trainer.data_collator(list(trainer.train_dataset))
        with torch.no_grad():
            return trainer.compute_loss(trainer.model, dict(batch)).item(), batch

    plain, _ = loss(SFTTrainer)
    unit, _ = loss(weighted_sft_trainer(), {"intent": 1.0})
    assert unit == pytest.approx(plain, rel=1e-5)
    heavy, batch = loss(weighted_sft_trainer(), {"intent": 5.0})
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    nll = -torch.log_softmax(logits.float(), -1).gather(2, labels.clamp(min=0)[..., None])[..., 0]
    by_hand = (nll * batch["loss_weights"][:, 1:] * (labels != -100)).sum() / (labels != -100).sum()
    assert heavy == pytest.approx(by_hand.item(), rel=1e-4)
    assert abs(heavy - plain) > 1e-3


def test_rw_training_with_step_loss_weights(tmp_path, tiny_model):
    """Through the CLI: the intent step weighted 5x trains, and trains other weights than the plain loss."""

    def train(name, *extra):
        out = tmp_path / name
        args = ["train", "rw", f"model={tiny_model}", f"data={data}", f"output_dir={out}", "max_steps=2"]
        assert main([*args, "learning_rate=0.01", "per_device_train_batch_size=4", *extra]) == 0
        return dict(AutoModelForCausalLM.from_pretrained(out).named_parameters())

    data = _sft_file(tmp_path / "rw.jsonl", n=8)
    plain, heavy = train("plain"), train("heavy", "step_loss_weights={intent: 5}")
    assert not all(torch.allclose(plain[n], heavy[n], atol=1e-4) for n in plain)


@pytest.mark.parametrize(
    "weights, message",
    [("{intnet: 3}", "no record has a step named 'intnet'"), ("{intent: -1}", "weight of 'intent' must be >= 0")],
)
def test_step_loss_weights_that_would_do_nothing_or_harm_are_refused(tmp_path, tiny_model, capsys, weights, message):
    data = _sft_file(tmp_path / "rw.jsonl", n=4)
    out = tmp_path / "model"
    args = ["train", "rw", f"model={tiny_model}", f"data={data}", f"output_dir={out}", "max_steps=1"]
    assert main([*args, f"step_loss_weights={weights}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (out / "saro_training.json").exists()
