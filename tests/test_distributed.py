"""Two training processes on CPU over gloo, launched the documented way (`accelerate launch ... -m saro.cli.main`).

`accelerate launch --cpu --num_processes 2` silently runs one process; `--multi_gpu --num_processes 2` with
`use_cpu` in the training arguments (saro's CPU default) gives a real two-process DDP job.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(config, stage: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [
        "--main_process_port",
        str(_free_port()),
        "-m",
        "saro.cli.main",
        "train",
        stage,
        "--config",
        str(config),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("stage", ["rw", "srpo"])
def test_two_process_training_splits_the_data(tmp_path, tiny_model, stage):
    from conftest import RW_ANSWER, RW_REFUSAL

    rows = []
    for i in range(16):
        if stage == "rw":
            reply = RW_REFUSAL if i % 2 else RW_ANSWER
            rows.append(
                {
                    "id": str(i),
                    "messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": reply}],
                }
            )
        else:
            prompt = f"<|im_start|>user\nQ{i}?<|im_end|>\n<|im_start|>assistant\n"
            rows.append({"id": str(i), "prompt": prompt, "chosen": RW_ANSWER, "rejected": RW_REFUSAL})
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "model"
    section = {"model": str(tiny_model), "data": str(data), "output_dir": str(out), "num_train_epochs": 1}
    section |= {"per_device_train_batch_size": 4, "logging_steps": 1}
    if stage == "srpo":
        section |= {"eval_data": None, "eval_train_pairs": 0, "precompute_ref_log_probs": True, "max_pairs": None}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({f"train_{stage}": section}))

    result = _launch(config, stage)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "saro_training.json").read_text())
    assert info["processes"] == 2
    steps = [e["step"] for e in info["log_history"] if "loss" in e]
    assert max(steps) == 2, "16 examples, 4 per process and step, 2 processes: 2 steps per epoch"
    assert (out / "model.safetensors").exists()
    assert result.stdout.count(f"train {stage}: model ->") == 1  # the main process reports once
