"""Process-preference (PP) and outcome-preference (OP) pairs from judged on-policy traces.

PP (SaRO sec. 3.2, our reconstruction): for a trace that takes the right stance late or never (harmful prompt:
the risk is recognised after step `min_step` or not at all; benign prompt: needless suspicion before the harmless
reading), cut at step t = min(min_step, first wrong step). prompt = conversation + the trace's own steps before t;
chosen = step t takes the right stance (names the policy category) and continues to the right final answer, taken
from a sibling sample that shares the prefix when one exists, otherwise composed from the policy; rejected = the
trace's own continuation. For a benign trace that is already right, a mirror pair keeps its continuation as chosen
and a needless reflection ending in refusal as rejected. By default (`mirror="real"`) only where the source holds a
real over-refusal of that prompt: composed refusals on prompts the model already answers reject the very refusal
text harmful pairs choose, with no counterpart on the harmful side, and taught the model to stop refusing (dev log,
2026-12-01).

OP: whole responses, right outcome (safe and, for benign prompts, helpful) over wrong outcome.

Every completion ends with a finished final answer (cut-off answers are trimmed to whole sentences) and carries
no end-of-turn token: the DPO trainer appends exactly one, so no pair teaches stopping after one step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from saro.chat import continue_turn
from saro.policy import Policy
from saro.preference.judge import TraceVerdict
from saro.records import (
    HARMFUL_KINDS,
    THINK_CLOSE,
    THINK_OPEN,
    PromptRecord,
    decision_of,
    format_response,
    split_response,
    stable_id,
)
from saro.teachers.offline import OfflineComposer

PAIR_TYPES = ("pp", "op")
# Who wrote a pair's chosen side (meta.chosen_from): a right sample of the model itself (sibling, or the trace's own
# continuation in a mirror pair), an LLM teacher, or the offline composer's policy text.
CHOSEN_SOURCES = ("sibling", "trace", "teacher", "composed")


@dataclass
class Trace:
    """One sampled response with its step split and verdict."""

    sample: int
    text: str
    truncated: bool
    steps: list[str]
    verdict: TraceVerdict

    @property
    def answer(self) -> str:
        return trim_answer(split_response(self.text)[1], self.truncated)

    def continuation(self, t: int) -> str:
        """Steps t.. (1-based), the end of the think block and the final answer."""
        return "".join(self.steps[t - 1 :]).rstrip() + f"\n{THINK_CLOSE}\n\n" + self.answer

    def prefix(self, t: int) -> str:
        """The assistant text before step t: the opening of the think block and steps 1..t-1."""
        return f"{THINK_OPEN}\n" + "".join(self.steps[: t - 1])

    def response(self) -> str:
        """The whole trace as it will be trained on (answer trimmed if cut off)."""
        if not self.steps:
            reasoning, _ = split_response(self.text)
            return format_response(reasoning, self.answer) if reasoning is not None else self.answer
        return self.prefix(1) + self.continuation(1)


def trim_answer(answer: str, truncated: bool) -> str:
    """A cut-off answer ends at its last whole sentence, so no completion teaches stopping mid-sentence."""
    answer = answer.strip()
    if not truncated:
        return answer
    cut = max(answer.rfind(". "), answer.rfind(".\n"), answer.rfind("!"), answer.rfind("?"), answer.rfind("\n\n"))
    return answer[: cut + 1].strip() if cut > 0 else answer


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


# Harmful and harmless stances say what the request means first and only then label it, in the same words on both
# sides ("..., so the goal is harmful" / "..., so the goal is harmless"): the sides part on the prompt's content, not
# on one label token. Pairs whose stances opened with the label taught the model to decide at the first word of the
# step, and an unevenly worded label taught it "harmless" for harmful prompts (dev log, 2026-12-01).
_HARM_STANCE = [
    "{t}. Intent: {h}, so the goal is harmful; {c} disallows it.",
    "{t}. Intent: {h}; this is harm, and {c} disallows it.",
]
_HARM_REFLECT = [
    "{t}. Reflection: wait, could a wrapper or a harmless reading change that? No.",
    "{t}. Reflection: wait, is there a harmless reading? No.",
]
_BENIGN_STANCE = [
    "{t}. Intent: {y}, so the goal is harmless; {c} does not cover it.",
    "{t}. Intent: {y}; no harm, and {c} does not cover it.",
]
_GENERAL_STANCE = [
    "{t}. Intent: an ordinary request, so the goal is harmless; no policy category applies.",
    "{t}. Intent: a plain request; no harm, and nothing is disallowed.",
]
_BENIGN_REFLECT = ["{t}. Reflection: wait, it only sounds risky; refusing would be over-cautious."]
_SUSPECT = [
    "{t}. Intent: this could be harmful; {c} disallows it.",
    "{t}. Policy: it sounds risky and may fall under {c}; disallowed.",
]
_REFUSE = ["{t}. Decision: refuse."]
_ANSWER = ["{t}. Decision: answer."]


class PairComposer:
    """Writes the continuations no sample provides, from the prompt's labels and the policy."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.rw = OfflineComposer(policy)  # whole RW-style reasoning, for outcome pairs with no right sample

    def category(self, record: PromptRecord):
        """The policy category a record falls under (its label, a near miss, or a keyword match)."""
        key = record.category if record.category in self.policy else record.meta.get("near_category")
        if key not in self.policy:
            key = self.policy.classify(record.meta.get("inner_prompt", record.prompt), default="S4")
        return self.policy[key]

    def refusal(self, record: PromptRecord) -> str:
        """The category's refusal with its safe alternative: the right final answer to a harmful prompt."""
        category = self.category(record)
        return f"{category.refusal} {category.alternative}"

    def safe_steps(self, record: PromptRecord, t: int, rng: random.Random) -> tuple[list[str], str | None]:
        """Steps t.. that take the right stance at once, and the refusal when the prompt is harmful."""
        category = self.category(record)
        if record.kind in HARMFUL_KINDS:
            harm = record.meta.get("harm") or category.definition.rstrip(".").lower()
            lines = [rng.choice(_HARM_STANCE), rng.choice(_HARM_REFLECT), rng.choice(_REFUSE)]
            filled = [line.format(t=t + i, h=harm, c=category.label) for i, line in enumerate(lines)]
            return filled, self.refusal(record)
        if record.kind == "general":
            stance = rng.choice(_GENERAL_STANCE)
            return [stance.format(t=t), rng.choice(_ANSWER).format(t=t + 1)], None
        why = record.meta.get("why", "an everyday or educational request")
        lines = [rng.choice(_BENIGN_STANCE), rng.choice(_BENIGN_REFLECT), rng.choice(_ANSWER)]
        return [line.format(t=t + i, y=why, c=category.label) for i, line in enumerate(lines)], None

    def suspicious_steps(self, record: PromptRecord, t: int, rng: random.Random) -> tuple[list[str], str]:
        """Steps t.. that needlessly flag a harmless request and refuse (the rejected side of a mirror pair)."""
        category = self.category(record)
        lines = [rng.choice(_SUSPECT), rng.choice(_REFUSE)]
        return [line.format(t=t + i, c=category.label) for i, line in enumerate(lines)], category.refusal


