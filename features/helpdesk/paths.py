"""A ticket's escalation path from its helpdesk history, and what it teaches: its target and the text an agent had
before the first hop.

The rule (the importer's labels and the connectors' live outcomes both follow it): each moment of a ticket's history
stands for one target, the hierarchical person assigned when there is one (a lead, a manager), else its group, else
the first line. The label is the last target outside the first line that the path reached: where the expertise or
the authority that resolved it was (first line -> billing -> a manager is the manager's; first line -> engineering ->
back to first line to close is engineering's). A ticket that never left the first line is a first-line example.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FINAL = "solved"  # a history's status when it may be labelled; others: "open", "deleted"


@dataclass(frozen=True)
class Step:
    """From `at` on, the ticket sat in `group` (a group name; None: none) with `assignee` (the helpdesk's user id)."""

    at: str  # ISO 8601, UTC
    group: str | None
    assignee: str | None = None


@dataclass(frozen=True)
class Message:
    at: str
    text: str
    public: bool
    by_customer: bool


@dataclass
class History:
    """What the importer keeps of one ticket: helpdesk-neutral, as read from its API."""

    id: str
    status: str  # FINAL, "open" or "deleted"
    subject: str = ""
    created_at: str = ""
    solved_at: str | None = None
    steps: list[Step] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # the first is the description
    metadata: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            **{
                **data,
                "steps": [Step(**s) for s in data.get("steps", [])],
                "messages": [Message(**m) for m in data.get("messages", [])],
            }
        )


@dataclass(frozen=True)
class Directory:
    """Which helpdesk groups are the first line and which stand for authority, and the people (the helpdesk's user
    id -> the target's NAME) whose assignment is a hierarchical escalation. Every other group is a specialist team."""

    first_line: tuple[str, ...]
    hierarchical: tuple[str, ...] = ()
    people: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_model(cls, first_line: list[str], kinds: dict[str, str], people: dict[str, list[str]]) -> Directory:
        """The directory a trained model carries: its first line, its hierarchical targets, and its people (target
        NAME -> user ids, as the config has them)."""
        hierarchical = tuple(t for t, kind in kinds.items() if kind == "hierarchical")
        return cls(tuple(first_line), hierarchical, {uid: name for name, ids in people.items() for uid in ids})

    def target(self, step: Step) -> str:
        if step.assignee is not None and step.assignee in self.people:
            return self.people[step.assignee]
        return step.group if step.group is not None else self.first_line[0]

    def is_first_line(self, target: str) -> bool:
        return target in self.first_line


@dataclass(frozen=True)
class Label:
    target: str
    path: tuple[str, ...]  # the targets the ticket passed through, repeats collapsed
    path_at: tuple[str, ...]  # when it reached each
    first_hop_at: str | None  # when it first left the first line; None: it never did
    escalated: bool


def label(history: History, directory: Directory) -> Label:
    """The ticket's target and path by the rule above (a ticket with no group history starts in the first line)."""
    path: list[str] = []
    path_at: list[str] = []
    first_hop: str | None = None
    for step in sorted(history.steps, key=lambda s: s.at):
        target = directory.target(step)
        if not path or path[-1] != target:
            path.append(target)
            path_at.append(step.at)
        if first_hop is None and not directory.is_first_line(target):
            first_hop = step.at
    if not path:
        path.append(directory.first_line[0])
        path_at.append(history.created_at)
    outside = [t for t in path if not directory.is_first_line(t)]
    if outside:
        return Label(outside[-1], tuple(path), tuple(path_at), first_hop, True)
    return Label(path[-1], tuple(path), tuple(path_at), None, False)


def visible_text(history: History, before: str | None) -> str:
    """What an agent had before the first hop (`before`; None: up to the solve): the description and the customer's
    public messages written before it, never an internal note, an agent's reply or anything written at or after it.
    The description is what the ticket was opened with, so it counts even when the ticket opened in a specialist's
    group."""
    end = before or history.solved_at
    first, *later = sorted(history.messages, key=lambda m: m.at) or [None]
    parts = [first.text.strip()] if first is not None else []
    for message in later:
        if end is not None and message.at >= end:
            break
        if message.public and message.by_customer:
            parts.append(message.text.strip())
    return "\n\n".join(p for p in parts if p)


def resolution(history: History) -> str:
    """The public agent reply at solve time: the last one written up to the solve."""
    if history.solved_at is None:
        return ""
    replies = [m for m in history.messages if m.public and not m.by_customer and m.at <= history.solved_at]
    return max(replies, key=lambda m: m.at).text.strip() if replies else ""


def start_group(history: History) -> str | None:
    """The group the ticket started in (None: none)."""
    steps = sorted(history.steps, key=lambda s: s.at)
    return steps[0].group if steps else None
