from pathlib import Path

import pytest
import yaml

from saro.cli.main import SECTIONS
from saro.config import build_dataclass, load_config
from saro.errors import ConfigError
from saro.sources.templates import load_builtin_templates
from saro.synthesis import RWSynthesisConfig


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("synth_rw:\n  model: smollm2\n  sampels: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(RWSynthesisConfig, path, "synth_rw", (), SECTIONS)
    assert str(err.value) == f"{path}:3: synth_rw.sampels: unknown key 'sampels' (did you mean 'samples'?)"


def test_bad_nested_value_names_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("synth_rw:\n  teacher:\n    kind: magic\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: synth_rw.teacher.kind: 'magic' is not one of"):
        load_config(RWSynthesisConfig, path, "synth_rw", (), SECTIONS)


def test_wrong_type_and_cross_field_checks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("samples: many\n")
    with pytest.raises(ConfigError, match="c.yaml:1: samples: expected an integer, got 'many'"):
        load_config(RWSynthesisConfig, path, "synth_rw", (), SECTIONS)
    path.write_text("samples: 0\n")
    with pytest.raises(ConfigError, match="c.yaml:1: samples: expected a value >= 1, got 0"):
        load_config(RWSynthesisConfig, path, "synth_rw", (), SECTIONS)


def test_overrides_win_over_file_and_nest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("synth_rw:\n  samples: 3\n  teacher: {kind: offline}\n")
    config = load_config(
        RWSynthesisConfig,
        path,
        "synth_rw",
        ["samples=5", "teacher.answer_max_tokens=12", "prompts.per_kind={harmful: 4}"],
        SECTIONS,
    )
    assert (config.samples, config.teacher.answer_max_tokens) == (5, 12)
    assert config.prompts.per_kind == {"harmful": 4}
    assert config.teacher.kind == "offline"


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml")), ids=str)
def test_shipped_configs_validate(path):
    """Every section of every shipped config loads: saro keys build, TRL keys exist (GPU-only values aside)."""
    from trl import DPOConfig, SFTConfig

    from saro.analysis import AnalyzeConfig
    from saro.config import read_config_data, split_trl_keys
    from saro.evaluation.runner import EvalConfig
    from saro.reporting.report import ReportConfig
    from saro.sweep import SweepConfig, check_setting
    from saro.synthesis import RWSynthesisConfig, SRPOSynthesisConfig
    from saro.synthesis.baselines import BaselineDataConfig
    from saro.training import DPOStageConfig, SFTStageConfig

    plain = {
        "synth_rw": RWSynthesisConfig,
        "synth_srpo": SRPOSynthesisConfig,
        "synth_baselines": BaselineDataConfig,
        "eval": EvalConfig,
        "report": ReportConfig,
        "sweep": SweepConfig,
        "analyze": AnalyzeConfig,
    }
    trained = {
        "train_rw": (SFTStageConfig, SFTConfig),
        "train_srpo": (DPOStageConfig, DPOConfig),
        "train_safety_sft": (SFTStageConfig, SFTConfig),
        "train_safety_dpo": (DPOStageConfig, DPOConfig),
    }
    present = set(yaml.safe_load(path.read_text()))
    assert present and present <= set(SECTIONS)
    for section in present:
        if section == "sweep":  # every setting must make a valid config of its stage
            for method in load_config(SweepConfig, path, section, (), SECTIONS).methods:
                for setting in method.settings + method.ablations:
                    check_setting(path, method, setting, SECTIONS)
        elif section in plain:
            load_config(plain[section], path, section, (), SECTIONS)
        else:
            data, source = read_config_data(path, section, (), SECTIONS)
            ours, _ = split_trl_keys(data, *trained[section], source)
            build_dataclass(trained[section][0], ours, source)


@pytest.mark.parametrize("name", ["demo.yaml", "compare.yaml", "smollm2-full.yaml"])
def test_cpu_recipes_train_srpo_with_the_sft_term(name):
    """The embedded default's SRPO was validated with the SFT term (RPO; dev log, sessions 3 and 10): a recipe that
    drops it silently sweeps another method than the one its comments describe. (The GPU recipes keep plain DPO.)"""
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / name).read_text())
    srpo = data["train_srpo"]
    assert srpo.get("loss_type") == ["sigmoid", "sft"], srpo.get("loss_type")
    assert len(srpo.get("loss_weights", [])) == 2


def test_cpu_recipes_select_on_one_validation_set_that_holds_a_multi_task_wrapper():
    """Validation scores of the demo and the full recipe are compared in the dev log, so both draw the same set. Its
    jailbreaks include decoy_tasks, a built-in multi-task wrapper (decoys around the request) that no recipe trains."""
    root = Path(__file__).resolve().parents[1] / "configs"
    keys = ("seed", "validation_per_kind", "validation_sources", "validation_families", "exclude")
    demo, full = (
        yaml.safe_load((root / n).read_text())["synth_rw"]["prompts"] for n in ("demo.yaml", "smollm2-full.yaml")
    )
    assert {k: demo.get(k) for k in keys} == {k: full.get(k) for k in keys}
    decoys = [t.text for t in load_builtin_templates() if t.family == "decoy_tasks"]
    assert decoys and decoys[0].index("Task A") < decoys[0].index("{query}") < decoys[0].index("Task C")
    assert "decoy_tasks" in demo["validation_families"]
