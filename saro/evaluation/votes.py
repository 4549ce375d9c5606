"""Decision votes: several reasonings of one prompt decide together, and the answer comes from one that agrees.

A small reasoning model's verdict rests on the reading its intent step happens to retrieve; sampled reasonings
retrieve different readings, and the share that decide to refuse ranks harmful above harmless prompts better than
the greedy decision alone (dev log, session 29). The cost is one generation per vote.
"""

from __future__ import annotations

from saro.records import decision_of


def vote(decisions: list[str | None], refuse_at: int | None = None) -> str | None:
    """The voted decision of one prompt's reasonings (first = greedy); None when none of them decided.

    Refuse when at least `refuse_at` of the deciding reasonings refuse; without it, when more than half do, and a
    tie keeps the first deciding reasoning's decision."""
    decided = [d for d in decisions if d is not None]
    if not decided:
        return None
    refusals = decided.count("refuse")
    if refuse_at is not None:
        return "refuse" if refusals >= refuse_at else "answer"
    if 2 * refusals == len(decided):
        return decided[0]
    return "refuse" if 2 * refusals > len(decided) else "answer"


def pick(reasonings: list[str | None], refuse_at: int | None = None) -> tuple[int, dict]:
    """(index of the output to keep, the vote's record): the first output whose decision is the vote's, so the
    greedy one wherever it agrees; the first output when none decided."""
    decisions = [decision_of(r) for r in reasonings]
    voted = vote(decisions, refuse_at)
    index = next((i for i, d in enumerate(decisions) if d == voted), 0)
    return index, {"decisions": decisions, "voted": voted, "picked": index}
