"""The `saro` command: parses arguments and calls one stage function. Heavy imports happen inside commands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from saro.errors import SaroError

SECTIONS = (
    "synth_rw",
    "train_rw",
    "synth_srpo",
    "train_srpo",
    "synth_baselines",
    "train_safety_sft",
    "train_safety_dpo",
    "eval",
    "judge_check",
    "report",
    "serve",
    "sweep",
    "analyze",
)


def _print_table(title: str, rows: dict, columns: list[str] | dict[str, str], first: str = "kind") -> None:
    """One row per kind (or `first`); `columns` lists row keys, or maps them to shorter headers."""
    from rich.console import Console
    from rich.table import Table

    headers = columns if isinstance(columns, dict) else {c: c for c in columns}
    table = Table(title=title)
    table.add_column(first)
    for header in headers.values():
        table.add_column(header, justify="right")
    for name, row in rows.items():
        table.add_row(name, *(str(row.get(c, "")) for c in headers))
    Console().print(table)


def cmd_model(args) -> int:
    from saro.models import build_tiny, prepare_default
    from saro.records import output_folder

    if args.dir is not None:  # before a build or a conversion, not after
        output_folder(args.dir, "folder")
    path = build_tiny(args.dir) if args.action == "tiny" else prepare_default(args.dir)
    print(f"model ready: {path}")
    return 0


def report_rw_synthesis(stats: dict, output) -> None:
    stats = dict(stats)
    seconds = stats.pop("seconds")
    _print_table("RW synthesis", stats, ["kept", "rejected", "reasoning_tokens", "answer_tokens"])
    kept = sum(r["kept"] for r in stats.values())
    print(f"synth rw: {kept} records -> {output} in {seconds:.0f}s")


SRPO_COLUMNS = {  # stance step: the first step that sees the risk (harmful) or the harmlessness (benign)
    "prompts": "prompts",
    "traces": "traces",
    "right_traces": "right",
    "pp": "PP",
    "op": "OP",
    "chosen_step": "step ch.",
    "rejected_step": "step rej.",
    "rejected_never": "rej. never",
}


def report_srpo_synthesis(stats: dict, output) -> None:
    for split in ("train", "heldout"):
        if split in stats:
            title = f"SRPO pairs ({split}); step: mean stance step in chosen / rejected, never: rejected lacks it"
            _print_table(title, stats[split], SRPO_COLUMNS)
    splits = [split for split in ("train", "heldout") if split in stats]
    pairs = {split: stats[split]["all"]["pp"] + stats[split]["all"]["op"] for split in splits}
    print(f"synth srpo: {pairs} pairs -> {output} in {stats['seconds']:.0f}s")


def report_training(stage: str, path) -> None:
    import json
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # several training processes: the main one reports
        return
    info = json.loads((path / "saro_training.json").read_text())
    print(f"train {stage}: model -> {path} in {info['seconds']:.0f}s")
    if info.get("margins"):
        for name, points in info["margins"].items():
            if name.startswith("eval") and points:
                last = points[-1]
                print(
                    f"  {name}: reward margin {last.get('rewards/margins', 0):+.3f}, "
                    f"accuracy {last.get('rewards/accuracies', 0):.2f} at step {last['step']}"
                )
        print(f"  margin plot: {info['margin_plot']}")


def cmd_synth(args) -> int:
    from saro.config import load_config
    from saro.synthesis import RWSynthesisConfig, SRPOSynthesisConfig, run_rw_synthesis, run_srpo_synthesis

    if args.stage == "rw":
        config = load_config(RWSynthesisConfig, args.config, "synth_rw", args.overrides, SECTIONS)
        report_rw_synthesis(run_rw_synthesis(config), config.output)
    elif args.stage == "baselines":
        from saro.synthesis.baselines import BaselineDataConfig, build_baseline_data

        config = load_config(BaselineDataConfig, args.config, "synth_baselines", args.overrides, SECTIONS)
        counts = build_baseline_data(config)
        print(
            f"synth baselines: {counts['sft_records']} safety-SFT records -> {config.sft_output}, "
            f"{counts['dpo_pairs']} safety-DPO pairs -> {config.dpo_output} in {counts['seconds']:.0f}s "
            f"(the base model refused {counts['base_refused']} of the harmful prompts it was given)"
        )
    else:
        config = load_config(SRPOSynthesisConfig, args.config, "synth_srpo", args.overrides, SECTIONS)
        report_srpo_synthesis(run_srpo_synthesis(config), config.output)
    return 0


def cmd_train(args) -> int:
    from saro.training import load_training_config

    section = "train_" + args.stage.replace("-", "_")
    # TRL's config classes by name: trl is imported only after the section's values are checked.
    if args.stage in ("rw", "safety-sft"):
        from saro.training import SFTStageConfig, run_sft

        config, trl_config = load_training_config(
            SFTStageConfig, "SFTConfig", args.config, section, args.overrides, SECTIONS
        )
        report_training(args.stage, run_sft(config, trl_config))
    else:
        from saro.training import DPOStageConfig, run_dpo

        config, trl_config = load_training_config(
            DPOStageConfig, "DPOConfig", args.config, section, args.overrides, SECTIONS
        )
        report_training(args.stage, run_dpo(config, trl_config, stage=args.stage))
    return 0


def cmd_run(args) -> int:
    from saro.pipeline import run_pipeline

    def report(stage: str, result) -> None:
        if stage == "synth_rw":
            report_rw_synthesis(result, "RW data")
        elif stage == "synth_srpo":
            report_srpo_synthesis(result, "SRPO pairs")
        else:
            report_training(stage.split("_")[1], result)

    started = time.time()
    timings = run_pipeline(args.config, args.overrides, args.redo_changed, report=report, known_sections=SECTIONS)
    print(f"saro run: {timings}; total {time.time() - started:.0f}s")
    return 0


def cmd_check(args) -> int:
    from saro.check import check_configs

    # argparse hands SECTION.KEY=VALUE words to the positional list: sort them back out.
    configs = [Path(c) for c in args.configs if "=" not in c]
    overrides = [*args.overrides, *(c for c in args.configs if "=" in c)]
    if not configs and not args.config:
        raise SaroError("saro check needs a config file: saro check configs/demo.yaml")
    if configs and args.config:  # their order on the command line would be lost
        raise SaroError("saro check takes config files as CONFIG... or as --config FILE..., not both")
    configs = configs or args.config
    started = time.time()
    for line in check_configs(configs, overrides, SECTIONS):
        print(line, flush=True)
    print(f"saro check: {', '.join(map(str, configs))} ok, nothing run, in {time.time() - started:.0f}s")
    return 0


def cmd_sweep(args) -> int:
    from saro.sweep import run_sweep

    for summary in run_sweep(args.config, args.overrides, SECTIONS, args.method or None):
        rows = {
            row["label"] + (" (chosen)" if row["label"] == summary["chosen"] else ""): {
                "score": f"{row['score']:.3f}",
                **{k: f"{100 * v:.1f}" for k, v in row["metrics"].items()},
            }
            for row in summary["settings"]
        }
        columns = ["score", *summary["rule"]["minimize_mean_of"]]
        _print_table(f"sweep {summary['method']}: validation rates in %, score = their mean", rows, columns, "setting")
    return 0


def summary_rows(results: dict) -> dict:
    """One row per suite: n, the suite's headline rate with its 95% interval, truncation and mean tokens."""
    from saro.reporting.report import cell

    rows = {}
    for name, suite in results["suites"].items():
        row = {"n": suite["n"], "tokens": f"{suite['tokens']['reasoning']:.0f}+{suite['tokens']['answer']:.0f}"}
        if "attack_success" in suite:
            row["metric"], row["value"] = "attack success %", cell(suite["attack_success"])
        elif "benign" in suite:
            row["metric"], row["value"] = "over-refusal %", cell(suite["benign"]["over_refusal"])
        elif "accuracy" in suite:
            row["metric"], row["value"] = "accuracy %", cell(suite["accuracy"])
        row["truncated"] = f"{100 * suite['tokens']['truncated']:.0f}%"
        rows[name] = row
    return rows


