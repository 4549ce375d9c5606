"""saro's built-in seed prompts (`saro/data/seeds.yaml`): contrastive harmful / look-alike pairs and general ones."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from saro.errors import DataError
from saro.records import PromptRecord, stable_id
from saro.sources.files import read_yaml, require

# The kinds of look-alike models over-refuse; each seed group names its own (`type`).
LOOKALIKE_TYPES = (
    "homonym",
    "figurative",
    "safe_target",
    "safe_context",
    "definition",
    "history",
    "discrimination_harmless",
    "nonsense_discrimination",
    "privacy_public",
    "privacy_fictional",
)


# The packaged file each seeds-format source reads when its spec names no path.
_PACKAGED = {"seeds": "seeds.yaml", "freeform": "seeds-freeform.yaml"}


def _strings(group: dict, key: str, where: str, default: list | None = None) -> list[str]:
    value = group.get(key, default if default is not None else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field {key!r} must be a list of strings")
    return value


def load_seeds(path: str | Path | None = None, source: str = "seeds") -> list[PromptRecord]:
    """Expand every contrast action through every frame; `meta.group` names the trigger so splits keep it whole.

    Contrast records carry `meta.harm` or `meta.why`: the harmful or harmless reading of the shared trigger word,
    which the reasoning's intent step states, and `meta.misreading`, the other side's reading.
    """
    file = Path(path) if path else Path(str(resources.files("saro.data").joinpath(_PACKAGED[source])))
    if file.suffix == ".jsonl":  # a source spec without a name is `seeds`, which reads the seeds YAML
        raise DataError(
            f"{file}: source {source!r} reads a seeds YAML file; for prompt records: {{name: prompts, path: ...}}"
        )
    data = read_yaml(file)
    frames = require(data, "frames", str(file))
    records: list[PromptRecord] = []

    def add(prompt: str, kind: str, category: str, group: str, **meta) -> None:
        records.append(
            PromptRecord(
                id=stable_id(source, prompt),
                prompt=prompt,
                kind=kind,
                category=category,
                source=source,
                meta={"group": group, **meta},
            )
        )

    for i, group in enumerate(require(data, "contrast", str(file))):
        where = f"{file}: contrast[{i}]"
        trigger, category = require(group, "trigger", where), require(group, "category", where)
        harm, why = require(group, "harm", where), require(group, "why", where)
        group_frames = _strings(group, "frames", where, frames)
        lookalike = group.get("type", "homonym")
        if lookalike not in LOOKALIKE_TYPES:
            raise DataError(f"{where}: type {lookalike!r} is not one of {', '.join(LOOKALIKE_TYPES)}")
        train_only = group.get("train_only", False)
        if not isinstance(train_only, bool):
            raise DataError(f"{where}: field 'train_only' must be true or false")
        marks = {"train_only": True} if train_only else {}  # never drawn into validation / held-out / SRPO
        group_id = f"trigger:{trigger}"  # splits keep a trigger's harmful and harmless sides together
        # `misreading`: the other side's reading, which a composed self-correction takes first (teacher.corrections)
        sides = [
            ("harmful", "harmful", category, {"harm": harm, "misreading": why}),
            ("borderline_benign", "benign", "none", {"why": why, "near_category": category, "misreading": harm}),
        ]
        for kind, side, label, readings in sides:
            # `harmful`/`benign` are actions asked through every frame; `*_prompts` are whole prompts, as written.
            prompts = [(frame.format(action=a), a) for a in _strings(group, side, where) for frame in group_frames]
            prompts += [(text, None) for text in _strings(group, f"{side}_prompts", where)]  # quoted by the teacher
            if not prompts:
                raise DataError(f"{where}: needs '{side}' actions or '{side}_prompts'")
            for prompt, action in prompts:
                extra = {"action": action} if action else {}
                add(prompt, kind, label, group_id, trigger=trigger, lookalike=lookalike, **extra, **marks, **readings)
    for i, group in enumerate(data.get("safe_contexts", [])):
        why = require(group, "why", f"{file}: safe_contexts[{i}]")
        for prompt in require(group, "prompts", f"{file}: safe_contexts[{i}]"):
            add(prompt, "borderline_benign", "none", prompt, why=why)
    for prompt in data.get("general", []):
        add(prompt, "general", "none", prompt)
    return records


def load_freeform(path: str | Path | None = None) -> list[PromptRecord]:
    """The freeform contrast groups (`saro/data/seeds-freeform.yaml`): one harmful prompt and one look-alike each,
    whole prompts in the phrasings users write (stories, why-questions, lists, roleplay, chat), not in frames."""
    return load_seeds(path, source="freeform")
