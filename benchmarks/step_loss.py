"""Where a model's loss sits on SFT records: mean loss per token of each reasoning step (request, intent, policy,
reflection, decision), of the answer and of other trained tokens (the think markers), by prompt kind. A step a
trained model still fits badly on its own training records is where its verdicts are unsure;
`train_rw.step_loss_weights` can move the loss there.

    python benchmarks/step_loss.py runs/demo/rw-model runs/demo/rw.jsonl --limit 200

Tokens and loss masks are the ones `saro train rw` trains with (`tokenize_with_labels`); the records' text never
reaches the output, only counts and losses.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saro.chat import keep_reasoning_for_training  # noqa: E402
from saro.errors import SaroError  # noqa: E402
from saro.models import load_model, load_tokenizer  # noqa: E402
from saro.records import read_jsonl  # noqa: E402
from saro.training.sft import load_sft_records, token_steps, tokenize_with_labels  # noqa: E402

STEPS = ("request", "intent", "policy", "reflection", "decision", "answer")


def step_losses(model, tokenizer, records: list[dict], kinds: list[str]) -> dict[tuple[str, str], list[float]]:
    """(kind, step) -> [summed loss, tokens], over every record; kind "all" sums the kinds."""
    import torch

    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for record, kind in zip(records, kinds, strict=True):
        row = tokenize_with_labels(record, tokenizer)
        steps = token_steps(record, tokenizer, row["input_ids"], row["labels"])
        ids = torch.tensor([row["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].float()
        losses = -torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        for position, step in enumerate(steps[1:]):
            if step is None:
                continue
            for key in ((kind, step or "other"), ("all", step or "other")):
                totals[key][0] += losses[position].item()
                totals[key][1] += 1
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a trained model folder (or 'smollm2')")
    parser.add_argument("data", type=Path, help="SFT JSONL with `messages`, e.g. runs/demo/rw.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N records")
    args = parser.parse_args()
    try:
        records = load_sft_records(args.data)[: args.limit]
        kinds = [(r.get("meta") or {}).get("kind", "?") for _, r in read_jsonl(args.data)][: len(records)]
        tokenizer = load_tokenizer(args.model, padding_side="right")
        keep_reasoning_for_training(tokenizer, args.model)
        model = load_model(args.model)
        model.eval()
        totals = step_losses(model, tokenizer, records, kinds)
    except SaroError as exc:
        print(f"step_loss: {exc}", file=sys.stderr)
        return 2
    names = [s for s in STEPS if any(k[1] == s for k in totals)] + sorted({k[1] for k in totals} - set(STEPS))
    print(f"mean loss per token ({len(records)} records of {args.data}; tokens in brackets)\n")
    print("| kind | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for kind in sorted({k[0] for k in totals} - {"all"}) + ["all"]:
        cells = [
            f"{loss / tokens:.3f} ({tokens})" if tokens else "-" for loss, tokens in (totals[(kind, n)] for n in names)
        ]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
