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
