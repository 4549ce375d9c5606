"""The `saro` command: parses arguments and calls one stage function. Heavy imports happen inside commands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from saro.errors import SaroError

SECTIONS = ("synth_rw", "train_rw", "eval")


def _print_table(title: str, rows: dict, columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("kind")
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(name, *(str(row.get(c, "")) for c in columns))
    Console().print(table)


def cmd_model(args) -> int:
    from saro.models import build_tiny, prepare_default

    path = build_tiny(args.dir) if args.action == "tiny" else prepare_default(args.dir)
    print(f"model ready: {path}")
    return 0


def cmd_synth(args) -> int:
    from saro.config import load_config
    from saro.synthesis import RWSynthesisConfig, run_rw_synthesis

    config = load_config(RWSynthesisConfig, args.config, "synth_rw", args.overrides, SECTIONS)
    stats = run_rw_synthesis(config)
    seconds = stats.pop("seconds")
    _print_table("RW synthesis", stats, ["kept", "rejected", "reasoning_tokens", "answer_tokens"])
    kept = sum(r["kept"] for r in stats.values())
    print(f"synth rw: {kept} records -> {config.output} in {seconds:.0f}s")
    return 0


def cmd_train(args) -> int:
    from trl import SFTConfig

    from saro.training import SFTStageConfig, load_training_config, run_sft

    config, trl_config = load_training_config(
        SFTStageConfig, SFTConfig, args.config, "train_rw", args.overrides, SECTIONS
    )
    started = time.time()
    path = run_sft(config, trl_config)
    print(f"train rw: model -> {path} in {time.time() - started:.0f}s")
    return 0


def cmd_eval(args) -> int:
    from saro.config import load_config
    from saro.evaluation.refusal_rates import EvalConfig, run_eval

    config = load_config(EvalConfig, args.config, "eval", args.overrides, SECTIONS)
    started = time.time()
    rates = run_eval(config)
    _print_table(f"refusal rates: {config.model}", rates, ["n", "refused", "reasoned", "truncated"])
    print(
        f"eval: {sum(r['n'] for r in rates.values())} generations -> {config.output} in {time.time() - started:.0f}s"
    )
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
        "Synthesize training data (rw: reasoning chains with a teacher).",
        "saro synth rw --config configs/demo.yaml samples=2",
        ("rw",),
    )
    stage(
        "train",
        cmd_train,
        "Train a stage (rw: SFT on reasoning chains).",
        "saro train rw --config configs/demo.yaml num_train_epochs=2",
        ("rw",),
    )
    stage(
        "eval",
        cmd_eval,
        "Generate on prompt sets and report refusal rates per kind.",
        "saro eval --config configs/demo.yaml model=runs/demo/rw-model output=runs/demo/eval-rw.jsonl",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
