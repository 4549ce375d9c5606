"""Prompt sets -> prompt records: loaders per data set, jailbreak wrapping, leak checks and the train/held-out mix.

Each loader takes a local path (file, folder or URL) or None for its public source (hub id or release URL).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from saro.config import RangeChecked
from saro.errors import ConfigError
from saro.records import KINDS, PromptRecord, read_prompts
from saro.sources.benign import load_coconot, load_coconot_contrast, load_gsm8k, load_xstest
from saro.sources.harmful import load_advbench, load_donotanswer, load_sgbench
from saro.sources.hub import (
    load_alert,
    load_harmbench,
    load_saladbench,
    load_saladbench_mcq,
    load_wildjailbreak,
)
from saro.sources.overlap import dedupe, find_leaks, normalize
from saro.sources.seeds import load_freeform, load_seeds
from saro.sources.templates import TEMPLATE_SOURCES, Template, decoy_pool, multi_task_prompts, wrap_prompts


def load_prompt_records(path=None) -> list[PromptRecord]:
    """A saro prompt-record JSONL file (another run's split, a diagnostic set), e.g. to exclude from training."""
    if not path:
        raise ConfigError("source 'prompts' needs a path to a prompt-record JSONL file")
    return read_prompts(path)


SOURCES = {
    "seeds": load_seeds,
    "freeform": load_freeform,
    "prompts": load_prompt_records,
    "sgbench": load_sgbench,
    "advbench": load_advbench,
    "donotanswer": load_donotanswer,
    "xstest": load_xstest,
    "gsm8k": load_gsm8k,
    "coconot": load_coconot,
    "coconot_contrast": load_coconot_contrast,
    "harmbench": load_harmbench,
    "alert": load_alert,
    "saladbench": load_saladbench,
    "wildjailbreak": load_wildjailbreak,
    "saladbench_mcq": load_saladbench_mcq,
}


_BASE_KINDS = ("harmful", "borderline_benign", "general")


@dataclass
class SourceSpec(RangeChecked):
    """One prompt or template set: a name from SOURCES / TEMPLATE_SOURCES and where to read it."""

    name: str = field(default="seeds", metadata={"help": "Set name, e.g. seeds, sgbench, xstest, builtin, pyrit."})
    path: str | None = field(default=None, metadata={"help": "Local file, folder or URL; empty = public source."})
    limit: int | None = field(default=None, metadata={"help": "Keep at most this many (seeded sample).", "min": 1})


@dataclass
class PromptSetConfig(RangeChecked):
    """How training and held-out prompts are drawn.

    Sources: `sources`, `templates`. Mix: `per_kind`, `jailbreak_count`, `multi_task_per_kind`, `max_template_chars`.
    SRPO's prompts: `srpo_per_kind`, `srpo_sources`, `srpo_multi_task_per_kind`. Trained whole: `train_sources`.
    Held out: `heldout_per_kind`, `heldout_families` (template families never used in training), `exclude` (eval
    sets that training prompts must not duplicate). `seed` fixes every draw.
    """

    sources: list[SourceSpec] = field(default_factory=lambda: [SourceSpec()], metadata={"help": "Prompt sets."})
    templates: list[SourceSpec] = field(
        default_factory=lambda: [SourceSpec(name="builtin")], metadata={"help": "Jailbreak template sets."}
    )
    per_kind: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "Max training prompts per kind (harmful, borderline_benign, general).", "min": 0},
    )
    jailbreak_count: int = field(default=100, metadata={"help": "Wrapped harmful prompts for training.", "min": 0})
    multi_task_per_kind: dict[str, int] = field(
        default_factory=dict,
        metadata={
            "help": "Training prompts per kind (harmful, borderline_benign, general) placed among ordinary tasks.",
            "min": 0,
        },
    )
    srpo_multi_task_per_kind: dict[str, int] = field(
        default_factory=dict,
        metadata={
            "help": "SRPO prompts per kind (harmful, borderline_benign, general) placed among ordinary tasks.",
            "min": 0,
        },
    )
    max_template_chars: int = field(
        default=800, metadata={"help": "Skip longer templates (training tokens).", "min": 1}
    )
    heldout_per_kind: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "Prompts per kind (jailbreak too) kept out of training for eval.", "min": 0},
    )
    heldout_per_group: int | None = field(
        default=None, metadata={"help": "At most this many held-out prompts per group (phrasings of one action)."}
    )
    heldout_families: list[str] = field(default_factory=list, metadata={"help": "Template families for eval only."})
    validation_per_kind: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "Prompts per kind (jailbreak too) for model selection, never trained.", "min": 0},
    )
    validation_sources: list[SourceSpec] = field(
        default_factory=list, metadata={"help": "Pool the validation set is drawn from (default: sources)."}
    )
    validation_families: list[str] = field(
        default_factory=list, metadata={"help": "Template families for validation jailbreaks only."}
    )
    srpo_per_kind: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "Prompts per kind (jailbreak too) RW never trains on, for SRPO.", "min": 0},
    )
    srpo_sources: list[SourceSpec] = field(
        default_factory=list, metadata={"help": "Extra pools for the SRPO prompts only (e.g. coconot)."}
    )
    # Off by default: in the demo's 299-prompt mix they crowd out the trigger-word types (dev log, session 6).
    train_only_groups: bool = field(
        default=False, metadata={"help": "Train on seed groups marked train_only too (never in any other split)."}
    )
    train_sources: list[SourceSpec] = field(
        default_factory=list,
        metadata={
            "help": "Prompt sets trained whole, on top of the drawn mix (e.g. freeform), never in another split; "
            "wrapped and hidden among tasks like the drawn prompts."
        },
    )
    exclude: list[SourceSpec] = field(default_factory=list, metadata={"help": "Eval sets to remove leaks against."})
    seed: int = field(default=0, metadata={"help": "Seed for sampling, splitting and wrapping."})

    def __post_init__(self) -> None:
        super().__post_init__()
        for spec in self.sources + self.exclude + self.validation_sources + self.srpo_sources + self.train_sources:
            if spec.name not in SOURCES:
                raise ValueError(f"unknown prompt source {spec.name!r}; known: {', '.join(SOURCES)}")
        for spec in self.templates:
            if spec.name not in TEMPLATE_SOURCES:
                raise ValueError(f"unknown template source {spec.name!r}; known: {', '.join(TEMPLATE_SOURCES)}")
        for kind in self.per_kind:
            if kind not in KINDS or kind == "jailbreak":
                raise ValueError(f"per_kind: unknown kind {kind!r}; use jailbreak_count for wrapped prompts")
        for name in ("multi_task_per_kind", "srpo_multi_task_per_kind"):
            for kind in getattr(self, name):
                if kind not in _BASE_KINDS:
                    raise ValueError(f"{name}: unknown kind {kind!r}; kinds: {', '.join(_BASE_KINDS)}")
        for name in ("heldout_per_kind", "validation_per_kind", "srpo_per_kind"):
            counts = getattr(self, name)
            for kind in counts:
                if kind not in KINDS:
                    raise ValueError(f"{name}: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
            if counts.get("jailbreak") and not counts.get("harmful"):
                raise ValueError(f"{name}: jailbreak prompts wrap the split's harmful ones; set harmful too")
        hidden_without_requests = [
            k for k, n in self.srpo_multi_task_per_kind.items() if n and not self.srpo_per_kind.get(k)
        ]
        if hidden_without_requests:
            kind = hidden_without_requests[0]
            raise ValueError(
                f"srpo_multi_task_per_kind: {kind} hides the SRPO split's {kind} requests; set srpo_per_kind.{kind}"
            )
        shared = set(self.heldout_families) & set(self.validation_families)
        if shared:
            raise ValueError(f"family {sorted(shared)[0]!r} is in both heldout_families and validation_families")


def load_source(spec: SourceSpec, seed: int = 0) -> list[PromptRecord]:
    """Load one prompt set, sub-sampled to `spec.limit` with `seed` (order kept)."""
    if spec.name not in SOURCES:
        raise ConfigError(f"unknown prompt source {spec.name!r}; known: {', '.join(SOURCES)}")
    records = SOURCES[spec.name](spec.path)
    return sample_records(records, spec.limit, seed)


def load_templates(specs: list[SourceSpec], max_chars: int | None = None) -> list[Template]:
    templates = []
    for spec in specs:
        loaded = TEMPLATE_SOURCES[spec.name](spec.path)
        templates += [t for t in loaded if max_chars is None or len(t.text) <= max_chars][: spec.limit]
    return templates


def sample_records(records: list, limit: int | None, seed: int) -> list:
    """At most `limit` records, drawn with `seed`, in their original order."""
    if limit is None or len(records) <= limit:
        return records
    keep = set(random.Random(seed).sample(range(len(records)), limit))
    return [r for i, r in enumerate(records) if i in keep]


def _group(record: PromptRecord) -> str:
    return record.meta.get("group", record.id)


def stratum(record: PromptRecord) -> str:
    """The kind of look-alike a record is (homonym, figurative, safe context, ...; CoCoNot's subcategory), or of
    harm (Do-Not-Answer's risk area): a source's prompts are drawn across its kinds, not as one stratum."""
    meta = record.meta
    return meta.get("lookalike") or meta.get("subcategory") or meta.get("risk_area") or record.source


def _round_robin(keys: list, key_stratum) -> list:
    """`keys` (already shuffled) reordered to take one of each stratum in turn."""
    by_stratum: dict[str, list] = {}
    for key in keys:
        by_stratum.setdefault(key_stratum(key), []).append(key)
    queues = [by_stratum[name] for name in sorted(by_stratum)]
    ordered = []
    while queues:
        ordered += [queue.pop(0) for queue in queues]
        queues = [queue for queue in queues if queue]
    return ordered


def spread_sample(records: list[PromptRecord], limit: int | None, seed: int) -> list[PromptRecord]:
    """At most `limit` records, spread evenly over look-alike types (`stratum`) and, within a type, over distinct
    actions (one phrasing of every action before a second of any), in their original order. The seeds ask each
    action through several frames and hold many more homonyms than other types: drawn uniformly, the rarer
    types (definitions, history, privacy, safe contexts) would almost vanish from training."""
    if limit is None or len(records) <= limit:
        return records
    shuffled = random.Random(seed).sample(range(len(records)), len(records))
    seen: Counter = Counter()
    rank = {}
    for index in shuffled:
        key = records[index].meta.get("action") or records[index].id
        rank[index] = seen[key]
        seen[key] += 1
    by_action = sorted(shuffled, key=lambda i: rank[i])  # stable: shuffled order within a rank
    keep = set(_round_robin(by_action, lambda i: stratum(records[i]))[:limit])
    return [r for i, r in enumerate(records) if i in keep]


def _choose_groups(pool: list[PromptRecord], wanted: dict[str, int], per_group: int | None, rng) -> set[str]:
    """Groups to hold out, drawn until every kind has its `wanted` count.

    A group (the seeds' trigger word) is held out whole, harmful and harmless sides together: holding out only the
    harmful side would leave its harmless twin in training and teach the model that the trigger is always benign.
    """
    members: dict[str, Counter] = {}
    strata: dict[str, str] = {}
    for record in pool:
        members.setdefault(_group(record), Counter())[record.kind] += 1
        strata.setdefault(_group(record), stratum(record))
    groups = sorted(members)
    rng.shuffle(groups)
    groups = _round_robin(groups, strata.get)  # every look-alike type held out, not mostly homonyms
    counts, held = Counter(), set()
    for group in groups:
        if all(counts[k] >= n for k, n in wanted.items() if k != "jailbreak"):
            break
        if not any(counts[k] < wanted.get(k, 0) for k in members[group]):
            continue  # adds nothing a kind still needs
        held.add(group)
        for kind, size in members[group].items():
            counts[kind] += min(size, per_group or size)
    return held


def _draw_held(pool, kind, groups, wanted, per_group, rng, seed) -> list[PromptRecord]:
    """Every record of a held group leaves training; `per_group` of each group's prompts of `kind` are drawn."""
    taken: Counter = Counter()
    held_records = []
    records = [r for r in pool if r.kind == kind]
    for record in rng.sample(records, len(records)):
        group = _group(record)
        if group in groups and taken[group] < (per_group or len(records)):
            taken[group] += 1
            held_records.append(record)
    return sample_records(held_records, wanted.get(kind, 0), seed)


class PromptSplit(NamedTuple):
    train: list[PromptRecord]
    heldout: list[PromptRecord]
    validation: list[PromptRecord]
    srpo: list[PromptRecord]
    report: dict


def _load_pool(specs: list[SourceSpec], seed: int) -> list[PromptRecord]:
    return [r for r in dedupe([r for spec in specs for r in load_source(spec, seed)]) if r.kind in _BASE_KINDS]


def _splittable(records: list[PromptRecord]) -> list[PromptRecord]:
    """Records the validation, held-out and SRPO splits may draw: seed groups marked `train_only` (written after
    those splits were fixed) only ever train, so adding them leaves every split, and every validation score
    measured before them, exactly as it was."""
    return [r for r in records if not r.meta.get("train_only")]


def build_prompt_set(config: PromptSetConfig) -> PromptSplit:
    """Draw validation, held-out and training prompts, in that order, from disjoint groups.

    Validation (model selection) is drawn first, from `validation_sources` with its own seed, so it stays the same
    whatever training mix is built around it. Held-out and validation prompts are chosen by `meta.group` (for
    seeds, a trigger word with all its harmful and harmless actions and phrasings), so nothing held out has a
    trained paraphrase; their jailbreaks use `heldout_families` / `validation_families`, never trained on.
    """
    rng = random.Random(config.seed)
    pool = _load_pool(config.sources, config.seed)
    if not config.train_only_groups:
        pool = _splittable(pool)
    validation: list[PromptRecord] = []
    if config.validation_per_kind:
        val_pool = _splittable(_load_pool(config.validation_sources or config.sources, config.seed))
        val_rng = random.Random(f"{config.seed}:validation")
        val_groups = _choose_groups(val_pool, config.validation_per_kind, config.heldout_per_group, val_rng)
        for kind in _BASE_KINDS:
            validation += _draw_held(
                val_pool, kind, val_groups, config.validation_per_kind, config.heldout_per_group, val_rng, config.seed
            )
        pool = [r for r in pool if _group(r) not in val_groups]
    held_pool = _splittable(pool)
    held = _choose_groups(held_pool, config.heldout_per_kind, config.heldout_per_group, rng)
    heldout, train, srpo = [], [], []
    for kind in _BASE_KINDS:
        heldout += _draw_held(
            held_pool, kind, held, config.heldout_per_kind, config.heldout_per_group, rng, config.seed
        )
    pool = [r for r in pool if _group(r) not in held]
    if config.srpo_per_kind:
        # SRPO samples the RW model where it has not been trained: whole groups RW never sees, plus extra pools.
        srpo_pool = dedupe(_splittable(pool) + _load_pool(config.srpo_sources, config.seed))
        srpo_groups = _choose_groups(srpo_pool, config.srpo_per_kind, None, rng)
        for kind in _BASE_KINDS:
            candidates = [r for r in srpo_pool if r.kind == kind and _group(r) in srpo_groups]
            srpo += spread_sample(candidates, config.srpo_per_kind.get(kind, 0), config.seed)
        pool = [r for r in pool if _group(r) not in srpo_groups]
    for kind in _BASE_KINDS:
        records = [r for r in pool if r.kind == kind]
        train += spread_sample(records, config.per_kind.get(kind), config.seed)

    excluded = [r for spec in config.exclude for r in load_source(spec, config.seed)]
    val_leaks = find_leaks(validation, excluded) if excluded and validation else {}
    validation = [r for r in validation if r.id not in val_leaks]
    held_leaks = find_leaks(heldout, validation) if heldout and validation else {}
    heldout = [r for r in heldout if r.id not in held_leaks]
    reference = excluded + heldout + validation
    srpo_leaks = find_leaks(srpo, reference) if reference and srpo else {}
    srpo = [r for r in srpo if r.id not in srpo_leaks]
    leaks = find_leaks(train, reference + srpo) if reference or srpo else {}
    train = [r for r in train if r.id not in leaks]
    # Trained whole, on top of the draw; wrapped and hidden among tasks like the drawn prompts (jailbreak_count and
    # multi_task_per_kind sample from both), so a larger mix keeps those shares only if their counts grow with it.
    drawn = {r.id for r in train}
    # dedupe, not ids alone: a set may repeat a drawn prompt under another source's id
    extra = [r for r in dedupe(train + _load_pool(config.train_sources, config.seed)) if r.id not in drawn]
    extra_leaks = find_leaks(extra, reference + srpo) if extra and (reference or srpo) else {}
    train += [r for r in extra if r.id not in extra_leaks]

    templates = load_templates(config.templates, config.max_template_chars)
    known = {t.family for t in templates}
    for name in ("heldout_families", "validation_families"):
        unknown = set(getattr(config, name)) - known
        if unknown:
            raise ConfigError(f"{name}: unknown family {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}")
    reserved = set(config.heldout_families) | set(config.validation_families)
    train_templates = [t for t in templates if t.family not in reserved]

    def wrap(records, families, count):
        chosen = [t for t in templates if t.family in families] or train_templates or templates
        return wrap_prompts([r for r in records if r.kind == "harmful"], chosen, count, config.seed)

    train += wrap_prompts(
        [r for r in train if r.kind == "harmful"], train_templates, config.jailbreak_count, config.seed
    )
    decoys = decoy_pool(train)

    def hide(records, per_kind):  # each kind's requests placed among the training split's ordinary tasks
        return [
            prompt
            for kind in _BASE_KINDS
            for prompt in multi_task_prompts(
                [r for r in records if r.kind == kind], decoys, per_kind.get(kind, 0), config.seed
            )
        ]

    train += hide(train, config.multi_task_per_kind)  # after the wrapped prompts, which stay as they were
    heldout += wrap(heldout, set(config.heldout_families), config.heldout_per_kind.get("jailbreak", 0))
    validation += wrap(validation, set(config.validation_families), config.validation_per_kind.get("jailbreak", 0))
    srpo += wrap(srpo, set(), config.srpo_per_kind.get("jailbreak", 0))
    srpo += hide(srpo, config.srpo_multi_task_per_kind)  # SRPO's own requests: unseen as deciders
    report = {
        "train": {k: sum(r.kind == k for r in train) for k in KINDS},
        "heldout": {k: sum(r.kind == k for r in heldout) for k in KINDS},
        "validation": {k: sum(r.kind == k for r in validation) for k in KINDS},
        "srpo": {k: sum(r.kind == k for r in srpo) for k in KINDS},
        "leaks_removed": {
            how: sum(v[0] == how for v in (leaks | extra_leaks).values()) for how in ("exact", "normalized", "near")
        },
        "train_sources": len(extra) - len(extra_leaks),
        "validation_leaks_removed": len(val_leaks),
        "template_families": sorted({t.family for t in train_templates}),
        "multi_task": sum("tasks" in r.meta for r in train),
    }
    return PromptSplit(train, heldout, validation, srpo, report)


__all__ = [
    "SOURCES",
    "TEMPLATE_SOURCES",
    "PromptSetConfig",
    "PromptSplit",
    "SourceSpec",
    "build_prompt_set",
    "dedupe",
    "find_leaks",
    "load_source",
    "load_templates",
    "normalize",
    "sample_records",
    "wrap_prompts",
]
