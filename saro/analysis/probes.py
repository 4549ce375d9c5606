"""Layer-wise linear probes: can a linear read-out tell harmful from look-alike prompts (and jailbreak-wrapped from
plain harmful ones) in a model's state at the last prompt token, before it generates anything?

Each prompt is rendered with the model's chat template (generation prompt included) and run through the model once;
the hidden state of its last token is kept at every layer (layer 0: the embeddings). Per layer, a logistic-regression
probe on standardised states is scored by stratified k-fold cross-validation with balanced accuracy, so 0.5 is
chance whatever the class sizes. A transfer probe trains on one prompt set (a candidate training mix) and scores
another (a validation set): AUC, and balanced accuracy at the operating point the training set fixes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from saro.records import PromptRecord

log = logging.getLogger(__name__)

# name -> (kind labelled 1, kind labelled 0)
CONTRASTS = {
    "harmful_vs_lookalike": ("harmful", "borderline_benign"),
    "jailbreak_vs_harmful": ("jailbreak", "harmful"),
}


def contrast_labels(records: list[PromptRecord], contrast: str) -> tuple[list[int], np.ndarray]:
    """Positions of the records in the contrast's two kinds, and their labels (1: the first kind)."""
    positive, negative = CONTRASTS[contrast]
    positions = [i for i, r in enumerate(records) if r.kind in (positive, negative)]
    return positions, np.array([int(records[i].kind == positive) for i in positions], dtype=int)


def prompt_states(model, tokenizer, prompts: list[str], batch_size: int = 16) -> np.ndarray:
    """Hidden states at the last prompt token, `[prompts, layers + 1, hidden]` (float32; index 0: embeddings)."""
    import torch

    from saro.chat import render_prompt

    if not prompts:
        return np.zeros((0, model.config.num_hidden_layers + 1, model.config.hidden_size), dtype=np.float32)
    tokenizer.padding_side = "left"  # every row then ends at its last prompt token
    body = model.base_model  # the transformer without its LM head: no logits over the vocabulary
    device = next(model.parameters()).device
    batches = []
    for start in range(0, len(prompts), batch_size):
        texts = [
            render_prompt(tokenizer, [{"role": "user", "content": p}]) for p in prompts[start : start + batch_size]
        ]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        # Positions count real tokens only, so a prompt's states do not depend on how much padding its batch needs.
        positions = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            hidden = body(**inputs, position_ids=positions, output_hidden_states=True).hidden_states
        batches.append(torch.stack([h[:, -1] for h in hidden], 1).float().cpu().numpy())
    return np.concatenate(batches)


def _probe():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Scaling first: hidden-state magnitudes differ by orders of magnitude across layers (massive activations).
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))


def probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float | None:
    """Mean cross-validated balanced accuracy of a linear probe; None when a class has fewer than 2 examples.

    Args:
        features: `[n, dim]` inputs.
        labels: `[n]` 0/1 labels.
        folds: cross-validation folds (fewer when the smaller class has fewer examples).
        seed: fold assignment seed.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = min(folds, int(np.bincount(labels, minlength=2).min()))
    if folds < 2:
        return None
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(_probe(), features, labels, cv=cv, scoring="balanced_accuracy").mean())


def probe_layers(states: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> dict:
    """A probe per layer of `states` (`[n, layers, dim]`): accuracy per layer, the best layer, and a control at the
    best layer with shuffled labels (what a probe reaches on this data when the kinds carry no signal)."""
    counts = {"positive": int(labels.sum()), "negative": int(len(labels) - labels.sum())}
    accuracy = [probe_accuracy(states[:, layer], labels, folds, seed) for layer in range(states.shape[1])]
    if accuracy[0] is None:
        return {"n": counts, "skipped": "needs at least 2 prompts of each kind"}
    best = int(np.argmax(accuracy))
    shuffled = np.random.default_rng(seed).permutation(labels)
    return {
        "n": counts,
        "accuracy": [round(a, 4) for a in accuracy],
        "best_layer": best,
        "best": round(accuracy[best], 4),
        "shuffled_control": round(probe_accuracy(states[:, best], shuffled, folds, seed), 4),
    }


def probe_contrasts(states: np.ndarray, records: list[PromptRecord], folds: int = 5, seed: int = 0) -> dict:
    """`probe_layers` for every contrast (states in the order of `records`)."""
    results = {}
    for name in CONTRASTS:
        positions, labels = contrast_labels(records, name)
        results[name] = probe_layers(states[positions], labels, folds, seed)
    return results


def transfer_probe(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], folds: int = 5, seed: int = 0
) -> dict:
    """Train a probe per layer on `train` (states `[n, layers, dim]`, labels), score it on `test`.

    The reported layer is the one cross-validation on the training set prefers (the test set never chooses), and
    the operating point is the probe's own threshold (probability 0.5) as trained.

    Returns:
        Per layer test AUC and balanced accuracy, the chosen layer with its numbers, and the class counts.
    """
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    (train_states, train_labels), (test_states, test_labels) = train, test
    n = {
        "train": [int(train_labels.sum()), int(len(train_labels) - train_labels.sum())],
        "test": [int(test_labels.sum()), int(len(test_labels) - test_labels.sum())],
    }
    if min(n["train"]) < 2 or min(n["test"]) < 1:
        return {"n": n, "skipped": "needs at least 2 training and 1 test prompt of each kind"}
    layers = []
    for layer in range(train_states.shape[1]):
        probe = _probe().fit(train_states[:, layer], train_labels)
        scores = probe.predict_proba(test_states[:, layer])[:, 1]
        layers.append(
            {
                "train_cv": round(probe_accuracy(train_states[:, layer], train_labels, folds, seed), 4),
                "auc": round(float(roc_auc_score(test_labels, scores)), 4),
                "accuracy": round(float(balanced_accuracy_score(test_labels, scores >= 0.5)), 4),
            }
        )
    chosen = max(range(len(layers)), key=lambda i: layers[i]["train_cv"])
    return {"n": n, "layers": layers, "chosen_layer": chosen, **layers[chosen]}


def plot_probes(probes: dict[str, dict], behaviour: dict[str, float | None], path: Path) -> Path:
    """One panel per contrast, one curve per model (probe accuracy over layers); on the harmful-vs-look-alike panel
    a dashed line per model marks its behaviour (how well its refusals separate the same kinds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, len(CONTRASTS), figsize=(5.5 * len(CONTRASTS), 4), squeeze=False)
    for ax, contrast in zip(axes[0], CONTRASTS):
        for index, (label, result) in enumerate(probes.items()):
            curve = result[contrast].get("accuracy")
            if not curve:
                continue
            color = f"C{index}"
            ax.plot(range(len(curve)), curve, marker="o", ms=3, color=color, label=f"{label} probe")
            if contrast == "harmful_vs_lookalike" and behaviour.get(label) is not None:
                ax.axhline(behaviour[label], color=color, ls="--", lw=1, label=f"{label} behaviour")
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        positive, negative = CONTRASTS[contrast]
        ax.set(xlabel="layer (0: embeddings)", ylabel="balanced accuracy (CV)", ylim=(0.4, 1.02))
        ax.set_title(f"{positive} vs {negative}", fontsize=10)
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