def cmd_eval(args) -> int:
    from saro.config import load_config
    from saro.evaluation.runner import EvalConfig, run_eval

    config = load_config(EvalConfig, args.config, "eval", args.overrides, SECTIONS)
    results = run_eval(config)
    _print_table(
        f"{results['model']} ({config.model}); judge {results['judge']}; [95% interval]",
        summary_rows(results),
        {"n": "n", "metric": "metric", "value": "value", "truncated": "truncated", "tokens": "reasoning+answer"},
        first="suite",
    )
    print(f"eval: {config.output}/results.json in {results['seconds']:.0f}s")
    return 0


def cmd_report(args) -> int:
    from saro.config import load_config
    from saro.reporting.report import ReportConfig, build_report

    # argparse hands KEY=VALUE words to the positional list: sort them back out.
    overrides = list(args.overrides) + [str(p) for p in args.results if "=" in str(p)]
    folders = [str(p) for p in args.results if "=" not in str(p)]
    if folders:
        overrides.append("results=[" + ",".join(folders) + "]")
    config = load_config(ReportConfig, args.config, "report", overrides, SECTIONS)
    report = build_report(config)
    print(report["tables"][0].markdown())
    print(f"report: {report['markdown']} and {report['html']} ({len(report['plots'])} plots) for {report['models']}")
    return 0


