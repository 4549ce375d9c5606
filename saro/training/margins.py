"""The reward-margin curve of a DPO run (held-out and training pairs), written as a PNG beside the model."""

from __future__ import annotations

from pathlib import Path

METRICS = ("rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected")


def margin_history(log_history: list[dict]) -> dict[str, list[dict]]:
    """DPO reward margins and accuracies over steps, per series: `train` (the training batches as logged),
    and one series per evaluation set (`eval_<name>_loss` tells which set an evaluation entry belongs to)."""
    series: dict[str, list[dict]] = {}
    for entry in log_history:
        if "rewards/margins" in entry:
            name, prefix = "train (batches)", ""
        elif "eval_rewards/margins" in entry:
            sets = [k[len("eval_") : -len("_loss")] for k in entry if k.startswith("eval_") and k.endswith("_loss")]
            name, prefix = (f"eval: {sets[0]}" if sets and sets[0] else "eval"), "eval_"
        else:
            continue
        point = {"step": entry.get("step", 0)}
        point |= {m: entry[prefix + m] for m in METRICS if prefix + m in entry}
        series.setdefault(name, []).append(point)
    return series


def plot_margins(series: dict[str, list[dict]], path: Path, title: str = "SRPO") -> Path:
    """Two panels over training steps: reward margin (chosen - rejected) and reward accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (margin_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in sorted(series.items()):
        points = sorted(points, key=lambda p: p["step"])
        style = "-" if name.startswith("eval") else ":"
        steps = [p["step"] for p in points]
        margin_ax.plot(steps, [p.get("rewards/margins") for p in points], style, marker="o", ms=3, label=name)
        accuracy_ax.plot(steps, [p.get("rewards/accuracies") for p in points], style, marker="o", ms=3, label=name)
    margin_ax.set(xlabel="step", ylabel="reward margin (chosen - rejected)", title="reward margin")
    accuracy_ax.set(xlabel="step", ylabel="chosen reward > rejected", title="reward accuracy", ylim=(0, 1.05))
    margin_ax.axhline(0, color="grey", lw=0.5)
    margin_ax.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
