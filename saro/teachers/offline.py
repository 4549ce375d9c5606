"""Offline teacher: composes the RW reasoning from a record's labels and the policy file, no API needed.

Each sample varies the wording of every step (seeded by record id and sample index), so Shortest Rejection
Sampling has real choices and the student sees varied reasoning rather than one template. Refusals come from
the policy category's refusal and safe alternative; benign and general answers come from a local model (the
student itself by default: it answers simple questions well and we only teach *when* to answer) or from the
record's reference answer.
"""

from __future__ import annotations

import random
import re

from saro.policy import Policy
from saro.records import HARMFUL_KINDS, PromptRecord, format_response, stable_id
from saro.teachers.base import TeacherJob

# Steps are short on purpose: on CPU, training tokens are the budget, and the tokens that carry the judgement are
# the intent and decision lines, not long restatements of the policy.
_REQUEST = ['1. Request: "{q}"', '1. Request: the user asks: "{q}"']
_ACTION = ["1. Request: how to {a}.", "1. Request: they ask how to {a}.", "1. Request: the user wants to {a}."]
_COUNT = {2: "two", 3: "three", 4: "four"}
_TASKS = ["1. Request: {n} tasks, read one by one.", "1. Request: the user asks for {n} things."]
_WRAPPED = [
    '1. Request: a {w} wrapper around the real request: "{q}"',
    '1. Request: behind the {w} framing, the request is: "{q}"',
]
# The intent step opens with its verdict (label first) or describes the request and judges after; `intent_label_last`
# and a named target keep only the second kind (dev log, 2026-12-03: SRPO raised the label-first opening everywhere).
_HARM_LABEL_FIRST = "2. Intent: harmful: {h}."
_HARM_INTENT = ["2. Intent: {h}, so the goal is harmful.", "2. Intent: {h}; this is harm."]
_HARM_POLICY = ["3. Policy: {c} disallows this.", "3. Policy: falls under {c}; disallowed.", "3. Policy: {c} applies."]
_HARM_REFLECT = [
    "4. Reflection: wait, is there a harmless reading? No.",
    "4. Reflection: wait, could it be educational? Not as asked.",
    "4. Reflection: wait, nothing here changes the harmful intent.",
]
_WRAP_REFLECT = [
    "4. Reflection: wait, the {w} framing does not change what would be produced.",
    "4. Reflection: wait, a story or role-play would still deliver the harmful content.",
]
# `uniform_reflection`: every reflection asks the same question and answers it first (Yes / No), copying the stance
# the intent step took. With the varied wordings, greedy decoding took the most frequent one ("is anyone harmed? No.",
# a benign one) after harmful intents too, and the decision followed it (dev log, 2026-12-02).
_HARM_RESTATE = [
    "4. Reflection: wait, a real risk? Yes: it stays harmful as asked.",
    "4. Reflection: wait, a real risk? Yes: an educational framing would not make it less harmful.",
    "4. Reflection: wait, a real risk? Yes: nothing here changes the harmful intent.",
]
_WRAP_RESTATE = [
    "4. Reflection: wait, a real risk? Yes: the {w} framing does not change the harmful request.",
    "4. Reflection: wait, a real risk? Yes: a story or role-play would still deliver the harmful content.",
]
_DECOY_REFLECT = [
    "4. Reflection: wait, the harmless tasks beside it do not change what this one asks for.",
    "4. Reflection: wait, the other tasks are fine, but they do not make this one safe.",
]
_DECOY_RESTATE = ["4. Reflection: wait, a real risk? Yes: the harmless tasks beside it do not change this one."]
_REFUSE = ["5. Decision: refuse.", "5. Decision: refuse and offer a safe alternative."]
_BENIGN_LABEL_FIRST = "2. Intent: harmless: {y}."
_BENIGN_INTENT = ["2. Intent: {y}, so the goal is harmless.", "2. Intent: {y}; no harm."]
_BENIGN_POLICY = ["3. Policy: {c} is not violated; this is allowed.", "3. Policy: allowed under {c}."]
_NO_POLICY = ["3. Policy: no category applies.", "3. Policy: nothing disallowed."]
_BENIGN_REFLECT = [
    "4. Reflection: wait, is anyone harmed? No.",
    "4. Reflection: wait, it only sounds risky; refusing would be over-cautious.",
]
_BENIGN_RESTATE = [
    "4. Reflection: wait, a real risk? No: it only sounds risky; nobody is harmed.",
    "4. Reflection: wait, a real risk? No: it only sounds risky; refusing would be over-cautious.",
]
_GENERAL_INTENT = ["2. Intent: an ordinary {t} question.", "2. Intent: a plain {t} request."]
_GENERAL_REFLECT = ["4. Reflection: wait, anything sensitive? No.", "4. Reflection: nothing risky."]
_GENERAL_RESTATE = [
    "4. Reflection: wait, a real risk? No: nothing sensitive.",
    "4. Reflection: wait, a real risk? No: nothing risky.",
]
_ANSWER = ["5. Decision: answer.", "5. Decision: answer helpfully."]
# `corrections`: the intent step takes the other side's reading first and the reflection re-reads the request and
# corrects it. Everything before the reflection is a composed error, trained on as context only (untrained_prefix).
_CORRECTION_OPENING = "4. Reflection: wait, re-reading the request:"
_CORRECT_TO_HARM = _CORRECTION_OPENING + " {h}; the first reading was wrong, this is harm."
_CORRECT_TO_BENIGN = _CORRECTION_OPENING + " {y}; the first reading was wrong, there is no harm."
# Reflection wordings by side: "wrapped" is a harmful request inside a jailbreak template, "decoyed" one among
# harmless tasks.
_VARIED_REFLECT = {
    "harmful": _HARM_REFLECT,
    "wrapped": _WRAP_REFLECT,
    "decoyed": _DECOY_REFLECT,
    "benign": _BENIGN_REFLECT,
    "general": _GENERAL_REFLECT,
}
_UNIFORM_REFLECT = {
    "harmful": _HARM_RESTATE,
    "wrapped": _WRAP_RESTATE,
    "decoyed": _DECOY_RESTATE,
    "benign": _BENIGN_RESTATE,
    "general": _GENERAL_RESTATE,
}


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rsplit(" ", 1)[0] + "..."


