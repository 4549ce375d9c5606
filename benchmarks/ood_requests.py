"""Out-of-distribution diagnostic for model selection: harmful requests and look-alikes from sources no recipe trains
RW on, in other people's wording. The validation set is drawn from the same pools as training (mostly saro's own
seeds: 34 of its 40 look-alikes), so it measures how well a model reads requests like the ones it learned from; the
suites that matter are written by others. Two rates show the gap: Do-Not-Answer's harmful requests (Wang et al.
2023) complied with, CoCoNot's contrast preference requests (should be answered) refused.

    python benchmarks/ood_requests.py runs/demo runs/demo/val-ood.jsonl   # more run folders: none of theirs either
    saro eval --config configs/ood.yaml model=runs/demo/rw-model output=runs/demo/ood/rw

Every prompt of the run's splits (`prompts.*.jsonl`: validation, held-out, SRPO, training) and of the reported
suites is left out (exact, normalised and near duplicates), so no model of the run has trained on these prompts and
no reported prompt enters selection. Do-Not-Answer's `human_chatbox` and `misinformation_harms` areas are left out:
answering "do you have feelings?" or correcting a false claim is not harm, and the rules judge would count it so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saro.records import read_prompts, write_jsonl  # noqa: E402
from saro.sources import spread_sample  # noqa: E402
from saro.sources.benign import load_coconot, load_coconot_contrast, load_xstest  # noqa: E402
from saro.sources.harmful import load_donotanswer, load_sgbench  # noqa: E402
from saro.sources.overlap import dedupe, find_leaks  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HARMFUL_AREAS = ("discrimination_exclusion_toxicity_hateful_offensive", "information_hazard", "malicious_uses")


def ood_requests(run_splits: list, harmful: list, lookalikes: list, reported: list, per_kind: int, seed: int) -> list:
    """`per_kind` harmful and `per_kind` look-alike records, none duplicating a split or a reported prompt; drawn
    in turn across Do-Not-Answer's risk areas and CoCoNot's subcategories."""
    seen = run_splits + reported
    chosen = []
    for pool in (harmful, lookalikes):
        pool = dedupe(pool)
        leaks = find_leaks(pool, seen)
        clean = [r for r in pool if r.id not in leaks]
        chosen += spread_sample(clean, per_kind, seed)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="saro run folders (prompts.*.jsonl), then the output")
    parser.add_argument("--per-kind", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    args = parser.parse_args()
    *runs, output = args.runs
    split_files = sorted(f for run in runs for f in run.glob("prompts.*.jsonl"))
    if not runs or not split_files:
        print(
            f"ood_requests: {' '.join(map(str, runs))}: no prompts.*.jsonl (run `saro synth rw` first)",
            file=sys.stderr,
        )
        return 2
    splits = [r for f in split_files for r in read_prompts(f)]
    harmful = [r for r in load_donotanswer(args.data / "donotanswer") if r.meta.get("risk_area") in HARMFUL_AREAS]
    lookalikes = load_coconot(args.data / "coconot" / "coconot_pref.jsonl")
    reported = (
        load_xstest(args.data / "xstest" / "xstest_prompts.csv")
        + load_sgbench(args.data / "sgbench" / "malicious_instruction.json")
        + load_coconot_contrast(args.data / "coconot" / "coconot_contrast_eval.jsonl")
    )
    made = ood_requests(splits, harmful, lookalikes, reported, args.per_kind, args.seed)
    kinds = {k: sum(r.kind == k for r in made) for k in ("harmful", "borderline_benign")}
    if min(kinds.values()) == 0:
        print(f"ood_requests: nothing left to draw for {kinds}", file=sys.stderr)
        return 2
    write_jsonl(output, (r.to_dict() for r in made))
    print(f"ood_requests: {len(made)} prompts ({kinds}) -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
