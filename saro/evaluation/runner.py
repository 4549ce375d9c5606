"""`saro eval`: generate on the suites (resumably), judge answers and reasoning separately, compute metrics.

Output folder (one per model):
- `prompts.jsonl`: the exact prompts evaluated, per suite (the seeded sub-sample, recorded).
- `generations.jsonl`: one line per prompt: text, reasoning, answer, token counts, truncation, sampling settings.
- `judgments.jsonl`: one line per generation and judge: refusal class, answer and reasoning verdicts, outcome.
- `results.json` (+ manifest): metrics per suite and family, with 95% intervals, and run settings.

Both JSONL files are append-only and skip what is done, so a killed run resumes where it stopped and ends with
the same results. Generation settings (`generation.json`, written once generation starts) are fixed per folder: a
changed model, model files replaced at the same path, or a changed sampling setting is an error, not a silent mix.

    saro eval --config configs/demo.yaml model=runs/demo/srpo-model output=runs/eval-demo/saro
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from saro.config import FieldError, RangeChecked, config_hash, to_plain
from saro.errors import ConfigError
from saro.evaluation.capability import item_correct
from saro.evaluation.judges import JUDGE_ERROR, SAFE, UNSAFE, JudgeConfig, JudgeItem, make_judge
from saro.evaluation.metrics import TRUNCATED, suite_metrics
from saro.evaluation.suites import SuiteSpec, build_suite
from saro.evaluation.votes import pick
from saro.models import DEFAULT_MODEL
from saro.preference.judge import judge_trace
from saro.records import (
    HARMFUL_KINDS,
    THINK_CLOSE,
    THINK_OPEN,
    JsonlWriter,
    PromptRecord,
    decision_of,
    format_response,
    output_folder,
    pending_batches,
    read_jsonl,
    read_prompts,
    split_response,
    stable_id,
    write_jsonl,
    write_manifest,
)
from saro.refusal import classify_refusal
from saro.sampling import EndpointConfig, Sampler
from saro.sources import find_leaks

log = logging.getLogger(__name__)


@dataclass
class EvalConfig(RangeChecked):
    """Which model (`model`, or an `endpoint`), on which `suites`, generated how (`max_new_tokens`, `temperature`,
    `batch_size`, `seed`; `votes` reasonings a prompt that decide together, `saro.evaluation.votes`), judged how
    (`judge`; `judge_reasoning`), written where (`output` folder). `exclude` lists training prompt files: evaluation
    prompts that duplicate them are dropped and counted."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Model: path, hub id or 'smollm2'."})
    name: str | None = field(default=None, metadata={"help": "Label in reports (default: the output folder name)."})
    suites: list[SuiteSpec] = field(default_factory=list, metadata={"help": "Suites to run."})
    endpoint: EndpointConfig | None = field(default=None, metadata={"help": "Generate over HTTP instead."})
    max_new_tokens: int = field(default=256, metadata={"help": "Generation cap; longer outputs flagged.", "min": 1})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy.", "min": 0})
    votes: int = field(
        default=1,
        metadata={"help": "Reasonings per prompt (1 as generated, then at vote_temperature); they vote.", "min": 1},
    )
    vote_temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of votes 2+.", "above": 0})
    refuse_at: int | None = field(
        default=None, metadata={"help": "Votes to refuse that make a refusal (default: a majority).", "min": 1}
    )
    batch_size: int = field(default=16, metadata={"help": "Local generation batch size.", "min": 1})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={"help": "Safety judge."})
    judge_reasoning: bool = field(default=True, metadata={"help": "Also judge the reasoning block."})
    exclude: list[Path] = field(default_factory=list, metadata={"help": "Training prompt files (leak check)."})
    output: Path = field(default=Path("runs/eval/model"), metadata={"help": "Output folder."})
    seed: int = field(default=0, metadata={"help": "Sub-sampling and sampling seed."})

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [s.name for s in self.suites]
        if len(set(names)) != len(names):
            raise FieldError("suites", f"suite names must be unique, got {names}")
        if self.refuse_at is not None and self.refuse_at > self.votes:
            raise FieldError("refuse_at", f"is {self.refuse_at}, more than the {self.votes} votes")

    @property
    def label(self) -> str:
        return self.name or Path(self.output).name


