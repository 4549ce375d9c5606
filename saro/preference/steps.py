"""Split a reasoning block into steps, keeping exact boundaries: `"".join(steps) == reasoning` always holds.

The RW format numbers its steps ("1. Request: ..."); traces that break format fall back to paragraphs, then to
sentences. A teacher can also mark the boundaries (`split_with_teacher`); its answer is only used when it keeps
the text verbatim, so a pair's shared prefix is always the model's own text.
"""

from __future__ import annotations

import re

_NUMBERED = re.compile(r"^[ \t]*\d+[.)][ \t]+\S", re.M)
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_SENTENCE = re.compile(r"(?<=[.!?])[ \t]+(?=\S)")

SPLITTERS = ("numbered", "paragraph", "sentence")


def _cut(text: str, starts: list[int]) -> list[str]:
    bounds = sorted({0, *starts} - {len(text)}) + [len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if text[a:b]]


def split_steps(reasoning: str) -> tuple[list[str], str]:
    """(steps, method). Steps keep their trailing separators; text before the first numbered step joins step 1."""
    starts = [m.start() for m in _NUMBERED.finditer(reasoning)]
    if len(starts) >= 2:
        return _cut(reasoning, starts[1:]), "numbered"
    paragraphs = [m.end() for m in _PARAGRAPH.finditer(reasoning)]
    if paragraphs:
        return _cut(reasoning, paragraphs), "paragraph"
    return _cut(reasoning, [m.end() for m in _SENTENCE.finditer(reasoning)]), "sentence"


def step_number(step: str) -> int | None:
    """The number a step gives itself ("3. Policy ..." -> 3), or None for unnumbered steps."""
    match = re.match(r"\s*(\d+)[.)]\s", step)
    return int(match.group(1)) if match else None


def split_with_teacher(reasoning: str, marked: str) -> list[str] | None:
    """Steps from a teacher's segmentation (`marked`: the reasoning copied with one step per line), or None when
    the copy is not verbatim (whitespace aside): the caller then falls back to the rules."""
    cuts, position = [], 0
    for line in (line for line in marked.splitlines() if line.strip()):
        for char in line:
            if char.isspace():
                continue
            while position < len(reasoning) and reasoning[position].isspace():
                position += 1
            if position >= len(reasoning) or reasoning[position] != char:
                return None
            position += 1
        while position < len(reasoning) and reasoning[position].isspace():
            position += 1
        cuts.append(position)
    if not cuts or reasoning[position:].strip():
        return None
    return _cut(reasoning, cuts[:-1])
