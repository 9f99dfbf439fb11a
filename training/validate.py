"""Checks an export against its config before any work, so a bad file costs seconds and writes nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.config import RouterConfig
from features.data import DataError, Export, missing_columns


def check_columns(raw: pd.DataFrame, config: RouterConfig, source: str | Path) -> None:
    """Raise DataError when the export lacks a column that the config names."""
    missing = missing_columns(raw, config)
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the file has {', '.join(map(repr, raw.columns[:20]))}"
        )


PLACEHOLDER_TARGETS = {"", "unknown", "n/a", "na", "none", "null", "nan", "-", "?"}


@dataclass
class RowReport:
    """Rows of an export that training cannot use, by reason, and how many were read and kept."""

    rows_read: int = 0
    rows_kept: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> where ("row 5", "line 7")

    @property
    def rows_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def summary(self) -> str:
        if not self.skipped:
            return f"rows: {self.rows_read} read, all usable"
        parts = [f"{len(where)} {reason} ({_first(where)})" for reason, where in self.skipped.items()]
        return f"rows: {self.rows_read} read, {self.rows_kept} kept, {self.rows_skipped} skipped: " + "; ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "rows_skipped": self.rows_skipped}


def _first(where: list[str], limit: int = 10) -> str:
    more = len(where) - limit
    return ", ".join(where[:limit]) + (f" and {more} more" if more > 0 else "")


def screen_rows(
    export: Export, tickets: pd.DataFrame, config: RouterConfig, source: str | Path, strict: bool = False
) -> tuple[np.ndarray, RowReport]:
    """Which rows training can use, and a report of the others: not UTF-8, no text, no target (empty or a
    placeholder such as 'unknown'), an unreadable date. With `strict`, any such row refuses the whole file."""
    cols = config.columns
    problems = {
        "not UTF-8": export.bad_encoding,
        "without text": (tickets["text"].str.strip() == "").to_numpy(dtype=bool),
        "without a target": tickets["target"].str.lower().isin(PLACEHOLDER_TARGETS).to_numpy(dtype=bool),
    }
    if cols.created_at:
        raw_dates = export.frame[cols.created_at].astype(str).str.strip()
        problems["with an unreadable date"] = (tickets["created_at"].isna() & (raw_dates != "")).to_numpy(dtype=bool)
    keep = np.ones(len(tickets), dtype=bool)
    report = RowReport(rows_read=len(tickets) + sum(len(v) for v in export.dropped.values()))
    for reason, where in export.dropped.items():
        report.skipped[f"unreadable ({reason})"] = list(where)
    for reason, bad in problems.items():
        bad = bad & keep  # each row counted once, under its first problem
        if bad.any():
            report.skipped[reason] = [f"row {i + 1}" for i in np.flatnonzero(bad)]
            keep &= ~bad
    report.rows_kept = int(keep.sum())
    if strict and report.skipped:
        details = "; ".join(f"{len(w)} row(s) {reason}: {_first(w)}" for reason, w in report.skipped.items())
        raise DataError(
            f"{source}: --strict refuses the file: {details} (text columns {', '.join(cols.text)}, "
            f"target column {cols.target!r})"
        )
    return keep, report


def validate_export(tickets: pd.DataFrame, config: RouterConfig, source: str | Path) -> None:
    """Raise DataError naming the file and column for every problem of the usable rows as a whole, all at once."""
    problems: list[str] = []
    cols = config.columns
    targets = set(tickets["target"])
    unknown = [t for t in config.teams.first_line if t not in targets]
    if unknown:
        problems.append(
            f"teams.first_line: {', '.join(map(repr, unknown))} never appear in column {cols.target!r} "
            f"(values include {', '.join(map(repr, sorted(targets)[:8]))})"
        )
    if len(targets) < 2:
        problems.append(f"column {cols.target!r}: only one value ({', '.join(targets) or 'none'}); nothing to learn")
    if len(tickets) < config.training.min_tickets:
        problems.append(f"only {len(tickets)} usable ticket(s); training needs at least {config.training.min_tickets}")
    escalated = {t for t in targets if config.teams.kind(t) != "first_line"}
    if targets and not unknown and len(escalated) < 2:
        problems.append(
            f"column {cols.target!r}: fewer than two escalation targets ({', '.join(sorted(escalated)) or 'none'})"
        )
    if problems:
        raise DataError(f"{source}: " + "; ".join(problems))