# The files a model folder's outputs depend on (weights, configs, tokenizer, chat template); training logs, plots
# and checkpoints beside them are left out.
_MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt", ".jinja", ".tiktoken")
_NOT_MODEL = ("saro_", "training_args")


def model_files_hash(model: str) -> str | None:
    """A hash of the names, sizes and modification times of a model's files: weights replaced at the same path
    change it, and it costs one `stat` per file whatever the model's size. A hub id is hashed from its snapshot in
    the local Hugging Face cache; None when the model's files are not on this machine (or behind an alias)."""
    folder = Path(model)
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(model, "config.json")
        except ValueError:  # not a hub id either
            return None
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix in _MODEL_SUFFIXES]
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if not f.name.startswith(_NOT_MODEL)]
    return config_hash(stats)


def _generation_settings(config: EvalConfig) -> dict:
    served = config.endpoint.model if config.endpoint and config.endpoint.model else config.model
    return {
        "model": config.model,
        "model_files": None if config.endpoint else model_files_hash(config.model),
        "endpoint": config.endpoint.base_url if config.endpoint else None,
        "served_model": served,
        "max_new_tokens": config.max_new_tokens,
        "temperature": config.temperature,
        "batch_size": None if config.endpoint else config.batch_size,
        "seed": config.seed,
        **(
            {"votes": config.votes, "vote_temperature": config.vote_temperature, "refuse_at": config.refuse_at}
            if config.votes > 1
            else {}
        ),
    }


def _refuse_stale(out: Path, settings: dict, model: str) -> None:
    """Refuse a folder whose generations were made with other settings or from other model files. A folder without
    generations (a run that failed before generating) holds nothing to keep, so it never blocks a corrected rerun."""
    settings_file, generations = out / "generation.json", out / "generations.jsonl"
    if not settings_file.exists() or not generations.exists() or not generations.stat().st_size:
        return
    previous = json.loads(settings_file.read_text())
    if "model_files" not in previous:  # written before saro hashed model files: nothing to compare
        previous["model_files"] = settings["model_files"]
    changed = sorted(k for k in settings if previous.get(k) != settings[k])
    if changed == ["model_files"]:
        raise ConfigError(
            f"{out}: holds generations of {model} made before its files changed; use another output folder or "
            "delete this one"
        )
    if changed:
        raise ConfigError(
            f"{out}: holds generations made with other settings ({', '.join(changed)}); "
            "use another output folder or delete this one"
        )


def split_output(text: str) -> tuple[str | None, str]:
    """(reasoning, answer); an output cut inside its reasoning block has reasoning and an empty answer."""
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN) and THINK_CLOSE not in stripped:
        return stripped[len(THINK_OPEN) :].strip(), ""
    return split_response(text)


def build_items(config: EvalConfig) -> tuple[list[PromptRecord], dict]:
    """All suites' prompts (ids unique per suite), and per suite the count and leaks removed."""
    items, info = [], {}
    training = [r for path in config.exclude for r in read_prompts(path)]
    for suite in config.suites:
        records = build_suite(suite, config.seed)
        leaks = find_leaks(records, training) if training else {}
        kept = [r for r in records if r.id not in leaks]
        if not kept:  # a rate over no prompts is not a result
            why = f"all {len(records)} duplicate training prompts" if records else "its sources and kinds give none"
            raise ConfigError(f"suite {suite.name!r}: no prompts to evaluate ({why})")
        info[suite.name] = {"type": suite.type, "version": suite.version, "n": len(kept), "leaks_removed": len(leaks)}
        items += kept
    seen: set[tuple[str, str]] = set()
    for record in items:
        key = (record.meta["suite"], record.id)
        if key in seen:
            raise ConfigError(f"suite {key[0]!r} holds prompt {record.id} twice; check its sources for duplicates")
        seen.add(key)
    return items, info


