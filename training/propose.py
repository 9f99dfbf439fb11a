"""`escalation init`: a training config proposed from an export's own columns, each guess explained in one line.

Columns are told apart by their names (the words exports from ServiceNow, Freshdesk, Jira, Zendesk and database dumps
use) and by their values: how long, how varied, how often empty, whether they read as dates. The likely first line is
the target named like a front desk (service desk, first level, customer service, ...), else the most common target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from features.config import parse_config
from features.data import DataError

ID_NAMES = r"^(ticket|case|incident|issue|request)?[ _-]?(id|key|number|no|nr|#)$|^(id|key|number|sys_id)$"
TEXT_NAMES = r"subject|title|summary|short[ _]?desc|description|body|text|message|details|content|problem|question"
TARGET_NAMES = [  # most telling first
    r"resolv|resolver|resolved[ _]?by",
    r"assignment[ _]?group|assigned[ _]?group|support[ _]?group",
    r"^group|[ _]group$|team",
    r"queue",
    r"assign|owner|department|category",
]
DATE_NAMES = r"created|opened|submitted|^date$|reported|received"
RESOLUTION_NAMES = r"resolution|answer|solution|reply|close[ _]?notes|fix"
FIRST_LINE_NAMES = (
    r"service[ _-]?desk|help[ _-]?desk|first[ _-]?(line|level)|level[ _-]?1|\bl1\b|tier[ _-]?1|front|general"
    r"|customer[ _-]?service|^support$"
)
HIERARCHICAL_NAMES = r"manager|\blead\b|supervisor|head of|director"
MAX_TARGETS, MAX_METADATA_VALUES, RARE = 1000, 30, 5


@dataclass
class Proposal:
    config: dict[str, Any]
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (what, why): one line each

    def explain(self) -> str:
        width = max(len(what) for what, _ in self.reasons)
        return "\n".join(f"  {what:<{width}}  {why}" for what, why in self.reasons)


def _named(column: str, pattern: str) -> bool:
    return re.search(pattern, column.strip().lower()) is not None


def propose(frame: pd.DataFrame, first_line: list[str] | None = None, target: str | None = None) -> Proposal:
    """The config this export most likely needs; `first_line` and `target` confirm or correct those two guesses."""
    values = {c: frame[c].astype(str).fillna("").str.strip() for c in frame.columns}
    rows = len(frame)
    reasons: list[tuple[str, str]] = []

    def filled(c: str) -> pd.Series:
        return values[c][values[c] != ""]

    length = {c: float(filled(c).str.len().mean() or 0) for c in frame.columns}
    distinct = {c: filled(c).nunique() for c in frame.columns}
    empty = {c: 1 - len(filled(c)) / max(rows, 1) for c in frame.columns}

    ids = [c for c in frame.columns if _named(c, ID_NAMES) and distinct[c] >= 0.99 * rows and empty[c] == 0]
    id_column = ids[0] if ids else None
    reasons.append(
        ("id", f"{id_column}: named like an id, every value unique")
        if id_column
        else ("id", "none: no column is named like an id with unique values; tickets are known by their text")
    )

    resolution = next((c for c in frame.columns if _named(c, RESOLUTION_NAMES) and length[c] >= 15), None)
    text = [
        c
        for c in frame.columns
        if c not in (id_column, resolution)
        and (
            (_named(c, TEXT_NAMES) and length[c] >= 8 and distinct[c] >= min(20, 0.5 * rows))
            or (length[c] >= 40 and distinct[c] >= 0.5 * rows)
        )
    ]
    if not text:
        raise DataError("no column holds ticket text (long, varied values, or named like subject/description/body)")
    text.sort(key=lambda c: length[c])
    sizes = ", ".join(f"{length[c]:.0f}" for c in text)
    reasons.append(("text", f"{', '.join(text)}: free text ({sizes} characters on average), shortest first"))

    candidates = [
        c
        for c in frame.columns
        if c not in (id_column, resolution, *text) and 2 <= distinct[c] <= min(MAX_TARGETS, 0.5 * rows)
    ]
    if target is not None:
        if target not in frame.columns:
            raise DataError(f"--target {target!r}: no such column (columns: {', '.join(frame.columns)})")
        chosen, why = target, "given with --target"
    else:
        chosen, why = None, ""
        for pattern in TARGET_NAMES:
            hits = [c for c in candidates if _named(c, pattern)]
            if hits:
                chosen, why = hits[0], "named like the team or person who resolved it"
                break
        if chosen is None:
            if not candidates:
                raise DataError("no column looks like the resolving team (a few to a thousand repeated values)")
            chosen = max(candidates, key=lambda c: distinct[c])
            why = "the categorical column with the most values; give --target if it is not the resolving team"
    counts = filled(chosen).value_counts()
    reasons.append(("target", f"{chosen}: {why}; {len(counts)} targets"))

    if first_line:
        unknown = [t for t in first_line if t not in counts.index]
        if unknown:
            raise DataError(
                f"--first-line {unknown[0]!r}: not a value of {chosen} (e.g. {', '.join(counts.index[:5])})"
            )
        firsts = list(first_line)
        share = counts[firsts].sum() / counts.sum()
        reasons.append(("first line", f"{', '.join(firsts)}: given with --first-line; resolves {share:.0%} of tickets"))
    else:
        named = [t for t in counts.index if _named(str(t), FIRST_LINE_NAMES)]
        top = str(counts.index[0])
        if named:
            firsts = [str(named[0])]
            extra = "" if named[0] == top else f"; the most common, {top} ({counts[top] / counts.sum():.0%}), is not"
            why = f"named like a front desk, resolves {counts[named[0]] / counts.sum():.0%} of tickets{extra}"
        else:
            firsts = [top]
            why = (
                f"the most common target, {counts[top] / counts.sum():.0%} of tickets (a first line resolves the most)"
            )
        reasons.append(("first line", f"{firsts[0]}: {why}; confirm or correct with --first-line"))
    hierarchical = [str(t) for t in counts.index if _named(str(t), HIERARCHICAL_NAMES) and str(t) not in firsts]
    reasons.append(
        ("hierarchical", f"{', '.join(hierarchical)}: named like a manager or lead")
        if hierarchical
        else ("hierarchical", "none named like a manager or lead; every other target is a specialist team")
    )
    rare = counts[counts < RARE]
    if len(rare):
        names = ", ".join(map(str, rare.index[:5])) + (", ..." if len(rare) > 5 else "")
        reasons.append(
            (
                "rare targets",
                f"{len(rare)} with fewer than {RARE} tickets ({names}): kept as teams (min_examples: 1); "
                "raise min_examples to pool them as 'other'",
            )
        )

    created = next(
        (c for c in frame.columns if _named(c, DATE_NAMES) and _dates(filled(c)) >= 0.9 and empty[c] <= 0.1), None
    )
    reasons.append(
        ("created_at", f"{created}: dates; the holdout is then the newest tickets")
        if created
        else (
            "created_at",
            "none: no column of dates named like a creation time; the holdout is a stable draw by ticket",
        )
    )
    if resolution:
        reasons.append(("resolution", f"{resolution}: named like the answer; shown with similar tickets"))
    used = {id_column, resolution, created, chosen, *text}
    metadata = [
        c for c in frame.columns if c not in used and 2 <= distinct[c] <= MAX_METADATA_VALUES and empty[c] <= 0.2
    ]
    left = [c for c in frame.columns if c not in used and c not in metadata]
    if metadata:
        known = "check each is known when a ticket arrives"
        reasons.append(("metadata", f"{', '.join(metadata)}: a few values each, rarely empty; {known}"))
    for c in left:
        why = (
            "mostly empty" if empty[c] > 0.2 else "one value" if distinct[c] < 2 else f"{distinct[c]} different values"
        )
        reasons.append(("left out", f"{c}: {why}"))

    columns: dict[str, Any] = {"id": id_column, "text": text, "target": chosen}
    if created:
        columns["created_at"] = created
    if resolution:
        columns["resolution"] = resolution
    columns["metadata"] = metadata
    config = {
        "columns": {k: v for k, v in columns.items() if v is not None},
        "teams": {"first_line": firsts, "hierarchical": hierarchical},
    }
    parse_config(config, "the proposed config")  # what it proposes, train accepts
    return Proposal(config, reasons)


def _dates(values: pd.Series) -> float:
    sample = values.head(500)
    if sample.empty or sample.str.fullmatch(r"\d{1,6}").mean() > 0.5:  # plain numbers are not dates
        return 0.0
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
    return float(parsed.notna().mean())