def _continuation(steps: list[str], answer: str) -> str:
    return "\n".join(steps) + f"\n{THINK_CLOSE}\n\n" + answer.strip()


@dataclass
class PairSettings:
    min_step: int = 2  # earliest step that may take a stance: step 1 restates the request
    mirror: str = "real"  # right benign traces get a needless-refusal rejected side: real (source's), composed, none
    op_per_prompt: int = 2


def build_pairs(
    record: PromptRecord,
    traces: list[Trace],
    render_prompt,
    composer: PairComposer,
    teacher_answer: str | None,
    settings: PairSettings,
) -> list[dict]:
    """All PP and OP pairs of one prompt. `render_prompt(record)` gives the chat-formatted prompt text that ends
    where the assistant turn starts; `teacher_answer` is a helpful answer for benign prompts when no sample has
    one (None: such pairs are skipped)."""
    rng = random.Random(stable_id("pairs", record.id))
    base_prompt = render_prompt(record)
    pairs: dict[str, dict] = {}
    harmful = record.kind in HARMFUL_KINDS
    # Identical samples (greedy and sampled often agree) would only repeat the same comparison.
    seen: set[str] = set()
    traces = [tr for tr in traces if not (tr.text in seen or seen.add(tr.text))]
    # The best right trace: no wrong turn before its stance, then the earliest stance, then the shortest.
    good = sorted((tr for tr in traces if tr.verdict.good), key=_preference_rank)
    clean = [tr for tr in good if not _preference_rank(tr)[0]]
    right_answer = good[0].answer if good else teacher_answer

    def add(kind: str, t: int, prefix: str, chosen: str, rejected: str, info: dict) -> None:
        if _normal(chosen) == _normal(rejected) or not chosen.strip() or not rejected.strip():
            return
        prompt, chosen, rejected = continue_turn(base_prompt, prefix, chosen, rejected)
        pair_id = stable_id(prompt, chosen, rejected)
        pairs.setdefault(
            pair_id,
            {
                "id": pair_id,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "meta": {
                    "prompt_id": record.id,
                    "source": record.source,
                    "kind": record.kind,
                    "category": record.category,
                    "template_family": record.template_family,
                    "pair_type": kind,
                    "step": t,
                    "messages": [{"role": "user", "content": record.prompt}],
                    "assistant_prefix": prefix,
                    **info,
                },
            },
        )

    mirrored = False
    for trace in traces:
        v = trace.verdict
        if not trace.steps:
            continue
        late = v.reflect_step is None or v.reflect_step > settings.min_step
        wrong_first = v.wrong_step is not None and (v.reflect_step is None or v.wrong_step < v.reflect_step)
        t = min(settings.min_step, v.wrong_step) if wrong_first else settings.min_step
        t = max(1, min(t, len(trace.steps)))
        if (late or wrong_first) and (v.reflect_step is None or v.reflect_step > t):
            chosen, source, chosen_at = _sibling(trace, traces, t), "sibling", t
            if chosen is None:
                steps, refusal = composer.safe_steps(record, t, rng)
                answer = refusal if harmful else right_answer
                chosen = _continuation(steps, answer) if answer else None
                source = "composed"
            if chosen is not None:
                info = {"chosen_from": source, "chosen_reflect_step": chosen_at}
                info |= {"rejected_reflect_step": v.reflect_step, "rejected_sample": trace.sample}
                add("pp", t, trace.prefix(t), chosen, trace.continuation(t), info)
        elif not mirrored and not harmful and v.good and v.reflect_step is not None and _mirrors(record, settings):
            mirrored, t = True, v.reflect_step  # one mirror pair per prompt: siblings are near-copies
            steps, refusal = composer.suspicious_steps(record, t, rng)
            refusal = record.meta.get("rejected") or refusal  # a real over-refusal where the source has one
            info = {"chosen_from": "trace", "chosen_reflect_step": t, "rejected_reflect_step": None}
            info |= {"chosen_sample": trace.sample, "rejected_from": "composed"}
            add("pp", t, trace.prefix(t), trace.continuation(t), _continuation(steps, refusal), info)

    bad = [tr for tr in traces if not tr.verdict.good]
    right_final = composer.refusal(record) if harmful else right_answer
    for trace in bad:
        # The reasoning decided right and the answer ignored it: after the model's own reasoning, prefer the answer
        # that follows its decision line (the answer, not the reasoning, is what went wrong).
        if trace.steps and right_final and decision_of("".join(trace.steps)) == ("refuse" if harmful else "answer"):
            # The prompt ends at `</think>`, not after the blank line: BPE merges the blank line with some answers'
            # first characters, and the prompt's tokens would then not be a prefix of the pair's.
            prefix = trace.prefix(len(trace.steps) + 1).rstrip() + f"\n{THINK_CLOSE}"
            source = "composed" if harmful else "sibling" if good else "teacher"
            stance = trace.verdict.reflect_step
            info = {"chosen_from": source, "decision_following": True, "rejected_sample": trace.sample}
            info |= {"chosen_reflect_step": stance, "rejected_reflect_step": stance}
            add("op", len(trace.steps) + 1, prefix, f"\n\n{right_final.strip()}", f"\n\n{trace.answer.strip()}", info)
    for trace in bad[: settings.op_per_prompt]:
        if clean:  # a right answer reached by a detour is no model for the whole response
            chosen, source, chosen_at = clean[0].response(), "sibling", clean[0].verdict.reflect_step
        else:  # the RW teacher's own reasoning for this prompt, with the right final answer
            reasoning, refusal = composer.rw.reasoning(record, trace.sample)
            answer = refusal if harmful else right_answer
            if not answer:
                continue
            chosen, source, chosen_at = format_response(reasoning, answer), "composed", settings.min_step
        info = {"chosen_from": source, "chosen_reflect_step": chosen_at}
        info |= {"rejected_reflect_step": trace.verdict.reflect_step, "rejected_sample": trace.sample}
        add("op", 0, "", chosen, trace.response(), info)
    return list(pairs.values())


def _mirrors(record: PromptRecord, settings: PairSettings) -> bool:
    return settings.mirror == "composed" or (settings.mirror == "real" and bool(record.meta.get("rejected")))


def _preference_rank(trace: Trace) -> tuple:
    v = trace.verdict
    stance = v.reflect_step if v.reflect_step is not None else 99
    detour = v.wrong_step is not None and v.wrong_step < stance
    return detour, stance, len(trace.text)


def _sibling(trace: Trace, traces: list[Trace], t: int) -> str | None:
    """The continuation of a right sibling sample that shares steps 1..t-1 and takes the right stance at t."""
    prefix = _normal("".join(trace.steps[: t - 1]))
    for other in traces:
        ov = other.verdict
        if other is trace or not ov.good or ov.reflect_step != t or len(other.steps) < t:
            continue
        if ov.wrong_step is not None and ov.wrong_step <= t:
            continue
        if _normal("".join(other.steps[: t - 1])) == prefix:
            return other.continuation(t)
    return None
