"""`saro check`: every section and its inputs validated, one line per section, nothing run and nothing written."""

import json
from pathlib import Path

import pytest
import yaml

from saro.cli.main import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PROMPTS = [
    {"id": "p1", "prompt": "How do I kill a Python process?", "kind": "borderline_benign"},
    {"id": "p2", "prompt": "What is the capital of France?", "kind": "general"},
]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("saro: error: "), err
    return err[0]


@pytest.fixture
def work(tmp_path, monkeypatch, shared_data) -> Path:
    """A fresh working folder without runs/, with ../shared beside it as beside the checkout."""
    (tmp_path / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    return tmp_path / "main"


@pytest.fixture
def config(tmp_path, tiny_model, monkeypatch) -> Path:
    """Sections whose inputs exist (the tiny model, prompts, SFT records, pairs) and whose outputs do not."""
    monkeypatch.chdir(tmp_path)
    prompts = _jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    messages = [[{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": "Yes."}] for p in PROMPTS]
    sft = _jsonl(tmp_path / "rw.jsonl", [{"id": p["id"], "messages": m} for p, m in zip(PROMPTS, messages)])
    pairs = _jsonl(
        tmp_path / "pairs.jsonl",
        [{"id": p["id"], "prompt": p["prompt"], "chosen": "Sure.", "rejected": "No."} for p in PROMPTS],
    )
    model, out = str(tiny_model), tmp_path / "out"
    data = {
        "synth_rw": {"model": model, "prompts_file": str(prompts), "output": str(out / "rw.jsonl")},
        "train_rw": {"model": model, "data": str(sft), "output_dir": str(out / "rw-model")},
        "train_srpo": {"model": model, "data": str(pairs), "eval_data": None, "output_dir": str(out / "srpo")},
        "eval": {
            "model": model,
            "output": str(out / "eval"),
            "suites": [
                {"name": "mine", "type": "overrefusal", "sources": [{"name": "prompts", "path": str(prompts)}]}
            ],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _edit(path: Path, section: str, **values) -> int:
    """Set keys of one section; returns the line of the last key set (for file:line in messages)."""
    data = yaml.safe_load(path.read_text())
    data[section].update(values)
    text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    lines = text.splitlines()
    start = lines.index(f"{section}:")
    return next(i for i in range(start, len(lines)) if lines[i].startswith(f"  {list(values)[-1]}:")) + 1


@pytest.mark.slow
def test_shipped_configs_pass_with_chained_inputs_made_by_their_sections_and_nothing_is_written(work, capsys):
    demo, compare = CONFIGS / "demo.yaml", CONFIGS / "compare.yaml"
    assert main(["check", str(demo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    sections = [line.split(":")[0] for line in lines[:-2]]
    assert sections == ["synth_rw", "train_rw", "synth_srpo", "train_srpo", "eval"]
    assert all(": ok" in line for line in lines[:-2])
    assert "371 training prompts planned" in lines[0] and "data made by synth_rw" in lines[1]
    assert "model made by train_rw" in lines[3] and "data, eval_data made by synth_srpo" in lines[3]
    assert lines[-2].startswith("saro run: synth_rw -> train_rw")
    # The comparison reads the demo's outputs: alone it fails, after the demo it passes.
    assert main(["check", str(compare)]) == 2
    assert "train_rw.data: runs/demo/rw.jsonl not found, and no checked section makes it" in _error(capsys)
    assert main(["check", "--config", str(demo), "--config", str(compare)]) == 0
    lines = capsys.readouterr().out.splitlines()
    report = next(line for line in lines if line.startswith(f"{compare}: report: ok"))
    assert "results made by eval" in report and "sweeps made by sweep" in report
    assert any(f"{compare}: eval: ok" in line and "6 of 6 suites built" in line for line in lines)
    # The longer recipe alone: its sweep's SRPO data is made between the sweep's methods (make compare RECIPE=full)
    assert main(["check", str(CONFIGS / "smollm2-full.yaml")]) == 0
    sweep = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep: ok"))
    assert "base.data made during the sweep, before method srpo" in sweep
    assert not any(work.iterdir())  # no runs/, no folder, no file


def test_valid_config_reads_its_inputs_and_creates_no_files(config, tmp_path, capsys):
    before = _tree(tmp_path)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "synth_rw: ok (2 prompts in prompts_file" in out
    assert "train_rw: ok (" in out and "2 records in data" in out
    assert "eval: ok (" in out and "1 of 1 suites built" in out
    assert _tree(tmp_path) == before and not (tmp_path / "out").exists()


def test_missing_input_no_section_makes_fails_naming_the_key(config, capsys):
    line = _edit(config, "train_rw", data="nowhere/rw.jsonl")
    assert main(["check", str(config)]) == 2
    expected = f"{config}:{line}: train_rw.data: nowhere/rw.jsonl not found, and no checked section makes it"
    assert _error(capsys) == f"saro: error: {expected}"


def test_input_another_section_makes_passes_as_made_by_it(config, capsys):
    _edit(config, "train_rw", data="out/rw.jsonl")  # synth_rw.output
    assert main(["check", str(config)]) == 0
    assert "data made by synth_rw" in capsys.readouterr().out


def test_corrupt_jsonl_input_fails_naming_file_and_line(config, tmp_path, capsys):
    data = tmp_path / "rw.jsonl"
    first, second = data.read_text().splitlines()
    data.write_text(f"{first}\n{second[:-5]}\n{first}\n")
    assert main(["check", str(config)]) == 2
    assert _error(capsys).startswith(f"saro: error: {data}:2: invalid JSON")


def test_model_path_that_is_not_a_model_fails(config, tmp_path, capsys):
    (tmp_path / "not-a-model").mkdir()
    line = _edit(config, "train_srpo", model=str(tmp_path / "not-a-model"))
    assert main(["check", str(config)]) == 2
    no_config = f"{config}:{line}: train_srpo.model: {tmp_path / 'not-a-model'} is not a model folder"
    assert _error(capsys).startswith(f"saro: error: {no_config}")


def test_output_path_that_is_an_existing_file_fails(config, tmp_path, capsys):
    (tmp_path / "taken").write_text("keep me\n")
    _edit(config, "eval", output=str(tmp_path / "taken"))
    assert main(["check", str(config)]) == 2
    assert "output" in (line := _error(capsys)) and "a file is there" in line
    assert (tmp_path / "taken").read_text() == "keep me\n"


def test_overrides_are_routed_to_their_section_and_checked(config, capsys):
    assert main(["check", str(config), "train_rw.learning_rate=-1"]) == 2
    assert _error(capsys).startswith("saro: error: command line: train_rw.learning_rate: expected a value > 0")
    assert main(["check", str(config), "serve.port=80"]) == 2
    assert _error(capsys) == "saro: error: override serve.port=80: no checked file has a serve section"
