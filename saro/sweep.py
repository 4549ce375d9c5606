"""`saro sweep`: the same small tuning budget for every method, chosen on the validation set by a declared rule.

A `sweep:` section lists methods (a training stage and its settings, each a few overrides of that stage's section)
and the validation evaluation. Each setting is trained into `<output>/<method>/<label>/model` and evaluated on the
validation suites into `<output>/<method>/<label>/eval`; its score is the mean of the rates named in `select`
(lower is better: attack success, over-refusal). `<output>/<method>/sweep.json` records every setting and score,
and `<output>/<method>/chosen` links to the chosen model, for later stages and `saro eval` to use. `ablations`
(e.g. SRPO's pair types) are trained from the chosen setting with one thing changed, into
`<output>/<method>/ablations/<label>/model`, for the report; they are not selected. The model a method starts
from is scored by the same rule (`start` in sweep.json): what a setting moved. Settings that
are done (trained and evaluated) are skipped, so a killed sweep resumes. Selection never reads a reported suite:
the validation suites are the only input to the score.

    saro sweep --config configs/compare.yaml --method rw
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from saro.config import build_dataclass, config_hash, read_config_data, to_plain
from saro.errors import ConfigError, DataError
from saro.evaluation.runner import EvalConfig

log = logging.getLogger(__name__)

TRAINING_SECTIONS = ("train_rw", "train_srpo", "train_safety_sft", "train_safety_dpo")
_METRIC = re.compile(r"^(\w+)\.(attack_success|over_refusal)$")
# The suite types each rule metric applies to.
METRIC_TYPES = {"attack_success": ("harmful", "jailbreak"), "over_refusal": ("overrefusal",)}


@dataclass
class SweepMethod:
    """One method's tuning budget: `stage` (its training section) and `settings` (overrides of that section)."""

    name: str = field(default="rw", metadata={"help": "Method name (folder and report label)."})
    stage: Literal["train_rw", "train_srpo", "train_safety_sft", "train_safety_dpo"] = field(
        default="train_rw", metadata={"help": "Training section the settings override."}
    )
    settings: list[dict] = field(default_factory=list, metadata={"help": "Overrides per setting (key: value)."})
    base: dict = field(
        default_factory=dict, metadata={"help": "Overrides every setting shares (e.g. SRPO's model and pairs)."}
    )
    ablations: list[dict] = field(
        default_factory=list, metadata={"help": "Overrides added to the chosen setting, trained for the report."}
    )

    def __post_init__(self) -> None:
        if not self.settings:
            raise ValueError(f"method {self.name!r}: needs at least one setting")
        for setting in self.settings + self.ablations:
            if not isinstance(setting, dict) or not setting:
                raise ValueError(f"method {self.name!r}: each setting is a non-empty mapping of overrides")
        for setting in [self.base, *self.settings, *self.ablations]:
            if "output_dir" in setting:
                raise ValueError(f"method {self.name!r}: output_dir is set by the sweep")


@dataclass
class SweepConfig:
    """`methods` to tune, `validation` (an eval section whose suites are built from the validation prompts; its
    `model` and `output` are set per setting), `select` (rates `suite.metric` whose mean is minimised; metric is
    attack_success or over_refusal; outputs cut at max_new_tokens count against a setting) and `output`."""

    methods: list[SweepMethod] = field(default_factory=list, metadata={"help": "Methods and their settings."})
    validation: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Validation evaluation."})
    select: list[str] = field(default_factory=list, metadata={"help": "Rates to minimise (mean), suite.metric."})
    output: Path = field(default=Path("runs/sweep"), metadata={"help": "Sweep folder."})

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("sweep needs at least one method")
        if not self.select:
            raise ValueError("select: name the validation rates to minimise, e.g. val_harmful.attack_success")
        suites = {s.name: s.type for s in self.validation.suites}
        for item in self.select:
            match = _METRIC.match(item)
            if not match:
                raise ValueError(f"select: {item!r} is not suite.attack_success or suite.over_refusal")
            suite, metric = match.groups()
            if suite not in suites:
                raise ValueError(f"select: {item!r} names no validation suite ({', '.join(sorted(suites))})")
            if suites[suite] not in METRIC_TYPES[metric]:
                raise ValueError(f"select: {item!r}: a {suites[suite]} suite has no {metric}")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"method names must be unique, got {names}")


