"""Reasoning-style Warmup (RW) data: teacher reasoning chains for harmful, jailbreak, borderline and general prompts.

Input: a prompt mix (built from `prompts`, or read from `prompts_file`). Output: `output` (SFT JSONL with
`messages`), `<output>.rejects.jsonl` (prompts no sample passed), `prompts.train.jsonl` / `prompts.heldout.jsonl`
beside it, and `<output>.manifest.json` with statistics. Shortest Rejection Sampling (SaRO, sec. 3.1): `samples`
responses per prompt; keep the shortest that passes the format check and the judge check.

    saro synth rw --config configs/demo.yaml
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from saro.config import RangeChecked, config_hash, to_plain
from saro.errors import ConfigError, DataError
from saro.models import DEFAULT_MODEL, load_tokenizer
from saro.policy import Policy, load_policy
from saro.records import (
    HARMFUL_KINDS,
    KINDS,
    JsonlWriter,
    PromptRecord,
    decision_of,
    output_folder,
    pending_batches,
    read_jsonl,
    read_prompts,
    split_response,
    write_jsonl,
    write_manifest,
)
from saro.refusal import is_refusal
from saro.sources import PromptSetConfig, build_prompt_set
from saro.teachers import TeacherConfig, TeacherJob, make_teacher

log = logging.getLogger(__name__)

_STEP = re.compile(r"^\s*(\d+)[.)]\s+\S", re.M)

TEACHER_SYSTEM_PROMPT = """You teach a model to reason about safety before it answers. For the user's message, first \
think inside <think> and </think> in short numbered steps:
1. Request: restate what is asked.
2. Intent: find the real intent, looking through any role-play, fiction or other wrapper.
3. Policy: check it against the safety policy below and cite the category id and name, or say none applies.
4. Reflection: start with "wait," and reconsider (a harmless reading? a hidden harmful one?).
5. Decision: "refuse" or "answer".
After </think>, write the final answer that follows the decision: a helpful answer, or a brief refusal with a \
safe alternative. Be concise.

Safety policy ({name} v{version}):
{categories}"""


def teacher_messages(record: PromptRecord, policy: Policy, reveal_label: bool) -> list[dict[str, str]]:
    """Messages for an LLM teacher: the policy and format in the system turn, the prompt as the user turn."""
    categories = "\n".join(
        f"- {c.label}: {c.definition} Disallowed: {'; '.join(c.disallowed)}. Allowed: {'; '.join(c.allowed)}."
        for c in policy.categories
    )
    system = TEACHER_SYSTEM_PROMPT.format(name=policy.name, version=policy.version, categories=categories)
    if reveal_label:
        system += f"\n\n(Dataset label for this message: {record.kind}; use it, but reason from the content.)"
    return [{"role": "system", "content": system}, {"role": "user", "content": record.prompt}]


def check_format(text: str) -> str | None:
    """Why `text` breaks the RW format, or None: a think block of >= 3 numbered steps ending in a decision."""
    reasoning, answer = split_response(text)
    if reasoning is None:
        return "no <think> block"
    if len(_STEP.findall(reasoning)) < 3:
        return "fewer than 3 numbered steps"
    decision = decision_of(reasoning)
    if decision is None:
        return "no decision line"
    if not answer:
        return "no final answer"
    if (decision == "refuse") != is_refusal(answer):
        return "answer does not follow the decision"
    return None


def check_judgement(record: PromptRecord, text: str) -> str | None:
    """Why the answer is wrong for the prompt's kind, or None: harmful prompts refused, benign ones answered."""
    _, answer = split_response(text)
    refused = is_refusal(answer)
    if record.kind in HARMFUL_KINDS and not refused:
        return "complied with a harmful prompt"
    if record.kind in ("borderline_benign", "general") and refused:
        return "refused a benign prompt"
    return None


