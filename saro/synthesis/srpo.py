"""SRPO data: on-policy traces from the RW model, split into steps, judged, and turned into preference pairs.

Inputs: the RW model (`model`), the training prompts (`prompts_file`) and the held-out prompts
(`heldout_prompts_file`). Outputs, for each of the two splits (`output` and `<stem>.heldout.jsonl`):
`<name>` DPO pairs (`prompt` / `chosen` / `rejected` + provenance), `<name stem>.traces.jsonl` (every sampled trace
with its step split and verdicts), `<name stem>.prompts.jsonl` (one line per finished prompt: the resume marker)
and a manifest with statistics. Each batch of prompts is sampled, judged and paired before the next starts; a
killed run redoes at most one batch, regenerates it identically and writes no pair twice.

    saro synth srpo --config configs/demo.yaml
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from saro.chat import render_prompt
from saro.config import RangeChecked, config_hash, to_plain
from saro.errors import ConfigError, DataError
from saro.policy import Policy, load_policy
from saro.preference.judge import judge_messages, judge_trace, parse_judge_reply
from saro.preference.pairs import PairComposer, PairSettings, Trace, build_pairs
from saro.preference.steps import split_steps, split_with_teacher
from saro.records import (
    HARMFUL_KINDS,
    KINDS,
    JsonlWriter,
    PromptRecord,
    pending_batches,
    read_jsonl,
    read_prompts,
    split_response,
    stable_id,
    write_jsonl,
    write_manifest,
)
from saro.sampling import EndpointConfig, Sampler
from saro.synthesis.rw import teacher_messages
from saro.teachers import TeacherConfig, TeacherJob, make_teacher

log = logging.getLogger(__name__)

DECOMPOSE_PROMPT = """Copy the reasoning below word for word, putting each reasoning step on its own line. Do not \
add, drop or change any word; only insert line breaks between steps.

{reasoning}"""

CONTINUE_PROMPT = """Here is the start of a reasoning about the user's message:

{prefix}

