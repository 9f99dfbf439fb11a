"""Merge agents' feedback into a resolved-tickets export: the freshest labels win where the two disagree."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from features.config import RouterConfig


@dataclass
class MergeReport:
    """What the merge did, for the console and the MLflow run."""

    feedback_rows: int = 0
    matched: int = 0
    agreed: int = 0
    changed: int = 0
    not_in_export: int = 0
    unknown_targets: int = 0
    changes: list[dict[str, str]] = field(default_factory=list)  # first few, for the report

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"feedback: {self.feedback_rows} rows, {self.matched} match export tickets "
            f"({self.agreed} agree, {self.changed} relabelled by feedback), {self.not_in_export} not in the export "
            f"(skipped: no text to learn from), {self.unknown_targets} name targets the model did not know"
        )


def feedback_target(row: pd.Series, config: RouterConfig) -> str:
    """The resolver feedback implies: its target when escalated, else the first line."""
    return str(row["target"]) if row["escalated"] else config.teams.first_line[0]


def merge_feedback(
    tickets: pd.DataFrame, feedback: pd.DataFrame, config: RouterConfig
) -> tuple[pd.DataFrame, MergeReport]:
    """Relabel export tickets from feedback by ticket id; feedback wins where they disagree."""
    report = MergeReport(feedback_rows=len(feedback))
    if feedback.empty:
        return tickets, report
    report.unknown_targets = int((~feedback["target_known"].astype(bool)).sum())
    by_id = {str(r["ticket_id"]): r for _, r in feedback.iterrows()}
    ids = tickets["id"].to_numpy(dtype=str)
    targets = tickets["target"].to_numpy(dtype=object).copy()
    first_line = set(config.teams.first_line)
    for i, ticket_id in enumerate(ids):
        row = by_id.get(ticket_id)
        if row is None:
            continue
        report.matched += 1
        wanted = feedback_target(row, config)
        same = wanted == targets[i] or (not row["escalated"] and targets[i] in first_line)
        if same:
            report.agreed += 1
            continue
        if len(report.changes) < 20:
            report.changes.append({"ticket_id": ticket_id, "export": str(targets[i]), "feedback": wanted})
        targets[i] = wanted
        report.changed += 1
    report.not_in_export = len(set(by_id) - set(ids))
    merged = tickets.copy()
    merged["target"] = targets.astype(str)
    return merged, report
