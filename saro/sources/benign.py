"""XSTest (over-refusal; safe and unsafe contrast prompts) and GSM8K (general capability with checked answers)."""

from __future__ import annotations

import re
from pathlib import Path

from saro.errors import DataError
from saro.policy import load_policy
from saro.records import PromptRecord, stable_id
from saro.sources.files import hub_rows, jsonl_items, local_path, read_csv, require


def load_xstest(path: str | Path | None = None) -> list[PromptRecord]:
    """XSTest v2 prompts CSV (id, prompt, type, label, focus, note): safe -> borderline_benign, unsafe -> harmful."""
    rows = hub_rows("walledai/XSTest", "test") if path is None else read_csv(local_path(path))
    policy = load_policy()
    records = []
    for index, (where, row) in enumerate(rows):
        prompt = require(row, "prompt", where)
        label = require(row, "label", where)
        if label not in ("safe", "unsafe"):
            raise DataError(f"{where}: field 'label' is {label!r}; expected safe or unsafe")
        safe = label == "safe"
        records.append(
            PromptRecord(
                id=stable_id("xstest", row.get("id", index), prompt),
                prompt=prompt,
                kind="borderline_benign" if safe else "harmful",
                category="none" if safe else policy.classify(prompt),
                source="xstest",
                meta={"xstest_type": row.get("type"), "focus": row.get("focus")},
            )
        )
    return records


def gsm8k_answer(solution: str) -> str:
    """The final number of a GSM8K solution (after `####`), without thousands separators."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def load_gsm8k(path: str | Path | None = None) -> list[PromptRecord]:
    """GSM8K JSONL (question, answer with `#### number`), or `openai/gsm8k` (main, test) on the hub."""
    rows = (
        hub_rows("openai/gsm8k", "test", "main")
        if path is None
        else jsonl_items(local_path(path), ("question", "answer"))
    )
    records = []
    for index, (where, row) in enumerate(rows):
        question, solution = require(row, "question", where), require(row, "answer", where)
        records.append(
            PromptRecord(
                id=stable_id("gsm8k", index, question),
                prompt=question,
                kind="general",
                source="gsm8k",
                reference=gsm8k_answer(solution),
                meta={"solution": re.sub(r"<<[^>]*>>", "", solution.rsplit("####", 1)[0]).strip()},
            )
        )
    return records


# CoCoNot's "Requests with safety concerns": prompts that look risky but should be answered. The `why` is the
# harmless reading the reasoning's intent step states (CoCoNot gives a subcategory, not a reason).
COCONOT_WHY = {
    "triggers for offensive language": "it uses charged words but asks for respectful, factual content",
    "dangerous or sensitive topics": "it asks for information on a sensitive topic, not help to cause harm",
    "privacy violations": "it asks about public or general information, not a private person's data",
    "false information": "it asks about a claim, which can be answered accurately",
}
COCONOT_NEAR = {"privacy violations": "S8", "false information": "S9", "triggers for offensive language": "S5"}


def short_answer(text: str, limit: int = 600) -> str:
    """The first paragraphs of `text` that fit in `limit` characters (or its first sentences): long reference
    answers cost CPU training tokens, and what is taught here is answering, not the whole essay."""
    kept = ""
    for paragraph in text.strip().split("\n\n"):
        if kept and len(kept) + len(paragraph) + 2 > limit:
            break
        kept = f"{kept}\n\n{paragraph}" if kept else paragraph
    if len(kept) <= limit:
        return kept
    sentences = re.split(r"(?<=[.!?])\s+", kept)
    short = sentences[0]
    for sentence in sentences[1:]:
        if len(short) + len(sentence) + 1 > limit:
            break
        short = f"{short} {sentence}"
    return short


def load_coconot(path: str | Path | None = None) -> list[PromptRecord]:
    """CoCoNot's contrast preference set (`allenai/coconot`, pref): its "Requests with safety concerns" are
    borderline_benign records whose reference is the compliant answer (`chosen`, shortened) and whose
    `meta.rejected` is a real over-refusal of the same prompt (a mirror pair for SRPO)."""
    rows = (
        hub_rows("allenai/coconot", "train", "pref")
        if path is None
        else jsonl_items(local_path(path), ("prompt", "chosen", "rejected", "subcategory"))
    )
    records = []
    for index, (where, row) in enumerate(rows):
        subcategory = require(row, "subcategory", where)
        if subcategory not in COCONOT_WHY:
            continue  # incomplete or unsupported requests: not safety look-alikes
        prompt = require(row, "prompt", where)
        records.append(
            PromptRecord(
                id=stable_id("coconot", row.get("id", index), prompt),
                prompt=prompt,
                kind="borderline_benign",
                source="coconot",
                reference=short_answer(require(row, "chosen", where)),
                meta={
                    "why": COCONOT_WHY[subcategory],
                    "near_category": COCONOT_NEAR.get(subcategory, ""),
                    "subcategory": subcategory,
                    "rejected": require(row, "rejected", where),
                },
            )
        )
    return records


def load_coconot_contrast(path: str | Path | None = None) -> list[PromptRecord]:
    """CoCoNot's contrast evaluation set (`allenai/coconot`, contrast): prompts that should be complied with, an
    over-refusal test beside XSTest. Evaluation only."""
    rows = (
        hub_rows("allenai/coconot", "test", "contrast")
        if path is None
        else jsonl_items(local_path(path), ("prompt", "subcategory"))
    )
    return [
        PromptRecord(
            id=stable_id("coconot_contrast", row.get("id", index), require(row, "prompt", where)),
            prompt=row["prompt"],
            kind="borderline_benign",
            source="coconot_contrast",
            meta={"subcategory": row["subcategory"], "category": row.get("category")},
        )
        for index, (where, row) in enumerate(rows)
    ]
