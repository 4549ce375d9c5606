"""Batched vs one-by-one generation throughput on the embedded default (or any model).

    OMP_NUM_THREADS=2 python benchmarks/generation.py --prompts 32 --batch-size 16 --max-new-tokens 64

Both runs generate for the same prompts with greedy decoding; tokens/s counts generated tokens (up to each
sequence's end), so padding and finished rows in a batch are not counted as work done.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from saro.generation import generate_batched
from saro.models import DEFAULT_MODEL, load_model, load_tokenizer
from saro.sources import SourceSpec, load_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    records = load_source(SourceSpec(name="seeds"))[: args.prompts]
    conversations = [[{"role": "user", "content": r.prompt}] for r in records]
    generate_batched(model, tokenizer, conversations[:2], 4, 2, desc="")  # warm-up

    results = {}
    for name, batch_size in (("batched", args.batch_size), ("one_by_one", 1)):
        started = time.perf_counter()
        outputs = generate_batched(model, tokenizer, conversations, args.max_new_tokens, batch_size, desc=name)
        seconds = time.perf_counter() - started
        tokens = sum(o.tokens for o in outputs)
        results[name] = {"seconds": round(seconds, 1), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}
    results["speedup"] = round(results["batched"]["tokens_per_s"] / results["one_by_one"]["tokens_per_s"], 2)
    results["setup"] = {**vars(args), "machine": platform.processor() or platform.machine()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
