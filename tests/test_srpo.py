"""SRPO on the tiny model: DPO training through the wrapper, and `saro run` killed during SRPO synthesis."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from saro.cli.main import main
from saro.config import load_config
from saro.errors import ConfigError, DataError
from saro.models import load_tokenizer
from saro.training.common import load_training_config
from saro.training.dpo import DPOStageConfig, build_trainer, fit_max_length, load_pairs, pair_lengths

ANSWER = "<think>\n1. Request: q.\n2. Intent: harmless.\n3. Decision: answer.\n</think>\n\n"


def _pairs_file(path: Path, n: int, long_every: int = 0) -> Path:
    rows = []
    for i in range(n):
        prompt = f"<|im_start|>user\nQuestion {i}?<|im_end|>\n<|im_start|>assistant\n<think>\n1. Request: q.\n"
        chosen = f"2. Intent: harmless.\n3. Decision: answer.\n</think>\n\nAnswer {i}."
        rejected = "2. Intent: harmful.\n3. Decision: refuse.\n</think>\n\nI can't help." + (
            " Sorry." * 40 if long_every and i % long_every == 0 else ""
        )
        kind = ("pp", "op")[i % 2]
        meta = {"prompt_id": str(i), "kind": "borderline_benign", "pair_type": kind}
        rows.append({"id": f"p{i}", "prompt": prompt, "chosen": chosen, "rejected": rejected, "meta": meta})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _dpo_args(tiny_model, tmp_path, *extra):
    return [
        f"model={tiny_model}",
        f"data={_pairs_file(tmp_path / 'pairs.jsonl', 12, long_every=4)}",
        f"eval_data={_pairs_file(tmp_path / 'heldout.jsonl', 4)}",
        f"output_dir={tmp_path / 'srpo-model'}",
        "per_device_train_batch_size=4",
        "per_device_eval_batch_size=4",
        "learning_rate=0.01",
        "eval_train_pairs=4",
        "logging_steps=1",
        *extra,
    ]


def test_trainer_sees_each_completion_end_with_one_end_token(tmp_path, tiny_model):
    config, trl_config = load_training_config(
        DPOStageConfig, __import__("trl").DPOConfig, None, "train_srpo", _dpo_args(tiny_model, tmp_path), ()
    )
    trainer, info = build_trainer(config, trl_config)
    eos = trainer.processing_class.eos_token_id
    for row in trainer.train_dataset:
        for side in ("chosen_ids", "rejected_ids"):
            assert row[side][-1] == eos and row[side].count(eos) == 1
    assert info["pairs"] == {"borderline_benign/op": 6, "borderline_benign/pp": 6}


def test_max_length_follows_the_data_and_truncation_is_counted():
    assert fit_max_length([10, 30, 20], None) == (30, {**fit_max_length([10, 30, 20], None)[1], "truncated_pairs": 0})
    length, report = fit_max_length([10, 30, 20, 50], 25)
    assert length == 25 and report["truncated_pairs"] == 2 and report["truncated_tokens"] == 5 + 25


def test_dpo_trains_plots_margins_and_reports_truncation(tmp_path, tiny_model):
    args = _dpo_args(tiny_model, tmp_path, "max_steps=3", "eval_points=1")
    pairs = load_pairs(tmp_path / "pairs.jsonl") + load_pairs(tmp_path / "heldout.jsonl")
    lengths = pair_lengths(pairs, load_tokenizer(tiny_model))
    cap = max(n for n, p in zip(lengths, pairs) if "Sorry" not in p["rejected"])
    assert main(["train", "srpo", *args, f"max_length={cap}"]) == 0
    out = tmp_path / "srpo-model"
    info = json.loads((out / "saro_training.json").read_text())
    report = info["truncation"]
    assert report["max_length"] == cap and report["truncated_pairs"] == 3  # the 3 long rejected sides of 16
    assert (out / "margins.png").stat().st_size > 10_000
    assert {"eval: heldout", "eval: train", "train (batches)"} <= set(info["margins"])
    assert info["margins"]["eval: heldout"][-1]["step"] == 3
    assert info["start"]["eval_heldout_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 0
    before, after = AutoModelForCausalLM.from_pretrained(tiny_model), AutoModelForCausalLM.from_pretrained(out)
    assert not torch.equal(before.lm_head.weight, after.lm_head.weight)


def test_pair_type_ablation_and_bad_pairs(tmp_path):
    data = _pairs_file(tmp_path / "pairs.jsonl", 6)
    assert {p["meta"]["pair_type"] for p in load_pairs(data, ["pp"])} == {"pp"}
    lines = data.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["chosen"] = ""
    lines[2] = json.dumps(bad)
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=r"pairs.jsonl:3: field 'chosen'"):
        load_pairs(data)
    with pytest.raises(ConfigError, match="pair_types: expected a non-empty subset"):
        load_config(DPOStageConfig, None, "train_srpo", ["pair_types=[xx]"])


def test_chosen_from_keeps_pairs_whose_chosen_side_the_model_wrote(tmp_path):
    """By default the offline composer's chosen sides are left out of training (on validation, pairs the model
    wrote itself improved on RW where composed ones traded harmful compliance for answers: dev log, session 3);
    pairs that do not say where their chosen side came from (the baselines') always pass."""
    rows = [json.loads(line) for line in _pairs_file(tmp_path / "pairs.jsonl", 8).read_text().splitlines()]
    sources = ["sibling", "composed", "trace", "teacher", "composed", None, "sibling", "composed"]
    for row, source in zip(rows, sources):
        if source:
            row["meta"]["chosen_from"] = source
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    default = DPOStageConfig().chosen_from
    kept = [p["meta"].get("chosen_from") for p in load_pairs(data, None, default)]
    assert kept == ["sibling", "trace", "teacher", None, "sibling"]
    assert len(load_pairs(data, None, ["composed"])) == 4 and len(load_pairs(data)) == 8
    with pytest.raises(DataError, match="chosen side from"):
        load_pairs(data, ["pp"], ["teacher"])  # the one teacher pair is an op pair
    with pytest.raises(ConfigError, match="chosen_from: expected a non-empty subset"):
        load_config(DPOStageConfig, None, "train_srpo", ["chosen_from=[model]"])


def _run_config(tmp_path: Path, tiny_model: Path) -> Path:
    run = tmp_path / "run"
    config = f"""
synth_rw:
  model: {tiny_model}
  output: {run}/rw.jsonl
  samples: 1
  batch_size: 16
  teacher: {{kind: offline, answer_max_tokens: 6}}
  prompts:
    sources: [{{name: seeds}}]
    per_kind: {{harmful: 16, borderline_benign: 16, general: 4}}
    jailbreak_count: 4
    heldout_per_kind: {{harmful: 2, borderline_benign: 2}}
    heldout_per_group: 1
train_rw:
  model: {tiny_model}
  data: {run}/rw.jsonl
  output_dir: {run}/rw-model
  max_steps: 2
  per_device_train_batch_size: 4
synth_srpo:
  model: {run}/rw-model
  output: {run}/srpo.jsonl
  prompts_file: {run}/prompts.train.jsonl
  heldout_prompts_file: {run}/prompts.heldout.jsonl
  samples: 2
  max_new_tokens: 40
  batch_size: 2
  answer_model: {tiny_model}
  teacher: {{kind: offline, answer_max_tokens: 6}}
train_srpo:
  model: {run}/rw-model
  data: {run}/srpo.jsonl
  eval_data: {run}/srpo.heldout.jsonl
  output_dir: {run}/srpo-model
  chosen_from: [sibling, trace, teacher, composed]  # a random-init model writes no right sample to choose
  max_steps: 2
  per_device_train_batch_size: 2
  eval_train_pairs: 2
  eval_points: 1
"""
    path = tmp_path / "run.yaml"
    path.write_text(config)
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_killed_run_resumes_srpo_without_redoing_rw_or_duplicating_pairs(tmp_path, tiny_model):
    config = _run_config(tmp_path, tiny_model)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "saro.cli.main", "run", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    finished = run / "srpo.prompts.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and len(_lines(finished)) < 2:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    prompts = _lines(run / "prompts.train.jsonl")
    done_before = len(_lines(finished))
    assert 2 <= done_before < len(prompts), "the kill must land during SRPO synthesis"
    rw_trained = (run / "rw-model" / "saro_training.json").stat().st_mtime

    result = subprocess.run(
        [sys.executable, "-m", "saro.cli.main", "run", str(config)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "synth_rw: done earlier with this config, skipped" in result.stdout
    assert "train_rw: done earlier with this config, skipped" in result.stdout
    assert (run / "rw-model" / "saro_training.json").stat().st_mtime == rw_trained
    assert len(_lines(finished)) == len(prompts)

    resumed = _lines(run / "srpo.jsonl")
    assert resumed and len({p["id"] for p in resumed}) == len(resumed)
    fresh = tmp_path / "fresh" / "srpo.jsonl"  # the same synthesis, uninterrupted
    assert main(["synth", "srpo", "--config", str(config), f"output={fresh}"]) == 0
    assert sorted(p["id"] for p in _lines(fresh)) == sorted(p["id"] for p in resumed)
    assert (run / "srpo-model" / "margins.png").exists()

    again = subprocess.run(
        [sys.executable, "-m", "saro.cli.main", "run", str(config)], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stdout.count("done earlier with this config, skipped") == 4
    (run / "srpo.jsonl.manifest.json").unlink()  # as if SRPO synthesis had not finished: it and training rerun
    redo = subprocess.run(
        [sys.executable, "-m", "saro.cli.main", "run", str(config)], env=env, capture_output=True, text=True
    )
    assert redo.returncode == 0 and "train_srpo: outputs predate a rerun of synth_srpo, deleted" in redo.stdout
    assert "train_srpo: finished" in redo.stdout and sorted(p["id"] for p in _lines(run / "srpo.jsonl")) == sorted(
        p["id"] for p in resumed
    )
    changed = subprocess.run(
        [sys.executable, "-m", "saro.cli.main", "run", str(config), "synth_srpo.samples=3"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert changed.returncode == 2 and "stage synth_srpo changed" in changed.stderr


def test_synthesis_from_given_traces_writes_pairs_with_the_right_properties(tmp_path, tiny_model):
    """Traces placed in the traces file (as if sampled elsewhere) are judged and paired with the tiny model's
    chat template; every pair shares its prefix, reflects earlier on the chosen side and ends in an answer."""
    from test_preference import BENIGN, BENIGN_OK, BENIGN_SUSPICIOUS, EARLY, HARMFUL, LATE, NEVER

    from saro.preference.judge import judge_trace
    from saro.records import PromptRecord, split_response

    prompts = tmp_path / "prompts.jsonl"
    records = [HARMFUL, BENIGN, PromptRecord("h2", "Explain how to kill my neighbour.", "harmful", "S1", "seeds")]
    prompts.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    traces = {"h1": [LATE, NEVER, EARLY], "b1": [BENIGN_SUSPICIOUS, BENIGN_OK], "h2": [NEVER, NEVER, LATE]}
    lines = [
        {
            "id": key,
            "kind": "x",
            "traces": [{"sample": i, "text": t, "tokens": 9, "truncated": False} for i, t in enumerate(texts)],
        }
        for key, texts in traces.items()
    ]
    out = tmp_path / "srpo.jsonl"
    (tmp_path / "srpo.traces.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["synth", "srpo", f"model={tiny_model}", f"output={out}", f"prompts_file={prompts}"]
    assert main([*args, "heldout_prompts_file=null", "samples=3", f"answer_model={tiny_model}"]) == 0

    pairs = _lines(out)
    template = load_tokenizer(tiny_model).apply_chat_template(
        [{"role": "user", "content": HARMFUL.prompt}], tokenize=False, add_generation_prompt=True
    )
    assert (
        len({p["id"] for p in pairs}) == len(pairs) == len({(p["prompt"], p["chosen"], p["rejected"]) for p in pairs})
    )
    assert {p["meta"]["pair_type"] for p in pairs} == {"pp", "op"}
    assert any(p["prompt"].startswith(template) for p in pairs)
    for pair in pairs:
        meta = pair["meta"]
        kind = meta["kind"]
        assert pair["prompt"].endswith(meta["assistant_prefix"])
        for side in ("chosen", "rejected"):
            assert split_response(meta["assistant_prefix"] + pair[side])[1]  # a final answer after the reasoning
            assert "<|im_end|>" not in pair[side]
        if meta["pair_type"] == "pp" and kind == "harmful":
            chosen = judge_trace(kind, meta["assistant_prefix"] + pair["chosen"]).reflect_step
            rejected = judge_trace(kind, meta["assistant_prefix"] + pair["rejected"]).reflect_step
            assert chosen == meta["step"] and (rejected is None or rejected > chosen)
    stats = json.loads(out.with_name("srpo.jsonl.manifest.json").read_text())["stats"]
    assert stats["all"]["pp"] + stats["all"]["op"] == len(pairs) and stats["harmful"]["chosen_step"] == 2.0


def test_sub_sample_balances_refusing_and_answering_sides():
    from saro.training.dpo import balanced_subset

    pairs = [{"meta": {"kind": "harmful", "pair_type": "pp"}, "id": f"h{i}"} for i in range(5)]
    pairs += [
        {"meta": {"kind": k, "pair_type": t}, "id": f"{k}{t}{i}"}
        for k in ("borderline_benign", "general")
        for t in ("pp", "op")
        for i in range(10)
    ]
    chosen = balanced_subset(pairs, 40, seed=0)
    sides = [p["meta"]["kind"] == "harmful" for p in chosen]
    assert sum(sides) == 5 and len(chosen) == 10 and len({p["id"] for p in chosen}) == 10
    groups = {(p["meta"]["kind"], p["meta"]["pair_type"]) for p in chosen if p["meta"]["kind"] != "harmful"}
    assert len(groups) == 4  # round-robin reaches every answering group
    assert len(balanced_subset(pairs, 12, seed=0, balance_sides=False)) == 12
    assert balanced_subset(pairs, 40, seed=1) != chosen  # the seed picks which pairs


def test_synthesis_samples_traces_from_an_endpoint(tmp_path, tiny_model, scripted_server):
    """With `endpoint`, traces come from an OpenAI-compatible server (vLLM serving the RW model, say): one request
    per prompt and sample, the sample's seed sent along, a reply cut by max_tokens kept as truncated."""
    from test_preference import BENIGN, BENIGN_OK, BENIGN_SUSPICIOUS, EARLY, HARMFUL, LATE

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in (HARMFUL, BENIGN)))
    replies = {(HARMFUL.prompt, 0): (LATE, "length"), (HARMFUL.prompt, 1): EARLY}
    replies |= {(BENIGN.prompt, 0): BENIGN_SUSPICIOUS, (BENIGN.prompt, 1): BENIGN_OK}
    seen = []

    def reply(body):
        seen.append((body["messages"][-1]["content"], body["seed"], body["temperature"]))
        return replies[(body["messages"][-1]["content"], body["seed"])]

    scripted_server.reply = reply
    out = tmp_path / "srpo.jsonl"
    args = ["synth", "srpo", f"model={tiny_model}", f"output={out}", f"prompts_file={prompts}", "samples=2"]
    args += [
        "heldout_prompts_file=null",
        f"answer_model={tiny_model}",
        f"endpoint.base_url={scripted_server.base_url}",
    ]
    assert main(args) == 0
    assert sorted(seen) == sorted(
        [(HARMFUL.prompt, 0, 0.0), (HARMFUL.prompt, 1, 1.0), (BENIGN.prompt, 0, 0.0), (BENIGN.prompt, 1, 1.0)]
    )
    traces = {line["id"]: line["traces"] for line in _lines(tmp_path / "srpo.traces.jsonl")}
    assert [t["text"] for t in traces["h1"]] == [LATE, EARLY] and [t["truncated"] for t in traces["h1"]] == [
        True,
        False,
    ]
    pairs = _lines(out)
    assert any(p["meta"]["kind"] == "harmful" and p["meta"]["pair_type"] == "pp" for p in pairs)


def test_srpo_rounds_sample_and_start_from_the_previous_round(tmp_path, tiny_model):
    config = _run_config(tmp_path, tiny_model)
    # A recipe may also hold the comparison's sections (make full, then make compare RECIPE=full): run skips them.
    recipe = config.read_text().replace("  samples: 2\n", "  samples: 2\n  rounds: 2\n")
    config.write_text(recipe + "report:\n  results: [run/eval]\nsweep:\n  output: run/sweep\n")
    run = tmp_path / "run"
    assert main(["run", str(config)]) == 0
    first, second = run / "srpo-model", run / "srpo-model-r2"
    round2 = json.loads((second / "saro_training.json").read_text())
    assert round2["config"]["model"] == str(first) and round2["config"]["data"] == str(run / "srpo.r2.jsonl")
    manifest = json.loads((run / "srpo.r2.jsonl.manifest.json").read_text())
    assert manifest["config"]["model"] == str(first)  # round 2's traces come from the round-1 model
    assert _lines(run / "srpo.r2.traces.jsonl") and (run / "srpo.r2.heldout.jsonl").exists()
    state = json.loads((run / "saro-run.json").read_text())
    assert {name for name in state if state[name]["done"]} == {
        "synth_rw",
        "train_rw",
        "synth_srpo",
        "train_srpo",
        "synth_srpo_r2",
        "train_srpo_r2",
    }


def test_raising_samples_draws_only_the_missing_traces(tmp_path, tiny_model):
    """A traces cache from a run with fewer samples is extended, not redrawn: the cached traces stay as they were,
    the new ones are appended as a later line for the same prompt, and pairs are built from all of them."""
    from test_preference import BENIGN, EARLY, HARMFUL, LATE

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in (HARMFUL, BENIGN)))
    cached = [{"sample": i, "text": t, "tokens": 9, "truncated": False} for i, t in enumerate([LATE, EARLY])]
    traces_file = tmp_path / "srpo.traces.jsonl"
    traces_file.write_text(json.dumps({"id": HARMFUL.id, "kind": "harmful", "traces": cached}) + "\n")
    out = tmp_path / "srpo.jsonl"
    args = ["synth", "srpo", f"model={tiny_model}", f"output={out}", f"prompts_file={prompts}", "max_new_tokens=8"]
    assert main([*args, "heldout_prompts_file=null", "samples=3", f"answer_model={tiny_model}"]) == 0

    lines = _lines(traces_file)
    latest = {line["id"]: line["traces"] for line in lines}
    assert lines[0]["traces"] == cached  # nothing already written is rewritten
    assert latest[HARMFUL.id][:2] == cached and [t["sample"] for t in latest[HARMFUL.id]] == [0, 1, 2]
    assert [t["sample"] for t in latest[BENIGN.id]] == [0, 1, 2]
    summary = {line["id"]: line for line in _lines(tmp_path / "srpo.prompts.jsonl")}
    assert len(summary[HARMFUL.id]["traces"]) == 3


def test_synthesis_that_makes_no_pair_is_an_error_not_a_finished_stage(tmp_path, tiny_model, capsys):
    """Every sample right and on time: nothing to train on, said in one line (exit 2), and nothing reported done."""
    from test_preference import BENIGN, BENIGN_OK, EARLY, HARMFUL

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in (HARMFUL, BENIGN)))
    traces = {HARMFUL.id: [EARLY, EARLY], BENIGN.id: [BENIGN_OK, BENIGN_OK]}
    lines = [
        {
            "id": key,
            "kind": "x",
            "traces": [{"sample": i, "text": t, "tokens": 9, "truncated": False} for i, t in enumerate(v)],
        }
        for key, v in traces.items()
    ]
    (tmp_path / "srpo.traces.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "srpo.jsonl"
    args = ["synth", "srpo", f"model={tiny_model}", f"output={out}", f"prompts_file={prompts}", "samples=2"]
    assert main([*args, "heldout_prompts_file=null", f"answer_model={tiny_model}"]) == 2
    error = capsys.readouterr().err
    assert "no pairs from 2 prompts" in error and error.count("saro: error") == 1
    assert not out.with_name("srpo.jsonl.manifest.json").exists()
