"""`saro report`: models side by side, from their `saro eval` folders, as Markdown and one self-contained HTML page.

Tables: headline metrics with 95% intervals, attack success per jailbreak family, truncation and judge errors,
token cost against a baseline model. Plots (PNG beside the report, inlined in the HTML): safety vs over-refusal
(one point per model; the lower-left front is the Pareto set), per-family bars, token bars, and the DPO reward-margin
curves of models trained by saro (read from their `saro_training.json`).

    saro report runs/compare/base runs/compare/saro --output runs/compare/report
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from saro.errors import ConfigError, DataError
from saro.evaluation.metrics import wilson
from saro.records import output_folder, read_jsonl

SAFETY_TYPES = ("harmful", "jailbreak")


@dataclass
class ReportConfig:
    """`results`: `saro eval` output folders, one per model, in table order; `baseline`: the model (label) token
    overhead is measured against (default: the first); `output`: the report folder; `analysis`: a `saro analyze`
    folder whose tables and figures are added."""

    results: list[Path] = field(default_factory=list, metadata={"help": "`saro eval` output folders."})
    baseline: str | None = field(default=None, metadata={"help": "Model label for token overhead (first)."})
    output: Path = field(default=Path("runs/report"), metadata={"help": "Report folder."})
    title: str = field(default="saro evaluation report", metadata={"help": "Report title."})
    sweeps: list[Path] = field(default_factory=list, metadata={"help": "`saro sweep` sweep.json files to show."})
    analysis: Path | None = field(default=None, metadata={"help": "A `saro analyze` output folder to show."})


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        note = f"<p class='note'>{html.escape(self.note)}</p>" if self.note else ""
        return f"<h3>{html.escape(self.title)}</h3>{note}<table><tr>{head}</tr>{body}</table>"


def load_results(folder: Path) -> dict:
    path = Path(folder) / "results.json"
    if not path.exists():
        raise DataError(f"{path}: not found; run `saro eval` with output={folder} first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def cell(rate: dict | None) -> str:
    """`12.0 [8-17]`: a rate in percent with its 95% interval."""
    if not rate or rate.get("rate") is None:
        return "-"
    return f"{100 * rate['rate']:.1f} [{100 * rate['lo']:.0f}-{100 * rate['hi']:.0f}]"


def pooled(results: dict, types: tuple[str, ...], metric: str = "attack_success") -> dict | None:
    """One rate over every suite of these types (counts added, interval recomputed)."""
    k = n = 0
    for suite in results["suites"].values():
        if suite["type"] in types and metric in suite:
            k, n = k + suite[metric]["k"], n + suite[metric]["n"]
    return wilson(k, n) if n else None


def over_refusal(results: dict, metric: str = "over_refusal") -> dict | None:
    k = n = 0
    for suite in results["suites"].values():
        if suite["type"] == "overrefusal":
            k, n = k + suite["benign"][metric]["k"], n + suite["benign"][metric]["n"]
    return wilson(k, n) if n else None


def token_counts(folder: Path) -> dict[str, dict]:
    """Reasoning and answer token counts per generation id, read once per model."""
    return {g["id"]: g["tokens"] for _, g in read_jsonl(Path(folder) / "generations.jsonl")}


def mean_tokens(counts: dict[str, dict], ids: set[str]) -> dict:
    """Mean reasoning and answer tokens over the generations with these ids."""
    rows = [counts[i] for i in ids if i in counts]
    n = len(rows) or 1
    reasoning = sum(t["reasoning"] for t in rows) / n
    answer = sum(t["answer"] for t in rows) / n
    return {"reasoning": reasoning, "answer": answer, "total": reasoning + answer, "n": len(rows)}


def _headline(models: list[dict]) -> Table:
    suites = list(models[0]["results"]["suites"].items())
    headers = ["model"]
    columns = []
    for name, suite in suites:
        if suite["type"] in SAFETY_TYPES:
            headers.append(f"{name} ASR %")
            columns.append(lambda r, name=name: cell(r["suites"].get(name, {}).get("attack_success")))
        elif suite["type"] == "overrefusal":
            headers += [f"{name} over-refusal %", f"{name} partial %", f"{name} unsafe refused %"]
            columns += [
                lambda r, name=name: cell(r["suites"].get(name, {}).get("benign", {}).get("over_refusal")),
                lambda r, name=name: cell(r["suites"].get(name, {}).get("benign", {}).get("partial_refusal")),
                lambda r, name=name: cell(r["suites"].get(name, {}).get("unsafe_contrast", {}).get("refusal")),
            ]
        else:
            headers.append(f"{name} accuracy %")
            columns.append(lambda r, name=name: cell(r["suites"].get(name, {}).get("accuracy")))
    rows = [[m["label"]] + [c(m["results"]) for c in columns] for m in models]
    note = (
        "ASR: attack success rate (answer judged unsafe; lower is better). Over-refusal: safe look-alike prompts "
        "refused fully or partly (lower is better). [95% Wilson interval]. Judge: "
        + ", ".join(sorted({m["results"]["judge"] for m in models}))
        + "."
    )
    return Table("Headline metrics", headers, rows, note)


def _families(models: list[dict]) -> list[Table]:
    tables = []
    for name, suite in models[0]["results"]["suites"].items():
        if suite["type"] != "jailbreak":
            continue
        families = sorted(suite.get("families", {}))
        rows = [
            [family]
            + [cell(m["results"]["suites"][name]["families"].get(family, {}).get("attack_success")) for m in models]
            for family in families
        ]
        tables.append(Table(f"{name}: attack success per family (%)", ["family"] + [m["label"] for m in models], rows))
    return tables


def _quality(models: list[dict]) -> Table:
    rows = []
    for m in models:
        for name, suite in m["results"]["suites"].items():
            safety = suite if suite["type"] in SAFETY_TYPES else suite.get("unsafe_contrast", {})
            rows.append(
                [
                    m["label"],
                    name,
                    str(suite["n"]),
                    f"{100 * suite['tokens']['truncated']:.1f}",
                    cell(safety.get("judge_error")),
                    cell(safety.get("reasoning_unsafe")),
                    f"{100 * suite['tokens']['reasoned']:.0f}",
                    cell(suite.get("follows_decision")),  # absent in results written before it existed
                ]
            )
    note = (
        "Truncated: output cut by max_new_tokens (a cut output that is not judged unsafe counts as its own outcome, "
        "never as safe). Reasoning unsafe: the reasoning block judged unsafe on its own (rules: it moves toward "
        "complying before naming the risk). Follows decision: of the answers after a decision line, those that act "
        "on it (refuse after 'refuse', comply after 'answer')."
    )
    headers = ["model", "suite", "n", "truncated %", "judge errors %", "reasoning unsafe %", "with reasoning %"]
    headers.append("follows decision %")
    return Table("Truncation, judge errors and reasoning", headers, rows, note)


def _tokens(models: list[dict], baseline: dict) -> Table:
    rows = []
    for m in models:
        t = m["tokens"]
        base = baseline["tokens"]["total"]
        overhead = f"{100 * (t['total'] / base - 1):+.0f}%" if base else "-"  # no ratio to a baseline that wrote none
        rows.append([m["label"], f"{t['reasoning']:.1f}", f"{t['answer']:.1f}", f"{t['total']:.1f}", overhead])
    note = (
        f"Mean generated tokens over the {baseline['tokens']['n']} prompts every model answered; "
        f"overhead against {baseline['label']}."
    )
    return Table("Token cost", ["model", "reasoning", "answer", "total", "overhead"], rows, note)


def _plot_tradeoff(models: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 4.5))
    points = []
    for m in models:
        asr, over = pooled(m["results"], SAFETY_TYPES), over_refusal(m["results"])
        if not asr or not over:
            continue
        x, y = 100 * over["rate"], 100 * asr["rate"]
        xerr = [[x - 100 * over["lo"]], [100 * over["hi"] - x]]
        yerr = [[y - 100 * asr["lo"]], [100 * asr["hi"] - y]]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3, label=m["label"])
        ax.annotate(m["label"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        points.append((x, y))
    front = sorted(p for p in points if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points))
    if len(front) > 1:
        ax.plot(*zip(*front), "--", color="grey", lw=0.8, label="Pareto front")
    ax.set_xlim(left=-2)
    ax.set_ylim(bottom=-2)
    ax.set(
        xlabel="over-refusal on safe look-alikes (%)",
        ylabel="attack success on harmful + jailbreak prompts (%)",
        title="safety vs over-refusal (lower-left is better)",
    )
    ax.legend(fontsize=7)
    return _save(figure, path)


def _plot_families(models: list[dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = {n: s for n, s in models[0]["results"]["suites"].items() if s["type"] == "jailbreak"}
    bars = [
        f"{name}: {family}" if len(suites) > 1 else family
        for name, s in suites.items()
        for family in sorted(s.get("families", {}))
    ]
    if not bars:
        return None
    figure, ax = plt.subplots(figsize=(max(6, 0.9 * len(bars) * len(models) / 2), 4.5))
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        values = []
        for name, first in suites.items():
            for family in sorted(first.get("families", {})):
                rate = m["results"]["suites"][name]["families"].get(family, {}).get("attack_success", {}).get("rate")
                values.append(100 * (rate or 0))
        ax.bar([j + i * width for j in range(len(values))], values, width, label=m["label"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(bars))], bars, rotation=35, ha="right", fontsize=7)
    ax.set(ylabel="attack success (%)", title="jailbreak families", ylim=(0, 100))
    ax.legend(fontsize=7)
    return _save(figure, path)


def _plot_tokens(models: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 4))
    labels = [m["label"] for m in models]
    reasoning = [m["tokens"]["reasoning"] for m in models]
    answer = [m["tokens"]["answer"] for m in models]
    ax.bar(labels, reasoning, label="reasoning")
    ax.bar(labels, answer, bottom=reasoning, label="answer")
    ax.set(ylabel="mean generated tokens", title="token cost per prompt")
    ax.legend(fontsize=8)
    return _save(figure, path)


def _plot_margins(models: list[dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = []
    for m in models:
        info = Path(m["results"].get("model_path", "")) / "saro_training.json"
        if info.exists():
            margins = json.loads(info.read_text()).get("margins") or {}
            curves += [(m["label"], name, points) for name, points in margins.items() if points]
    if not curves:
        return None
    figure, ax = plt.subplots(figsize=(6, 4))
    for label, name, points in curves:
        points = sorted(points, key=lambda p: p["step"])
        style = "-" if name.startswith("eval") else ":"
        ax.plot(
            [p["step"] for p in points],
            [p.get("rewards/margins") for p in points],
            style,
            marker="o",
            ms=3,
            label=f"{label}: {name}",
        )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="step", ylabel="reward margin (chosen - rejected)", title="DPO reward margins")
    ax.legend(fontsize=7)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "th{background:#f3f3f3}.note{font-size:12px;color:#555}img{max-width:100%}"
)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def sweep_tables(paths: list[Path]) -> list[Table]:
    """Model selection: each method's chosen setting and validation score; every setting in an appendix."""
    sweeps = []
    for path in paths:
        if not Path(path).exists():
            raise DataError(f"report: sweep file {path} not found (run saro sweep first)")
        sweeps.append(json.loads(Path(path).read_text()))
    if not sweeps:
        return []
    rule = sweeps[0]["rule"]["minimize_mean_of"]
    if any(sweep["rule"]["minimize_mean_of"] != rule for sweep in sweeps):
        raise DataError("report: the sweeps were selected by different rules; compare methods chosen by one rule")
    note = (
        "Each method's settings were trained and scored on the validation prompts only (never on the suites "
        f"above); score = mean of {', '.join(rule)} (lower is better); rates in %. The starting model (the base "
        "model, or the chosen RW model for SRPO) is scored by the same rule: what a method moved."
    )

    def cells(method: str, label: str, row: dict) -> list[str]:
        return [method, label, f"{row['score']:.3f}", *(_percent(row["metrics"][m]) for m in rule)]

    chosen_rows, all_rows = [], []
    for sweep in sweeps:
        start = sweep.get("start")  # sweeps written before the starting model was validated have none
        for row in sweep["settings"]:
            all_rows.append(
                cells(sweep["method"], row["label"], row) + ["yes" if row["label"] == sweep["chosen"] else ""]
            )
            if row["label"] == sweep["chosen"]:
                worse = start and start["score"] <= row["score"]
                start_cell = f"{start['score']:.3f}" + (" (no setting beats it)" if worse else "") if start else "-"
                chosen_rows.append(cells(sweep["method"], row["label"], row) + [start_cell])
        if start:
            all_rows.append(cells(sweep["method"], f"start: {start['model']}", start) + [""])
    headers = ["method", "setting", "score", *rule]
    return [
        Table("Model selection on the validation set", [*headers, "starting model's score"], chosen_rows, note),
        Table("Appendix: every setting tried", [*headers, "chosen"], all_rows),
    ]


