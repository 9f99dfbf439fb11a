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

    def take(self, rows: np.ndarray) -> Labels:
        """The labels of the tickets at `rows` (the same targets, kinds and pooling)."""
        return Labels(self.escalate[rows], self.target[rows], self.targets, self.kinds, self.pooled)


SAMPLE_FLOOR = 50  # tickets of each target a heads' sample keeps (all of them, when a target has fewer)


def heads_sample(labels: Labels, cap: int | None, seed: int) -> np.ndarray | None:
    """Sorted positions of at most about `cap` tickets, stratified by target (first-line tickets one stratum),
    keeping at least SAMPLE_FLOOR of every target; None when there are no more than `cap` tickets."""
    n = len(labels.escalate)
    if cap is None or n <= cap:
        return None
    strata = np.where(labels.escalate, labels.target.astype(str), "")
    rng = np.random.default_rng(seed)
    taken = []
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        quota = max(min(len(members), SAMPLE_FLOOR), int(round(len(members) * cap / n)))
        taken.append(rng.choice(members, quota, replace=False))
    return np.sort(np.concatenate(taken))


def stands_for(labels: Labels, rows: np.ndarray) -> np.ndarray:
    """Per sampled ticket (`rows`, from `heads_sample`), how many tickets of its stratum it stands for, so that
    the sample weighs as the whole history does."""
    strata = np.where(labels.escalate, labels.target.astype(str), "")
    values, counts = np.unique(strata, return_counts=True)
    taken = np.unique(strata[rows], return_counts=True)
    ratio = dict(zip(values.tolist(), counts.tolist(), strict=True))
    ratio = {v: ratio[v] / n for v, n in zip(taken[0].tolist(), taken[1].tolist(), strict=True)}
    return np.array([ratio[v] for v in strata[rows].tolist()], dtype=float)


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