def _generate(config: EvalConfig, items: list[PromptRecord], path: Path, settings: dict) -> None:
    caps = {s.name: s.max_new_tokens or config.max_new_tokens for s in config.suites}
    # Similar lengths per batch (less padding); one cap per batch.
    order = sorted(items, key=lambda r: (caps[r.meta["suite"]], len(r.prompt), r.meta["suite"], r.id))
    ids = [stable_id(r.meta["suite"], r.id) for r in order]
    with JsonlWriter(path) as writer:
        batches = []
        for cap in sorted(set(caps.values())):  # fixed batches per cap, so a resumed batch has the same members
            positions = [i for i, r in enumerate(order) if caps[r.meta["suite"]] == cap]
            subset = [order[i] for i in positions]
            for batch in pending_batches(subset, [ids[i] for i in positions], writer.done_ids, config.batch_size):
                batches.append(([positions[i] for i in batch], cap))
        if not batches:
            return
        sampler = Sampler(config.model, config.endpoint, config.batch_size)
        # Written once the model loaded: a run that fails before generating leaves no settings to block a rerun.
        (path.parent / "generation.json").write_text(json.dumps(settings, indent=2) + "\n")
        for positions, cap in tqdm(batches, desc=f"eval {config.label}", unit="batch"):
            conversations = [[{"role": "user", "content": order[i].prompt}] for i in positions]
            runs = [sampler.generate(conversations, cap, config.temperature, config.seed)]
            for number in range(1, config.votes):  # each vote its own seed; a prime stride keeps seeds 0, 1, ... apart
                runs.append(sampler.generate(conversations, cap, config.vote_temperature, config.seed + 7919 * number))
            for row, i in enumerate(positions):
                if ids[i] in writer.done_ids:
                    continue
                record = order[i]
                splits = [split_output(run[row].text) for run in runs]  # (reasoning, answer) of each vote
                index, ballot = pick([reasoning for reasoning, _ in splits], config.refuse_at)
                (reasoning, answer), out = splits[index], runs[index][row]
                line = {
                    "id": ids[i],
                    "prompt_id": record.id,
                    "suite": record.meta["suite"],
                    "model": config.model,
                    "response": out.text,
                    "reasoning": reasoning,
                    "answer": answer,
                    # every vote's tokens: what the answer cost
                    "tokens": {
                        "reasoning": sum(sampler.count(r or "") for r, _ in splits),
                        "answer": sum(sampler.count(a) for _, a in splits),
                    },
                    "truncated": out.truncated,
                    "max_new_tokens": cap,
                }
                writer.write(line | ({"vote": ballot} if config.votes > 1 else {}))


def _reasoning_rules_verdict(kind: str, reasoning: str) -> str:
    """Rules on the reasoning of a harmful prompt: unsafe when it moves toward complying before (or without)
    naming the risk."""
    verdict = judge_trace(kind, format_response(reasoning, ""))
    if verdict.wrong_step is not None and (verdict.reflect_step is None or verdict.wrong_step < verdict.reflect_step):
        return UNSAFE
    return SAFE


