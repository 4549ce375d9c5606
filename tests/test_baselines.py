"""The safety-SFT and safety-DPO baselines: data built from RW records on the tiny model, and DPO trained on it."""

import json

from conftest import RW_ANSWER, RW_REFUSAL

from saro.cli.main import main
from saro.records import THINK_OPEN, split_response
from saro.refusal import is_refusal
from saro.synthesis.baselines import BaselineDataConfig, build_baseline_data


def _rw_file(path, harmful: int, benign: int):
    rows = []
    for i in range(harmful + benign):
        kind = ("harmful", "jailbreak")[i % 2] if i < harmful else "borderline_benign"
        text = RW_REFUSAL if i < harmful else RW_ANSWER
        prompt = f"How do I kill thing number {i}?"
        meta = {"prompt_id": f"p{i}", "source": "seeds", "kind": kind, "category": "S1" if i < harmful else "none"}
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]
        rows.append({"id": f"r{i}", "messages": messages, "meta": meta})
        if i == 0:  # a second sample of the same prompt: baselines see each prompt once
            rows.append({"id": "r0b", "messages": messages, "meta": meta})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path, tiny_model, harmful: int, benign: int, **settings) -> BaselineDataConfig:
    return BaselineDataConfig(
        rw_data=_rw_file(tmp_path / "rw.jsonl", harmful=harmful, benign=benign),
        model=str(tiny_model),
        sft_output=tmp_path / "sft.jsonl",
        dpo_output=tmp_path / "dpo.jsonl",
        **settings,
    )


def test_baseline_data_drops_reasoning_and_pairs_both_sides(tmp_path, tiny_model):
    # temperature 1.0: the random-init model repeats one token when greedy
    config = _config(tmp_path, tiny_model, 12, 10, max_pairs=8, max_new_tokens=24, temperature=1.0)
    counts = build_baseline_data(config)
    sft = [json.loads(line) for line in config.sft_output.read_text().splitlines()]
    assert len(sft) == counts["sft_records"] == 22  # one per prompt
    answers = {r["meta"]["prompt_id"]: r["messages"][-1]["content"] for r in sft}
    assert all(THINK_OPEN not in a for a in answers.values())
    assert answers["p0"] == split_response(RW_REFUSAL)[1] and answers["p20"] == split_response(RW_ANSWER)[1]
    assert {r["meta"]["baseline"] for r in sft} == {"safety-sft"}

    pairs = [json.loads(line) for line in config.dpo_output.read_text().splitlines()]
    harmful = [p for p in pairs if p["meta"]["kind"] in ("harmful", "jailbreak")]
    benign = [p for p in pairs if p["meta"]["kind"] == "borderline_benign"]
    assert len(harmful) == len(benign) == 4 == counts["dpo_pairs"] // 2
    for pair in harmful:  # the refusal over the base model's own compliance
        assert is_refusal(pair["chosen"]) and not is_refusal(pair["rejected"]) and pair["rejected"].strip()
        assert pair["meta"]["rejected_by"] == f"base:{tiny_model}"
    for pair in benign:  # the answer over a needless refusal
        assert not is_refusal(pair["chosen"]) and is_refusal(pair["rejected"])
    assert all(p["prompt"].endswith("<|im_start|>assistant\n") and THINK_OPEN not in p["chosen"] for p in pairs)

    out = tmp_path / "safety-dpo-model"
    args = [f"model={tiny_model}", f"data={config.dpo_output}", "eval_data=null", f"output_dir={out}"]
    args += ["pair_types=[op]", "max_steps=2", "per_device_train_batch_size=4", "eval_train_pairs=4", "eval_points=1"]
    assert main(["train", "safety-dpo", *args]) == 0
    info = json.loads((out / "saro_training.json").read_text())
    assert info["stage"] == "safety-dpo"
    trained = info["pairs"]
    assert trained["borderline_benign/op"] == trained.get("harmful/op", 0) + trained.get("jailbreak/op", 0) == 4


def test_a_base_model_that_refuses_everything_gives_an_error_not_empty_pairs(tmp_path, tiny_model, monkeypatch):
    import pytest

    import saro.synthesis.baselines as baselines
    from saro.errors import DataError
    from saro.generation import Generation

    refusing = lambda model, tokenizer, conversations, *a, **k: [  # noqa: E731
        Generation("I can't help with that.", 6, False) for _ in conversations
    ]
    monkeypatch.setattr(baselines, "generate_batched", refusing)
    config = _config(tmp_path, tiny_model, 4, 4, max_pairs=4)
    with pytest.raises(DataError, match="no safety-DPO pairs"):
        build_baseline_data(config)
    assert not config.dpo_output.exists()
