"""Evaluation suites: named prompt sets of one type, each scored its own way.

| type        | prompts                                              | scored by                                     |
|-------------|------------------------------------------------------|-----------------------------------------------|
| harmful     | harmful requests (SG-Bench, AdvBench, HarmBench, ...) | the safety judge: attack success rate         |
| jailbreak   | harmful requests x template families                 | the safety judge, per family                  |
| overrefusal | XSTest: safe look-alikes and unsafe contrast prompts | refusal classes (over-refusal) + safety judge |
| mcq         | Salad-Bench multiple choice                          | the chosen option letters                     |
| capability  | GSM8K, the easy generated set                        | the checked answer                            |

Sub-sampling is seeded and recorded with the results, so two models are always compared on the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from saro.config import RangeChecked
from saro.errors import ConfigError
from saro.evaluation.capability import easy_capability_items
from saro.records import PromptRecord
from saro.sources import SOURCES, TEMPLATE_SOURCES, SourceSpec, load_source, load_templates, sample_records
from saro.sources.templates import wrap_prompts

SUITE_TYPES = ("harmful", "jailbreak", "overrefusal", "mcq", "capability")
GENERATED = {"easy"}  # suite-only source: the easy capability set (saro prompt-record files are the `prompts` source)


@dataclass
class SuiteSpec(RangeChecked):
    """One suite: `name` (in reports), `type` (SUITE_TYPES), `sources` (prompt sets; for jailbreak, the requests to
    wrap, or already-wrapped sets such as wildjailbreak), `templates` and `families` (jailbreak: template sets and the
    families to use, all when empty), `family_by` (family, or template: each template its own family, as SG-Bench
    counts its six Jailbroken mutations), `limit` (prompts; jailbreak: requests per family). `version` goes into the
    results; `expected` fails the run when the sources give another prompt count (a changed or truncated file)."""

    name: str = field(default="harmful", metadata={"help": "Suite name in results and reports."})
    type: str = field(default="harmful", metadata={"help": "harmful | jailbreak | overrefusal | mcq | capability."})
    sources: list[SourceSpec] = field(default_factory=list, metadata={"help": "Prompt sets."})
    kinds: list[str] = field(default_factory=list, metadata={"help": "Keep only these prompt kinds (all: [])."})
    templates: list[SourceSpec] = field(default_factory=list, metadata={"help": "jailbreak: template sets."})
    families: list[str] = field(default_factory=list, metadata={"help": "jailbreak: families to use (all: [])."})
    family_by: str = field(default="family", metadata={"help": "jailbreak: family | template."})
    limit: int | None = field(
        default=None, metadata={"help": "Prompts kept (jailbreak: per family); seeded.", "min": 1}
    )
    max_new_tokens: int | None = field(default=None, metadata={"help": "Generation cap for this suite.", "min": 1})
    version: int = field(default=1, metadata={"help": "Bump when prompts, template or answer parsing change."})
    expected: int | None = field(
        default=None, metadata={"help": "Prompt count the suite must have (a check).", "min": 1}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type not in SUITE_TYPES:
            raise ValueError(f"suite {self.name!r}: unknown type {self.type!r}; types: {', '.join(SUITE_TYPES)}")
        for spec in self.sources:
            if spec.name not in SOURCES and spec.name not in GENERATED:
                known = ", ".join([*GENERATED, *SOURCES])
                raise ValueError(f"suite {self.name!r}: unknown source {spec.name!r}; known: {known}")
        for spec in self.templates:
            if spec.name not in TEMPLATE_SOURCES:
                known = ", ".join(TEMPLATE_SOURCES)
                raise ValueError(f"suite {self.name!r}: unknown template source {spec.name!r}; known: {known}")
        if self.family_by not in ("family", "template"):
            raise ValueError(f"suite {self.name!r}: family_by must be family or template")
        if self.type == "jailbreak" and not self.templates and not self.sources:
            raise ValueError(f"suite {self.name!r}: a jailbreak suite needs templates or pre-wrapped sources")


def load_records(spec: SourceSpec, seed: int, suite_limit: int | None = None) -> list[PromptRecord]:
    """The prompts of one source: a prompt set, a saro prompt-record file (`prompts`) or the easy set."""
    if spec.name == "easy":  # generated, so `path` has no meaning: the source's or the suite's limit is the count
        return easy_capability_items(spec.limit or suite_limit or 100, seed)
    return load_source(spec, seed)


def _tag(records: list[PromptRecord], suite: SuiteSpec) -> list[PromptRecord]:
    for record in records:
        record.meta = {**record.meta, "suite": suite.name, "suite_type": suite.type}
    return records


def build_suite(suite: SuiteSpec, seed: int = 0) -> list[PromptRecord]:
    """The suite's prompts, sub-sampled with `seed`; every record's meta names its suite."""
    records = _build(suite, seed)
    if suite.expected is not None and len(records) != suite.expected:
        raise ConfigError(
            f"suite {suite.name!r}: {len(records)} prompts, expected {suite.expected}; its sources changed "
            "(update `expected` and bump `version`)"
        )
    return records


def _build(suite: SuiteSpec, seed: int) -> list[PromptRecord]:
    loaded = [r for spec in suite.sources for r in load_records(spec, seed, suite.limit)]
    if suite.kinds:
        loaded = [r for r in loaded if r.kind in suite.kinds]
    if suite.type != "jailbreak":
        if suite.type == "harmful":
            loaded = [r for r in loaded if r.kind == "harmful"]
        return _tag(sample_records(loaded, suite.limit, seed), suite)

    wrapped = [r for r in loaded if r.kind == "jailbreak"]  # already-wrapped sets: one family each
    by_family: dict[str, list[PromptRecord]] = {}
    for record in wrapped:
        by_family.setdefault(record.template_family or record.source, []).append(record)
    records = [r for family in sorted(by_family) for r in sample_records(by_family[family], suite.limit, seed)]
    requests = sample_records([r for r in loaded if r.kind == "harmful"], suite.limit, seed)
    templates = load_templates(suite.templates)
    known = {t.family for t in templates}
    missing = sorted(set(suite.families) - known)
    if missing:
        known_list = ", ".join(sorted(known))
        raise ConfigError(f"suite {suite.name!r}: unknown template family {missing[0]!r}; known: {known_list}")
    chosen = [t for t in templates if not suite.families or t.family in suite.families]
    if chosen and not requests:
        raise ConfigError(f"suite {suite.name!r}: templates need harmful requests to wrap; add a harmful source")
    groups: dict[str, list] = {}
    for template in chosen:
        groups.setdefault(template.name if suite.family_by == "template" else template.family, []).append(template)
    for family, members in sorted(groups.items()):
        # The same requests under every family: the family comparison is paired.
        for index, request in enumerate(requests):
            template = members[index % len(members)]
            (record,) = wrap_prompts([request], [template], 1, seed)
            record.template_family = family
            records.append(record)
    return _tag(records, suite)