def setting_label(setting: dict) -> str:
    """`learning_rate-0.0001+num_train_epochs-2`: readable, a changed setting gets a new folder, and no `=` (the
    CLI reads words with `=` as overrides)."""
    parts = [f"{key}-{json.dumps(value, sort_keys=True)}" for key, value in sorted(setting.items())]
    return re.sub(r"[^\w.,+-]", "", "+".join(parts))


def rule_counts(results: dict, item: str) -> tuple[int, int]:
    """(errors, prompts) behind the rate `suite.metric` of a `saro eval` results.json, outputs cut at max_new_tokens
    counted as errors: a setting that rambles past the cap must not look safe (or helpful) for it."""
    suite_name, metric = _METRIC.match(item).groups()
    suite = results["suites"].get(suite_name)
    if suite is None:
        raise DataError(f"validation results have no suite {suite_name!r}")
    rates = suite["benign"] if metric == "over_refusal" else suite
    value, truncated = rates[metric], rates["truncated"]
    if not value["n"]:
        raise DataError(f"validation suite {suite_name!r} has no prompts for {metric}: an empty score is no score")
    return value["k"] + truncated["k"], value["n"]


def rate(results: dict, item: str) -> float:
    """The rule's rate `suite.metric` (see `rule_counts`), to 4 decimals."""
    errors, prompts = rule_counts(results, item)
    return round(errors / prompts, 4)


def score_results(results: dict, select: list[str]) -> tuple[dict, float]:
    """The rule's rates from a results.json, and their mean (the score; lower is better)."""
    metrics = {item: rate(results, item) for item in select}
    # Rates have 4 decimals, so the exact mean has at most 6 more: rounding to 9 only removes float noise, and equal
    # means stay equal (0.175 + 0.1 + 0.25 and 0.175 + 0.05 + 0.3 differ in the last bit; rounding to 4 split them).
    return metrics, round(sum(metrics.values()) / len(metrics), 9)


def choose_setting(rows: list[dict]) -> dict:
    """The setting with the lowest score; the first listed wins a tie (the declared rule)."""
    return min(rows, key=lambda row: row["score"])


def _overrides(method: SweepMethod, setting: dict, model_dir: Path) -> list[str]:
    merged = method.base | setting
    return [f"{key}={_yaml_value(value)}" for key, value in merged.items()] + [f"output_dir={model_dir}"]


def _yaml_value(value: Any) -> str:
    """A value as overrides parse it back (YAML: JSON's `2e-05` would read as a string)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("...\n").strip()


def _stage_classes(stage: str):
    from trl import DPOConfig, SFTConfig

    from saro.training import DPOStageConfig, SFTStageConfig

    return (SFTStageConfig, SFTConfig) if stage in ("train_rw", "train_safety_sft") else (DPOStageConfig, DPOConfig)


def check_setting(config_path: Path, method: SweepMethod, setting: dict, sections) -> None:
    """Load the stage config a setting makes (validation only): its keys and values must be the stage's."""
    from saro.training import load_training_config

    try:
        load_training_config(
            *_stage_classes(method.stage), config_path, method.stage, _overrides(method, setting, Path("x")), sections
        )
    except ConfigError as exc:
        raise ConfigError(f"sweep method {method.name!r}, setting {setting}: {exc}") from None


def _inputs_hash(section: dict) -> str:
    """A stage section's hash with its model resolved (a `chosen` link that moved is another model) and its data
    files fingerprinted (regenerated data is other data)."""
    resolved = dict(section)
    for key in ("model", "data", "eval_data"):
        value = resolved.get(key)
        if isinstance(value, str) and os.path.exists(value):
            stat = os.stat(value)
            resolved[key] = [os.path.realpath(value), stat.st_size if os.path.isfile(value) else None]
            if os.path.isfile(value):
                resolved[key].append(stat.st_mtime_ns)
    return config_hash(resolved)


