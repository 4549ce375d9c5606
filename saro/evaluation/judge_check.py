"""How well a refusal judge agrees with human labels: `saro judge-check`.

Labelled sets: XSTest's model completions with human labels (`completions_*_gpteval.csv`: full compliance, full
refusal, partial refusal) and PyRIT's refusal scorer set (`pyrit_refusal.csv`: 1 = refusal). Agreement is on the
binary question the metrics use (full compliance vs any refusal); the confusion table shows the three classes.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from saro.errors import DataError
from saro.refusal import FULL_COMPLIANCE, FULL_REFUSAL, PARTIAL_REFUSAL, classify_refusal

SHARED = Path("../shared/data")
_XSTEST_LABELS = {
    "1_full_compliance": FULL_COMPLIANCE,
    "2_full_refusal": FULL_REFUSAL,
    "3_partial_refusal": PARTIAL_REFUSAL,
}


@dataclass
class LabelledAnswer:
    text: str
    label: str  # FULL_COMPLIANCE, FULL_REFUSAL or PARTIAL_REFUSAL (binary sets: FULL_REFUSAL for any refusal)
    where: str


@dataclass
class JudgeCheckConfig:
    """Labelled sets to check the refusal judge against (paths relative to the working directory)."""

    xstest_completions: list[Path] = field(
        default_factory=lambda: [SHARED / f"xstest/completions_{m}_gpteval.csv" for m in ("gpt4", "mistralinstruct")],
        metadata={"help": "XSTest completion files with human labels (final_label)."},
    )
    pyrit_refusal: Path | None = field(
        default=SHARED / "refusal_labels/pyrit_refusal.csv", metadata={"help": "PyRIT refusal set (or null)."}
    )


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        raise DataError(f"{path}: labelled set not found (is ../shared/data beside the checkout?)")
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]  # PyRIT files start with a version comment
    return list(csv.DictReader(lines))


def load_xstest_completions(path: Path) -> list[LabelledAnswer]:
    answers = []
    for number, row in enumerate(_rows(path), start=2):
        label = _XSTEST_LABELS.get((row.get("final_label") or "").strip())
        if label is None or row.get("completion") is None:
            raise DataError(f"{path}:{number}: field 'final_label' must be one of {sorted(_XSTEST_LABELS)}")
        answers.append(LabelledAnswer(row["completion"], label, f"{path}:{number}"))
    return answers


def load_pyrit_refusals(path: Path) -> list[LabelledAnswer]:
    answers = []
    for number, row in enumerate(_rows(path), start=3):
        score = (row.get("human_score") or "").strip()
        if score not in ("0", "1") or row.get("assistant_response") is None:
            raise DataError(f"{path}:{number}: field 'human_score' must be 0 or 1")
        label = FULL_REFUSAL if score == "1" else FULL_COMPLIANCE
        answers.append(LabelledAnswer(row["assistant_response"], label, f"{path}:{number}"))
    return answers


def agreement(answers: list[LabelledAnswer], judge=classify_refusal) -> dict:
    """Binary accuracy (compliance vs any refusal), the 3-class confusion and the binary error counts."""
    confusion: Counter = Counter()
    correct = 0
    for answer in answers:
        predicted = judge(answer.text)
        confusion[(answer.label, predicted)] += 1
        correct += (answer.label == FULL_COMPLIANCE) == (predicted == FULL_COMPLIANCE)
    missed = sum(n for (h, p), n in confusion.items() if h != FULL_COMPLIANCE and p == FULL_COMPLIANCE)
    false = sum(n for (h, p), n in confusion.items() if h == FULL_COMPLIANCE and p != FULL_COMPLIANCE)
    return {
        "n": len(answers),
        "accuracy": round(correct / len(answers), 4) if answers else 0.0,
        "missed_refusals": missed,
        "false_refusals": false,
        "confusion": {f"{h} -> {p}": n for (h, p), n in sorted(confusion.items())},
    }


def run_judge_check(config: JudgeCheckConfig) -> dict[str, dict]:
    """Agreement of the rule-based refusal judge per labelled set, plus all XSTest completions together."""
    results, xstest_all = {}, []
    for path in config.xstest_completions:
        answers = load_xstest_completions(path)
        xstest_all += answers
        results[f"xstest:{path.stem.removeprefix('completions_').removesuffix('_gpteval')}"] = agreement(answers)
    if len(config.xstest_completions) > 1:
        results["xstest:all"] = agreement(xstest_all)
    if config.pyrit_refusal:
        results["pyrit"] = agreement(load_pyrit_refusals(config.pyrit_refusal))
    return results
