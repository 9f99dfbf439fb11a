"""The internal note a helpdesk gets: what an agent needs from a suggestion, in plain text, already masked."""

from __future__ import annotations

import re
from urllib.parse import quote

from serving.schemas import SuggestionOut

DECISIONS = {"escalate": "Escalate", "resolve_first": "Try first-line fix first", "uncertain": "Unsure: ask triage"}
KINDS = {"functional": "specialist team", "hierarchical": "manager", "first_line": "first line"}


def tag_safe(value: str) -> str:
    """A target as a tag: lower case, letters, digits and dashes (helpdesks split tags on spaces)."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "unknown"


def tags_for(answer: SuggestionOut, prefix: str) -> list[str]:
    top = answer.suggestions[0].target if answer.suggestions else None
    return [f"{prefix}suggested", *([f"{prefix}target-{tag_safe(top)}"] if top else [])]


def note_for(answer: SuggestionOut, ticket_id: str, prefix: str, console_url: str = "") -> str:
    """Decision, top targets with kind and probability, the two best similar tickets with their resolution, the
    handoff note, and how to give feedback. Built only from the API's answer, so it shows nothing the API would not."""
    esc, routing = answer.escalation, answer.routing
    lines = [
        f"Escalation suggestion ({answer.model.name} v{answer.model.version})",
        f"Decision: {DECISIONS[esc.decision]} (probability {esc.probability:.0%}; escalate from "
        f"{esc.thresholds.escalate:.0%})" + (f", by the rule {esc.rule}" if esc.rule else ""),
        *[f"Note: {n}" for n in answer.notes],
        "Where to:",
    ]
    for i, s in enumerate(answer.suggestions, 1):
        sure = " - sure enough to route" if i == 1 and routing.decision == "route" else ""
        if i == 1 and sure and routing.precision is not None:  # what the lead chose its threshold to keep
            who = routing.precision_set_by or "training"
            sure += f" (threshold kept at {routing.precision:.0%} precision, set by {who})"
        lines.append(f"  {i}. {s.target} ({KINDS.get(s.kind, s.kind)}) {s.probability:.0%}{sure}")
    for rule in answer.explanation.rules:
        lines.append(f"Rule {rule.name}: {rule.target} ({rule.reason})")
    similar = answer.explanation.similar_tickets[:2]
    if similar:
        lines.append("Similar resolved tickets:")
        for t in similar:
            how = f": {t.resolution}" if t.resolution else ""
            lines.append(f"  - {t.id} ({t.similarity:.0%} similar), resolved by {t.target}{how}")
    lines += ["Handoff note:", answer.handoff.note]
    if console_url:
        lines.append(f"Console: {console_url.rstrip('/')}/console?ticket={quote(ticket_id)}")
    lines.append(f"Feedback: tag {prefix}accepted or {prefix}wrong (ticket {ticket_id}).")
    return "\n".join(lines)