def train_setting(config_path: Path, method: SweepMethod, setting: dict, model_dir: Path, sections) -> Path:
    """Train one setting through the stage's own trainer; `overrides` beat the section's values."""
    from saro.training import load_training_config, run_dpo, run_sft

    classes = _stage_classes(method.stage)
    stage_config, trl_config = load_training_config(
        *classes, config_path, method.stage, _overrides(method, setting, model_dir), sections
    )
    if method.stage in ("train_rw", "train_safety_sft"):
        return run_sft(stage_config, trl_config)
    return run_dpo(stage_config, trl_config, stage=method.stage.removeprefix("train_").replace("_", "-"))


def _train_once(config_path, method, setting, model_dir: Path, sections, echo, replace_stale: bool) -> bool:
    """Train `setting` into `model_dir` unless it is there, trained from the same inputs; True when it trained.
    Inputs that changed since (the stage section, its model or data) are an error, or with `replace_stale` a
    reason to delete and retrain."""
    inputs = _inputs_hash(read_config_data(config_path, method.stage, [], sections)[0] | method.base | setting)
    stamp = model_dir.parent / "setting.json"
    if stamp.exists() and json.loads(stamp.read_text())["stage_hash"] != inputs:
        if not replace_stale:
            raise ConfigError(
                f"{config_path}: section {method.stage} changed since {model_dir.parent} was trained; delete that "
                "folder or set a new sweep output"
            )
        shutil.rmtree(model_dir.parent)
    label = model_dir.parent.name
    if (model_dir / "saro_training.json").exists():
        echo(f"saro sweep: {method.name} {label}: trained earlier, skipped")
        return False
    echo(f"saro sweep: {method.name} {label}: training")
    _write_json(stamp, {"stage": method.stage, "setting": setting, "stage_hash": inputs})
    train_setting(config_path, method, setting, model_dir, sections)
    return True


def start_model(config_path: Path, method: SweepMethod, sections) -> str:
    """The model every setting of `method` trains from (the stage section's `model`, or the method's `base`)."""
    section = read_config_data(config_path, method.stage, [], sections)[0] | method.base
    if "model" in section:
        return str(section["model"])
    stage_config = _stage_classes(method.stage)[0]
    return str(next(f.default for f in dataclasses.fields(stage_config) if f.name == "model"))


def validate_start(config: SweepConfig, method: SweepMethod, config_path: Path, sections, echo=print) -> dict:
    """Score the starting model by the same rule, as the reference a setting must move from: the base model for
    RW and the baselines, the chosen RW model for SRPO. Methods that share it share one folder (a rerun is free);
    the folder is keyed by the model's resolved path, so a `chosen` link that moved is validated anew."""
    from saro.evaluation.runner import run_eval

    model = start_model(config_path, method, sections)
    resolved = os.path.realpath(model) if os.path.exists(model) else model
    eval_dir = Path(resolved).parent / "eval"
    if Path(resolved).name == "model" and (eval_dir / "results.json").exists():
        # A setting an earlier method of this sweep validated (SRPO starts from the chosen RW model): its score.
        results = json.loads((eval_dir / "results.json").read_text())
    else:
        key = hashlib.sha256(resolved.encode()).hexdigest()[:8]
        name = re.sub(r"[^\w.-]", "_", Path(resolved).name)
        eval_dir = config.output / "start" / f"{name}-{key}" / "eval"
        echo(f"saro sweep: {method.name}: validating the starting model {model}")
        results = run_eval(dataclasses.replace(config.validation, model=model, output=eval_dir))
    metrics, score = score_results(results, config.select)
    echo(f"saro sweep: {method.name} start: score {score:.3f} {metrics}")
    return {"model": model, "resolved": resolved, "eval": str(eval_dir), "metrics": metrics, "score": score}


