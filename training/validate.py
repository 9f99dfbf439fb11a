"""Checks an export against its config before any work, so a bad file costs seconds and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.config import RouterConfig
from features.data import DataError, missing_columns


def _rows(mask: pd.Series, limit: int = 10) -> str:
    """1-based data row numbers (the header is row 0), the first few of them."""
    rows = [str(i + 1) for i in mask[mask].index[:limit]]
    more = int(mask.sum()) - len(rows)
    return ", ".join(rows) + (f" and {more} more" if more > 0 else "")


def check_columns(raw: pd.DataFrame, config: RouterConfig, source: str | Path) -> None:
    """Raise DataError when the export lacks a column that the config names."""
    missing = missing_columns(raw, config)
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
            f"the file has {', '.join(map(repr, raw.columns[:20]))}"
        )


def validate_export(raw: pd.DataFrame, tickets: pd.DataFrame, config: RouterConfig, source: str | Path) -> None:
    """Raise DataError naming the file, column and rows for every problem found, all at once."""
    problems: list[str] = []
    cols = config.columns
    empty_text = tickets["text"].str.strip() == ""
    if empty_text.any():
        problems.append(
            f"column(s) {', '.join(cols.text)}: empty text in {int(empty_text.sum())} row(s): {_rows(empty_text)}"
        )
    empty_target = tickets["target"] == ""
    if empty_target.any():
        problems.append(
            f"column {cols.target!r}: no resolver in {int(empty_target.sum())} row(s): {_rows(empty_target)}"
        )
    if cols.created_at:
        raw_dates = raw[cols.created_at].astype(str).str.strip()
        bad = tickets["created_at"].isna() & (raw_dates != "")
        if bad.any():
            problems.append(f"column {cols.created_at!r}: unreadable dates in {int(bad.sum())} row(s): {_rows(bad)}")
    targets = set(tickets.loc[~empty_target, "target"])
    unknown = [t for t in config.teams.first_line if t not in targets]
    if unknown:
        problems.append(
            f"teams.first_line: {', '.join(map(repr, unknown))} never appear in column {cols.target!r} "
            f"(values include {', '.join(map(repr, sorted(targets)[:8]))})"
        )
    if len(targets) < 2:
        problems.append(f"column {cols.target!r}: only one value ({', '.join(targets) or 'none'}); nothing to learn")
    usable = int((~empty_text & ~empty_target).sum())
    if usable < config.training.min_tickets:
        problems.append(f"only {usable} usable ticket(s); training needs at least {config.training.min_tickets}")
    escalated = {t for t in targets if config.teams.kind(t) != "first_line"}
    if targets and not unknown and len(escalated) < 2:
        problems.append(
            f"column {cols.target!r}: fewer than two escalation targets ({', '.join(sorted(escalated)) or 'none'})"
        )
    if problems:
        raise DataError(f"{source}: " + "; ".join(problems))
