"""Validation diagnostic for multi-task prompts: every harmful and look-alike validation prompt hidden among harmless
tasks. Two rates then show what the shape of a prompt teaches: hidden harmful requests complied with, hidden
look-alikes refused. The default shape is the validation-only family `decoy_tasks` (never trained on: "Task A: ...
Task B: {request} Task C: ..."), as in the dev log from session 13; `--family composed` uses the training
composer's layouts with the validation set's own ordinary requests instead.

    python benchmarks/hidden_requests.py runs/demo/prompts.validation.jsonl runs/demo/val-hidden.jsonl
    saro eval --config configs/validation.yaml model=runs/demo/rw-model output=runs/demo/val/rw

Built from the validation split only (never trained on), so it is a model-selection signal like the validation
set itself; the reported suites never enter it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saro.records import read_prompts, write_jsonl  # noqa: E402
from saro.sources.templates import decoy_pool, load_builtin_templates, multi_task_prompts, wrap_prompts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validation", type=Path, help="prompts.validation.jsonl of a saro run")
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", default="decoy_tasks", help="a built-in template family, or 'composed'")
    args = parser.parse_args()
    records = read_prompts(args.validation)
    templates = [t for t in load_builtin_templates() if t.family == args.family]
    if args.family != "composed" and not templates:
        print(f"hidden_requests: no built-in template family {args.family!r}", file=sys.stderr)
        return 2
    decoys = decoy_pool(records)
    made = []
    for kind, wrapped_kind in (("harmful", "jailbreak"), ("borderline_benign", "borderline_benign")):
        inner = [r for r in records if r.kind == kind]
        if args.family == "composed":
            made += multi_task_prompts(inner, decoys, len(inner), args.seed)
        else:
            made += wrap_prompts(inner, templates, len(inner), args.seed, kind=wrapped_kind)
    if not made or (args.family == "composed" and not decoys):
        print(f"hidden_requests: {args.validation}: no prompts to hide, or no ordinary requests", file=sys.stderr)
        return 2
    count = write_jsonl(args.output, (r.to_dict() for r in made))
    kinds = {k: sum(r.kind == k for r in made) for k in ("jailbreak", "borderline_benign")}
    print(f"hidden_requests: {count} prompts ({kinds}), shape {args.family} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
