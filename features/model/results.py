"""What the router answers for one ticket, typed: the model layer's result, not the API's JSON.

`features.model.present` turns a `Suggestion` into the public shape, masked, for every consumer (the API, the batch
route, `escalation predict`, the MLflow pyfunc).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Decision = Literal["escalate", "resolve_first", "uncertain"]
RoutingDecision = Literal["route", "uncertain"]
Kind = Literal["first_line", "functional", "hierarchical"]


@dataclass(frozen=True)
class EscalationCall:
    """Whether to escalate: the calibrated probability, the decision and the threshold that applied."""

    probability: float
    decision: Decision
    threshold: float
    escalate_at: float  # P(escalation) from which the answer is `escalate`
    resolve_first_below: float  # P(escalation) under which it is `resolve_first`
    rule: str | None = None  # the rule that decided, when one fired


@dataclass(frozen=True)
class RoutingCall:
    """Whether the top target is sure enough to route to, and whose threshold said so."""

    decision: RoutingDecision
    target: str
    probability: float
    threshold: float
    scope: str  # target, unproven, escalation, unfamiliar, all targets, rule, none
    precision: float | None = None  # what the target's threshold was chosen to keep (None: a rule chose it)
    precision_set_by: str | None = None  # who set that precision (None: training, from the config)


@dataclass(frozen=True)
class RankedTarget:
    target: str
    kind: Kind
    probability: float
    rule: str | None = None  # the rule that put it here


@dataclass(frozen=True)
class Neighbour:
    """A similar resolved ticket: who resolved it and how."""

    id: str
    similarity: float
    target: str
    kind: Kind
    snippet: str
    resolution: str | None = None


@dataclass(frozen=True)
class KeyTerm:
    """A word or field value of the ticket that pushed `towards` escalation or a target."""

    term: str
    field: str
    weight: float
    towards: str


@dataclass(frozen=True)
class FiredRule:
    name: str
    target: str
    kind: Kind
    action: str
    reason: str


@dataclass(frozen=True)
class Familiarity:
    """How alike the ticket is to what the model learned from: unfamiliar below the training tickets' usual
    similarity to their nearest other ticket (the answer may then be a guess)."""

    unfamiliar: bool
    nearest_similarity: float
    usual: float


@dataclass(frozen=True)
class Suggestion:
    """The router's whole answer for one ticket."""

    id: str | None
    escalation: EscalationCall
    routing: RoutingCall
    targets: list[RankedTarget]
    similar: list[Neighbour] = field(default_factory=list)
    key_terms: list[KeyTerm] = field(default_factory=list)
    rules: list[FiredRule] = field(default_factory=list)
    familiarity: Familiarity | None = None  # None: the model predates it
