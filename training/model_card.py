"""The model card: a markdown page a lead can read in the MLflow UI next to the run's pictures."""

from __future__ import annotations

import pandas as pd

from features.model.router import EscalationRouter
from training.evaluate import Evaluation
from training.slices import RARE_TICKETS, SHORT_WORDS

HEADLINE = [
    ("escalation_average_precision", "Escalation average precision"),
    ("escalation_roc_auc", "Escalation ROC-AUC"),
    ("escalate_precision", "Precision of `escalate` answers"),
    ("escalation_recall_at_threshold", "Share of escalations told `escalate`"),
    ("resolve_first_precision", "Precision of `resolve_first` answers"),
    ("uncertain_rate", "Tickets left `uncertain` (human triage)"),
    ("target_top1_accuracy", "Target top-1 accuracy"),
    ("target_top3_accuracy", "Target top-3 accuracy"),
    ("target_macro_f1", "Target macro-F1"),
    ("routing_coverage", "Escalated tickets with a sure target"),
    ("routing_precision", "Precision of sure targets"),
    ("escalation_ece", "Escalation calibration error (ECE)"),
    ("target_ece", "Top-target calibration error (ECE)"),
]


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    if frame.empty:
        return "(none)"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("" if pd.isna(v) else f"{v:.{digits}f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def known_limits(router: EscalationRouter, evaluation: Evaluation, worst: int = 5) -> list[str]:
    """Limits read off this run's numbers, plus the ones every version shares."""
    m, limits = evaluation.metrics, []
    report = evaluation.per_target
    weak = report[(report["support"] > 0)].sort_values("f1").head(worst)
    if len(weak):
        limits.append(
            "Worst-served targets on the holdout (F1): "
            + ", ".join(f"{r.target} {r.f1:.2f} ({r.support} tickets)" for r in weak.itertuples())
            + "."
        )
    chosen = router.target_thresholds
    if chosen and chosen.unreached:
        names = [
            f"{t} ({chosen.precision_for(t):.2f}, set by a lead)" if t in chosen.precisions else t
            for t in chosen.unreached[:15]
        ]
        limits.append(
            f"{len(chosen.unreached)} targets never reached their precision ({chosen.target_precision:.2f} unless "
            "a lead set another) on validation, so they are always `uncertain`: "
            + ", ".join(names)
            + ("..." if len(chosen.unreached) > 15 else "")
            + "."
        )
    if not router.thresholds.escalate_precision_reached:
        limits.append("`escalate` never reached the target precision on validation: every escalation is `uncertain`.")
    for row in evaluation.slices.to_dict("records"):
        top1 = row.get("target_top1_accuracy")
        if top1 is not None and pd.notna(top1) and top1 < m.get("target_top1_accuracy", 0) - 0.1:
            limits.append(
                f"Slice '{row['slice']}' ({row['tickets']} holdout tickets): target top-1 {top1:.2f}, "
                f"well below the overall {m['target_top1_accuracy']:.2f}."
            )
    if router.pooled:
        limits.append(
            f"{len(router.pooled)} rare targets are pooled as 'other' and never suggested by name: "
            + ", ".join(sorted(router.pooled)[:15])
            + "."
        )
    limits += [
        "Labels are the final resolver of past tickets: tickets that bounced between teams teach the model the "
        "last team, and policy changes show up only after retraining.",
        f"Slices are heuristics: short = fewer than {SHORT_WORDS} words; non-English = more stop words of other "
        f"languages than of English; alerts = monitoring/job-failure/threshold patterns; rare = fewer than "
        f"{RARE_TICKETS} training tickets.",
        "Calibration and thresholds are fitted on out-of-fold scores of the training data; if incoming tickets "
        "drift from it, re-check the reliability curve of the next run.",
    ]
    return limits


def rare_teams(router: EscalationRouter, evaluation: Evaluation) -> pd.DataFrame:
    """Teams with few training tickets: their validation answers (out of fold), holdout support and routing."""
    counts = router.train_counts()
    tt = router.target_thresholds
    support = dict(zip(evaluation.per_target["target"], evaluation.per_target["support"], strict=True))
    rows = []
    for team, n in sorted(counts.items(), key=lambda kv: (kv[1], kv[0])):
        if n >= RARE_TICKETS or team not in support:
            continue
        answers = (tt.unproven or {}).get(team) if tt else None
        routing = (
            "never (no thresholds)"
            if tt is None
            else (
                "own threshold"
                if team in tt.per_target
                else "unproven: never routed"
                if tt.unproven is not None
                else "shared threshold"
            )
        )
        rows.append(
            {
                "team": team,
                "training tickets": n,
                "validation answers": "" if answers is None else answers,
                "holdout support": int(support[team]),
                "routing": routing,
            }
        )
    return pd.DataFrame(rows)


def model_card(
    router: EscalationRouter, evaluation: Evaluation, info: dict[str, object], name: str, version: str
) -> str:
    """Markdown: data window, counts per target, metrics overall, per slice and per target, and known limits."""
    m = evaluation.metrics
    counts = router.train_counts()
    esc_share = float(router.index.escalated.mean()) if len(router.index.escalated) else 0.0
    headline = pd.DataFrame(
        [{"metric": label, "holdout": m[key]} for key, label in HEADLINE if key in m],
    )
    per_target = evaluation.per_target.sort_values("support", ascending=False)
    lines = [
        f"# Model card: {name} v{version}",
        "",
        "Suggests whether a support ticket needs escalation and to which team or manager, with calibrated "
        "probabilities; below the thresholds the answer is `uncertain` (send to human triage).",
        "",
        "## Data",
        f"- Export fingerprint `{str(info.get('data_fingerprint', ''))[:16]}`, "
        f"window {info.get('data_from', 'n/a')} to {info.get('data_to', 'n/a')}.",
        f"- {info.get('trained_rows', len(router.index.ids))} training tickets ({esc_share:.0%} escalated), "
        f"holdout {int(m.get('holdout_tickets', 0))} tickets ({info.get('holdout', 'n/a')}), "
        f"{int(m.get('holdout_escalated', 0))} of them escalated.",
        f"- Embedding model `{router.embedding_model}` ({_reads(router)}, runtime {router.encoder.runtime}); "
        f"{len(router.targets)} targets; first line: {', '.join(router.first_line)}.",
        f"- Pooled as 'other': {', '.join(f'{k} ({v})' for k, v in sorted(router.pooled.items())) or 'none'}.",
        "",
        "## Operating point",
        f"- Target precision {router.thresholds.target_precision:.2f} (set by `training.target_precision`).",
        f"- `escalate` at P(escalation) >= {router.thresholds.escalate:.3f}; `resolve_first` below "
        f"{router.thresholds.resolve_first:.3f}; `uncertain` between.",
    ]
    if router.target_thresholds:
        tt = router.target_thresholds
        others = (
            "the others are suggested but never routed until their precision is shown (too few validation answers)"
            if tt.unproven is not None
            else f"the others use {tt.fallback:.3f} (chosen on all targets)"
        )
        lines.append(
            f"- Routing: {len(tt.per_target)} targets have their own threshold on P(target); {others}; a threshold "
            "is the lowest at which the lower end of the precision's Wilson interval reaches the target, and never "
            "below 0.5. Nothing is routed when the escalation answer is `resolve_first`. See "
            "`evaluation/coverage_precision.png` to pick another operating point."
        )
    if router.head_params:
        lines.append(
            "- Heads chosen on the training tickets' out-of-fold answers: "
            + ", ".join(f"{k} {v}" for k, v in router.head_params.items())
            + "."
        )
    lines += [
        "",
        "## Holdout metrics",
        _table(headline),
        "",
        "## Per slice",
        _table(evaluation.slices),
        "",
        "## Per target (training tickets, holdout metrics, threshold)",
        _table(per_target),
        "",
        f"## Rare teams (fewer than {RARE_TICKETS} training tickets)",
        "Suggested like every team; routed automatically only once validation shows their precision.",
        "",
        _table(rare_teams(router, evaluation)),
        "",
        "## Known limits",
        *[f"- {limit}" for limit in known_limits(router, evaluation)],
        "",
        "## Pictures and tables in this run",
        "- `evaluation/confusion_matrix.png`: confusion of the largest targets.",
        "- `evaluation/reliability.png`: calibration of P(escalation) and P(top target).",
        "- `evaluation/coverage_precision.png` and `evaluation/coverage_precision.json`: the precision/coverage "
        "trade-off.",
        "- `evaluation/per_target.json`, `evaluation/slices.json`, `evaluation/mistakes.json`.",
        "",
        "Training tickets per target: "
        + ", ".join(f"{t} {n}" for t, n in sorted(counts.items(), key=lambda x: -x[1]))
        + ".",
    ]
    return "\n".join(lines) + "\n"


def _reads(router: EscalationRouter) -> str:
    length = router.max_seq_length
    return "every token, as a static table" if length is None else f"max {length} tokens"