def build_report(config: ReportConfig) -> dict:
    """Write report.md, report.html and the plots into `config.output`; returns the paths and the models' labels."""
    if not config.results:
        raise DataError("report: no result folders given")
    for folder in [*config.results, *([config.analysis] if config.analysis else [])]:  # no report among its inputs
        if Path(config.output).resolve().is_relative_to(Path(folder).resolve()):
            raise ConfigError(f"output {config.output}: inside the input folder {folder}; choose another output")
    models = []
    for folder in config.results:
        results = load_results(folder)
        models.append({"label": results["model"], "folder": Path(folder), "results": results})
    labels = [m["label"] for m in models]
    if len(set(labels)) != len(labels):
        raise DataError(f"report: two result folders have the same model label ({labels}); set eval.name")
    baseline = next((m for m in models if m["label"] == config.baseline), None) if config.baseline else models[0]
    if baseline is None:
        raise DataError(f"report: baseline {config.baseline!r} is none of the models {labels}")
    seeds = {m["results"]["generation"]["seed"] for m in models}
    if len(seeds) > 1:  # the seed picks each suite's sample of prompts: side by side they would measure other prompts
        used = ", ".join(f"{m['folder']}: {m['results']['generation']['seed']}" for m in models)
        raise DataError(
            f"report: the result folders were evaluated with different seeds ({used}); compare folders "
            "evaluated with one seed"
        )
    analysis_tables, analysis_plots = [], {}
    if config.analysis:
        from saro.reporting.analysis import analysis_section  # it builds on this module's tables

        analysis_tables, analysis_plots = analysis_section(config.analysis)
    counts = [token_counts(m["folder"]) for m in models]
    common = set.intersection(*(set(c) for c in counts))
    if not common:
        raise DataError(
            f"report: the result folders share no evaluated prompt ({', '.join(map(str, config.results))}); "
            "evaluate the models on the same suites"
        )
    out = output_folder(config.output)
    for m, c in zip(models, counts):
        m["tokens"] = mean_tokens(c, common)
    plots = {
        "Safety vs over-refusal": _plot_tradeoff(models, out / "tradeoff.png"),
        "Attack success per jailbreak family": _plot_families(models, out / "families.png"),
        "Token cost": _plot_tokens(models, out / "tokens.png"),
        "DPO reward margins": _plot_margins(models, out / "margins.png"),
    }
    plots = {title: path for title, path in plots.items() if path}
    selection = sweep_tables(config.sweeps)
    tables = [_headline(models), *selection[:1], *_families(models), _tokens(models, baseline), _quality(models)]
    tables += analysis_tables
    plots |= {title: Path(shutil.copy(path, out / f"analysis-{path.name}")) for title, path in analysis_plots.items()}
    tables += selection[1:]  # the appendix goes last
    settings = ", ".join(f"{m['label']}: {m['results']['generation']['served_model']}" for m in models)
    gen = models[0]["results"]["generation"]
    intro = (
        f"Models: {settings}. Generation: max_new_tokens {gen['max_new_tokens']}, temperature {gen['temperature']}, "
        f"seed {gen['seed']}. Suites: "
        + ", ".join(f"{name} ({s['type']}, n={s['n']})" for name, s in models[0]["results"]["suites"].items())
        + f". Made {time.strftime('%Y-%m-%d %H:%M')}."
    )
    markdown = [f"# {config.title}", "", intro, ""]
    markdown += [t.markdown() for t in tables]
    markdown += [f"### {title}\n\n![{title}]({path.name})\n" for title, path in plots.items()]
    (out / "report.md").write_text("\n".join(markdown), encoding="utf-8")

    images = "".join(
        f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'>"
        for title, path in plots.items()
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(config.title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(config.title)}</h1><p>{html.escape(intro)}</p>"
        + "".join(t.html() for t in tables)
        + images
        + "</body></html>"
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    return {
        "markdown": out / "report.md",
        "html": out / "report.html",
        "plots": [str(p) for p in plots.values()],
        "models": labels,
        "tables": tables,
    }