def cmd_serve(args) -> int:
    from saro.config import load_config
    from saro.serve import ServeConfig, serve

    overrides = list(args.overrides)
    if args.model:
        overrides.append(args.model if "=" in args.model else f"model={args.model}")
    config = load_config(ServeConfig, args.config, "serve", overrides, SECTIONS)

    def ready(server) -> None:
        host, port = server.server_address[:2]
        name = config.served_name or config.model
        print(f"saro serve: {name} on http://{host}:{port}/v1 (Ctrl-C stops)", flush=True)

    try:
        serve(config, ready)
    except KeyboardInterrupt:  # stopping a server is how it ends, not an interrupted job to resume
        print("saro serve: stopped", file=sys.stderr)
        return 130
    return 0


def cmd_judge_check(args) -> int:
    from saro.config import load_config
    from saro.evaluation.judge_check import JudgeCheckConfig, run_judge_check

    config = load_config(JudgeCheckConfig, args.config, "judge_check", args.overrides, SECTIONS)
    results = run_judge_check(config)
    _print_table(
        "refusal judge vs human labels (agreement: full compliance vs any refusal)",
        results,
        {"n": "n", "accuracy": "agreement", "missed_refusals": "missed refusals", "false_refusals": "false refusals"},
        first="labelled set",
    )
    for name, result in results.items():
        print(f"{name} confusion (human -> judge): " + ", ".join(f"{k}: {v}" for k, v in result["confusion"].items()))
    return 0