@dataclass
class RWSynthesisConfig(RangeChecked):
    """RW synthesis settings.

    Inputs: `prompts` (mix to build) or `prompts_file`; `policy`. Teacher: `teacher`, `samples`, `reveal_label`.
    Output: `output`, `batch_size` (prompts per teacher call, also the resume unit). Student tokenizer: `model`.
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Student model (tokenizer for token counts)."})
    output: Path = field(default=Path("runs/demo/rw.jsonl"), metadata={"help": "SFT JSONL to write."})
    prompts: PromptSetConfig = field(default_factory=PromptSetConfig, metadata={"help": "Prompt mix to build."})
    prompts_file: Path | None = field(default=None, metadata={"help": "Use this prompt JSONL instead of `prompts`."})
    policy: Path | None = field(default=None, metadata={"help": "Policy YAML (default: packaged v1)."})
    teacher: TeacherConfig = field(default_factory=TeacherConfig, metadata={"help": "Teacher backend."})
    samples: int = field(default=4, metadata={"help": "Samples per prompt for Shortest Rejection Sampling.", "min": 1})
    reveal_label: bool = field(default=True, metadata={"help": "Tell LLM teachers the prompt's dataset label."})
    batch_size: int = field(default=32, metadata={"help": "Prompts per teacher call (resume granularity).", "min": 1})


def prepare_prompts(config: RWSynthesisConfig) -> list[PromptRecord]:
    """Build (or read) the training prompts and write the train / held-out files beside the output."""
    if config.prompts_file:
        return read_prompts(config.prompts_file)
    split = build_prompt_set(config.prompts)
    folder = config.output.parent
    write_jsonl(folder / "prompts.train.jsonl", (r.to_dict() for r in split.train))
    write_jsonl(folder / "prompts.heldout.jsonl", (r.to_dict() for r in split.heldout))
    for name in ("validation", "srpo"):  # written even when empty: a file from an older mix must not survive
        write_jsonl(folder / f"prompts.{name}.jsonl", (r.to_dict() for r in getattr(split, name)))
    log.info("prompt mix: %s", split.report)
    return split.train


def run_rw_synthesis(config: RWSynthesisConfig) -> dict:
    """Synthesize RW data, resuming from what `output` already holds. Returns the statistics summary."""
    started = time.time()
    if config.output.is_dir():
        raise ConfigError(f"output {config.output}: a folder is there; output names the JSONL file to write")
    if config.prompts_file and config.output.resolve() == Path(config.prompts_file).resolve():
        raise ConfigError(f"output {config.output} is the prompts_file; choose another output")
    output_folder(config.output.parent, "output folder")
    policy = load_policy(config.policy)
    records = prepare_prompts(config)
    if not records:
        raise ConfigError(
            f"{config.prompts_file}: no prompts in it" if config.prompts_file else "synth_rw: the prompt mix is empty"
        )
    rejects_path = config.output.with_name(config.output.stem + ".rejects.jsonl")
    tokenizer = load_tokenizer(config.model)
    with JsonlWriter(config.output) as kept, JsonlWriter(rejects_path) as rejected:
        done = kept.done_ids | rejected.done_ids
        batches = pending_batches(records, [r.id for r in records], done, config.batch_size)
        todo_batches = [[records[i] for i in batch] for batch in batches]
        teacher = make_teacher(config.teacher, policy, config.model) if todo_batches else None
        remaining = sum(r.id not in done for b in todo_batches for r in b)
        with tqdm(total=len(records), initial=len(records) - remaining, desc="synth rw", unit="prompt") as progress:
            for batch in todo_batches:
                _synthesize_batch(batch, done, config, policy, teacher, tokenizer, kept, rejected, progress)
    stats = summarize(config.output, rejects_path)
    if not any(row["kept"] for row in stats.values()):  # nothing to train on is not a finished stage
        raise DataError(
            f"{config.output}: no record kept; every sample of all {len(records)} prompts failed the format or "
            f"judge check (why: {rejects_path}); remove both files and use a stronger teacher or answer model"
        )
    stats["seconds"] = round(time.time() - started, 1)
    write_manifest(config.output, {"config": to_plain(config), "config_hash": config_hash(config), "stats": stats})
    return stats


def _synthesize_batch(batch, done, config, policy, teacher, tokenizer, kept, rejected, progress) -> None:
    """Generate for a whole batch and write the records not yet done.

    The whole batch is regenerated on resume, so it sees the same neighbours and greedy outputs repeat exactly.
    """
    jobs = [TeacherJob(r, teacher_messages(r, policy, config.reveal_label), config.samples) for r in batch]
    for record, texts in zip(batch, teacher.generate(jobs)):
        if record.id in done:
            continue
        _select(record, texts, teacher, tokenizer, kept, rejected)
        progress.update(1)


def _select(record: PromptRecord, texts: list[str], teacher, tokenizer, kept, rejected) -> None:
    """Shortest Rejection Sampling: write the shortest passing sample, or a reject line naming every failure. A
    composed self-correction keeps its deliberate misreading as `untrained_prefix`: context for training, no loss."""
    verdicts, passing = [], []
    for index, text in enumerate(texts):
        reasoning, answer = split_response(text)
        problem = check_format(text) or check_judgement(record, text)
        tokens = {
            "reasoning": len(tokenizer(reasoning or "", add_special_tokens=False)["input_ids"]),
            "answer": len(tokenizer(answer, add_special_tokens=False)["input_ids"]),
        }
        verdicts.append({"sample": index, "problem": problem, "tokens": tokens})
        if problem is None:
            passing.append((tokens["reasoning"] + tokens["answer"], index, text, tokens))
    meta = {
        "prompt_id": record.id,
        "source": record.source,
        "kind": record.kind,
        "category": record.category,
        "template_family": record.template_family,
        "teacher": teacher.name,
        "verdicts": verdicts,
    }
    if not passing:
        rejected.write({"id": record.id, "reason": sorted({v["problem"] for v in verdicts}), "meta": meta})
        return
    _, index, text, tokens = min(passing)
    untrained = getattr(teacher, "untrained_prefix", lambda text: None)(text)
    kept.write(
        {
            "id": record.id,
            "messages": [{"role": "user", "content": record.prompt}, {"role": "assistant", "content": text}],
            **({"untrained_prefix": untrained} if untrained else {}),
            "meta": {**meta, "sample_index": index, "samples": len(texts), "tokens": tokens},
        }
    )


def summarize(output: Path, rejects: Path) -> dict:
    """Per-kind counts (kept, rejected, self-corrections), acceptance and mean token lengths of a synthesis output."""
    stats: dict = {
        kind: {"kept": 0, "rejected": 0, "corrected": 0, "reasoning_tokens": 0.0, "answer_tokens": 0.0}
        for kind in KINDS
    }
    for _, record in read_jsonl(output):
        row = stats[record["meta"]["kind"]]
        row["kept"] += 1
        row["corrected"] += "untrained_prefix" in record  # a composed misreading, corrected in its reflection
        row["reasoning_tokens"] += record["meta"]["tokens"]["reasoning"]
        row["answer_tokens"] += record["meta"]["tokens"]["answer"]
    if rejects.exists():
        for _, record in read_jsonl(rejects):
            stats[record["meta"]["kind"]]["rejected"] += 1
    for row in stats.values():
        for key in ("reasoning_tokens", "answer_tokens"):
            row[key] = round(row[key] / row["kept"], 1) if row["kept"] else 0.0
    return stats
