"""Holdout evaluation: escalation, target ranking and per-target metrics as separate functions."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from features.model.router import EscalationRouter, RoutingAnswers, TargetThresholds, Thresholds
from features.text.privacy import Masker
from training.labels import OTHER, Labels
from training.slices import RARE_TICKETS, rare, slice_masks


@dataclass
class Evaluation:
    """Metrics for MLflow, the per-target table and the pairs behind the confusion matrix."""

    metrics: dict[str, float]
    per_target: pd.DataFrame
    y_true: np.ndarray  # true targets of the escalated holdout tickets
    y_pred: np.ndarray  # top-1 targets of the same tickets
    labels: list[str]
    escalate: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per holdout ticket
    p_escalation: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_top: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per escalated ticket
    routed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # top target sure enough
    slices: pd.DataFrame = field(default_factory=pd.DataFrame)
    mistakes: pd.DataFrame = field(default_factory=pd.DataFrame)


def escalation_metrics(y: np.ndarray, p: np.ndarray, thresholds: Thresholds) -> dict[str, float]:
    """Ranking quality and how many escalations the chosen operating point catches (its precision is in
    `operating_metrics`)."""
    y = y.astype(bool)
    out: dict[str, float] = {}
    if 0 < y.sum() < len(y):
        out["escalation_roc_auc"] = float(roc_auc_score(y, p))
        out["escalation_average_precision"] = float(average_precision_score(y, p))
    out["escalation_recall_at_threshold"] = float(((p >= thresholds.escalate) & y).sum() / max(y.sum(), 1))
    return out


@dataclass
class Answers:
    """What the router answered on unseen tickets at its thresholds, and how many of those answers were right."""

    n: int = 0
    escalate: int = 0
    escalate_right: int = 0
    resolve_first: int = 0
    resolve_first_right: int = 0
    escalated: int = 0
    routed: int = 0
    routed_right: int = 0
    per_team: dict[str, list[int]] = field(default_factory=dict)  # true team -> [escalated, routed, routed right]

    def __add__(self, other: Answers) -> Answers:
        teams = {t: list(v) for t, v in self.per_team.items()}
        for t, v in other.per_team.items():
            teams[t] = [a + b for a, b in zip(teams.get(t, [0, 0, 0]), v, strict=True)]
        counts = [getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "per_team"]
        return Answers(*counts, per_team=teams)


def operating_answers(
    escalate: np.ndarray,
    p_esc: np.ndarray,
    thresholds: Thresholds,
    truth: np.ndarray,
    top1: np.ndarray,
    routed: np.ndarray,
) -> Answers:
    """Count the answers on unseen tickets as the router gives them: `escalate` and `resolve_first` by P(escalation),
    and for the escalated tickets (`truth`, `top1`, `routed` from `routing_decisions`, in their order) the routed
    ones, right only when they name the team that resolved the ticket."""
    escalate = escalate.astype(bool)
    esc, res = p_esc >= thresholds.escalate, p_esc < thresholds.resolve_first
    right = routed & (top1 == truth)
    teams = {
        str(team): [int(mine.sum()), int(routed[mine].sum()), int(right[mine].sum())]
        for team in np.unique(truth)
        if (mine := truth == team).any()
    }
    return Answers(
        len(p_esc),
        int(esc.sum()),
        int((esc & escalate).sum()),
        int(res.sum()),
        int((res & ~escalate).sum()),
        int(escalate.sum()),
        int(routed.sum()),
        int(right.sum()),
        teams,
    )


def operating_metrics(a: Answers) -> dict[str, float]:
    """Precision of each answer, the uncertain share and routing coverage: one definition for the holdout and the
    benchmark, NaN where there was no such answer (no precision to show, rather than a zero that reads as wrong)."""
    return {
        "escalate_precision": a.escalate_right / a.escalate if a.escalate else float("nan"),
        "resolve_first_precision": a.resolve_first_right / a.resolve_first if a.resolve_first else float("nan"),
        "uncertain_rate": 1 - (a.escalate + a.resolve_first) / a.n if a.n else float("nan"),
        "routing_coverage": a.routed / a.escalated if a.escalated else float("nan"),
        "routing_precision": a.routed_right / a.routed if a.routed else float("nan"),
    }


def team_macro_f1(truth: np.ndarray, top1: np.ndarray) -> float:
    """Macro-F1 of top-1 answers over the teams the tickets were really escalated to: each such team counts as
    much as any other, an answer naming a pooled 'other' or a team the model never learnt is wrong, and a team
    nobody was escalated to adds nothing. The one definition the holdout, the model card, the lead's view, model
    selection and the benchmark use (selection scores training labels, where the pooled 'other' is one of the
    teams the head learns). NaN without escalated tickets."""
    if len(truth) == 0:
        return float("nan")
    teams = sorted(set(truth.tolist()))
    return float(f1_score(truth, top1, labels=teams, average="macro", zero_division=0))


def target_metrics(y: np.ndarray, proba: np.ndarray, targets: list[str]) -> tuple[dict[str, float], np.ndarray]:
    """Top-1/top-3 accuracy and team macro-F1 (`team_macro_f1`) of escalated tickets; returns the top-1 answers
    too."""
    index = {t: i for i, t in enumerate(targets)}
    truth = np.array([index.get(t, -1) for t in y])
    ranked = np.argsort(-proba, axis=1)
    top1 = np.array(targets, dtype=object)[ranked[:, 0]]
    metrics = {
        "target_top1_accuracy": float((ranked[:, 0] == truth).mean()),
        "target_top3_accuracy": float((ranked[:, :3] == truth[:, None]).any(axis=1).mean()),
        "target_macro_f1": team_macro_f1(np.asarray(y, dtype=object), top1),
    }
    return metrics, top1


def routing_decisions(
    top1: np.ndarray, p_top: np.ndarray, thresholds: TargetThresholds | None, resolve_first: np.ndarray | None = None
) -> np.ndarray:
    """True where the top target clears its threshold (routed), False where the answer is `uncertain`, as the
    router answers: nothing is routed where the escalation answer is `resolve_first` (True in `resolve_first`)."""
    routed = (
        np.ones(len(top1), dtype=bool)
        if thresholds is None
        else np.array([thresholds.decide(t, float(p))[0] == "route" for t, p in zip(top1, p_top, strict=True)], bool)
    )
    return routed if resolve_first is None else routed & ~resolve_first


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted probability, observed frequency, tickets) of each non-empty equal-width bin."""
    edges = np.minimum((p * bins).astype(int), bins - 1)
    return [(float(p[on].mean()), float(y[on].mean()), int(on.sum())) for b in range(bins) if (on := edges == b).any()]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean gap between predicted probability and observed frequency, weighted by bin size."""
    if len(p) == 0:
        return 0.0
    return sum(n * abs(mp - my) for mp, my, n in calibration_bins(y, p, bins)) / len(p)


def per_target_report(
    y: np.ndarray,
    pred: np.ndarray,
    targets: list[str],
    kinds: dict[str, str],
    routed: np.ndarray | None = None,
    thresholds: TargetThresholds | None = None,
    train_counts: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Precision, recall, F1 and support of each escalation target, with its threshold and routed share."""
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=targets, zero_division=0)
    frame = pd.DataFrame(
        {
            "target": targets,
            "kind": [kinds.get(t, "functional") for t in targets],
            "precision": p,
            "recall": r,
            "f1": f,
            "support": s,
        }
    )
    if train_counts is not None:
        frame["train_tickets"] = [train_counts.get(t, 0) for t in targets]
    if thresholds is not None:
        frame["threshold"] = [thresholds.decide(t, 0.0)[1] for t in targets]
        frame["threshold_scope"] = [thresholds.decide(t, 0.0)[2] for t in targets]
    if routed is not None:
        routed_right = [((pred == t) & routed & (y == t)).sum() for t in targets]
        routed_any = [((pred == t) & routed).sum() for t in targets]
        frame["routed"] = routed_any
        frame["routed_precision"] = [a / b if b else np.nan for a, b in zip(routed_right, routed_any, strict=True)]
        # of this target's escalated tickets, the share whose answer was sure enough to route
        frame["routed_coverage"] = [
            ((y == t) & routed).sum() / n if n else np.nan for t, n in zip(targets, s, strict=True)
        ]
    return frame


