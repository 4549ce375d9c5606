"""One prepared GPU check through saro's own commands: RW SFT steps, SRPO DPO steps and batched generation on a
random-init Qwen2.5-0.5B architecture in bf16; tokens/s, peak memory and MFU. Under 8 minutes on one H200.

    python benchmarks/gpu_check.py --wheels benchmarks/wheels --out "$OUT"
    python benchmarks/gpu_check.py --smoke     # the same path on CPU with a 2-layer model (what the tests run)

The lent GPU machine has torch, transformers, peft and accelerate but no TRL and no network: `make gpu-wheels`
downloads the wheels it lacks into `benchmarks/wheels/` here, the device call carries that folder, and this script
installs them offline first. Without CUDA it prints one line and exits 2 (nothing measured is never a result).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QWEN25_05B = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2
)
SMOKE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
REASONING = "1. Request: {i}.\n2. Intent: here the words mean something harmless.\n3. Policy: none applies.\n"
NEEDED = ("trl", "datasets")
MAX_LENGTH = 1024


def unmet_requirements(names, version_of=None) -> list[str]:
    """`name needs req (has version)` for each requirement of the named installed packages that the installed
    versions do not satisfy (extras ignored): wheels installed with --no-deps beside the machine's own packages."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    version_of = version_of or version
    unmet = []
    for name in names:
        for line in requires(name) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = version_of(req.name)
            except PackageNotFoundError:
                have = None
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(f"{name} needs {req} (has {have or 'none'})")
    return unmet


def install_wheels(wheels: Path | None) -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if not missing:
        return
    if wheels is None or not wheels.is_dir():
        sys.exit(f"gpu_check: {', '.join(missing)} not installed and no --wheels folder (make gpu-wheels)")
    # Only what the machine lacks: its own pyarrow/fsspec/xxhash stay, and their versions are checked against the
    # installed packages' pins below.
    from importlib.metadata import PackageNotFoundError, version

    def lacking(wheel: Path) -> bool:
        try:
            version(wheel.name.split("-")[0])
        except PackageNotFoundError:
            return True
        return False

    # --no-deps: the wheels folder holds the packages a torch/transformers machine lacks; pip must not look further
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-index",
        "--no-deps",
        *map(str, sorted(filter(lacking, wheels.glob("*.whl")))),
    ]
    if not command[6:]:
        sys.exit(f"gpu_check: {', '.join(missing)} not installed and not in {wheels} (make gpu-wheels)")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    # A pin the machine's own packages miss is named before any figure is measured, not found in a traceback later.
    unmet = unmet_requirements(NEEDED)
    if unmet:
        print(f"gpu_check: warning: {'; '.join(unmet)}", file=sys.stderr)