def run_method(config: SweepConfig, method: SweepMethod, config_path: Path, sections, echo=print) -> dict:
    """Train and validate every setting of `method` (skipping finished ones), choose, and write sweep.json."""
    from saro.evaluation.runner import run_eval

    folder = config.output / method.name
    rows = []
    for setting in method.settings:
        label = setting_label(setting)
        model_dir, eval_dir = folder / label / "model", folder / label / "eval"
        started = time.time()
        if _train_once(config_path, method, setting, model_dir, sections, echo, replace_stale=False):
            if eval_dir.exists():  # generations of an earlier, unfinished model
                shutil.rmtree(eval_dir)
        # Always run: finished generations are reused (0 s), a changed validation section is refused by eval.
        echo(f"saro sweep: {method.name} {label}: validating")
        results = run_eval(dataclasses.replace(config.validation, model=str(model_dir), output=eval_dir))
        metrics, score = score_results(results, config.select)
        rows.append(
            {
                "label": label,
                "setting": setting,
                "model": str(model_dir),
                "eval": str(eval_dir),
                "metrics": metrics,
                "score": score,
                "seconds": round(time.time() - started, 1),
            }
        )
        echo(f"saro sweep: {method.name} {label}: score {rows[-1]['score']:.3f} {metrics}")
    chosen = choose_setting(rows)
    start = validate_start(config, method, config_path, sections, echo)
    ablations = []
    for ablation in method.ablations:  # e.g. SRPO with process pairs only: the chosen setting, one thing changed
        setting = chosen["setting"] | ablation
        model_dir = folder / "ablations" / setting_label(ablation) / "model"
        # Trained from another chosen setting or other inputs: stale, and retrained.
        _train_once(config_path, method, setting, model_dir, sections, echo, replace_stale=True)
        ablations.append({"label": setting_label(ablation), "setting": setting, "model": str(model_dir)})
    # The chosen setting is still linked (a method's result is one of its settings), but said plainly when the
    # model it started from scores better: SRPO that moves the wrong way is a finding, not a result to report as one.
    beats_start = chosen["score"] < start["score"]
    if not beats_start:
        echo(
            f"saro sweep: {method.name}: no setting beats the starting model ({start['score']:.3f}); "
            f"the best, {chosen['label']}, scores {chosen['score']:.3f}"
        )
    summary = {
        "method": method.name,
        "stage": method.stage,
        "rule": {"minimize_mean_of": config.select},
        "validation_suites": [s.name for s in config.validation.suites],
        "chosen": chosen["label"],
        "beats_start": beats_start,
        "settings": rows,
        "start": start,
        "ablations": ablations,
        "validation": to_plain(config.validation),
    }
    _write_json(folder / "sweep.json", summary)
    link, tmp = folder / "chosen", folder / "chosen.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(Path(chosen["label"]) / "model", target_is_directory=True)
    os.replace(tmp, link)  # never a moment without a link
    return summary


def load_sweep_config(path: Path, overrides: list[str], sections) -> SweepConfig:
    data, source = read_config_data(path, "sweep", overrides, sections)
    return build_dataclass(SweepConfig, data, source)


def run_sweep(path: Path, overrides: list[str], sections, methods: list[str] | None = None, echo=print) -> list[dict]:
    """Run the named methods (all, in config order, when None); returns each method's summary."""
    config = load_sweep_config(path, overrides, sections)
    known = [m.name for m in config.methods]
    unknown = sorted(set(methods or []) - set(known))
    if unknown:
        raise ConfigError(f"{path}: sweep has no method {unknown[0]!r}; methods: {', '.join(known)}")
    chosen = [m for m in config.methods if methods is None or m.name in methods]
    for method in chosen:  # a typo in the third setting fails now, not after two trainings
        for setting in method.settings + method.ablations:
            check_setting(path, method, setting, sections)
    return [run_method(config, method, path, sections, echo) for method in chosen]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
