"""Prompt sets -> prompt records: loaders per data set, jailbreak wrapping, leak checks and the train/held-out mix.

Each loader takes a local path (file, folder or URL) or None for its public source (hub id or release URL).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from saro.errors import ConfigError
from saro.records import KINDS, PromptRecord
from saro.sources.benign import load_gsm8k, load_xstest
from saro.sources.harmful import load_advbench, load_donotanswer, load_sgbench
from saro.sources.hub import (
    load_alert,
    load_harmbench,
    load_saladbench,
    load_saladbench_mcq,
    load_wildjailbreak,
)
from saro.sources.overlap import dedupe, find_leaks, normalize
from saro.sources.seeds import load_seeds
from saro.sources.templates import TEMPLATE_SOURCES, Template, wrap_prompts

SOURCES = {
    "seeds": load_seeds,
    "sgbench": load_sgbench,
    "advbench": load_advbench,
    "donotanswer": load_donotanswer,
    "xstest": load_xstest,
    "gsm8k": load_gsm8k,
    "harmbench": load_harmbench,
    "alert": load_alert,
    "saladbench": load_saladbench,
    "wildjailbreak": load_wildjailbreak,
    "saladbench_mcq": load_saladbench_mcq,
}


@dataclass
class SourceSpec:
    """One prompt or template set: a name from SOURCES / TEMPLATE_SOURCES and where to read it."""

    name: str = field(default="seeds", metadata={"help": "Set name, e.g. seeds, sgbench, xstest, builtin, pyrit."})
    path: str | None = field(default=None, metadata={"help": "Local file, folder or URL; empty = public source."})
    limit: int | None = field(default=None, metadata={"help": "Keep at most this many (seeded sample)."})


@dataclass
class PromptSetConfig:
    """How training and held-out prompts are drawn.

    Sources: `sources`, `templates`. Mix: `per_kind`, `jailbreak_count`, `max_template_chars`. Held out:
    `heldout_per_kind`, `heldout_families` (template families never used in training), `exclude` (eval sets that
    training prompts must not duplicate). `seed` fixes every draw.
    """

    sources: list[SourceSpec] = field(default_factory=lambda: [SourceSpec()], metadata={"help": "Prompt sets."})
    templates: list[SourceSpec] = field(
        default_factory=lambda: [SourceSpec(name="builtin")], metadata={"help": "Jailbreak template sets."}
    )
    per_kind: dict[str, int] = field(
        default_factory=dict, metadata={"help": "Max training prompts per kind (harmful, borderline_benign, general)."}
    )
    jailbreak_count: int = field(default=100, metadata={"help": "Wrapped harmful prompts for training."})
    max_template_chars: int = field(default=800, metadata={"help": "Skip longer templates (training tokens)."})
    heldout_per_kind: dict[str, int] = field(
        default_factory=dict, metadata={"help": "Prompts per kind (jailbreak too) kept out of training for eval."}
    )
    heldout_per_group: int | None = field(
        default=None, metadata={"help": "At most this many held-out prompts per group (phrasings of one action)."}
    )
    heldout_families: list[str] = field(default_factory=list, metadata={"help": "Template families for eval only."})
    exclude: list[SourceSpec] = field(default_factory=list, metadata={"help": "Eval sets to remove leaks against."})
    seed: int = field(default=0, metadata={"help": "Seed for sampling, splitting and wrapping."})

    def __post_init__(self) -> None:
        for spec in self.sources + self.exclude:
            if spec.name not in SOURCES:
                raise ValueError(f"unknown prompt source {spec.name!r}; known: {', '.join(SOURCES)}")
        for spec in self.templates:
            if spec.name not in TEMPLATE_SOURCES:
                raise ValueError(f"unknown template source {spec.name!r}; known: {', '.join(TEMPLATE_SOURCES)}")
        for kind in self.per_kind:
            if kind not in KINDS or kind == "jailbreak":
                raise ValueError(f"per_kind: unknown kind {kind!r}; use jailbreak_count for wrapped prompts")
        for kind in self.heldout_per_kind:
            if kind not in KINDS:
                raise ValueError(f"heldout_per_kind: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")


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


def _choose_heldout_groups(pool: list[PromptRecord], config: PromptSetConfig, rng: random.Random) -> set[str]:
    """Groups to hold out, drawn until every kind has `heldout_per_kind` prompts.

    A group (the seeds' trigger word) is held out whole, harmful and harmless sides together: holding out only the
    harmful side would leave its harmless twin in training and teach the model that the trigger is always benign.
    """
    members: dict[str, Counter] = {}
    for record in pool:
        members.setdefault(_group(record), Counter())[record.kind] += 1
    groups = sorted(members)
    rng.shuffle(groups)
    wanted, counts, held = config.heldout_per_kind, Counter(), set()
    for group in groups:
        if all(counts[k] >= n for k, n in wanted.items() if k != "jailbreak"):
            break
        if not any(counts[k] < wanted.get(k, 0) for k in members[group]):
            continue  # adds nothing a kind still needs
        held.add(group)
        for kind, size in members[group].items():
            counts[kind] += min(size, config.heldout_per_group or size)
    return held


def build_prompt_set(config: PromptSetConfig) -> tuple[list[PromptRecord], list[PromptRecord], dict]:
    """Draw training and held-out prompts. Returns (train, heldout, report) where report counts leaks and kinds.

    Held-out prompts are chosen by `meta.group` (for seeds, a trigger word with all its harmful and harmless actions
    and phrasings), so nothing held out has a trained paraphrase; held-out jailbreaks use `heldout_families`.
    """
    rng = random.Random(config.seed)
    kinds = ("harmful", "borderline_benign", "general")
    pool = [
        r for r in dedupe([r for spec in config.sources for r in load_source(spec, config.seed)]) if r.kind in kinds
    ]
    held = _choose_heldout_groups(pool, config, rng)
    heldout, train = [], []
    for kind in kinds:
        records = [r for r in pool if r.kind == kind]
        # Every record of a held group leaves training; a random heldout_per_group of each kind are evaluated.
        per_group: Counter = Counter()
        held_records = []
        for record in rng.sample(records, len(records)):
            group = _group(record)
            if group in held and per_group[group] < (config.heldout_per_group or len(records)):
                per_group[group] += 1
                held_records.append(record)
        heldout += sample_records(held_records, config.heldout_per_kind.get(kind, 0), config.seed)
        train += sample_records([r for r in records if _group(r) not in held], config.per_kind.get(kind), config.seed)

    reference = [r for spec in config.exclude for r in load_source(spec, config.seed)] + heldout
    leaks = find_leaks(train, reference) if reference else {}
    train = [r for r in train if r.id not in leaks]

    templates = load_templates(config.templates, config.max_template_chars)
    held_families = set(config.heldout_families)
    unknown = held_families - {t.family for t in templates}
    if unknown:
        raise ConfigError(
            f"heldout_families: unknown family {sorted(unknown)[0]!r}; "
            f"known: {', '.join(sorted({t.family for t in templates}))}"
        )
    train_templates = [t for t in templates if t.family not in held_families]
    train += wrap_prompts(
        [r for r in train if r.kind == "harmful"], train_templates, config.jailbreak_count, config.seed
    )
    heldout += wrap_prompts(
        [r for r in heldout if r.kind == "harmful"],
        [t for t in templates if t.family in held_families] or templates,
        config.heldout_per_kind.get("jailbreak", 0),
        config.seed,
    )
    report = {
        "train": {k: sum(r.kind == k for r in train) for k in KINDS},
        "heldout": {k: sum(r.kind == k for r in heldout) for k in KINDS},
        "leaks_removed": {how: sum(v[0] == how for v in leaks.values()) for how in ("exact", "normalized", "near")},
        "template_families": sorted({t.family for t in train_templates}),
    }
    return train, heldout, report


__all__ = [
    "SOURCES",
    "TEMPLATE_SOURCES",
    "PromptSetConfig",
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