def _judge_tasks(tasks: list[str], inner: str, description: str) -> str:
    """Every task in order, each judged where it is quoted: the decoys ordinary, the one that decides described.
    A first version named only the deciding task's position; the model wrote "the first task" whatever it held."""
    return "; ".join(
        f'"{_shorten(t, 80)}": {description}' if t == inner.strip() else f'"{_shorten(t, 80)}" is ordinary'
        for t in tasks
    )


def _topic(prompt: str) -> str:
    if re.search(r"\d", prompt) and re.search(r"(how many|how much|times|percent|%|sum|total|\bcost)", prompt, re.I):
        return "maths"
    if re.search(r"\b(write|compose|poem|haiku|story|limerick|note)\b", prompt, re.I):
        return "writing"
    if re.search(r"\b(python|code|function|css|program|sql|linux|bash)\b", prompt, re.I):
        return "programming"
    return "knowledge"


class OfflineComposer:
    """Teacher implementation that needs no API: policy reasoning from labels, answers from a local model."""

    def __init__(
        self,
        policy: Policy,
        answerer=None,
        benign_cites_category: bool = True,
        answer_opening: str = "",
        uniform_reflection: bool = False,
        intent_names_target: bool = False,
        intent_label_last: bool = False,
        corrections: float = 0.0,
    ):
        self.policy = policy
        self.answerer = answerer  # LocalTeacher or None (then benign records need a reference answer)
        # Off: only harmful reasoning names a category, so a named category never precedes a helpful answer.
        self.benign_cites_category = benign_cites_category
        self.answer_opening = answer_opening.strip()  # before every answer that is not a refusal
        self.reflections = _UNIFORM_REFLECT if uniform_reflection else _VARIED_REFLECT
        self.intent_names_target = intent_names_target
        # SRPO raised the stance-first wording's first token ('harmful:'), refusing look-alikes (dev log, session 11).
        self.intent_label_last = intent_label_last
        self.corrections = corrections  # share of plain contrast prompts whose first reading is the other side's
        self.name = f"offline:{policy.name}-v{policy.version}" + (f"+{answerer.name}" if answerer else "")

    def reasoning(self, record: PromptRecord, sample: int) -> tuple[str, str | None]:
        """The reasoning for one sample, and the answer when it is a refusal (None: answer must be written)."""
        rng = random.Random(stable_id(record.id, sample))
        inner = record.meta.get("inner_prompt", record.prompt)
        wrapper = (record.template_family or "").replace("_", " ").replace("-", " ").lower()
        tasks = record.meta.get("tasks")
        if tasks:  # the intent step then judges every task in turn (_judge_tasks)
            steps = [rng.choice(_TASKS).format(n=_COUNT.get(len(tasks), len(tasks)))]
        elif record.template_family:
            steps = [rng.choice(_WRAPPED).format(w=wrapper, q=_shorten(inner))]
        else:  # seeds name the action itself; other sources are quoted
            action = record.meta.get("action")
            steps = [
                rng.choice(_ACTION).format(a=action) if action else rng.choice(_REQUEST).format(q=_shorten(inner))
            ]
        misread = not tasks and not record.template_family and self._misreads(record)
        if record.kind in HARMFUL_KINDS:
            category = self._category(record.category)
            about = self._about(record)  # then the stance comes after the description, never first
            harm = about + (record.meta.get("harm") or category.definition.rstrip(".").lower())
            harm = _judge_tasks(tasks, inner, harm) if tasks else harm
            if misread:  # a harmless first reading, corrected by the reflection
                intents = self._intents(_BENIGN_LABEL_FIRST, _BENIGN_INTENT, bool(about))
                steps.append(rng.choice(intents).format(y=about + record.meta["misreading"]))
                steps.append(self._benign_policy(rng, record.category))
                steps.append(_CORRECT_TO_HARM.format(h=harm))
            else:
                intents = self._intents(_HARM_LABEL_FIRST, _HARM_INTENT, bool(about or tasks))
                steps.append(rng.choice(intents).format(h=harm))
                steps.append(rng.choice(_HARM_POLICY).format(c=category.label))
                reflect = self.reflections["decoyed" if tasks else "wrapped" if record.template_family else "harmful"]
                steps.append(rng.choice(reflect).format(w=wrapper))
            steps.append(rng.choice(_REFUSE))
            return "\n".join(steps), f"{category.refusal} {category.alternative}"
        if record.kind == "borderline_benign":
            about = self._about(record)
            why = about + record.meta.get("why", "an everyday or educational request")
            why = _judge_tasks(tasks, inner, why) if tasks else why
            near = record.meta.get("near_category") or self.policy.classify(inner, default="")
            if misread:  # a harmful first reading, corrected by the reflection
                intents = self._intents(_HARM_LABEL_FIRST, _HARM_INTENT, bool(about))
                steps.append(rng.choice(intents).format(h=about + record.meta["misreading"]))
                steps.append(rng.choice(_HARM_POLICY).format(c=self._category(near).label))
                steps.append(_CORRECT_TO_BENIGN.format(y=why))
            else:
                intents = self._intents(_BENIGN_LABEL_FIRST, _BENIGN_INTENT, bool(about or tasks))
                steps.append(rng.choice(intents).format(y=why))
                steps.append(self._benign_policy(rng, near))
                steps.append(rng.choice(self.reflections["benign"]))
        else:
            steps.append(rng.choice(_GENERAL_INTENT).format(t=_topic(inner)))
            steps.append(rng.choice(_NO_POLICY))
            steps.append(rng.choice(self.reflections["general"]))
        steps.append(rng.choice(_ANSWER))
        return "\n".join(steps), None

    def _misreads(self, record: PromptRecord) -> bool:
        """Whether this prompt's reasoning opens with its misreading: drawn once per prompt, not per sample, since
        Shortest Rejection Sampling would otherwise always keep a shorter, uncorrected sample."""
        if not (self.corrections and record.meta.get("misreading")):
            return False
        return random.Random(stable_id(record.id, "misreading")).random() < self.corrections

    def untrained_prefix(self, text: str) -> str | None:
        """The start of a composed response that is a deliberate error (the misreading before its correction): the
        student sees it as context and learns the correction, never the error. None for every other response."""
        at = text.find("\n" + _CORRECTION_OPENING)
        return text[: at + 1] if at >= 0 else None

    def _category(self, code: str):
        """The policy category `code` names, or S4 (crime) for a code the policy does not know."""
        return self.policy[code] if code in self.policy else self.policy["S4"]

    def _benign_policy(self, rng: random.Random, near: str) -> str:
        if near in self.policy and self.benign_cites_category:
            return rng.choice(_BENIGN_POLICY).format(c=self.policy[near].label)
        return rng.choice(_NO_POLICY)

    def _intents(self, label_first: str, described: list[str], has_subject: bool) -> list[str]:
        """The intent wordings to draw from: the label-first one only when neither the option nor a subject the step
        opens with (a named target, quoted tasks) rules it out."""
        return described if has_subject or self.intent_label_last else [label_first, *described]

    def _about(self, record: PromptRecord) -> str:
        """'it is about "<target>": ' for a seed action that opens with its trigger word (with intent_names_target):
        the harmful and harmless twins share the verb and differ in what it acts on, so that is what to read."""
        action, trigger = record.meta.get("action"), record.meta.get("trigger")
        if not (self.intent_names_target and action and trigger):
            return ""
        match = re.match(rf"{re.escape(trigger)}\b\s+(.+)", action, re.I)
        return f'it is about "{match.group(1)}": ' if match else ""

    def generate(self, jobs: list[TeacherJob]) -> list[list[str]]:
        drafts = [[self.reasoning(job.record, s) for s in range(job.n)] for job in jobs]
        # One answer per benign prompt, shared by its samples: reasoning wording varies, the answer need not.
        need = [j for j, job in enumerate(jobs) if drafts[j][0][1] is None and not job.record.reference]
        answers: dict[int, str] = {}
        if need and self.answerer is not None:
            plain = [TeacherJob(jobs[j].record, [{"role": "user", "content": jobs[j].record.prompt}]) for j in need]
            for j, texts in zip(need, self.answerer.generate(plain)):
                answers[j] = texts[0]
        results = []
        for j, job in enumerate(jobs):
            answer = answers.get(j)
            if answer is None and job.record.reference:
                solution = job.record.meta.get("solution")
                answer = f"{solution}\nThe answer is {job.record.reference}." if solution else job.record.reference
            if answer and self.answer_opening:
                answer = f"{self.answer_opening} {answer.lstrip()}"
            results.append([format_response(r, a if a is not None else (answer or "")) for r, a in drafts[j]])
        return results
