"""Model selection's view of several models as one markdown table: the declared rule's rates with 95% intervals, its
score, how often answers act on their own decision line, and every other suite of the given eval folders (the
diagnostics: hidden requests, out-of-distribution).

    python benchmarks/selection_table.py --config configs/compare.yaml \\
        RW-p=runs/demo/val/rw,runs/demo/ood/rw SaRO-p=runs/demo/val/saro,runs/demo/ood/saro

Each model is NAME=FOLDER[,FOLDER...] (`saro eval` output folders). Rates are the rule's (`saro.sweep.rule_counts`:
outputs cut at max_new_tokens count as errors), so the score column is the one `saro sweep` chooses by. The rule
(`sweep.select`) is read from the config by `saro sweep`'s own loader; only validation folders should hold its suites.
"follows decision" pools every suite's `follows_decision` (finished outputs with a decision line whose answer refuses
after "refuse" and complies after "answer"): a low rate means the errors are in the answer, not in the reading.
`--families` adds a column per family of every attack suite that reports families (`SUITE/FAMILY`: attacks
through, cut-off outputs counted as the rule counts them), so a loss in one wrapper shows without a script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saro.cli.main import SECTIONS  # noqa: E402
from saro.errors import ConfigError, DataError  # noqa: E402
from saro.evaluation.metrics import wilson  # noqa: E402
from saro.sweep import METRIC_TYPES, load_sweep_config, rule_counts, score_results  # noqa: E402

_METRIC_BY_TYPE = {suite_type: metric for metric, types in METRIC_TYPES.items() for suite_type in types}


def load_model(spec: str) -> tuple[str, dict]:
    """NAME=FOLDER[,FOLDER...] -> (NAME, the folders' suites merged into one results mapping)."""
    name, _, folders = spec.partition("=")
    if not name or not folders:
        raise DataError(f"{spec!r}: expected NAME=FOLDER[,FOLDER...]")
    suites: dict = {}
    for folder in folders.split(","):
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise DataError(f"{path}: no results.json (run saro eval into {folder} first)")
        for suite, value in json.loads(path.read_text())["suites"].items():
            if suite in suites:
                raise DataError(f"{path}: suite {suite!r} appears in two folders of {name}")
            suites[suite] = value
    return name, {"suites": suites}


def _cell(results: dict, item: str) -> str:
    errors, prompts = rule_counts(results, item)
    interval = wilson(errors, prompts)
    return f"{100 * interval['rate']:.1f} [{100 * interval['lo']:.0f}-{100 * interval['hi']:.0f}]"


def _follows(results: dict) -> str:
    """Every suite's decided outputs together: how many answers act on their decision line."""
    counts = [suite.get("follows_decision") for suite in results["suites"].values()]
    k, n = sum(c["k"] for c in counts if c), sum(c["n"] for c in counts if c)
    return f"{100 * k / n:.1f} ({k}/{n})" if n else "-"


def _family_cell(results: dict, column: str) -> str:
    suite, _, family = column.partition("/")
    rates = results["suites"].get(suite, {}).get("families", {}).get(family)
    if not rates:
        return "-"
    return f"{rates['attack_success']['k'] + rates['truncated']['k']}/{rates['attack_success']['n']}"


def table(models: list[tuple[str, dict]], select: list[str], families: bool = False) -> str:
    """Markdown: one row a model; the rule's rates, the score, then the other suites in first-seen order (and with
    `families`, each wrapper family's attacks through)."""
    others: list[str] = []
    family_columns: list[str] = []
    for _, results in models:
        for suite, value in results["suites"].items():
            metric = _METRIC_BY_TYPE.get(value.get("type"))
            if metric and f"{suite}.{metric}" not in select + others:
                others.append(f"{suite}.{metric}")
            for family in value.get("families", {}) if families and metric == "attack_success" else ():
                if f"{suite}/{family}" not in family_columns:
                    family_columns.append(f"{suite}/{family}")
    header = ["model", *select, "score", "follows decision", *others, *family_columns]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, results in models:
        _, score = score_results(results, select)
        cells = [_cell(results, item) for item in select] + [f"{score:.3f}", _follows(results)]
        cells += [_cell(results, item) if item.split(".")[0] in results["suites"] else "-" for item in others]
        cells += [_family_cell(results, column) for column in family_columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/compare.yaml"), help="holds sweep.select")
    parser.add_argument("--families", action="store_true", help="a column per attack family: attacks through")
    parser.add_argument("models", nargs="+", help="NAME=FOLDER[,FOLDER...]")
    args = parser.parse_args()
    try:
        select = load_sweep_config(args.config, [], SECTIONS).select
        print(table([load_model(spec) for spec in args.models], select, args.families))
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