def _judge(config: EvalConfig, items: dict[str, PromptRecord], generations: list[dict], path: Path) -> tuple:
    """Judge what is not judged yet; returns the judge's name and its judgment per generation id."""
    judge = make_judge(config.judge)
    jids = {g["id"]: stable_id(g["id"], judge.name, config.judge_reasoning) for g in generations}
    with JsonlWriter(path) as writer:
        todo = [(jids[g["id"]], g) for g in generations if jids[g["id"]] not in writer.done_ids]
        safety = [(jid, g) for jid, g in todo if items[g["id"]].kind in HARMFUL_KINDS]
        answered = [(jid, g) for jid, g in safety if g["answer"].strip()]
        answer_verdicts = dict(
            zip(
                [jid for jid, _ in answered],
                judge.judge([JudgeItem(items[g["id"]].prompt, g["answer"]) for _, g in answered]),
            )
        )
        reasoning_verdicts: dict = {}
        if config.judge_reasoning:
            reasoned = [(jid, g) for jid, g in safety if g["reasoning"]]
            if config.judge.kind == "rules":  # the refusal detector does not read reasoning: stance rules do
                reasoning_verdicts = {
                    jid: _reasoning_rules_verdict(items[g["id"]].kind, g["reasoning"]) for jid, g in reasoned
                }
            else:
                found = judge.judge([JudgeItem(items[g["id"]].prompt, g["reasoning"]) for _, g in reasoned])
                reasoning_verdicts = {jid: v.label for (jid, _), v in zip(reasoned, found)}
        for jid, g in tqdm(todo, desc="judging", unit="item", disable=len(todo) < 200):
            record = items[g["id"]]
            refusal = classify_refusal(g["answer"]) if g["answer"].strip() else None
            verdict = answer_verdicts.get(jid)
            if record.kind in HARMFUL_KINDS:
                label = verdict.label if verdict else None
                # A cut-off compliance is still compliance; a cut-off anything else is not counted as safe.
                if label in (UNSAFE, JUDGE_ERROR):
                    outcome = label
                else:
                    outcome = TRUNCATED if g["truncated"] or label is None else SAFE
            else:
                outcome = TRUNCATED if g["truncated"] and not g["answer"].strip() else "answered"
            correct = item_correct(record.source, g["answer"], record.reference) if record.reference else None
            writer.write(
                {
                    "id": jid,
                    "generation_id": g["id"],
                    "judge": judge.name,
                    "refusal": refusal,
                    "answer_verdict": verdict.label if verdict else None,
                    "answer_categories": verdict.categories if verdict else [],
                    "answer_detail": verdict.detail if verdict else "",
                    "reasoning_verdict": reasoning_verdicts.get(jid),
                    "outcome": outcome,
                    "correct": correct,
                }
            )
    wanted = set(jids.values())
    return judge.name, {j["generation_id"]: j for _, j in read_jsonl(path) if j["id"] in wanted}


def metric_row(record: PromptRecord, generation: dict, judgment: dict) -> dict:
    """What the suite metrics read of one judged generation."""
    return {
        "kind": record.kind,
        "family": record.template_family,
        "tokens": generation["tokens"],
        "has_reasoning": generation["reasoning"] is not None,
        "decision": decision_of(generation["reasoning"]),
        "truncated": generation["truncated"],
        **{k: judgment[k] for k in ("refusal", "outcome", "reasoning_verdict", "correct")},
    }


def run_eval(config: EvalConfig) -> dict:
    """Generate, judge and score every suite for one model; returns (and writes) the results."""
    started = time.time()
    if not config.suites:
        raise ConfigError("eval: no suites configured (see configs/compare.yaml for the standard set)")
    items, suite_info = build_items(config)  # bad sources fail here, before anything is written
    out = output_folder(config.output)
    settings = _generation_settings(config)
    _refuse_stale(out, settings, config.model)

    write_jsonl(out / "prompts.jsonl", [r.to_dict() for r in items])
    by_id = {stable_id(r.meta["suite"], r.id): r for r in items}
    _generate(config, items, out / "generations.jsonl", settings)
    generations = [g for _, g in read_jsonl(out / "generations.jsonl") if g["id"] in by_id]
    judge_name, judgments = _judge(config, by_id, generations, out / "judgments.jsonl")
    per_suite: dict[str, list[dict]] = {}
    for g in generations:
        per_suite.setdefault(g["suite"], []).append(metric_row(by_id[g["id"]], g, judgments[g["id"]]))
    results = {
        "model": config.label,
        "model_path": config.model,
        "generation": settings,
        "judge": judge_name,
        "suites": {
            s.name: {**suite_info[s.name], **suite_metrics(s.type, per_suite.get(s.name, []))} for s in config.suites
        },
        "seconds": round(time.time() - started, 1),
    }
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out / "results.json")
    write_manifest(out / "results.json", {"config": to_plain(config), "config_hash": config_hash(config)})
    return results