Write the reasoning from step {t} on, then </think>, then the final answer. Step {t} must {stance}, name the \
policy category it weighs, and the reasoning must end in a decision that the final answer follows. Start your \
reply with "{t}."."""


@dataclass
class SRPOSynthesisConfig(RangeChecked):
    """SRPO synthesis settings.

    Sampling: `model` (the RW model; its tokenizer formats the pairs), `endpoint` (sample from a server serving it,
    e.g. vLLM, instead of loading it), `samples` traces per prompt (the first greedy, the rest at `temperature`),
    `max_new_tokens`, `batch_size` (also the resume unit). Prompts: `prompts_file`, `heldout_prompts_file`, and
    `per_kind` / `heldout_per_kind` to sub-sample them (seeded). Steps and judging: `steps`, `judge` (rules, or the
    teacher). Pairs: `min_step`, `mirror`, `op_per_prompt`. `teacher` writes continuations no sample provides and
    answers benign prompts (offline: `teacher.answer_model`, by default `answer_model`).
    """

    model: str = field(default="runs/demo/rw-model", metadata={"help": "RW model to sample traces from."})
    output: Path = field(default=Path("runs/demo/srpo.jsonl"), metadata={"help": "Training pairs JSONL."})
    prompts_file: Path = field(default=Path("runs/demo/prompts.train.jsonl"), metadata={"help": "Training prompts."})
    heldout_prompts_file: Path | None = field(
        default=Path("runs/demo/prompts.heldout.jsonl"), metadata={"help": "Prompts for held-out pairs (or null)."}
    )
    per_kind: dict[str, int] | None = field(
        default=None, metadata={"help": "Training prompts per kind (all).", "min": 0}
    )
    heldout_per_kind: dict[str, int] | None = field(
        default=None, metadata={"help": "Held-out prompts per kind.", "min": 0}
    )
    endpoint: EndpointConfig | None = field(default=None, metadata={"help": "Sample from this server instead."})
    samples: int = field(
        default=4,
        metadata={
            "help": "Traces per prompt: the first greedy, the rest sampled (4: prompts with right and wrong).",
            "min": 1,
        },
    )
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of traces after the first.", "min": 0}
    )
    max_new_tokens: int = field(
        default=192, metadata={"help": "Max tokens per trace (cut answers are trimmed).", "min": 1}
    )
    batch_size: int = field(
        default=32, metadata={"help": "Prompts per generation batch (resume granularity).", "min": 1}
    )
    steps: Literal["rules", "teacher"] = field(default="rules", metadata={"help": "Step decomposition."})
    judge: Literal["rules", "teacher"] = field(default="rules", metadata={"help": "Step and outcome judge."})
    min_step: int = field(default=2, metadata={"help": "Earliest step a stance may be taken (1 restates).", "min": 1})
    mirror: Literal["real", "composed", "none"] = field(
        default="real",
        metadata={"help": "Right benign traces vs a needless refusal: the source's real one, composed ones, none."},
    )
    op_per_prompt: int = field(default=2, metadata={"help": "Outcome pairs per prompt at most.", "min": 0})
    answer_model: str = field(default="smollm2", metadata={"help": "offline teacher: model answering benign prompts."})
    policy: Path | None = field(default=None, metadata={"help": "Policy YAML (default: packaged v1)."})
    teacher: TeacherConfig = field(default_factory=TeacherConfig, metadata={"help": "Teacher backend."})
    seed: int = field(default=0, metadata={"help": "Seed for sub-sampling and sampling."})
    rounds: int = field(
        default=1,
        metadata={"help": "saro run: SRPO rounds; round r samples and starts from the round r-1 model.", "min": 1},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if "teacher" in (self.steps, self.judge) and self.teacher.kind == "offline":
            raise ValueError("steps=teacher and judge=teacher need teacher.kind http or local")

    @property
    def heldout_output(self) -> Path:
        return self.output.with_name(self.output.stem + ".heldout.jsonl")


def sidecar(output: Path, name: str) -> Path:
    return output.with_name(f"{output.stem}.{name}.jsonl")


def select_prompts(records: list[PromptRecord], per_kind: dict[str, int] | None, seed: int) -> list[PromptRecord]:
    """A seeded sub-sample per kind, kept in file order so batches stay stable across reruns."""
    if not per_kind:
        return records
    unknown = set(per_kind) - set(KINDS)
    if unknown:
        raise ConfigError(f"per_kind: unknown kind {sorted(unknown)[0]!r} (kinds: {', '.join(KINDS)})")
    chosen: set[str] = set()
    for kind, count in per_kind.items():
        ids = [r.id for r in records if r.kind == kind]
        chosen.update(random.Random(f"{seed}:{kind}").sample(ids, min(count, len(ids))))
    return [r for r in records if r.id in chosen]


class _LazyTeacher:
    """Loads the teacher (and the offline composer's answer model) only when a pair needs it."""

    def __init__(self, config: SRPOSynthesisConfig, policy: Policy):
        self.config, self.policy, self._teacher = config, policy, None

    def get(self):
        if self._teacher is None:
            self._teacher = make_teacher(self.config.teacher, self.policy, self.config.answer_model)
        return self._teacher

    @property
    def name(self) -> str:
        return self.get().name


def run_srpo_synthesis(config: SRPOSynthesisConfig) -> dict:
    """Sample, judge and pair for the training and held-out prompts, resuming from what exists. Returns stats."""
    from saro.models import load_tokenizer

    started = time.time()
    inputs = {Path(f).resolve(): key for key, f in [("prompts_file", config.prompts_file)] if f}
    inputs |= {Path(f).resolve(): key for key, f in [("heldout_prompts_file", config.heldout_prompts_file)] if f}
    for output in (config.output, config.heldout_output if config.heldout_prompts_file else config.output):
        if output.resolve() in inputs:  # the pairs would be appended to the prompts, and unfinished ones cut
            raise ConfigError(f"output {config.output}: {output} is the {inputs[output.resolve()]}; choose another")
    policy = load_policy(config.policy)
    splits = [("train", config.prompts_file, config.per_kind, config.output)]
    if config.heldout_prompts_file:
        splits.append(("heldout", config.heldout_prompts_file, config.heldout_per_kind, config.heldout_output))
    tokenizer = load_tokenizer(config.model, padding_side="left")
    sampler = None
    teacher = _LazyTeacher(config, policy)
    stats: dict = {}
    selected = {
        split: select_prompts(read_prompts(file), per_kind, config.seed) for split, file, per_kind, _ in splits
    }
    shared = sorted({r.id for r in selected["train"]} & {r.id for r in selected.get("heldout", [])})
    if shared:  # held-out margins would be measured on prompts the model trains on
        raise ConfigError(
            f"synth_srpo: {len(shared)} prompts (id {shared[0]!r}, ...) are in both prompts_file "
            f"{config.prompts_file} and heldout_prompts_file {config.heldout_prompts_file}; held-out prompts must be "
            "left out of training"
        )
    for split, prompts_file, per_kind, output in splits:
        records = selected[split]
        if not records:
            raise ConfigError(f"synth_srpo: no prompts selected from {prompts_file}")
        with JsonlWriter(sidecar(output, "prompts")) as finished:
            batches = pending_batches(records, [r.id for r in records], finished.done_ids, config.batch_size)
        _drop_unfinished_pairs(output, finished.done_ids)
        if batches and sampler is None:
            sampler = Sampler(config.model, config.endpoint, config.batch_size)
        _run_split(split, records, batches, output, config, policy, sampler, tokenizer, teacher)
        stats[split] = summarize_pairs(output, sidecar(output, "prompts"))
        made = stats[split]["all"]["pp"] + stats[split]["all"]["op"]
        if not made and split == "train":  # nothing to train on is not a finished stage
            raise DataError(
                f"{output}: no pairs from {len(records)} prompts (every trace right and on time): sample more "
                "(samples) or from prompts where the model still errs"
            )
        if not made:
            log.warning("%s: no held-out pairs; margins will not be measured", output)
        info = {"config": to_plain(config), "config_hash": config_hash(config), "split": split, "stats": stats[split]}
        write_manifest(output, info)
    stats["seconds"] = round(time.time() - started, 1)
    return stats


def _run_split(split, records, batches, output, config, policy, sampler, tokenizer, teacher) -> None:
    traces_path, prompts_path = sidecar(output, "traces"), sidecar(output, "prompts")
    cached = {obj["id"]: obj for _, obj in read_jsonl(traces_path)} if traces_path.exists() else {}
    composer = PairComposer(policy)
    composer_name = f"composer:{policy.name}-v{policy.version}"
    settings = PairSettings(config.min_step, config.mirror, config.op_per_prompt)

    def render(record: PromptRecord) -> str:
        messages = [{"role": "user", "content": record.prompt}]
        return render_prompt(tokenizer, messages)

    with (
        JsonlWriter(traces_path) as trace_log,
        JsonlWriter(output) as pair_log,
        JsonlWriter(prompts_path) as finished,
        tqdm(total=len(records), initial=len(finished.done_ids), desc=f"synth srpo ({split})", unit="prompt") as bar,
    ):
        for positions in batches:
            batch = [records[i] for i in positions]
            have = [cached[r.id]["traces"][: config.samples] if r.id in cached else [] for r in batch]
            if any(len(row) < config.samples for row in have):
                for record, old, generations in zip(batch, have, _sample(batch, sampler, config, have)):
                    if len(old) < len(generations):  # new, or more samples than the cache holds: the later line wins
                        cached[record.id] = {"id": record.id, "kind": record.kind, "traces": generations}
                        trace_log.write(cached[record.id])
            # Judge and ask the teacher for the whole batch, finished prompts included: the same batch
            # composition gives the same answers, so a resumed batch rebuilds exactly the pairs it would have.
            judged = {r.id: _judge(r, cached[r.id]["traces"][: config.samples], config, teacher) for r in batch}
            answers = _teacher_answers(batch, judged, config, policy, teacher)
            for record in batch:
                if record.id in finished.done_ids:
                    continue
                traces = judged[record.id]
                pairs = build_pairs(record, traces, render, composer, answers.get(record.id), settings)
                if config.teacher.kind != "offline":
                    pairs = [_teacher_chosen(p, record, traces, config, policy, teacher) for p in pairs]
                for pair in pairs:
                    pair["meta"]["teacher"] = _provenance(pair, composer_name, teacher, record.id in answers)
                    if pair["id"] not in pair_log.done_ids:
                        pair_log.write(pair)
                finished.write(_prompt_summary(record, traces, pairs))
                bar.update(1)


def _provenance(pair: dict, composer_name: str, teacher, teacher_answered: bool) -> str | None:
    """Who wrote the chosen side when no sample did: the policy composer (plus the teacher's answer for benign
    prompts), or the teacher itself."""
    source = pair["meta"]["chosen_from"]
    if source == "teacher":
        return teacher.name
    if source == "composed":
        return composer_name + (f"+{teacher.name}" if teacher_answered else "")
    return None


def _drop_unfinished_pairs(output: Path, finished: set[str]) -> None:
    """Pairs of a prompt cut off by a kill before its summary line are dropped; the prompt is redone whole."""
    if not output.exists():
        return
    with JsonlWriter(output):  # drops a torn last line first
        pass
    rows = [obj for _, obj in read_jsonl(output)]
    keep = [obj for obj in rows if obj["meta"]["prompt_id"] in finished]
    if len(keep) != len(rows):
        log.info("dropping %d pairs of unfinished prompts from %s", len(rows) - len(keep), output)
        write_jsonl(output, keep)


def _sample(batch, sampler, config, have: list[list[dict]] | None = None) -> list[list[dict]]:
    """`samples` traces per prompt: sample 0 greedy (the model's mode), the others at `temperature`. `have` holds
    traces already sampled per prompt (a cache from a run with fewer samples): only the missing ones are drawn."""
    per_prompt: list[list[dict]] = [list(row) for row in have] if have else [[] for _ in batch]
    for sample in range(min(len(row) for row in per_prompt), config.samples):
        todo = [i for i, row in enumerate(per_prompt) if len(row) == sample]
        temperature = config.temperature if sample else 0.0
        conversations = [[{"role": "user", "content": batch[i].prompt}] for i in todo]
        outputs = sampler.generate(conversations, config.max_new_tokens, temperature, config.seed + sample)
        for i, out in zip(todo, outputs):
            per_prompt[i].append(
                {"sample": sample, "text": out.text, "tokens": out.tokens, "truncated": out.truncated}
            )
    return per_prompt


def _judge(record: PromptRecord, generations: list[dict], config, teacher) -> list[Trace]:
    traces = []
    for gen in generations:
        reasoning, answer = split_response(gen["text"])
        steps, split = split_steps(reasoning) if reasoning else ([], "none")
        if reasoning and config.steps == "teacher":
            job = TeacherJob(record, [{"role": "user", "content": DECOMPOSE_PROMPT.format(reasoning=reasoning)}])
            teacher_steps = split_with_teacher(reasoning, teacher.get().generate([job])[0][0])
            if teacher_steps:
                steps, split = teacher_steps, "teacher"
        verdict = judge_trace(record.kind, gen["text"], gen["truncated"], steps if reasoning else None, split)
        if reasoning and config.judge == "teacher":
            job = TeacherJob(record, judge_messages(record.kind, record.prompt, steps, answer))
            reply = teacher.get().generate([job])[0][0]
            verdict = parse_judge_reply(reply, record.kind, steps, split, answer, gen["truncated"]) or verdict
        traces.append(Trace(gen["sample"], gen["text"], gen["truncated"], steps, verdict))
    return traces


def _teacher_answers(records, judged, config, policy, teacher) -> dict[str, str]:
    """A helpful answer for each benign prompt with a wrong trace and no right sibling to borrow an answer from."""
    need = [
        r
        for r in records
        if r.kind not in HARMFUL_KINDS
        and not any(t.verdict.good for t in judged[r.id])
        and any(t.steps for t in judged[r.id])
    ]
    if not need:
        return {}
    jobs = [TeacherJob(r, teacher_messages(r, policy, reveal_label=True)) for r in need]
    answers = {}
    for record, texts in zip(need, teacher.get().generate(jobs)):
        answer = split_response(texts[0])[1]
        if answer:
            answers[record.id] = answer
    return answers


def _teacher_chosen(pair, record, traces, config, policy, teacher) -> dict:
    """With an LLM teacher, let it write a composed chosen continuation; keep the composed one if it fails."""
    meta = pair["meta"]
    if meta["chosen_from"] != "composed" or meta["pair_type"] != "pp":
        return pair
    t = meta["step"]
    stance = "recognise the risk" if record.kind in HARMFUL_KINDS else "recognise the harmless intent"
    prefix = meta["assistant_prefix"]
    messages = teacher_messages(record, policy, reveal_label=True)
    messages.append({"role": "user", "content": CONTINUE_PROMPT.format(prefix=prefix, t=t, stance=stance)})
    text = teacher.get().generate([TeacherJob(record, messages)])[0][0].strip()
    verdict = judge_trace(record.kind, prefix + text)
    if text.startswith(f"{t}.") and verdict.good and verdict.reflect_step == t:
        pair = {**pair, "chosen": text, "meta": {**meta, "chosen_from": "teacher"}}
        pair["id"] = stable_id(pair["prompt"], pair["chosen"], pair["rejected"])
    return pair


def _prompt_summary(record: PromptRecord, traces: list[Trace], pairs: list[dict]) -> dict:
    return {
        "id": record.id,
        "kind": record.kind,
        "traces": [
            {"sample": t.sample, "steps": len(t.steps), "truncated": t.truncated, "good": t.verdict.good}
            | t.verdict.to_dict()
            for t in traces
        ],
        "pairs": [p["id"] for p in pairs],
    }


def summarize_pairs(pairs_path: Path, prompts_path: Path) -> dict:
    """Per kind: prompts, traces, right traces, PP / OP pairs, mean step of the stance in chosen vs rejected."""
    rows: dict = {}
    for _, obj in read_jsonl(prompts_path):
        row = rows.setdefault(obj["kind"], _empty_row())
        row["prompts"] += 1
        row["traces"] += len(obj["traces"])
        row["right_traces"] += sum(t["good"] for t in obj["traces"])
    for _, pair in read_jsonl(pairs_path):
        meta = pair["meta"]
        row = rows.setdefault(meta["kind"], _empty_row())
        row[meta["pair_type"]] += 1
        if meta["chosen_reflect_step"] is not None:
            row["_chosen_steps"].append(meta["chosen_reflect_step"])
        if meta["rejected_reflect_step"] is None:
            row["rejected_never"] += 1
        else:
            row["_rejected_steps"].append(meta["rejected_reflect_step"])
    total = _empty_row()
    for row in rows.values():
        for key, value in row.items():
            total[key] += value
    rows["all"] = total
    for row in rows.values():
        chosen, rejected = row.pop("_chosen_steps"), row.pop("_rejected_steps")
        row["chosen_step"] = round(sum(chosen) / len(chosen), 2) if chosen else None
        row["rejected_step"] = round(sum(rejected) / len(rejected), 2) if rejected else None
    return rows


def _empty_row() -> dict:
    keys = ("prompts", "traces", "right_traces", "pp", "op", "rejected_never")
    return {k: 0 for k in keys} | {"_chosen_steps": [], "_rejected_steps": []}
