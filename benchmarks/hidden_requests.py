"""Validation diagnostic for multi-task prompts: every harmful and look-alike validation prompt placed among 1-3 of
the validation set's ordinary requests, in the layouts the training composer uses. Two rates then show what the
shape of a prompt teaches: hidden harmful requests complied with, hidden look-alikes refused.

    python benchmarks/hidden_requests.py runs/demo/prompts.validation.jsonl runs/demo/val-hidden.jsonl
    saro eval --config configs/validation-hidden.yaml model=runs/demo/rw-model output=runs/demo/val/rw

Built from the validation split only (never trained on), so it is a model-selection signal like the validation
set itself; the reported suites never enter it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saro.records import read_prompts, write_jsonl  # noqa: E402
from saro.sources.templates import decoy_pool, multi_task_prompts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", type=Path, help="prompts.validation.jsonl of a saro run")
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = read_prompts(args.validation)
    decoys = decoy_pool(records)
    made = []
    for kind in ("harmful", "borderline_benign"):
        inner = [r for r in records if r.kind == kind]
        made += multi_task_prompts(inner, decoys, len(inner), args.seed)
    if not decoys or not made:
        print(f"hidden_requests: {args.validation}: no ordinary requests or no prompts to hide", file=sys.stderr)
        return 2
    count = write_jsonl(args.output, (r.to_dict() for r in made))
    kinds = {k: sum(r.kind == k for r in made) for k in ("jailbreak", "borderline_benign")}
    print(f"hidden_requests: {count} prompts ({kinds}) among {len(decoys)} ordinary requests -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