def build_model(target: Path, tokenizer_from: Path, smoke: bool) -> int:
    """Random-init Qwen2.5-0.5B weights (the published architecture, its full 151,936-token vocabulary) with the
    tiny model's tokenizer: its ids are all valid inputs, and the FLOPs are the real model's."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    shape = SMOKE if smoke else QWEN25_05B
    config = Qwen2Config(vocab_size=1024 if smoke else 151936, tie_word_embeddings=True, **shape)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.float32 if smoke else torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return sum(p.numel() for p in model.parameters())


def write_data(folder: Path, n: int, words: int) -> tuple[Path, Path]:
    from saro.records import format_response

    filler = " ".join(f"word{i % 97}" for i in range(words))
    sft, pairs = folder / "rw.jsonl", folder / "srpo.jsonl"
    with sft.open("w") as out:
        for i in range(n):
            reply = format_response(REASONING.format(i=i) + "4. Decision: answer.", filler)
            messages = [
                {"role": "user", "content": f"Question {i}: {filler[:200]}"},
                {"role": "assistant", "content": reply},
            ]
            out.write(json.dumps({"id": str(i), "messages": messages}) + "\n")
    with pairs.open("w") as out:
        for i in range(n):
            prompt = f"<|im_start|>user\nQuestion {i}: {filler[:200]}<|im_end|>\n<|im_start|>assistant\n<think>\n"
            chosen = REASONING.format(i=i) + f"4. Decision: answer.\n</think>\n\n{filler}"
            rejected = REASONING.format(i=i) + "4. Decision: refuse.\n</think>\n\nI can't help with that."
            meta = {"kind": "borderline_benign" if i % 2 else "harmful", "pair_type": "pp"}
            out.write(
                json.dumps({"id": str(i), "prompt": prompt, "chosen": chosen, "rejected": rejected, "meta": meta})
                + "\n"
            )
    return sft, pairs


def data_tokens(sft: Path, pairs: Path, tokenizer, max_length: int) -> tuple[int, int]:
    """Tokens trained in one pass over each file (max_steps x batch is exactly one epoch): SFT conversations, and
    both sides of every DPO pair with their prompt, each cut at max_length as TRL truncates them (counting the
    cut tokens overstated tokens/s 2.5x in the first GPU run)."""
    from saro.records import read_jsonl

    count = lambda text: min(max_length, len(tokenizer(text, add_special_tokens=False)["input_ids"]))  # noqa: E731
    rw = sum(
        min(
            max_length, len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
        )
        for _, r in read_jsonl(sft)
    )
    dpo = sum(count(p["prompt"] + p["chosen"]) + count(p["prompt"] + p["rejected"]) for _, p in read_jsonl(pairs))
    return rw, dpo


def run_stage(args: list[str], output: Path) -> dict:
    import torch

    from saro.cli.main import main

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if main(args) != 0:
        raise SystemExit(f"gpu_check: saro {' '.join(args[:2])} failed")
    seconds = time.perf_counter() - started
    summary = json.loads((output / "saro_training.json").read_text())
    return {
        "seconds": round(seconds, 1),
        "train_runtime_s": summary["metrics"].get("train_runtime"),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1024**3, 1) if torch.cuda.is_available() else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / "benchmarks" / "wheels")
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="CPU, a 2-layer model, 2 steps: checks the path only")
    parser.add_argument("--checkpointing", choices=("on", "off"), help="activation checkpointing (default: saro's)")
    parser.add_argument("--no-generation", action="store_true", help="training stages only")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.batch = 2, 2
    try:
        import torch
    except ImportError:
        print("gpu_check: torch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available() and not args.smoke:
        print("gpu_check: no CUDA device here; nothing measured", file=sys.stderr)
        return 2
    install_wheels(args.wheels)
    sys.path.insert(0, str(ROOT))
    from saro.generation import generate_batched
    from saro.models import build_tiny, load_model, load_tokenizer

    work = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (smoke)"
    peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
    model_dir = work / "qwen2.5-0.5b-random"
    params = build_model(model_dir, build_tiny(work / "tiny"), args.smoke)
    sft, pairs = write_data(work, n=args.steps * args.batch, words=60 if args.smoke else 600)
    tokens = dict(zip(("rw_sft", "srpo_dpo"), data_tokens(sft, pairs, load_tokenizer(model_dir), MAX_LENGTH)))
    common = [f"per_device_train_batch_size={args.batch}", f"max_steps={args.steps}", "logging_steps=1"]
    if args.checkpointing:
        # saro passes it under the name the installed transformers knows (saro.training.common)
        common.append(f"activation_checkpointing={'true' if args.checkpointing == 'on' else 'false'}")
    results = {"gpu": gpu, "params_m": round(params / 1e6), "steps": args.steps, "batch": args.batch}
    results["checkpointing"] = args.checkpointing

    rw_out = work / "rw"
    rw = run_stage(
        [
            "train",
            "rw",
            f"model={model_dir}",
            f"data={sft}",
            f"output_dir={rw_out}",
            f"max_length={MAX_LENGTH}",
            *common,
        ],
        rw_out,
    )
    srpo_out = work / "srpo"
    srpo_args = ["train", "srpo", f"model={model_dir}", f"data={pairs}", "eval_data=null", f"output_dir={srpo_out}"]
    srpo = run_stage(
        [*srpo_args, f"max_length={MAX_LENGTH}", "eval_train_pairs=0", "precompute_ref_log_probs=true", *common],
        srpo_out,
    )
    for name, stage in (("rw_sft", rw), ("srpo_dpo", srpo)):
        runtime = stage["train_runtime_s"] or stage["seconds"]
        tokens_per_s = tokens[name] / runtime
        results[name] = {
            "wall_s": stage["seconds"],
            "train_runtime_s": runtime,
            "tokens": tokens[name],
            "tokens_per_s": round(tokens_per_s, 1),
            "peak_memory_gb": stage["peak_memory_gb"],
            # policy training FLOPs only: the precomputed reference pass of DPO is not counted
            "mfu": round(6 * params * tokens_per_s / peak, 3) if peak else None,
        }

    if not args.no_generation:
        model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
        conversations = [[{"role": "user", "content": f"Question {i}: tell me about word{i}."}] for i in range(128)]
        new_tokens = 8 if args.smoke else 256
        started = time.perf_counter()
        outputs = generate_batched(
            model, tokenizer, conversations, new_tokens, batch_size=64, temperature=1.0, desc=""
        )
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        results["generation"] = {
            "prompts": len(conversations),
            "batch_size": 64,
            "new_tokens": sum(o.tokens for o in outputs),
            "tokens_per_s": round(sum(o.tokens for o in outputs) / seconds, 1),
            "seconds": round(seconds, 1),
        }
    text = json.dumps(results, indent=1)
    (work / "gpu_check.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
