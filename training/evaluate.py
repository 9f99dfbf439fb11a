"""Holdout evaluation: escalation, target ranking and per-target metrics as separate functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from features.labels import OTHER, Labels  # noqa: E402
from features.router import EscalationRouter, Thresholds  # noqa: E402


@dataclass
class Evaluation:
    """Metrics for MLflow, the per-target table and the pairs behind the confusion matrix."""

    metrics: dict[str, float]
    per_target: pd.DataFrame
    y_true: np.ndarray
    y_pred: np.ndarray
    labels: list[str]


def escalation_metrics(y: np.ndarray, p: np.ndarray, thresholds: Thresholds) -> dict[str, float]:
    """Ranking quality and what the chosen operating point does on unseen tickets."""
    y = y.astype(bool)
    out: dict[str, float] = {}
    if 0 < y.sum() < len(y):
        out["escalation_roc_auc"] = float(roc_auc_score(y, p))
        out["escalation_average_precision"] = float(average_precision_score(y, p))
    escalate = p >= thresholds.escalate
    resolve = p < thresholds.resolve_first
    out["escalation_precision_at_threshold"] = float(y[escalate].mean()) if escalate.any() else 0.0
    out["escalation_recall_at_threshold"] = float((escalate & y).sum() / max(y.sum(), 1))
    out["resolve_first_precision"] = float((~y[resolve]).mean()) if resolve.any() else 0.0
    out["coverage"] = float((escalate | resolve).mean())
    out["uncertain_rate"] = 1.0 - out["coverage"]
    return out


def target_metrics(
    y: np.ndarray, proba: np.ndarray, targets: list[str], f1_labels: list[str] | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Top-1/top-3 accuracy and macro-F1 (over `f1_labels`, default the targets) of escalated tickets.

    Returns the top-1 predictions too.
    """
    index = {t: i for i, t in enumerate(targets)}
    truth = np.array([index.get(t, -1) for t in y])
    ranked = np.argsort(-proba, axis=1)
    top1 = np.array(targets, dtype=object)[ranked[:, 0]]
    metrics = {
        "target_top1_accuracy": float((ranked[:, 0] == truth).mean()),
        "target_top3_accuracy": float((ranked[:, :3] == truth[:, None]).any(axis=1).mean()),
        "target_macro_f1": float(f1_score(y, top1, labels=f1_labels or targets, average="macro", zero_division=0)),
    }
    return metrics, top1


def per_target_report(y: np.ndarray, pred: np.ndarray, targets: list[str], kinds: dict[str, str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of each escalation target."""
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=targets, zero_division=0)
    return pd.DataFrame(
        {
            "target": targets,
            "kind": [kinds.get(t, "functional") for t in targets],
            "precision": p,
            "recall": r,
            "f1": f,
            "support": s,
        }
    )


def evaluate(
    router: EscalationRouter, tickets: pd.DataFrame, embeddings: np.ndarray | None, labels: Labels
) -> Evaluation:
    """Score the router on holdout tickets whose labels were derived the same way as for training."""
    scored = router.score(tickets, embeddings)
    p_esc, p_tgt = scored.escalation, scored.targets
    metrics = escalation_metrics(labels.escalate, p_esc, router.thresholds)
    escalated = np.flatnonzero(labels.escalate)
    truth = np.array(
        [t if t in router.targets else (OTHER if OTHER in router.targets else t) for t in labels.target[escalated]],
        dtype=object,
    )
    tmetrics, top1 = target_metrics(truth, p_tgt[escalated], router.targets)
    metrics.update(tmetrics)
    metrics["routing_score"] = (metrics.get("escalation_average_precision", 0.0) + metrics["target_top1_accuracy"]) / 2
    metrics["holdout_tickets"] = float(len(tickets))
    metrics["holdout_escalated"] = float(len(escalated))
    report = per_target_report(truth, top1, router.targets, router.kinds)
    return Evaluation(metrics, report, truth, top1, router.targets)


def confusion_png(evaluation: Evaluation, path: str | Path, largest: int = 15) -> Path:
    """Row-normalised confusion matrix of the largest targets, as a PNG for leads."""
    counts = pd.Series(evaluation.y_true).value_counts()
    labels = [t for t in counts.index[:largest]]
    matrix = confusion_matrix(evaluation.y_true, evaluation.y_pred, labels=labels).astype(float)
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("suggested (top-1)")
    ax.set_ylabel("resolved by")
    ax.set_title("Escalation target confusion (holdout, row-normalised)")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j] >= 0.01:
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    color="white" if matrix[i, j] > 0.5 else "black",
                    fontsize=8,
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
