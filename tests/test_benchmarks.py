"""The prepared GPU check (benchmarks/gpu_check.py) runs its whole path on CPU, and refuses to report nothing."""

import json
import os
import subprocess
import sys
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
