"""Train/eval leak check: exact and normalised near-duplicates (AdvBench sits inside SG-Bench, for one)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from saro.records import PromptRecord

_WORD = re.compile(r"[a-z0-9]+")


def normalize(text: str) -> str:
    """Lower case, punctuation and extra spaces removed: 'How do I X?' == 'how do i x'."""
    return " ".join(_WORD.findall(text.lower()))


def _core(record: PromptRecord) -> str:
    """Compare the request itself, not the jailbreak wrapper around it."""
    return record.meta.get("inner_prompt", record.prompt)


def find_leaks(
    train: list[PromptRecord], reference: list[PromptRecord], threshold: float = 0.8
) -> dict[str, tuple[str, str]]:
    """Train ids whose request duplicates a reference prompt: {train id: (how, reference id)}.

    `how` is "exact", "normalized" or "near" (word-set Jaccard >= threshold, found through an inverted index so
    thousands of prompts compare in well under a second).
    """
    exact = {_core(r): r.id for r in reference}
    normal = {normalize(_core(r)): r.id for r in reference}
    ref_words = [(r.id, set(normalize(_core(r)).split())) for r in reference]
    index: dict[str, list[int]] = defaultdict(list)
    for position, (_, words) in enumerate(ref_words):
        for word in words:
            index[word].append(position)
    leaks = {}
    for record in train:
        text = _core(record)
        if text in exact:
            leaks[record.id] = ("exact", exact[text])
            continue
        if normalize(text) in normal:
            leaks[record.id] = ("normalized", normal[normalize(text)])
            continue
        words = set(normalize(text).split())
        shared = Counter(p for word in words for p in index.get(word, ()))
        for position, common in shared.most_common(5):
            ref_id, ref_set = ref_words[position]
            if common / len(words | ref_set) >= threshold:
                leaks[record.id] = ("near", ref_id)
                break
    return leaks


def dedupe(records: list[PromptRecord]) -> list[PromptRecord]:
    """Drop records whose normalised request repeats an earlier one (sets overlap with each other too)."""
    seen, kept = set(), []
    for record in records:
        key = (record.kind, record.template_family, normalize(_core(record)))
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept
