"""`saro run CONFIG`: RW synthesis, RW training, SRPO synthesis and SRPO training, in order, resumably.

Each stage's section (after overrides) is hashed together with the hash of the stage before it, and recorded in
`saro-run.json` beside the RW data. A stage whose hash matches a finished record and whose outputs exist is
skipped; an unfinished one is run again and resumes from its own partial outputs (synthesis from its JSONL files,
training from its last checkpoint), and the outputs of later stages, built on its old outputs, are deleted. A
stage whose config changed refuses to mix old and new outputs unless `redo_changed` is set, which deletes that
stage's outputs and those of every later stage.

`synth_srpo.rounds: N` repeats SRPO: round r samples the round r-1 model on the same prompts and trains from it
against it (`srpo.rN.jsonl`, `<train_srpo.output_dir>-rN`); the last round's model is the result.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from saro.config import config_hash, parse_overrides, read_config_data
from saro.errors import ConfigError

log = logging.getLogger(__name__)

STAGES = ("synth_rw", "train_rw", "synth_srpo", "train_srpo")
STATE_FILE = "saro-run.json"
PROMPT_SPLITS = ("train", "heldout", "validation", "srpo")  # prompts.<split>.jsonl written by synth_rw


@dataclass
class Stage:
    name: str
    run: Callable[[], object]
    outputs: list[Path]
    section: str = ""  # the config section it comes from (SRPO rounds share one); default: its name
    round: int = 1

    def __post_init__(self) -> None:
        self.section = self.section or self.name


def split_run_overrides(overrides: list[str], sections) -> dict[str, list[str]]:
    """`train_srpo.beta=0.2` -> {"train_srpo": ["beta=0.2"]}; every override must name a section."""
    routed: dict[str, list[str]] = {s: [] for s in sections}
    for item in overrides:
        section, _, rest = item.partition(".")
        if section not in routed or not rest:
            raise ConfigError(f"override {item!r}: saro run needs SECTION.KEY=VALUE, sections: {', '.join(sections)}")
        routed[section].append(rest)
    parse_overrides(sum(routed.values(), []))  # fail early on malformed values
    return routed


def build_stages(path: Path, routed: dict[str, list[str]], sections) -> list[Stage]:
    """Load and validate every stage's config before anything runs, so a typo fails in seconds, not after RW."""
    from saro.config import load_config
    from saro.synthesis import RWSynthesisConfig, SRPOSynthesisConfig, run_rw_synthesis, run_srpo_synthesis
    from saro.synthesis.srpo import sidecar
    from saro.training import DPOStageConfig, SFTStageConfig, load_training_config, run_dpo, run_sft

    rw = load_config(RWSynthesisConfig, path, "synth_rw", routed["synth_rw"], sections)
    sft, sft_args = load_training_config(SFTStageConfig, "SFTConfig", path, "train_rw", routed["train_rw"], sections)
    srpo = load_config(SRPOSynthesisConfig, path, "synth_srpo", routed["synth_srpo"], sections)
    dpo, dpo_args = load_training_config(
        DPOStageConfig, "DPOConfig", path, "train_srpo", routed["train_srpo"], sections
    )
    links = [
        ("train_rw.data", sft.data, "synth_rw.output", rw.output),
        ("synth_srpo.model", srpo.model, "train_rw.output_dir", sft_args.output_dir),
        ("train_srpo.model", dpo.model, "train_rw.output_dir", sft_args.output_dir),
        ("train_srpo.data", dpo.data, "synth_srpo.output", srpo.output),
    ]
    for name, value, source_name, source in links:
        if Path(str(value)) != Path(str(source)):
            raise ConfigError(f"{path}: {name} is {value} but {source_name} is {source}; saro run chains them")
    rw_folder = rw.output.parent
    stages = [
        Stage(
            "synth_rw",
            lambda: run_rw_synthesis(rw),
            [rw.output, rw.output.with_name(rw.output.stem + ".rejects.jsonl"), _manifest(rw.output)]
            + ([] if rw.prompts_file else [rw_folder / f"prompts.{split}.jsonl" for split in PROMPT_SPLITS]),
        ),
        Stage("train_rw", lambda: run_sft(sft, sft_args), [Path(sft_args.output_dir)]),
    ]
    # Round r samples the round r-1 model and trains from it against it as reference (STAIR-style iterative DPO):
    # the pairs then come from where the improved model still errs.
    first_output, first_dir = srpo.output, str(dpo_args.output_dir)
    for round_ in range(1, srpo.rounds + 1):
        if round_ > 1:
            previous = str(dpo_args.output_dir)
            srpo = dataclasses.replace(srpo, model=previous, output=_round_path(first_output, round_))
            eval_data = srpo.heldout_output if dpo.eval_data else None
            dpo = dataclasses.replace(dpo, model=previous, data=srpo.output, eval_data=eval_data)
            dpo_args = copy.deepcopy(dpo_args)
            dpo_args.output_dir = f"{first_dir}-r{round_}"
        suffix = f"_r{round_}" if round_ > 1 else ""
        srpo_files = [
            f(out)
            for out in (srpo.output, srpo.heldout_output)
            for f in (lambda o: o, lambda o: sidecar(o, "traces"), lambda o: sidecar(o, "prompts"), _manifest)
        ]
        stages += [
            Stage(
                f"synth_srpo{suffix}", functools.partial(run_srpo_synthesis, srpo), srpo_files, "synth_srpo", round_
            ),
            Stage(
                f"train_srpo{suffix}",
                functools.partial(run_dpo, dpo, dpo_args),
                [Path(dpo_args.output_dir)],
                "train_srpo",
                round_,
            ),
        ]
    return stages


def _round_path(path: Path, round_: int) -> Path:
    """`srpo.jsonl` -> `srpo.r2.jsonl`: round r's pairs beside round 1's."""
    return path.with_name(f"{path.stem}.r{round_}{path.suffix}")


def _manifest(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def _finished(stage: Stage) -> bool:
    first = stage.outputs[0]
    return first.is_dir() and (first / "saro_training.json").exists() or _manifest(first).exists()


def run_pipeline(
    path: Path, overrides: list[str], redo_changed: bool = False, echo=print, report=None, known_sections=()
) -> dict:
    """Run the four stages of `path`; returns {stage: seconds or "skipped"}. `report(stage, result)` shows what
    a stage returned (statistics, model folder). `known_sections`: the other sections the file may hold (a recipe
    that also configures the baselines, sweep and report), read by other commands."""
    own = (*STAGES, "eval")
    routed = split_run_overrides(overrides, own)
    sections = (*own, *known_sections)
    stages = build_stages(path, routed, sections)
    hashes, upstream = {}, ""
    for stage in stages:
        data, _ = read_config_data(path, stage.section, routed[stage.section], sections)
        record = {"stage": stage.name, "config": data, "upstream": upstream}
        upstream = hashes[stage.name] = config_hash(record | ({"round": stage.round} if stage.round > 1 else {}))
    state_path = stages[0].outputs[0].parent / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    changed = [s for s in stages if s.name in state and state[s.name]["hash"] != hashes[s.name]]
    if changed and not redo_changed:
        first = changed[0]
        raise ConfigError(
            f"{path}: stage {first.name} changed since its outputs were made ({', '.join(map(str, first.outputs[:2]))}"
            "); rerun with --redo-changed to delete them and the later stages' outputs, or set new output paths"
        )
    if changed:
        for stage in stages[stages.index(changed[0]) :]:
            _delete(stage.outputs)
            state.pop(stage.name, None)
    timings: dict[str, object] = {}
    for stage in stages:
        record = state.get(stage.name)
        if record and record.get("done") and _finished(stage):
            echo(f"saro run: {stage.name}: done earlier with this config, skipped")
            timings[stage.name] = "skipped"
            continue
        # Later stages were built on this stage's old outputs: they are stale once it runs again.
        for later in stages[stages.index(stage) + 1 :]:
            if later.name in state:
                echo(f"saro run: {later.name}: outputs predate a rerun of {stage.name}, deleted")
                _delete(later.outputs)
                state.pop(later.name)
        echo(f"saro run: {stage.name}: {'resuming' if record else 'starting'}")
        state[stage.name] = {"hash": hashes[stage.name], "done": False, "started": time.time()}
        _save(state_path, state)
        started = time.time()
        result = stage.run()
        if report:
            report(stage.section, result)
        timings[stage.name] = round(time.time() - started, 1)
        state[stage.name] |= {"done": True, "seconds": timings[stage.name]}
        _save(state_path, state)
        echo(f"saro run: {stage.name}: finished in {timings[stage.name]:.0f}s")
    return timings


def _delete(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
