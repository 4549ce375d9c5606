"""The prepared GPU check (benchmarks/gpu_check.py) runs its whole path on CPU, and refuses to report nothing."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_without_cuda_says_so_in_one_line_and_exits_2(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "no CUDA" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()


def test_gpu_check_smoke_runs_training_and_generation_through_saro(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    for stage in ("rw_sft", "srpo_dpo"):
        assert results[stage]["tokens"] > 0 and results[stage]["tokens_per_s"] > 0
        assert (tmp_path / stage.split("_")[0] / "saro_training.json").exists()
    assert results["generation"]["new_tokens"] > 0


def test_hidden_requests_places_every_validation_request_among_ordinary_ones(tmp_path):
    from saro.records import read_prompts, write_jsonl
    from saro.sources import SourceSpec, load_source

    seeds = load_source(SourceSpec("seeds"))
    chosen = [r for k in ("harmful", "borderline_benign", "general") for r in [s for s in seeds if s.kind == k][:6]]
    validation, output = tmp_path / "prompts.validation.jsonl", tmp_path / "hidden.jsonl"
    write_jsonl(validation, (r.to_dict() for r in chosen))
    script = SCRIPT.with_name("hidden_requests.py")
    command = [sys.executable, str(script), str(validation), str(output), "--family", "composed"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    hidden = read_prompts(output)
    ordinary = {r.prompt.strip() for r in chosen if r.kind == "general"}
    kinds = {r.id: r.kind for r in chosen}
    assert sorted(r.meta["inner_id"] for r in hidden) == sorted(r.id for r in chosen if r.kind != "general")
    for record in hidden:
        assert record.meta["inner_prompt"].strip() in record.prompt
        decoys = [t for t in record.meta["tasks"] if t != record.meta["inner_prompt"].strip()]
        assert 1 <= len(decoys) <= 3 and set(decoys) <= ordinary
        inner_kind = kinds[record.meta["inner_id"]]
        assert (record.kind, record.template_family) == (
            ("jailbreak", "multi_task") if inner_kind == "harmful" else (inner_kind, None)
        )

    # the default shape: the validation-only family, the same template around every request
    done = subprocess.run(command[:-2], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wrapped = read_prompts(output)
    assert {r.template_family for r in wrapped} == {"decoy_tasks"} and len(wrapped) == len(hidden)
    assert Counter(r.kind for r in wrapped) == {"jailbreak": 6, "borderline_benign": 6}
    assert all(r.prompt.startswith("A few tasks for you.") and r.meta["inner_prompt"] in r.prompt for r in wrapped)

    write_jsonl(validation, (r.to_dict() for r in chosen if r.kind != "general"))  # nothing to hide among
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and str(validation) in done.stderr


def test_ood_requests_leave_out_every_split_and_reported_prompt_and_spread_over_areas(tmp_path):
    from saro.records import read_prompts, write_jsonl
    from saro.sources.benign import load_coconot
    from saro.sources.harmful import load_donotanswer
    from saro.sources.overlap import normalize

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    script = SCRIPT.with_name("ood_requests.py")
    harmful = [r for r in load_donotanswer(data / "donotanswer") if r.meta["risk_area"] == "malicious_uses"]
    lookalikes = load_coconot(data / "coconot" / "coconot_pref.jsonl")
    run, output = tmp_path / "run", tmp_path / "ood.jsonl"
    run.mkdir()
    # a run whose splits already hold some of both sources: none of them may come back
    used = harmful[:150] + lookalikes[::5]
    write_jsonl(run / "prompts.train.jsonl", (r.to_dict() for r in used[::2]))
    write_jsonl(run / "prompts.validation.jsonl", (r.to_dict() for r in used[1::2]))
    done = subprocess.run(
        [sys.executable, str(script), str(run), str(output), "--per-kind", "30"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    made = read_prompts(output)
    assert Counter(r.kind for r in made) == {"harmful": 30, "borderline_benign": 30}
    assert not {normalize(r.prompt) for r in made} & {normalize(r.prompt) for r in used}
    areas = Counter(r.meta["risk_area"] for r in made if r.kind == "harmful")
    assert set(areas) == {
        "discrimination_exclusion_toxicity_hateful_offensive",
        "information_hazard",
        "malicious_uses",
    }
    assert max(areas.values()) - min(areas.values()) <= 1  # drawn in turn across areas
    assert len(Counter(r.meta["subcategory"] for r in made if r.kind == "borderline_benign")) == 4

    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "empty"), str(output)], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no prompts" in done.stderr


def test_unmet_requirements_names_the_pin_an_installed_package_misses():
    sys.path.insert(0, str(SCRIPT.parent))
    from importlib.metadata import version

    from gpu_check import unmet_requirements

    assert unmet_requirements(["trl"]) == []  # this environment installed TRL with its dependencies
    too_old = {"transformers": "1.0.0"}
    unmet = unmet_requirements(["trl"], version_of=lambda name: too_old.get(name) or version(name))
    assert len(unmet) == 1 and unmet[0].startswith("trl needs transformers") and "(has 1.0.0)" in unmet[0]


def test_step_loss_splits_the_training_loss_over_the_steps_exactly(tmp_path, tiny_model):
    """Summed over steps, the per-step losses are the model's own loss on the trained tokens; bad input is one line."""
    import torch
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(SCRIPT.parent))
    from step_loss import step_losses

    from saro.models import load_tokenizer
    from saro.records import format_response
    from saro.training.sft import load_sft_records, tokenize_with_labels

    rows = [
        {
            "id": str(i),
            "messages": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": format_response(f"1. Request: q {i}.\n2. Intent: fine.", "Sure.")},
            ],
            "meta": {"kind": kind},
        }
        for i, kind in enumerate(["harmful", "general", "general"])
    ]
    data = tmp_path / "rw.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = load_sft_records(data)
    tokenizer = load_tokenizer(tiny_model, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    totals = step_losses(model, tokenizer, records, [r["meta"]["kind"] for r in rows])
    assert {step for kind, step in totals} == {"request", "intent", "answer", "other"}  # other: the think markers
    summed = sum(loss for (kind, _), (loss, _) in totals.items() if kind == "all")
    tokens = sum(n for (kind, _), (_, n) in totals.items() if kind == "all")
    expected_sum, expected_tokens = 0.0, 0
    for record in records:
        row = tokenize_with_labels(record, tokenizer)
        with torch.no_grad():
            out = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]]))
        n = sum(label != -100 for label in row["labels"][1:])
        expected_sum, expected_tokens = expected_sum + out.loss.item() * n, expected_tokens + n
    assert tokens == expected_tokens and abs(summed - expected_sum) < 1e-3 * expected_tokens
    assert totals[("general", "intent")][1] == 2 * totals[("harmful", "intent")][1]

    done = subprocess.run(
        [sys.executable, str(SCRIPT.parent / "step_loss.py"), tiny_model, str(tmp_path / "missing.jsonl")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "missing.jsonl" in done.stderr