def slice_report(
    masks: dict[str, np.ndarray],
    escalate: np.ndarray,
    p_esc: np.ndarray,
    thresholds: Thresholds,
    truth: np.ndarray,
    proba: np.ndarray,
    targets: list[str],
    routed: np.ndarray,
) -> pd.DataFrame:
    """Escalation and target metrics within each slice (holdout tickets; target metrics on escalated ones)."""
    rows = []
    escalated = np.flatnonzero(escalate)
    top1 = np.array(targets, dtype=object)[proba.argmax(axis=1)] if len(proba) else np.array([], dtype=object)
    for name, mask in masks.items():
        row: dict[str, float | str] = {
            "slice": name,
            "tickets": int(mask.sum()),
            "escalated": int(escalate[mask].sum()),
        }
        if mask.any():
            y, p = escalate[mask], p_esc[mask]
            if 0 < y.sum() < len(y):
                row["escalation_average_precision"] = float(average_precision_score(y, p))
            row["escalation_recall_at_threshold"] = float((y & (p >= thresholds.escalate)).sum() / max(y.sum(), 1))
            on = mask[escalated]
            if on.any():
                tm, _ = target_metrics(truth[on], proba[on], targets)
                row["target_top1_accuracy"] = tm["target_top1_accuracy"]
                row["target_top3_accuracy"] = tm["target_top3_accuracy"]
                sure, right = routed[on], routed[on] & (truth[on] == top1[on])
                counted = Answers(escalated=int(on.sum()), routed=int(sure.sum()), routed_right=int(right.sum()))
                metrics = operating_metrics(counted)
                row.update({k: metrics[k] for k in ("routing_coverage", "routing_precision")})
        rows.append(row)
    return pd.DataFrame(rows)