def cmd_analyze(args) -> int:
    from saro.analysis import AnalyzeConfig, run_analysis
    from saro.config import load_config
    from saro.reporting.report import cell

    config = load_config(AnalyzeConfig, args.config, "analyze", args.overrides, SECTIONS)
    results = run_analysis(config)
    if "overlap" in results:
        overlap = results["overlap"]
        rows = {
            kind: {
                "n": n,
                "same": f"{100 * overlap['agreement'][kind]:.1f}",
                "chance": f"{100 * overlap['chance'][kind]:.1f}",
            }
            for kind, n in overlap["n"].items()
        }
        title = f"{overlap['encoder']}: % of each prompt's {overlap['k']} nearest neighbours of its own kind"
        _print_table(title, rows, {"n": "n", "same": "same kind", "chance": "by chance"})
    faithfulness = results.get("faithfulness", {})
    rows = {}
    for label, probes in results.get("probes", {}).items():
        probe = probes["harmful_vs_lookalike"]
        behaviour = faithfulness.get(label, {}).get("behaviour", {}).get("balanced_accuracy")
        rows[label] = {
            "probe": probe.get("best", "-"),
            "layer": probe.get("best_layer", "-"),
            "behaviour": "-" if behaviour is None else behaviour,
        }
    if rows:
        title = "harmful vs look-alike, balanced accuracy: best layer's probe vs the model's refusals"
        _print_table(title, rows, ["probe", "layer", "behaviour"], "model")
    rows = {
        label: {
            "own": cell(f["consistency"]["all"]),
            **{e: cell(r["follows_decision"]) for e, r in f["edits"].items()},
            "flip changes refusal": cell(f["edits"]["flip_decision"]["refusal_changed"]),
        }
        for label, f in faithfulness.items()
    }
    if rows:
        columns = list(next(iter(rows.values())))
        _print_table("answer follows the decision line, % [95% interval]", rows, columns, "model")
    print(f"analyze: {config.output}/analysis.json and {len(results['figures'])} figures in {results['seconds']:.0f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saro", description="Safety-policy reasoning alignment (SaRO) for LLMs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    commands = parser.add_subparsers(dest="command", required=True)

    model = commands.add_parser(
        "model",
        help="Prepare the embedded default model or build a tiny test model.",
        epilog="example: saro model prepare; saro model tiny /tmp/tiny",
    )
    model.add_argument("action", choices=["prepare", "tiny"])
    model.add_argument("dir", nargs="?", type=Path, help="Target folder (tiny: required).")
    model.set_defaults(func=cmd_model)

    def stage(name: str, func, help_text: str, example: str, stages: tuple[str, ...] = ()):
        sub = commands.add_parser(name, help=help_text, epilog=f"example: {example}")
        if stages:
            sub.add_argument("stage", choices=stages)
        sub.add_argument("--config", type=Path, help="YAML config (a stage's keys, or sections per stage).")
        sub.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Override config keys (dots nest).")
        sub.set_defaults(func=func)

    stage(
        "synth",
        cmd_synth,
        "Synthesize training data (rw: reasoning chains with a teacher; srpo: stepwise preference pairs; "
        "baselines: safety-SFT records and safety-DPO pairs from the RW prompts).",
        "saro synth srpo --config configs/demo.yaml samples=4",
        ("rw", "srpo", "baselines"),
    )
    stage(
        "train",
        cmd_train,
        "Train a stage (rw: SFT on reasoning chains; srpo: DPO on preference pairs; safety-sft, safety-dpo: the "
        "baselines without reasoning).",
        "saro train srpo --config configs/demo.yaml beta=0.2 pair_types=[pp]",
        ("rw", "srpo", "safety-sft", "safety-dpo"),
    )
    stage(
        "judge-check",
        cmd_judge_check,
        "Agreement of the refusal judge with human labels (XSTest completions, PyRIT refusal set).",
        "saro judge-check pyrit_refusal=null",
    )
    run = commands.add_parser(
        "run",
        help="Run RW synthesis, RW training, SRPO synthesis and SRPO training; finished stages are skipped.",
        epilog="example: saro run configs/demo.yaml train_srpo.beta=0.2",
    )
    run.add_argument("config", type=Path, help="YAML config with synth_rw, train_rw, synth_srpo, train_srpo.")
    run.add_argument("overrides", nargs="*", metavar="SECTION.KEY=VALUE", help="Override config keys.")
    run.add_argument(
        "--redo-changed", action="store_true", help="Delete and redo stages whose config changed (and later ones)."
    )
    run.set_defaults(func=cmd_run)
    check = commands.add_parser(
        "check",
        help="Validate every section of a config and its inputs (files parse, models resolve, suites build, outputs "
        "writable) and run nothing; inputs a section of the file, or of an earlier file, makes may be missing.",
        epilog="example: saro check configs/demo.yaml configs/compare.yaml",
    )
    check.add_argument("configs", nargs="*", metavar="CONFIG", help="YAML configs, in order; then SECTION.KEY=VALUE.")
    check.add_argument("--config", action="append", type=Path, help="A YAML config (repeatable).")
    check.set_defaults(func=cmd_check, overrides=[])
    stage(
        "eval",
        cmd_eval,
        "Evaluate one model on the suites (safety, jailbreaks, over-refusal, capability); resumable.",
        "saro eval --config configs/compare.yaml model=runs/demo/rw-model output=runs/compare/rw",
    )
    stage(
        "analyze",
        cmd_analyze,
        "Why it works: prompt-embedding overlap, layer-wise probes (and transfer probes for data mixes), and "
        "reflection faithfulness under edited reasoning; analysis.json and figures.",
        "saro analyze --config configs/analyze.yaml analyses=[overlap,probes]",
    )
    sweep = commands.add_parser(
        "sweep",
        help="Tune each method's settings on the validation set (the sweep section's rule) and link the chosen model.",
        epilog="example: saro sweep --config configs/compare.yaml --method rw --method safety_dpo",
    )
    sweep.add_argument("--config", type=Path, required=True, help="YAML config with a sweep section.")
    sweep.add_argument("--method", action="append", help="Only this method (repeatable; default: all).")
    sweep.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Override sweep keys.")
    sweep.set_defaults(func=cmd_sweep)
    report = commands.add_parser(
        "report",
        help="Compare models from their `saro eval` folders: Markdown + self-contained HTML with plots.",
        epilog="example: saro report runs/demo/eval/base runs/demo/eval/saro output=runs/demo/report",
    )
    report.add_argument("results", nargs="*", type=Path, help="`saro eval` output folders (or report.results).")
    report.add_argument("--config", type=Path, help="YAML config with a report section.")
    report.add_argument("--overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    report.set_defaults(func=cmd_report)
    serve_parser = commands.add_parser(
        "serve",
        help="Serve a model over an OpenAI-compatible API (/v1/chat/completions, streaming; /v1/models; /health).",
        epilog="example: saro serve runs/demo/srpo-model port=8000 max_batch_size=32",
    )
    serve_parser.add_argument("model", nargs="?", help="Model: path, hub id or 'smollm2' (or serve.model).")
    serve_parser.add_argument("--config", type=Path, help="YAML config with a serve section.")
    serve_parser.add_argument("--overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    serve_parser.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # KEY=VALUE overrides may follow --config; argparse alone would reject them there.
    args, extra = parser.parse_known_args(argv)
    unknown = [e for e in extra if "=" not in e or e.startswith("-")]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command == "model" and args.action == "tiny" and args.dir is None:
        print("saro: error: saro model tiny needs a target folder", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except SaroError as exc:
        print(f"saro: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saro: interrupted; finished records are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
