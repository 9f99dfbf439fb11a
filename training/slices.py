"""Slices of tickets that leads ask about: short, non-English, machine-generated alerts, rare targets.

The detectors are cheap heuristics (word counts, stop words, alert patterns), stated in the model card.
"""

from __future__ import annotations

import re

import numpy as np

SHORT_WORDS = 10  # fewer words than this is a short ticket
RARE_TICKETS = 50  # a target with fewer training tickets than this is rare

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
ENGLISH = frozenset(
    "the and is to of in for on my i not it with this you please can be are have from was at we cannot "
    "unable when what how".split()
)
# Stop words of the other languages helpdesks here see most, without words that are also English.
OTHER = frozenset(
    "der die das und ist nicht ich mit für ein eine zu bitte auf den von wir sie kann mein dem des im auch "
    "le la les et est pas je avec pour une du ne vous nous mon sur dans "
    "el los las es con para una por que mi del se está "
    "il di che non per una sono della het een niet ik voor met zijn van".split()
)
ALERT = re.compile(
    r"\b(?:event|alert|alarm|critical|warning)\s*:"
    r"|\bjob\b[^\n.]{0,80}\bfailed\b"
    r"|\bmonitoring\b"
    r"|\bauto(?:matically|mated)?[- ]generated\b"
    r"|\bdo not reply\b|\bno-?reply\b"
    r"|\bthreshold\b[^\n.]{0,60}\b(?:exceeded|reached|is \d+)",
    re.IGNORECASE,
)


def is_short(text: str) -> bool:
    return len(_WORD.findall(text)) < SHORT_WORDS


def is_non_english(text: str) -> bool:
    """More stop words of other languages than of English, or mostly non-Latin letters."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return False
    letters = "".join(words)
    if sum(ch > "\u024f" for ch in letters) > 0.3 * len(letters):
        return True
    other = sum(w in OTHER for w in words)
    return other > sum(w in ENGLISH for w in words) and other > 0


def is_alert(text: str) -> bool:
    """Looks machine-generated: monitoring events, failed jobs, threshold alarms, no-reply senders."""
    return ALERT.search(text) is not None


def slice_masks(texts: list[str], targets: np.ndarray, rare_targets: set[str]) -> dict[str, np.ndarray]:
    """Boolean masks per slice; `targets` are the true targets ('' for first-line tickets)."""
    return {
        "short": np.array([is_short(t) for t in texts], dtype=bool),
        "non_english": np.array([is_non_english(t) for t in texts], dtype=bool),
        "alerts": np.array([is_alert(t) for t in texts], dtype=bool),
        "rare_targets": np.array([t in rare_targets for t in targets], dtype=bool),
    }


def rare(train_counts: dict[str, int], below: int = RARE_TICKETS) -> set[str]:
    """Targets with fewer training tickets than `below`."""
    return {t for t, n in train_counts.items() if n < below}
