"""The `saro analyze` section of a report: tables from `analysis.json`, and its figures."""

from __future__ import annotations

import json
from pathlib import Path

from saro.errors import DataError
from saro.reporting.report import Table, cell


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _probe(result: dict) -> str:
    return f"{_percent(result['best'])} (layer {result['best_layer']})" if "best" in result else "-"


def analysis_section(folder: Path) -> tuple[list[Table], dict[str, Path]]:
    """Tables and figures (title -> PNG) from a `saro analyze` output folder."""
    path = Path(folder) / "analysis.json"
    if not path.exists():
        raise DataError(f"{path}: not found; run `saro analyze` with output={folder} first")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    tables = []
    if "overlap" in results:
        overlap = results["overlap"]
        kinds = list(overlap["n"])
        rows = [
            [kind, str(overlap["n"][kind]), _percent(overlap["agreement"][kind]), _percent(overlap["chance"][kind])]
            + [_percent(overlap["neighbours"][kind][other]) for other in kinds]
            for kind in kinds
        ]
        classifier = ", ".join(f"{name} {_percent(c['accuracy'])}%" for name, c in overlap["classifier"].items())
        note = (
            f"Share (%) of each prompt's {overlap['k']} nearest neighbours in {overlap['encoder']}'s embedding space, "
            f"by kind; 'by chance' is the same-kind share of a random draw. Linear classifier on the embeddings "
            f"(cross-validated balanced accuracy): {classifier}."
        )
        headers = ["kind", "n", "same kind %", "by chance %", *(f"-> {k} %" for k in kinds)]
        tables.append(Table("Prompt-embedding overlap", headers, rows, note))
    if "probes" in results:
        faithfulness = results.get("faithfulness", {})
        rows = [
            [
                label,
                _probe(probes["harmful_vs_lookalike"]),
                _percent(probes["harmful_vs_lookalike"].get("shuffled_control")),
                _percent(faithfulness.get(label, {}).get("behaviour", {}).get("balanced_accuracy")),
                _probe(probes["jailbreak_vs_harmful"]),
            ]
            for label, probes in results["probes"].items()
        ]
        note = (
            "Best layer's linear probe on the last prompt token (cross-validated balanced accuracy, %; 50 is chance), "
            "beside behaviour: how well the model's own refusals separate the same two kinds (faithfulness prompts)."
        )
        headers = ["model", "harmful vs look-alike probe", "shuffled", "behaviour", "jailbreak vs harmful probe"]
        tables.append(Table("What the model's states separate, and what it does", headers, rows, note))
    rows = [
        [label, mix, contrast, str(r["chosen_layer"]), f"{r['auc']:.3f}", _percent(r["accuracy"])]
        for label, mixes in results.get("transfer", {}).items()
        for mix, contrasts in mixes.items()
        for contrast, r in contrasts.items()
        if "auc" in r
    ]
    if rows:
        note = "A probe trained on one prompt set and scored on another; layer chosen on the training set."
        headers = ["model", "transfer", "contrast", "layer", "AUC", "balanced accuracy %"]
        tables.append(Table("Transfer probes", headers, rows, note))
    if "faithfulness" in results:
        edits = list(next(iter(results["faithfulness"].values()))["edits"])
        rows = [
            [label, cell(f["consistency"]["all"])]
            + [cell(f["edits"][e]["follows_decision"]) for e in edits]
            + [cell(f["edits"][e]["refusal_changed"]) for e in edits]
            + [cell(f["edits"].get("swap_category", {}).get("refusal_uses_new_category"))]
            for label, f in results["faithfulness"].items()
        ]
        note = (
            "Answer follows the decision line (%, [95% interval]): after the model's own reasoning, and after the "
            "reasoning edited one way (teacher-forced, greedy answer); then how often each edit changed whether the "
            "answer refuses (a reasoning that steers: ~100% for flip_decision). The last column: refusals after the "
            "category swap that use the new category's refusal text."
        )
        changed = [f"{e}: refusal changed" for e in edits]
        headers = ["model", "own reasoning", *edits, *changed, "swap: new category's refusal"]
        tables.append(Table("Reflection faithfulness", headers, rows, note))
    titles = {
        "overlap-pca.png": "Prompt embeddings (PCA)",
        "overlap-umap.png": "Prompt embeddings (UMAP)",
        "probes.png": "Linear probes per layer",
        "faithfulness.png": "Reflection faithfulness",
    }
    plots = {title: Path(folder) / name for name, title in titles.items() if (Path(folder) / name).exists()}
    return tables, plots
