"""The two traditional safety-tuning baselines SaRO is compared with, built from the same prompts as RW.

- safety-SFT: the RW answers without their reasoning: direct refusals for harmful and jailbreak prompts, plain
  answers for benign ones. Trained with the RW trainer (`saro train safety-sft`).
- safety-DPO: outcome pairs without reasoning. For harmful prompts the refusal is chosen over the base model's own
  compliant answer (generated here, greedy); for benign prompts the answer is chosen over a needless refusal, so
  the baseline is not trained only toward refusing. Trained with the SRPO trainer (`saro train safety-dpo`).

    saro synth baselines --config configs/demo.yaml
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from saro.chat import render_prompt
from saro.config import RangeChecked, to_plain
from saro.errors import DataError
from saro.generation import generate_batched
from saro.models import DEFAULT_MODEL, load_model, load_tokenizer
from saro.policy import load_policy
from saro.preference.pairs import PairComposer
from saro.records import (
    HARMFUL_KINDS,
    PromptRecord,
    read_jsonl,
    split_response,
    stable_id,
    write_jsonl,
    write_manifest,
)
from saro.refusal import is_refusal


@dataclass
class BaselineDataConfig(RangeChecked):
    """Baseline data from the RW data: `rw_data` in, `sft_output` and `dpo_output` out; `model` (the base model)
    writes the compliant side of harmful pairs; `max_pairs` (half refusing, half answering), `seed`."""

    rw_data: Path = field(default=Path("runs/demo/rw.jsonl"), metadata={"help": "RW SFT JSONL (same prompts)."})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model: writes the rejected compliance."})
    sft_output: Path = field(default=Path("runs/demo/safety-sft.jsonl"), metadata={"help": "Safety-SFT JSONL."})
    dpo_output: Path = field(default=Path("runs/demo/safety-dpo.jsonl"), metadata={"help": "Safety-DPO pairs."})
    max_pairs: int = field(default=96, metadata={"help": "DPO pairs at most: half harmful, half benign.", "min": 1})
    max_new_tokens: int = field(
        default=96, metadata={"help": "Length of the base model's compliant answers.", "min": 1}
    )
    temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature of those answers (0: greedy).", "min": 0}
    )
    batch_size: int = field(default=16, metadata={"help": "Generation batch size.", "min": 1})
    policy: str | None = field(default=None, metadata={"help": "Policy YAML (default: saro's built-in policy)."})
    seed: int = field(default=0, metadata={"help": "Seed for choosing the pair prompts."})


def _rw_examples(path: Path) -> list[tuple[PromptRecord, str]]:
    """(prompt record, final answer) per RW prompt, one per prompt id."""
    examples, seen = [], set()
    for where, record in read_jsonl(path, required=("messages", "meta")):
        meta = record["meta"]
        prompt_id = meta.get("prompt_id") or record.get("id")
        if prompt_id in seen:
            continue
        seen.add(prompt_id)
        user = [m["content"] for m in record["messages"] if m.get("role") == "user"]
        if not user or meta.get("kind") is None:
            raise DataError(f"{where}: an RW record needs a user turn and meta.kind")
        prompt = PromptRecord(
            id=prompt_id,
            prompt=user[-1],
            kind=meta["kind"],
            category=meta.get("category") or "none",
            source=meta.get("source", ""),
            template_family=meta.get("template_family"),
        )
        examples.append((prompt, split_response(record["messages"][-1]["content"])[1]))
    if not examples:
        raise DataError(f"{path}: no RW records")
    return examples


def _provenance(prompt: PromptRecord, baseline: str, **extra) -> dict:
    return {
        "prompt_id": prompt.id,
        "source": prompt.source,
        "kind": prompt.kind,
        "category": prompt.category,
        "template_family": prompt.template_family,
        "baseline": baseline,
        **extra,
    }


def build_baseline_data(config: BaselineDataConfig) -> dict:
    """Write the safety-SFT records and the safety-DPO pairs; returns counts."""
    started = time.time()
    examples = _rw_examples(config.rw_data)
    sft = [
        {
            "id": stable_id("safety-sft", prompt.id),
            "messages": [{"role": "user", "content": prompt.prompt}, {"role": "assistant", "content": answer}],
            "meta": _provenance(prompt, "safety-sft", teacher=f"rw:{config.rw_data}"),
        }
        for prompt, answer in examples
    ]
    write_jsonl(config.sft_output, sft)
    write_manifest(config.sft_output, {"config": to_plain(config), "records": len(sft)})

    rng = random.Random(config.seed)
    harmful = [e for e in examples if e[0].kind in HARMFUL_KINDS and is_refusal(e[1])]
    benign = [e for e in examples if e[0].kind not in HARMFUL_KINDS and not is_refusal(e[1])]
    per_side = min(config.max_pairs // 2, len(benign))
    # More harmful prompts than needed: the base model refuses a few, and those give no compliant side.
    candidates = rng.sample(harmful, min(len(harmful), per_side + per_side // 2 + 4))
    model, tokenizer = load_model(config.model), load_tokenizer(config.model)
    conversations = [[{"role": "user", "content": p.prompt}] for p, _ in candidates]
    outputs = generate_batched(
        model,
        tokenizer,
        conversations,
        config.max_new_tokens,
        config.batch_size,
        config.temperature,
        config.seed,
        desc="base compliance",
    )

    def template(prompt: PromptRecord) -> str:
        messages = [{"role": "user", "content": prompt.prompt}]
        return render_prompt(tokenizer, messages)

    def pair(prompt: PromptRecord, chosen: str, rejected: str, rejected_by: str) -> dict:
        return {
            "id": stable_id("safety-dpo", prompt.id),
            "prompt": template(prompt),
            "chosen": chosen,
            "rejected": rejected,
            "meta": _provenance(prompt, "safety-dpo", pair_type="op", rejected_by=rejected_by),
        }

    pairs = []
    for (prompt, refusal), out in zip(candidates, outputs):
        if len(pairs) < per_side and not is_refusal(out.text) and out.text.strip():
            pairs.append(pair(prompt, refusal, out.text, f"base:{config.model}"))
    if not pairs:  # the base model refused every harmful prompt: no compliance to prefer a refusal over
        raise DataError(
            f"{config.dpo_output}: no safety-DPO pairs: the base model {config.model} refused all "
            f"{len(outputs)} harmful prompts it was given"
        )
    composer = PairComposer(load_policy(config.policy))
    for prompt, answer in rng.sample(benign, len(pairs)):
        category = composer.category(prompt)
        pairs.append(pair(prompt, answer, f"{category.refusal} {category.alternative}", "composed refusal"))
    write_jsonl(config.dpo_output, pairs)
    counts = {
        "sft_records": len(sft),
        "dpo_pairs": len(pairs),
        "base_refused": sum(is_refusal(o.text) for o in outputs),
        "seconds": round(time.time() - started, 1),
    }
    write_manifest(config.dpo_output, {"config": to_plain(config), **counts})
    return counts
