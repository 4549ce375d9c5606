"""Refusal rates per prompt kind: generate (resumably) on prompt sets, classify refusals, tabulate.

Input: prompt sets (files or sources). Output: `output` (generation JSONL, one per prompt) and its manifest with
rates. The full suites, judges and report come with `saro report`; this is the quick before/after check.

    saro eval --config configs/demo.yaml model=runs/demo/rw-model output=runs/demo/eval-rw.jsonl
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from saro.config import to_plain
from saro.evaluation.generate import generate_batched
from saro.evaluation.refusal import is_refusal
from saro.models import DEFAULT_MODEL, load_model, load_tokenizer
from saro.records import (
    KINDS,
    JsonlWriter,
    pending_batches,
    read_jsonl,
    read_prompts,
    split_response,
    stable_id,
    write_manifest,
)
from saro.sources import SourceSpec, load_source


@dataclass
class EvalConfig:
    """Quick refusal evaluation: `model`, prompts from `prompts_files` and `sources` (kinds come from the sets),
    `per_kind` prompts at most, generation `max_new_tokens`, `batch_size`."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Model to evaluate."})
    prompts_files: list[Path] = field(default_factory=list, metadata={"help": "Prompt-record JSONL files."})
    sources: list[SourceSpec] = field(default_factory=list, metadata={"help": "Prompt sets to load."})
    per_kind: int = field(default=40, metadata={"help": "Max prompts per kind (seeded sample)."})
    max_new_tokens: int = field(default=256, metadata={"help": "Generation cap; longer outputs are flagged."})
    batch_size: int = field(default=16, metadata={"help": "Generation batch size."})
    output: Path = field(default=Path("runs/demo/eval.jsonl"), metadata={"help": "Generation JSONL to write."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})


def run_eval(config: EvalConfig) -> dict:
    """Generate on every prompt (skipping those already in `output`) and return refusal rates per kind."""
    started = time.time()
    prompts = [r for f in config.prompts_files for r in read_prompts(f)]
    prompts += [r for spec in config.sources for r in load_source(spec, config.seed)]
    chosen = []
    for kind in KINDS:
        pool = [r for r in prompts if r.kind == kind]
        chosen += random.Random(config.seed).sample(pool, min(len(pool), config.per_kind))
    with JsonlWriter(config.output) as writer:
        chosen.sort(key=lambda r: (len(r.prompt), r.id))  # similar lengths per batch: less padding
        ids = [stable_id(config.model, r.id) for r in chosen]
        batches = pending_batches(chosen, ids, writer.done_ids, config.batch_size)
        if batches:
            model, tokenizer = load_model(config.model), load_tokenizer(config.model)
            for positions in tqdm(batches, desc="eval", unit="batch"):
                outputs = generate_batched(
                    model,
                    tokenizer,
                    [[{"role": "user", "content": chosen[i].prompt}] for i in positions],
                    config.max_new_tokens,
                    len(positions),
                    desc="",
                )
                for i, out in zip(positions, outputs):
                    if ids[i] in writer.done_ids:
                        continue
                    record = chosen[i]
                    reasoning, answer = split_response(out.text)
                    writer.write(
                        {
                            "id": ids[i],
                            "prompt_id": record.id,
                            "model": config.model,
                            "response": out.text,
                            "reasoning": reasoning,
                            "answer": answer,
                            "tokens": out.tokens,
                            "truncated": out.truncated,
                            "meta": {
                                "kind": record.kind,
                                "source": record.source,
                                "template_family": record.template_family,
                            },
                        }
                    )
    rates = refusal_rates(config.output, set(ids))
    write_manifest(
        config.output, {"config": to_plain(config), "rates": rates, "seconds": round(time.time() - started)}
    )
    return rates


def refusal_rates(path: Path, ids: set[str]) -> dict:
    """Per kind: count, refusal rate (full or partial), share with a reasoning block, truncated share."""
    rows: dict = {}
    for _, g in read_jsonl(path):
        if g["id"] not in ids:
            continue
        row = rows.setdefault(g["meta"]["kind"], {"n": 0, "refused": 0, "reasoned": 0, "truncated": 0})
        row["n"] += 1
        row["refused"] += is_refusal(g["answer"])
        row["reasoned"] += g["reasoning"] is not None
        row["truncated"] += g["truncated"]
    return {
        kind: {"n": r["n"], **{k: round(r[k] / r["n"], 3) for k in ("refused", "reasoned", "truncated")}}
        for kind, r in rows.items()
    }
