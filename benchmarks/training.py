"""Training throughput: saro's SFT and DPO wrappers vs plain TRL, and DPO with precomputed reference log-probs vs a
second model in memory. Every case runs in its own process (peak memory per case); saro and TRL alternate, and each
case's median over `--repeats` is kept, so the ratios come from one run on one machine.

    OMP_NUM_THREADS=2 python benchmarks/training.py --repeats 2          # all cases (after a warm-up round)
    OMP_NUM_THREADS=2 python benchmarks/training.py --case dpo-trl       # one case, JSON on stdout
    OMP_NUM_THREADS=2 python benchmarks/training.py --cases sft-saro sft-saro-grouped --batch-size 8 --steps 12

`sft-saro-grouped` is the wrapper with `train_sampling_strategy: group_by_length`: batches of similar length, so
less padding (RW records run from ~80 to ~330 tokens; random batches of 8 pad them by about a third).

Each case trains the same model on the same records with the same TRL settings for `--steps` optimizer steps,
from loading the model to the saved folder: what a user waits for. Tokens are the records' tokens times the epochs
the steps cover.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("sft-saro", "sft-saro-grouped", "sft-trl", "dpo-saro", "dpo-trl", "dpo-trl-ref-model")


def _sft_records(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    return [{"id": r["id"], "messages": r["messages"]} for r in rows]


def _pairs(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]


def run_case(case: str, args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from saro.models import load_tokenizer, resolve_model
    from saro.training import DPOStageConfig, SFTStageConfig, run_dpo, run_sft
    from saro.training.common import cpu_safe_defaults

    work = Path(tempfile.mkdtemp(prefix=f"saro-bench-{case}-"))
    batch = args.batch_size
    n = args.steps * batch
    common = {
        **cpu_safe_defaults(),
        "output_dir": str(work / "out"),
        "per_device_train_batch_size": batch,
        "max_steps": args.steps,
        "learning_rate": 1e-5,
        "save_strategy": "no",
        "logging_steps": args.steps,
        "max_length": args.max_length,
    }
    model_path = resolve_model(args.model)
    tokenizer = load_tokenizer(model_path, padding_side="right")
    torch.manual_seed(0)
    started = time.perf_counter()
    if case.startswith("sft"):
        records = _sft_records(Path(args.sft_data), n)
        tokens = sum(
            len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
            for r in records
        )
        if case.startswith("sft-saro"):
            data = work / "sft.jsonl"
            data.write_text("".join(json.dumps(r) + "\n" for r in records))
            grouping = {"train_sampling_strategy": "group_by_length"} if case == "sft-saro-grouped" else {}
            run_sft(SFTStageConfig(model=model_path, data=data), SFTConfig(**common, **grouping))
        else:
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
            dataset = Dataset.from_list(
                [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records]
            )
            trainer = SFTTrainer(
                model=model, args=SFTConfig(**common), train_dataset=dataset, processing_class=tokenizer
            )
            trainer.train()
            trainer.save_model()
    else:
        pairs = _pairs(Path(args.dpo_data), n)
        tokens = sum(
            len(tokenizer(p["prompt"] + p[side])["input_ids"]) for p in pairs for side in ("chosen", "rejected")
        )
        settings = {**common, "beta": 0.1, "precompute_ref_log_probs": case != "dpo-trl-ref-model"}
        if case == "dpo-saro":
            data = work / "pairs.jsonl"
            data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
            config = DPOStageConfig(model=model_path, data=data, eval_data=None, eval_train_pairs=0, eval_points=0)
            run_dpo(config, DPOConfig(**settings))
        else:
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
            ref = None
            if not settings["precompute_ref_log_probs"]:
                ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
            trainer = DPOTrainer(
                model=model,
                ref_model=ref,
                args=DPOConfig(**settings),
                train_dataset=Dataset.from_list(pairs),
                processing_class=tokenizer,
            )
            trainer.train()
            trainer.save_model()
    seconds = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {
        "case": case,
        "seconds": round(seconds, 1),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_rss_gb": round(peak_gb, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, help="Run one case in this process and print its JSON.")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="Cases to compare.")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--sft-data", default="runs/demo/rw.jsonl", help="SFT JSONL (`saro synth rw` output).")
    parser.add_argument("--dpo-data", default="runs/demo/srpo.jsonl", help="Pairs JSONL (`saro synth srpo`).")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="Rounds run first and discarded (cold file cache).")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return

    runs: dict[str, list[dict]] = {case: [] for case in args.cases}
    own = ("case", "cases", "repeats", "warmup")  # this process's options, not the cases'
    forwarded = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in own]
    for round_ in range(args.warmup + args.repeats):
        for case in args.cases:  # saro and TRL alternate, so drift in machine speed hits both
            out = subprocess.run(
                [sys.executable, __file__, "--case", case, *forwarded], capture_output=True, text=True
            )
            if out.returncode != 0:
                sys.exit(f"{case} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps({**result, "warmup": round_ < args.warmup}), file=sys.stderr)
            if round_ >= args.warmup:
                runs[case].append(result)
    median = {case: statistics.median(r["seconds"] for r in rs) for case, rs in runs.items()}
    summary = {
        "median_seconds": median,
        "tokens_per_s": {case: round(runs[case][0]["tokens"] / median[case], 1) for case in args.cases},
        "peak_rss_gb": {case: max(r["peak_rss_gb"] for r in rs) for case, rs in runs.items()},
        "setup": {k: v for k, v in vars(args).items() if k != "case"},
    }
    ratios = {  # each where both its cases ran
        "sft_overhead_vs_trl": ("sft-saro", "sft-trl"),
        "sft_grouped_time_vs_random": ("sft-saro-grouped", "sft-saro"),
        "dpo_overhead_vs_trl": ("dpo-saro", "dpo-trl"),
        "dpo_reference_model_time_vs_precomputed": ("dpo-trl-ref-model", "dpo-trl"),
    }
    for name, (case, against) in ratios.items():
        if case in median and against in median:
            summary[name] = round(median[case] / median[against], 3)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
