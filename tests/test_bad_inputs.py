"""Bad inputs a new user gives (issue 11): each is one `saro: error:` line, exit 2, and nothing written is lost.

Every case is one that used to end in a traceback or, worse, in a wrong result reported as success; configs point
at the tiny model and real data files, so a missing check would run the stage rather than pass unnoticed.
"""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from saro.cli.main import main
from saro.errors import DataError
from saro.records import JsonlWriter

BENIGN_PROMPTS = [  # harmless texts only: these tests never need a harmful prompt's words
    {"id": "p1", "prompt": "How do I kill a Python process?", "kind": "borderline_benign"},
    {"id": "p2", "prompt": "What is the capital of France?", "kind": "general"},
    {"id": "p3", "prompt": "How do I shoot a good photo at night?", "kind": "borderline_benign"},
]


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Relative default paths (runs/demo/...) land in tmp_path, never in the checkout's runs/."""
    monkeypatch.chdir(tmp_path)


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _only_line(capsys) -> str:
    """stderr must be exactly one line: the error."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _error_line(capsys) -> str:
    """The one `saro: error:` line of a run that may log before it fails; no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("saro: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _config(tmp_path: Path, tiny_model: Path) -> Path:
    """Every stage the cases touch, runnable as written on the tiny model (outputs under tmp_path)."""
    prompts = _write_jsonl(tmp_path / "prompts.jsonl", BENIGN_PROMPTS)
    sft = _write_jsonl(
        tmp_path / "rw.jsonl",
        [
            {
                "id": r["id"],
                "messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": "Yes."}],
            }
            for r in BENIGN_PROMPTS
        ],
    )
    pairs = _write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"id": r["id"], "prompt": r["prompt"], "chosen": "Sure.", "rejected": "No."} for r in BENIGN_PROMPTS],
    )
    model = str(tiny_model)
    data = {
        "synth_rw": {
            "model": model,
            "prompts_file": str(prompts),
            "output": str(tmp_path / "synth" / "rw.jsonl"),
            "samples": 1,
            "teacher": {"kind": "offline", "answer_max_tokens": 8},
        },
        "train_rw": {"model": model, "data": str(sft), "output_dir": str(tmp_path / "rw-model")},
        "synth_srpo": {
            "model": model,
            "prompts_file": str(prompts),
            "heldout_prompts_file": None,
            "output": str(tmp_path / "srpo.jsonl"),
            "max_new_tokens": 8,
        },
        "train_srpo": {
            "model": model,
            "data": str(pairs),
            "eval_data": None,
            "output_dir": str(tmp_path / "srpo-model"),
        },
        "eval": {
            "model": model,
            "output": str(tmp_path / "eval"),
            "max_new_tokens": 8,
            "suites": [{"name": "seeds", "type": "harmful", "sources": [{"name": "seeds"}], "limit": 2}],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


RANGE_CASES = [  # command, override, the key as named in the error, the allowed range it must state
    (["eval"], "batch_size=-3", "eval.batch_size", ">= 1"),
    (["eval"], "batch_size=0", "eval.batch_size", ">= 1"),
    (["eval"], "temperature=-1", "eval.temperature", ">= 0"),
    (["eval"], "max_new_tokens=0", "eval.max_new_tokens", ">= 1"),
    (["synth", "srpo"], "max_new_tokens=0", "synth_srpo.max_new_tokens", ">= 1"),
    (["synth", "srpo"], "temperature=-0.5", "synth_srpo.temperature", ">= 0"),
    (["train", "rw"], "learning_rate=-1", "train_rw.learning_rate", "> 0"),
    (["train", "rw"], "per_device_train_batch_size=-3", "train_rw.per_device_train_batch_size", ">= 1"),
    (["train", "rw"], "num_train_epochs=0", "train_rw.num_train_epochs", "> 0"),
    (["train", "srpo"], "beta=0", "train_srpo.beta", "> 0"),
    (["synth", "baselines"], "max_pairs=-4", "synth_baselines.max_pairs", ">= 1"),
    (["serve"], "port=99999", "serve.port", ">= 0 and <= 65535"),
    (["synth", "srpo"], "per_kind={general: -2}", "synth_srpo.per_kind.general", ">= 0"),  # was a traceback
    (["synth", "rw"], "prompts.per_kind={harmful: -1}", "synth_rw.prompts.per_kind.harmful", ">= 0"),  # all but 1
]


@pytest.mark.parametrize("command, override, key, allowed", RANGE_CASES, ids=[c[1] for c in RANGE_CASES])
def test_out_of_range_value_fails_before_anything_runs(tmp_path, tiny_model, capsys, command, override, key, allowed):
    config = _config(tmp_path, tiny_model)
    before = _snapshot(tmp_path)
    assert main([*command, "--config", str(config), override]) == 2
    line = _only_line(capsys)
    value = yaml.safe_load(override.split("=", 1)[1])
    while isinstance(value, dict):  # a count per kind
        (value,) = value.values()
    assert line.startswith(f"saro: error: command line: {key}: expected a value {allowed}, got ")
    assert float(line.rsplit("got ", 1)[1]) == float(value)
    assert _snapshot(tmp_path) == before  # nothing written: the check ran before any stage work


def test_saro_run_names_the_routed_override_on_the_command_line(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    before = _snapshot(tmp_path)
    assert main(["run", str(config), "train_rw.learning_rate=-1"]) == 2
    assert _only_line(capsys).startswith("saro: error: command line: train_rw.learning_rate: expected a value > 0")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("limit", [0, -1])
def test_suite_limit_below_one_names_the_file_line(tmp_path, tiny_model, capsys, limit):
    config = _config(tmp_path, tiny_model)
    text = config.read_text().replace("limit: 2", f"limit: {limit}")
    config.write_text(text)
    line_number = text.splitlines().index(f"    limit: {limit}") + 1
    before = _snapshot(tmp_path)
    assert main(["eval", "--config", str(config)]) == 2
    expected = f"saro: error: {config}:{line_number}: eval.suites.0.limit: expected a value >= 1, got {limit}"
    assert _only_line(capsys) == expected
    assert _snapshot(tmp_path) == before


def test_suite_without_prompts_is_an_error_not_a_result_over_zero(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    # the easy set holds capability questions only, so a harmful suite over it keeps none
    override = "suites=[{name: empty, type: harmful, sources: [{name: easy}], limit: 3}]"
    assert main(["eval", "--config", str(config), override]) == 2
    assert _only_line(capsys).startswith("saro: error: suite 'empty': no prompts to evaluate")
    assert not (tmp_path / "eval" / "results.json").exists()


def test_bad_override_blames_the_command_line_not_the_file(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    assert main(["synth", "rw", "--config", str(config), "samples=abc"]) == 2
    assert _only_line(capsys) == "saro: error: command line: synth_rw.samples: expected an integer, got 'abc'"
    assert main(["synth", "rw", "--config", str(config), "teacher.kind=magic"]) == 2
    assert _only_line(capsys).startswith("saro: error: command line: synth_rw.teacher.kind: 'magic' is not one of")
    # the same mistake in the file still names the file's line
    text = config.read_text().replace("samples: 1", "samples: abc")
    config.write_text(text)
    line_number = text.splitlines().index("  samples: abc") + 1
    assert main(["synth", "rw", "--config", str(config)]) == 2
    expected = f"saro: error: {config}:{line_number}: synth_rw.samples: expected an integer, got 'abc'"
    assert _only_line(capsys) == expected


def test_corrupt_middle_line_is_an_error_and_the_file_is_kept(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    output = tmp_path / "synth" / "rw.jsonl"
    output.parent.mkdir()
    good = [json.dumps({"id": f"r{i}", "messages": []}) for i in range(4)]
    output.write_text(f"{good[0]}\n{good[1][:-7]}\n{good[2]}\n{good[3]}\n", encoding="utf-8")
    before = output.read_bytes()
    assert main(["synth", "rw", "--config", str(config)]) == 2
    line = _error_line(capsys)
    assert line.startswith(f"saro: error: {output}:2: invalid JSON, and not the last line")
    assert output.read_bytes() == before  # the records after the bad line are not truncated away


def test_writer_drops_only_a_torn_last_line_and_refuses_bad_utf8_before_it(tmp_path):
    path = tmp_path / "out.jsonl"
    records = [json.dumps({"id": f"r{i}"}) for i in range(3)]
    path.write_bytes(f"{records[0]}\n{records[1]}\n".encode() + records[2][:-3].encode())
    with JsonlWriter(path) as writer:
        assert writer.done_ids == {"r0", "r1"}
    assert path.read_text(encoding="utf-8") == f"{records[0]}\n{records[1]}\n"

    corrupt = f"{records[0]}\n".encode() + b'{"id": "\xff"}\n' + f"{records[2]}\n".encode()
    path.write_bytes(corrupt)
    with pytest.raises(DataError, match=rf"{path}:2: not UTF-8, and not the last line"):
        JsonlWriter(path)
    assert path.read_bytes() == corrupt


def test_duplicate_prompt_ids_name_both_lines(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    prompts = tmp_path / "prompts.jsonl"
    _write_jsonl(prompts, [*BENIGN_PROMPTS, {**BENIGN_PROMPTS[1], "prompt": "What is the capital of Spain?"}])
    for command in (["synth", "rw"], ["synth", "srpo"]):
        before = _snapshot(tmp_path)
        assert main([*command, "--config", str(config)]) == 2
        expected = f"saro: error: {prompts}:4: duplicate id 'p2' (first at {prompts}:2); prompt ids must be unique"
        assert _error_line(capsys) == expected
        assert _snapshot(tmp_path) == before


def test_config_that_is_a_folder_or_not_utf8_is_one_line(tmp_path, capsys):
    assert main(["synth", "rw", "--config", str(tmp_path)]) == 2
    assert _only_line(capsys) == f"saro: error: {tmp_path}: not a file; --config takes a YAML config file"
    config = tmp_path / "latin1.yaml"
    config.write_bytes("synth_rw:\n  samples: 2\n  model: caf\u00e9\n".encode("latin-1"))
    assert main(["synth", "rw", "--config", str(config)]) == 2
    assert _only_line(capsys) == f"saro: error: {config}:3: not UTF-8 text (byte 0xe9); save the config as UTF-8"


def test_key_given_twice_names_both_lines(tmp_path, tiny_model, capsys):
    """YAML keeps the last of two values silently: the run would use a value the user may not have meant."""
    config = _config(tmp_path, tiny_model)
    text = config.read_text().replace("  samples: 1\n", "  samples: 1\n  samples: 3\n")
    config.write_text(text)
    line_number = text.splitlines().index("  samples: 3") + 1
    for argv in (["synth", "rw", "--config", str(config)], ["check", str(config)]):
        before = _snapshot(tmp_path)
        assert main(argv) == 2
        expected = (
            f"saro: error: {config}:{line_number}: synth_rw.samples: duplicate key (first at line {line_number - 1}); "
            "give each key once"
        )
        assert _only_line(capsys) == expected
        assert _snapshot(tmp_path) == before


def test_training_data_that_is_a_folder_or_not_utf8_is_one_line(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    folder = tmp_path / "data-folder"
    folder.mkdir()
    assert main(["train", "rw", "--config", str(config), f"data={folder}"]) == 2
    assert _error_line(capsys) == f"saro: error: {folder}: not a file; expected a JSONL file"
    latin1 = tmp_path / "latin1.jsonl"
    good = (tmp_path / "rw.jsonl").read_bytes()
    bad_line = '{"id": "x", "messages": [{"role": "user", "content": "caf\u00e9"}]}\n'.encode("latin-1")
    latin1.write_bytes(good + bad_line)
    line_number = good.count(b"\n") + 1
    assert main(["train", "rw", "--config", str(config), f"data={latin1}"]) == 2
    expected = f"saro: error: {latin1}:{line_number}: not UTF-8 text; JSONL files must be UTF-8"
    assert _error_line(capsys) == expected
    assert not (tmp_path / "rw-model").exists()


# --- stale state is refused, not reused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, changed, key",
    [(["train", "rw"], "learning_rate=0.01", "learning_rate"), (["train", "srpo"], "beta=0.5", "beta")],
    ids=["rw", "srpo"],
)
def test_rerun_with_other_training_settings_is_refused_and_the_model_kept(
    tmp_path, tiny_model, capsys, command, changed, key
):
    config = _config(tmp_path, tiny_model)
    out = tmp_path / ("rw-model" if command[1] == "rw" else "srpo-model")
    short = ["num_train_epochs=2", "eval_train_pairs=0"] if command[1] == "srpo" else ["num_train_epochs=2"]
    assert main([*command, "--config", str(config), *short]) == 0
    finished = _snapshot(out)
    refused = f"saro: error: {out} holds a run with other settings ({{}}): choose another output_dir or remove it"
    assert main([*command, "--config", str(config), *short, changed]) == 2
    assert _error_line(capsys) == refused.format(key)
    assert main([*command, "--config", str(config), *short, "num_train_epochs=1"]) == 2  # shorter than the run
    assert _error_line(capsys) == refused.format("num_train_epochs")
    data = tmp_path / ("rw.jsonl" if command[1] == "rw" else "pairs.jsonl")
    original = data.read_bytes()
    data.write_bytes(original.replace(b"Yes.", b"Yes!").replace(b"Sure.", b"Sure!"))  # regenerated at one path
    assert main([*command, "--config", str(config), *short]) == 2
    assert _error_line(capsys) == refused.format("data")
    assert _snapshot(out) == finished
    data.write_bytes(original)
    # the same settings (logging aside) and a longer run: resumed from the finished run's last checkpoint
    assert main([*command, "--config", str(config), *short, "num_train_epochs=3", "logging_steps=1"]) == 0
    summary = json.loads((out / "saro_training.json").read_text())
    assert summary["resumed_from"] and Path(summary["resumed_from"]).parent == out
    assert summary["metrics"]["epoch"] == 3


def _eval_lines(folder: Path) -> list[str]:
    return (folder / "generations.jsonl").read_text(encoding="utf-8").splitlines()


def test_eval_refuses_generations_of_model_files_replaced_at_the_same_path(tmp_path, tiny_model, capsys):
    from saro.models import build_tiny

    config = _config(tmp_path, tiny_model)
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    assert main(["eval", "--config", str(config), f"model={model}"]) == 0
    kept = _snapshot(tmp_path / "eval")
    assert main(["eval", "--config", str(config), f"model={model}"]) == 0  # unchanged: generations reused
    capsys.readouterr()
    build_tiny(model, seed=1)  # other weights, same path
    assert main(["eval", "--config", str(config), f"model={model}"]) == 2
    expected = (
        f"saro: error: {tmp_path / 'eval'}: holds generations of {model} made before its files changed; "
        "use another output folder or delete this one"
    )
    assert _error_line(capsys) == expected
    assert {k: v for k, v in _snapshot(tmp_path / "eval").items() if k != "results.json"} == {
        k: v for k, v in kept.items() if k != "results.json"
    }


def test_bad_model_path_is_one_line_and_does_not_block_the_corrected_rerun(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    out = tmp_path / "eval"
    missing = tmp_path / "no-such-model"
    assert main(["eval", "--config", str(config), f"model={missing}"]) == 2
    assert _error_line(capsys).startswith(f"saro: error: model '{missing}': no such folder")
    not_a_model = tmp_path / "data-folder"
    not_a_model.mkdir()
    assert main(["eval", "--config", str(config), f"model={not_a_model}"]) == 2
    assert _error_line(capsys) == f"saro: error: model '{not_a_model}': not a model folder (no config.json in it)"
    no_tokenizer = tmp_path / "weights-only"
    shutil.copytree(tiny_model, no_tokenizer, ignore=shutil.ignore_patterns("tokenizer*", "chat_template*"))
    assert main(["eval", "--config", str(config), f"model={no_tokenizer}", f"output={tmp_path / 'other'}"]) == 2
    assert f"model '{no_tokenizer}': cannot load it as a folder: no tokenizer files in it (" in _error_line(capsys)
    assert not (out / "generation.json").exists()
    assert main(["eval", "--config", str(config)]) == 0
    assert json.loads((out / "generation.json").read_text())["model"] == str(tiny_model)


def test_report_over_folders_of_other_seeds_or_no_shared_prompt_is_refused(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    first, other_seed, other_suite = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["eval", "--config", str(config), f"output={first}"]) == 0
    assert main(["eval", "--config", str(config), f"output={other_seed}", "seed=1"]) == 0
    suites = "suites=[{name: other, type: harmful, sources: [{name: seeds}], limit: 2}]"
    assert main(["eval", "--config", str(config), f"output={other_suite}", suites]) == 0
    capsys.readouterr()
    report = tmp_path / "report"
    assert main(["report", str(first), str(other_seed), f"output={report}"]) == 2
    expected = (
        f"saro: error: report: the result folders were evaluated with different seeds ({first}: 0, {other_seed}: 1);"
        " compare folders evaluated with one seed"
    )
    assert _only_line(capsys) == expected
    assert main(["report", str(first), str(other_suite), f"output={report}"]) == 2
    assert _only_line(capsys).startswith("saro: error: report: the result folders share no evaluated prompt")
    assert not report.exists()


# --- outputs that cannot be written: one line before any work ------------------------------------------------------


def test_output_path_that_is_a_file_is_one_line(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    cases = [
        (["eval", "--config", str(config), f"output={afile}"], "output"),
        (["train", "rw", "--config", str(config), f"output_dir={afile}"], "output_dir"),
        (["model", "tiny", str(afile)], "folder"),
        (["model", "prepare", str(afile)], "folder"),
    ]
    for argv, key in cases:
        assert main(argv) == 2, argv
        expected = f"saro: error: {key} {afile}: a file is there, not a folder; choose another {key}"
        assert _error_line(capsys) == expected
    assert main(["eval", "--config", str(config)]) == 0  # a real folder to report on
    capsys.readouterr()
    assert main(["report", str(tmp_path / "eval"), f"output={afile}"]) == 2
    assert _only_line(capsys) == f"saro: error: output {afile}: a file is there, not a folder; choose another output"
    assert afile.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("afile")) == ["afile"]  # no afile.tmp/


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder refuse new files, as a read-only mount does (chmod alone does not stop root)."""

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        real_open = os.open

        def refusing_open(path, flags, *args, **kwargs):
            writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if writing and isinstance(path, str | Path) and Path(path).absolute().is_relative_to(folder):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        return folder

    return make


def test_read_only_output_folder_is_one_line(tmp_path, tiny_model, capsys, read_only):
    config = _config(tmp_path, tiny_model)
    assert main(["eval", "--config", str(config)]) == 0  # a real folder to report on
    capsys.readouterr()
    folder = read_only(tmp_path / "ro")
    cases = [
        (["eval", "--config", str(config), f"output={folder}"], "output"),
        (["report", str(tmp_path / "eval"), f"output={folder}"], "output"),
        (["train", "rw", "--config", str(config), f"output_dir={folder}"], "output_dir"),
        (["synth", "rw", "--config", str(config), f"output={folder / 'rw.jsonl'}"], "output folder"),
    ]
    for argv, key in cases:
        assert main(argv) == 2, argv
        expected = f"saro: error: {key} {folder}: cannot write there (Permission denied); choose another {key}"
        assert _error_line(capsys) == expected
    assert list(folder.iterdir()) == []


# --- every config dataclass checks its ranges, however it is built ----------------------------------------------


def test_direct_construction_checks_field_ranges():
    import dataclasses
    import importlib
    import pkgutil

    import saro
    from saro.config import RangeChecked, RangeError, field_limits
    from saro.evaluation.runner import EvalConfig
    from saro.synthesis import RWSynthesisConfig, SRPOSynthesisConfig

    with pytest.raises(RangeError, match=r"^samples: expected a value >= 1, got 0$"):
        RWSynthesisConfig(samples=0)
    with pytest.raises(RangeError, match=r"^op_per_prompt: expected a value >= 0, got -1$"):
        SRPOSynthesisConfig(op_per_prompt=-1)
    with pytest.raises(RangeError, match=r"^batch_size: expected a value >= 1, got 0$"):
        dataclasses.replace(EvalConfig(), batch_size=0)  # how saro run and the sweep derive configs
    unchecked = set()
    for module in pkgutil.walk_packages(saro.__path__, "saro."):
        for obj in vars(importlib.import_module(module.name)).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__.startswith("saro."):
                if any(field_limits(f) for f in dataclasses.fields(obj)) and not issubclass(obj, RangeChecked):
                    unchecked.add(obj.__qualname__)
    assert not unchecked, f"config dataclasses with ranges that do not derive from RangeChecked: {unchecked}"


# --- inputs that would train, or measure, nothing: the fresh sweep of issue 11 (docs/bad-inputs-sweep.md) ----------


@pytest.mark.parametrize(
    "command, data, message",
    [
        (["train", "rw"], "rw.jsonl", "rw.jsonl:1: the final assistant turn is empty; nothing to learn from it"),
        (
            ["train", "srpo"],
            "pairs.jsonl",
            "pairs.jsonl:1: 'chosen' and 'rejected' are the same text; a pair must differ",
        ),
    ],
    ids=["empty-answer", "chosen-is-rejected"],
)
def test_training_data_that_teaches_nothing_is_refused(tmp_path, tiny_model, capsys, command, data, message):
    """An empty answer trains the model to say nothing; a pair with one text on both sides gives no gradient: both
    used to train and report success."""
    config = _config(tmp_path, tiny_model)
    path = tmp_path / data
    path.write_text(path.read_text().replace('"content": "Yes."', '"content": " "').replace('"No."', '"Sure."'))
    assert main([*command, "--config", str(config)]) == 2
    assert _error_line(capsys) == f"saro: error: {tmp_path / message}"
    assert not (tmp_path / f"{command[1]}-model").exists()


def test_an_input_file_given_again_as_output_or_held_out_set_is_refused(tmp_path, tiny_model, capsys):
    """Held-out pairs or prompts that are the training ones measure nothing held out; an output that is the input
    appended records to the prompts (then a traceback). Each used to run."""
    config = _config(tmp_path, tiny_model)
    prompts, pairs = tmp_path / "prompts.jsonl", tmp_path / "pairs.jsonl"
    cases = [
        (["train", "srpo", f"eval_data={pairs}"], f"eval_data {pairs} is the training data file"),
        (["synth", "srpo", f"heldout_prompts_file={prompts}"], "synth_srpo: 3 prompts (id 'p1', ...) are in both"),
        (["synth", "rw", f"output={prompts}"], f"output {prompts} is the prompts_file; choose another output"),
        (["synth", "srpo", f"output={prompts}"], f"output {prompts}: {prompts} is the prompts_file; choose another"),
    ]
    before = _snapshot(tmp_path)
    for (*command, override), message in cases:
        assert main([*command, "--config", str(config), override]) == 2, command
        assert _error_line(capsys).startswith(f"saro: error: {message}")
    assert _snapshot(tmp_path) == before


def test_training_where_truncation_leaves_no_answer_or_lora_targets_nothing_is_one_line(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    assert main(["train", "rw", "--config", str(config), "max_length=4"]) == 2  # was a traceback in torch's sampler
    assert _error_line(capsys).startswith(f"saro: error: {tmp_path / 'rw.jsonl'}: no example keeps an answer token")
    assert main(["train", "rw", "--config", str(config), "lora=true", "lora_target_modules=[qproj]"]) == 2
    assert _error_line(capsys).startswith("saro: error: lora_target_modules: 'qproj' names no module of the model")
    assert main(["train", "rw", "--config", str(config), "max_steps=1"]) == 0  # the corrected rerun


def test_synthesis_that_keeps_no_record_is_an_error(tmp_path, tiny_model, capsys):
    """The tiny model answers none of the benign prompts well: 0 records used to be a finished stage."""
    config = _config(tmp_path, tiny_model)
    output = tmp_path / "synth" / "rw.jsonl"
    assert main(["synth", "rw", "--config", str(config)]) == 2
    assert _error_line(capsys).startswith(f"saro: error: {output}: no record kept; every sample of all 3 prompts")
    assert not Path(f"{output}.manifest.json").exists()  # saro run does not take it for a finished stage
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["synth", "rw", "--config", str(config), f"prompts_file={empty}"]) == 2
    assert _error_line(capsys) == f"saro: error: {empty}: no prompts in it"


def test_report_inside_an_input_folder_and_unnamed_source_are_one_line(tmp_path, tiny_model, capsys):
    config = _config(tmp_path, tiny_model)
    assert main(["eval", "--config", str(config)]) == 0
    capsys.readouterr()
    evaluated = tmp_path / "eval"
    kept = _snapshot(evaluated)
    assert main(["report", str(evaluated), f"output={evaluated}"]) == 2
    expected = f"saro: error: output {evaluated}: inside the input folder {evaluated}; choose another output"
    assert _only_line(capsys) == expected
    assert _snapshot(evaluated) == kept
    # a source without a name is `seeds`: a prompt-record file given to it is named as such, not invalid YAML
    suites = f"suites=[{{name: s, type: harmful, sources: [{{path: {tmp_path / 'prompts.jsonl'}}}]}}]"
    assert main(["eval", "--config", str(config), f"output={tmp_path / 'other'}", suites]) == 2
    assert "source 'seeds' reads a seeds YAML file; for prompt records: {name: prompts" in _error_line(capsys)


@pytest.mark.parametrize(
    "command, override, expected",
    [
        (["train", "srpo"], "pair_types=[xx]", "command line: train_srpo.pair_types: expected a non-empty subset"),
        (["analyze"], "analyses=[magic]", "command line: analyze.analyses: unknown analysis 'magic'"),
        # an override that replaces a number in the file with a mapping
        (["synth", "rw"], "samples.x=3", "command line: synth_rw.samples: expected an integer"),
        # a check across several suites, on a list the command line gave
        (
            ["eval"],
            "suites=[{name: a, type: capability, sources: [{name: easy}]},"
            " {name: a, type: capability, sources: [{name: easy}]}]",
            "command line: eval.suites: suite names must be unique",
        ),
    ],
    ids=["pair_types", "analyses", "replaced_number", "suite_names"],
)
def test_checked_list_value_from_the_command_line_is_blamed_on_it(
    tmp_path, tiny_model, capsys, command, override, expected
):
    config = _config(tmp_path, tiny_model)
    assert main([*command, "--config", str(config), override]) == 2
    assert _only_line(capsys).startswith(f"saro: error: {expected}")