SCORE_CHUNK = 20_000  # holdout tickets scored at once: a chunk's feature rows, not the whole holdout's, in memory


def holdout_probabilities(
    router: EscalationRouter, tickets: pd.DataFrame, embeddings: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """P(escalation) and the suggestible P(target) of every ticket, scored a chunk at a time."""
    if embeddings is None:
        embeddings = router.embed(tickets["text"].to_numpy(dtype=str).tolist())
    p_esc, p_tgt = [np.zeros(0)], [np.zeros((0, len(router.targets)))]
    for start in range(0, len(tickets), SCORE_CHUNK):
        scored = router.score(tickets.iloc[start : start + SCORE_CHUNK], embeddings[start : start + SCORE_CHUNK])
        p_esc.append(scored.escalation)
        p_tgt.append(router.suggestible(scored.targets))
    return np.concatenate(p_esc), np.vstack(p_tgt)


def evaluate(
    router: EscalationRouter,
    tickets: pd.DataFrame,
    embeddings: np.ndarray | None,
    labels: Labels,
    rare_below: int = RARE_TICKETS,
    mask: Masker | None = None,
) -> Evaluation:
    """Score the router on holdout tickets whose labels were derived the same way as for training; the mistakes
    it lists are masked with `mask` (patterns only by default)."""
    p_esc, p_tgt = holdout_probabilities(router, tickets, embeddings)
    metrics = escalation_metrics(labels.escalate, p_esc, router.thresholds)
    escalated = np.flatnonzero(labels.escalate)
    # the team that resolved it: a pooled team is a wrong answer whatever the model says, as agents see it
    truth = labels.target[escalated].astype(object)
    tmetrics, top1 = target_metrics(truth, p_tgt[escalated], router.targets)
    metrics.update(tmetrics)
    p_top = p_tgt[escalated].max(axis=1) if len(escalated) else np.zeros(0)
    resolve_first = p_esc[escalated] < router.thresholds.resolve_first
    routed = routing_decisions(top1, p_top, router.target_thresholds, resolve_first)
    answers = operating_answers(labels.escalate, p_esc, router.thresholds, truth, top1, routed)
    metrics.update(operating_metrics(answers))
    metrics["escalation_ece"] = expected_calibration_error(labels.escalate.astype(float), p_esc)
    metrics["target_ece"] = expected_calibration_error((truth == top1).astype(float), p_top)
    metrics["routing_score"] = (metrics.get("escalation_average_precision", 0.0) + metrics["target_top1_accuracy"]) / 2
    metrics["holdout_tickets"] = float(len(tickets))
    metrics["holdout_escalated"] = float(len(escalated))

    train_counts = router.train_counts()
    report = per_target_report(
        truth, top1, router.targets, router.kinds, routed, router.target_thresholds, train_counts
    )
    texts = tickets["text"].to_numpy(dtype=str).tolist()
    all_truth = np.array([""] * len(tickets), dtype=object)
    all_truth[escalated] = truth
    masks = slice_masks(texts, all_truth, rare(train_counts, rare_below) - {OTHER})
    slices = slice_report(
        masks, labels.escalate, p_esc, router.thresholds, truth, p_tgt[escalated], router.targets, routed
    )
    for row in slices.to_dict("records"):
        for key, value in row.items():
            if key not in ("slice", "tickets", "escalated") and pd.notna(value):
                metrics[f"slice_{row['slice']}_{key}"] = float(value)
    wrong = np.flatnonzero(truth != top1)
    mask = mask or Masker()  # logged for leads to read: no personal data
    mistakes = pd.DataFrame(
        {
            "id": tickets["id"].to_numpy(dtype=str)[escalated[wrong]],
            "text": [mask(texts[i][:400])[:300] for i in escalated[wrong]],
            "resolved_by": truth[wrong],
            "suggested": top1[wrong],
            "probability": np.round(p_top[wrong], 4),
            "routed": routed[wrong],
        }
    ).sort_values("probability", ascending=False)
    return Evaluation(
        metrics, report, truth, top1, router.targets, labels.escalate, p_esc, p_top, routed, slices, mistakes
    )


def holdout_answers(evaluation: Evaluation) -> RoutingAnswers:
    """The holdout's routing answers as the model keeps them, to count its operating numbers again under other
    routing thresholds (`reevaluate`): target positions, a team it cannot name as -1."""
    index = {t: i for i, t in enumerate(evaluation.labels)}
    return RoutingAnswers(
        top=np.array([index[t] for t in evaluation.y_pred], dtype=np.int32),
        probability=evaluation.p_top.astype(np.float64),
        truth=np.array([index.get(t, -1) for t in evaluation.y_true], dtype=np.int32),
        escalated=evaluation.escalate.astype(bool),
        p_escalation=evaluation.p_escalation.astype(np.float64),
    )


def reevaluate(router: EscalationRouter) -> tuple[dict[str, float], pd.DataFrame]:
    """The router's holdout metrics and per-target report under its current thresholds, counted on the holdout
    answers it keeps, as `evaluate` counts them: what changes with the routing thresholds is counted again (the
    routed share and precision, per target too); the rest, and the slices (whose tickets it does not keep, so
    their routing numbers are left out), as evaluated."""
    answers = router.routing_answers["holdout"]
    assert answers.escalated is not None and answers.p_escalation is not None
    names = np.array([*router.targets, ""], dtype=object)
    truth, top1 = names[answers.truth], names[answers.top]
    p_esc = answers.p_escalation.astype(float)
    resolve_first = p_esc[answers.escalated] < router.thresholds.resolve_first
    routed = routing_decisions(top1, answers.probability, router.target_thresholds, resolve_first)
    counted = operating_answers(answers.escalated, p_esc, router.thresholds, truth, top1, routed)
    metrics = {k: v for k, v in router.metrics.items() if not (k.startswith("slice_") and "routing_" in k)}
    metrics.update(operating_metrics(counted))
    report = per_target_report(
        truth, top1, router.targets, router.kinds, routed, router.target_thresholds, router.train_counts()
    )
    return metrics, report


def quality_per_target(report: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The holdout's per-target numbers the model carries for the lead's view (NaN, where none, left out)."""
    columns = [c for c in ("precision", "recall", "support", "routed_precision", "routed_coverage") if c in report]
    return {
        str(row["target"]): {c: float(row[c]) for c in columns if pd.notna(row[c])}
        for row in report.to_dict(orient="records")
    }


def confusion_png(evaluation: Evaluation, path: str | Path, largest: int = 15) -> Path:
    """Row-normalised confusion matrix of the largest targets, as a PNG for leads."""
    counts = pd.Series(evaluation.y_true).value_counts()
    labels = [t for t in counts.index[:largest]]
    matrix = confusion_matrix(evaluation.y_true, evaluation.y_pred, labels=labels).astype(float)
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.5 * len(labels) + 2)
    fig = Figure(figsize=(size, size * 0.85))
    ax = fig.subplots()
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
    return Path(path)


def reliability_png(evaluation: Evaluation, path: str | Path, bins: int = 10) -> Path:
    """Reliability curves: predicted probability against observed frequency, escalation and top target."""
    panels = [
        ("P(escalation)", evaluation.p_escalation, evaluation.escalate.astype(float)),
        ("P(top target)", evaluation.p_top, (evaluation.y_true == evaluation.y_pred).astype(float)),
    ]
    fig = Figure(figsize=(10, 4.5))
    axes = fig.subplots(1, 2)
    for ax, (title, p, y) in zip(axes, panels, strict=True):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
        points = calibration_bins(y, p, bins)
        xs, ys, ns = [x for x, _, _ in points], [yy for _, yy, _ in points], [n for _, _, n in points]
        ax.plot(xs, ys, marker="o", label="holdout")
        for x, yy, n in zip(xs, ys, ns, strict=True):
            ax.annotate(str(n), (x, yy), textcoords="offset points", xytext=(4, -10), fontsize=7, color="grey")
        ece = expected_calibration_error(y, p, bins)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted probability", ylabel="observed frequency")
        ax.set_title(f"{title}: ECE {ece:.3f}")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("Reliability on the holdout (numbers: tickets per bin)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def coverage_precision_table(evaluation: Evaluation) -> pd.DataFrame:
    """Coverage and precision of `escalate` and of routing to the top target at each threshold."""
    rows = []
    y_esc, p_esc = evaluation.escalate, evaluation.p_escalation
    right, p_top = evaluation.y_true == evaluation.y_pred, evaluation.p_top
    for t in np.round(np.arange(0.0, 1.0001, 0.05), 2):
        esc, route = p_esc >= t, p_top >= t
        rows.append(
            {
                "threshold": float(t),
                "escalate_coverage": float(esc.mean()) if len(esc) else 0.0,
                "escalate_precision": float(y_esc[esc].mean()) if esc.any() else np.nan,
                "routing_coverage": float(route.mean()) if len(route) else 0.0,
                "routing_precision": float(right[route].mean()) if route.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def coverage_precision_png(evaluation: Evaluation, thresholds: Thresholds, path: str | Path) -> Path:
    """Precision against coverage as the threshold moves, with the chosen operating points marked."""
    table = coverage_precision_table(evaluation)
    fig = Figure(figsize=(10, 4.5))
    axes = fig.subplots(1, 2)
    chosen = [
        (
            "escalate",
            (evaluation.p_escalation >= thresholds.escalate).mean() if len(evaluation.p_escalation) else 0,
            evaluation.escalate[evaluation.p_escalation >= thresholds.escalate].mean()
            if (evaluation.p_escalation >= thresholds.escalate).any()
            else np.nan,
        ),
        (
            "routing",
            evaluation.routed.mean() if len(evaluation.routed) else 0,
            (evaluation.y_true == evaluation.y_pred)[evaluation.routed].mean() if evaluation.routed.any() else np.nan,
        ),
    ]
    for ax, (name, cov, prec) in zip(axes, chosen, strict=True):
        ax.plot(table[f"{name}_coverage"], table[f"{name}_precision"], marker=".")
        for _, row in table.iloc[::4].iterrows():
            ax.annotate(
                f"{row['threshold']:.2f}",
                (row[f"{name}_coverage"], row[f"{name}_precision"]),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize=7,
                color="grey",
            )
        ax.axhline(thresholds.target_precision, ls="--", color="grey", lw=1, label="target precision")
        if not np.isnan(prec):
            ax.scatter([cov], [prec], color="red", zorder=3, label="chosen operating point")
        what = "tickets told to escalate" if name == "escalate" else "escalated tickets routed (top target sure)"
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel=f"coverage: share of {what}", ylabel="precision")
        ax.set_title(f"{name}: precision vs coverage (grey: threshold)")
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def rule_report(router: EscalationRouter, tickets: pd.DataFrame, resolvers: np.ndarray) -> pd.DataFrame:
    """How often each rule fired on the holdout and how often its target was the final resolver."""
    rows = []
    names = [{rule.name for rule, _ in hits} for hits in router.match_rules(tickets)]
    for rule in router.rules:
        fired = np.array([rule.name in hit for hit in names], dtype=bool)
        agreed = int((fired & (resolvers == rule.target)).sum())
        rows.append(
            {
                "rule": rule.name,
                "target": rule.target,
                "fired": int(fired.sum()),
                "fired_rate": float(fired.mean()) if len(fired) else 0.0,
                "agreed": agreed,
                "agreement": agreed / fired.sum() if fired.any() else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["rule", "target", "fired", "fired_rate", "agreed", "agreement"])
