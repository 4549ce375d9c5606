"""Safety sets that live on the Hugging Face hub: HarmBench, ALERT, Salad-Bench (base set and MCQ), WildJailbreak.

Each loader takes None (the hub copy; needs network) or a local JSON / JSONL / CSV file with the hub's columns, which
is how offline users and the tests feed them.
"""

from __future__ import annotations

import re
from pathlib import Path

from saro.errors import DataError
from saro.records import PromptRecord, stable_id
from saro.sources.files import hub_rows, jsonl_items, local_path, read_csv, read_json, require
from saro.sources.harmful import harmful_record


def _rows(path: str | Path | None, hub_id: str, split: str, config: str | None = None) -> list[tuple[str, dict]]:
    if path is None:
        return hub_rows(hub_id, split, config)
    file = local_path(path)
    if file.suffix == ".csv":
        return read_csv(file)
    if file.suffix == ".jsonl":
        return jsonl_items(file, ())
    data = read_json(file)
    if not isinstance(data, list):
        raise DataError(f"{file}: expected a JSON list of rows")
    return [(f"{file}: item {i}", row) for i, row in enumerate(data)]


def load_harmbench(path: str | Path | None = None) -> list[PromptRecord]:
    """HarmBench standard behaviours (`walledai/HarmBench`, config standard): `prompt`, `category`."""
    rows = _rows(path, "walledai/HarmBench", "train", "standard")
    return [
        harmful_record("harmbench", i, require(row, "prompt", where), None, harm_category=row.get("category"))
        for i, (where, row) in enumerate(rows)
    ]


def load_alert(path: str | Path | None = None) -> list[PromptRecord]:
    """ALERT (`Babelscape/ALERT`, config alert): `prompt` wrapped as `### Instruction: ... ### Response:`."""
    rows = _rows(path, "Babelscape/ALERT", "test", "alert")
    records = []
    for i, (where, row) in enumerate(rows):
        text = require(row, "prompt", where)
        match = re.search(r"###\s*Instruction:\s*(.*?)\s*(?:###\s*Response:.*)?$", text, re.S)
        records.append(
            harmful_record("alert", i, match.group(1) if match else text, None, harm_category=row.get("category"))
        )
    return records


def load_saladbench(path: str | Path | None = None) -> list[PromptRecord]:
    """Salad-Bench base set (`OpenSafetyLab/Salad-Data`, config base_set): `question` with 3-level categories."""
    rows = _rows(path, "OpenSafetyLab/Salad-Data", "train", "base_set")
    return [
        harmful_record("saladbench", i, require(row, "question", where), None, harm_category=row.get("1-category"))
        for i, (where, row) in enumerate(rows)
    ]


def load_wildjailbreak(path: str | Path | None = None) -> list[PromptRecord]:
    """WildJailbreak evaluation set (`allenai/wildjailbreak`, config eval): its adversarial harmful prompts, which
    are already jailbreak-wrapped (kind jailbreak, family wildjailbreak); the benign ones are left out."""
    rows = _rows(path, "allenai/wildjailbreak", "train", "eval")
    records = []
    for i, (where, row) in enumerate(rows):
        if row.get("data_type", "adversarial_harmful") != "adversarial_harmful":
            continue
        records.append(harmful_record("wildjailbreak", i, require(row, "adversarial", where), None, kind="jailbreak"))
    return records


def load_saladbench_mcq(path: str | Path | None = None) -> list[PromptRecord]:
    """Salad-Bench safety multiple choice (`mcq_set.json`, or the hub's mcq_set): `mcq` is the full question with
    its instructions, `gt` the safe option letters (e.g. "AC"), kept as the reference."""
    rows = _rows(path, "OpenSafetyLab/Salad-Data", "train", "mcq_set")
    records = []
    for i, (where, row) in enumerate(rows):
        question = require(row, "mcq", where)
        answer = require(row, "gt", where)
        if not re.fullmatch(r"[A-Z]+", answer):
            raise DataError(f"{where}: field 'gt' is {answer!r}; expected option letters such as 'AC'")
        records.append(
            PromptRecord(
                id=stable_id("saladbench_mcq", i, question),
                prompt=question,
                kind="general",
                source="saladbench_mcq",
                reference=answer,
                meta={"harm_category": row.get("1-category")},
            )
        )
    return records
