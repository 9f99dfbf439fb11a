"""Derive both labels from the resolver: needs-escalation, and the escalation target with its kind."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from features.config import Teams
from features.model.router import OTHER


@dataclass
class Labels:
    """Per-ticket labels plus what pooling did."""

    escalate: np.ndarray  # bool, one per ticket
    target: np.ndarray  # str; '' where the first line resolved it
    targets: list[str]  # escalation targets the target head learns, 'other' last when present
    kinds: dict[str, str]  # target -> 'functional' | 'hierarchical'
    pooled: dict[str, int] = field(default_factory=dict)  # rare target -> ticket count


def derive_labels(resolvers: list[str] | np.ndarray, teams: Teams, min_examples: int) -> Labels:
    """First-line resolvers mean no escalation; rare escalation targets are pooled as 'other'."""
    resolvers = np.asarray(resolvers, dtype=object).astype(str)
    escalate = np.array([teams.kind(r) != "first_line" for r in resolvers], dtype=bool)
    counts = Counter(resolvers[escalate])
    pooled = {str(t): int(n) for t, n in sorted(counts.items()) if n < min_examples}
    target = np.array(
        ["" if not e else (OTHER if r in pooled else r) for r, e in zip(resolvers, escalate, strict=True)],
        dtype=object,
    )
    kept = sorted(str(t) for t in counts if t not in pooled)
    targets = kept + ([OTHER] if pooled else [])
    kinds = {t: ("functional" if t == OTHER else teams.kind(t)) for t in targets}
    return Labels(escalate, target, targets, kinds, pooled)
