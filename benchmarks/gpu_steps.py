"""RW (SFT) and SRPO (DPO) training steps on one GPU, for random-initialised models with the real Qwen2.5-0.5B and
1.5B architectures: tokens/s, peak memory and model FLOPs utilisation (MFU).

    python benchmarks/gpu_steps.py --sizes 0.5B 1.5B --seq 1024 --batch 8 --steps 10

Needs only torch and transformers (the GPU machine has no TRL): the steps are what TRL runs. SFT is a forward and
backward pass with cross-entropy on every token. DPO is a forward and backward pass over the chosen and rejected
sequences of each pair, with the reference log-probs precomputed (saro's default). Both use AdamW in bf16 with
activation checkpointing off. MFU counts 6 x parameters FLOPs per trained token (forward + backward, attention
excluded) against the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import time

# Qwen2.5 architectures as published in their config.json files (hub access is not needed to build them).
QWEN25 = {
    "0.5B": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
    "1.5B": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def build(size: str):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6, **QWEN25[size])
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config).to(dtype=torch.bfloat16, device="cuda")


def sequence_logps(model, ids):
    import torch

    logits = model(input_ids=ids).logits[:, :-1].float()
    return torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None]).squeeze(-1).sum(-1)


def bench(size: str, stage: str, seq: int, batch: int, steps: int, warmup: int = 2) -> dict:
    import torch
    import torch.nn.functional as F

    model = build(size)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    vocab = model.config.vocab_size
    torch.cuda.reset_peak_memory_stats()
    timings = []
    for step in range(warmup + steps):
        torch.cuda.synchronize()
        started = time.perf_counter()
        if stage == "sft":
            ids = torch.randint(0, vocab, (batch, seq), device="cuda")
            loss = model(input_ids=ids, labels=ids).loss
            tokens = batch * seq
        else:  # batch pairs: chosen and rejected in one forward pass, as TRL concatenates them
            ids = torch.randint(0, vocab, (2 * batch, seq), device="cuda")
            logps = sequence_logps(model, ids)
            ref = logps.detach() - 0.1  # stands in for the precomputed reference log-probs
            margin = (logps[:batch] - ref[:batch]) - (logps[batch:] - ref[batch:])
            loss = -F.logsigmoid(0.1 * margin).mean()
            tokens = 2 * batch * seq
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= warmup:
            timings.append(time.perf_counter() - started)
    seconds = sum(timings) / len(timings)
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    tokens_per_s = tokens / seconds
    result = {
        "model": f"Qwen2.5-{size} (random init)",
        "stage": {"sft": "RW (SFT)", "dpo": "SRPO (DPO)"}[stage],
        "params_m": round(params / 1e6),
        "seq": seq,
        "batch": batch,
        "step_s": round(seconds, 3),
        "tokens_per_s": round(tokens_per_s),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 1024**3, 1),
        "mfu": round(6 * params * tokens_per_s / peak, 3) if peak else None,
        "gpu": name,
    }
    del model, optimizer
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["0.5B", "1.5B"], choices=sorted(QWEN25))
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    for size in args.sizes:
        for stage in ("sft", "dpo"):
            print(json.dumps(bench(size, stage, args.seq, args.batch, args.steps)), flush=True)


if __name__ == "__main__":
    main()
