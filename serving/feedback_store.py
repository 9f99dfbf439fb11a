"""What the service suggested and what agents finally did, stored durably through SQLAlchemy.

A sqlite file by default, any SQLAlchemy URL (PostgreSQL for a team) by setting. Serving writes both tables;
retraining reads the feedback as the freshest labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from features.data import ISO_WEEK
from features.settings import DEFAULT_FEEDBACK_URL


class StoreUnavailable(RuntimeError):
    """The feedback database cannot be reached or refused the write; nothing was half-written."""


class Base(DeclarativeBase):
    pass


class SuggestionRecord(Base):
    """One answer the service gave for a ticket."""

    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(200), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(50))
    decision: Mapped[str] = mapped_column(String(20))
    escalation_probability: Mapped[float] = mapped_column(Float)
    targets: Mapped[list[str]] = mapped_column(JSON)  # ranked, as shown
    top_probability: Mapped[float] = mapped_column(Float)
    routing: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # unlike the training tickets (the answer's familiarity); null: the model predates it, or a row from before
    unfamiliar: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class FeedbackRecord(Base):
    """What the agent finally did with a ticket; one row per ticket, a repeat updates it."""

    __tablename__ = "feedback"

    ticket_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    escalated: Mapped[bool] = mapped_column(Boolean)
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    accepted_suggestion: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    target_known: Mapped[bool] = mapped_column(Boolean, default=True)
    model_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    suggestion_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revisions: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class HookEventRecord(Base):
    """A helpdesk event accepted by a connector and the work it asks for (a note written back, or an outcome
    recorded as feedback): the outbox, so nothing accepted is lost while the helpdesk is down or the server restarts.
    One row per (helpdesk, delivery): a delivery seen twice is stored once."""

    __tablename__ = "hook_events"
    __table_args__ = (UniqueConstraint("helpdesk", "delivery", name="uq_hook_delivery"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    helpdesk: Mapped[str] = mapped_column(String(20))
    delivery: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # created | outcome
    ticket_id: Mapped[str] = mapped_column(String(200), index=True)
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending | done | failed | ignored
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # what was written or recorded
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Feedback:
    ticket_id: str
    escalated: bool
    target: str | None
    accepted_suggestion: bool
    note: str | None = None


@dataclass(frozen=True)
class Stored:
    """The outcome of a feedback write."""

    ticket_id: str
    status: str  # 'created' | 'updated'
    model_version: str | None
    flags: list[str]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # sqlite drops the zone


CREATE_ATTEMPTS = 5  # tries at creating the tables, for workers that start together

# Columns added after a table was first created, with their DDL type: `create_all` creates missing tables, not
# missing columns, so a store made by an earlier version gets them here (nullable: the rows before hold null).
ADDED_COLUMNS = {"suggestions": {"unfamiliar": "BOOLEAN"}}


def add_missing_columns(engine: Any) -> list[str]:
    """Add the ADDED_COLUMNS a store lacks ("table.column" of each added); a column another worker added first
    is found on the second look. Rows already stored are untouched."""
    added = []
    for table, columns in ADDED_COLUMNS.items():
        for column, kind in columns.items():
            present = {c["name"] for c in inspect(engine).get_columns(table)}
            if column in present:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                added.append(f"{table}.{column}")
            except (OperationalError, ProgrammingError):  # a worker starting beside this one added it meanwhile
                if column not in {c["name"] for c in inspect(engine).get_columns(table)}:
                    raise
    return added


class FeedbackStore:
    """The suggestions and feedback tables behind one SQLAlchemy engine."""

    def __init__(self, url: str = DEFAULT_FEEDBACK_URL):
        self.url = url
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {"connect_timeout": 5},
        )
        if sqlite:

            @event.listens_for(self.engine, "connect")
            def _pragmas(conn: Any, _record: Any) -> None:  # durable and concurrent enough for one service
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.close()

        for attempt in range(CREATE_ATTEMPTS):
            try:
                Base.metadata.create_all(self.engine)
                add_missing_columns(self.engine)
                break
            except SQLAlchemyError as err:
                # Workers starting together race to create the tables (PostgreSQL: a duplicate type name); once
                # the other's tables are committed, create_all finds them and creates nothing.
                racing = isinstance(err, (IntegrityError, ProgrammingError)) and attempt < CREATE_ATTEMPTS - 1
                if not racing:
                    unavailable = f"feedback store {self.safe_url} is unavailable: {err.__class__.__name__}"
                    raise StoreUnavailable(unavailable) from err
                time.sleep(0.2 * (attempt + 1))

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def record_suggestions(self, rows: list[dict[str, Any]]) -> None:
        """Store answers given (dicts with SuggestionRecord's fields but id and created_at)."""
        if not rows:
            return
        now = _now()
        try:
            with Session(self.engine) as session, session.begin():  # one multi-row INSERT, no ORM objects
                session.execute(insert(SuggestionRecord), [{"created_at": now, **row} for row in rows])
        except SQLAlchemyError as err:
            raise StoreUnavailable(f"could not record suggestions: {err.__class__.__name__}") from err

    def record_feedback(self, feedback: Feedback, known_targets: set[str] | None = None) -> Stored:
        """Insert or update the ticket's feedback, joined to the latest suggestion made for it."""
        flags = []
        known = known_targets is None or feedback.target is None or feedback.target in known_targets
        if not known:
            flags.append("unknown_target")
        for attempt in range(2):  # a concurrent first write of the same ticket turns ours into an update
            try:
                with Session(self.engine) as session, session.begin():
                    latest = session.scalars(
                        select(SuggestionRecord)
                        .where(SuggestionRecord.ticket_id == feedback.ticket_id)
                        .order_by(SuggestionRecord.id.desc())
                        .limit(1)
                    ).first()
                    if latest is None:
                        flags.append("no_suggestion_recorded")
                    row = session.get(FeedbackRecord, feedback.ticket_id, with_for_update=True)
                    now = _now()
                    values = {
                        "escalated": feedback.escalated,
                        "target": feedback.target,
                        "accepted_suggestion": feedback.accepted_suggestion,
                        "note": feedback.note,
                        "target_known": known,
                        "model_name": latest.model_name if latest else None,
                        "model_version": latest.model_version if latest else None,
                        "suggestion_id": latest.id if latest else None,
                        "updated_at": now,
                    }
                    if row is None:
                        session.add(FeedbackRecord(ticket_id=feedback.ticket_id, created_at=now, revisions=1, **values))
                        status = "created"
                    else:
                        for key, value in values.items():
                            setattr(row, key, value)
                        row.revisions += 1
                        status = "updated"
                return Stored(feedback.ticket_id, status, values["model_version"], flags)
            except IntegrityError:
                if attempt:
                    raise StoreUnavailable("could not store feedback: conflicting writes") from None
                flags = [f for f in flags if f == "unknown_target"]
            except SQLAlchemyError as err:
                raise StoreUnavailable(f"could not store feedback: {err.__class__.__name__}") from err
        raise AssertionError("unreachable")

    def feedback_frame(self, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
        """Feedback rows (all, or last updated in [since, until)) joined to the suggestion each answers."""
        query = select(FeedbackRecord, SuggestionRecord).outerjoin(
            SuggestionRecord, SuggestionRecord.id == FeedbackRecord.suggestion_id
        )
        if since is not None:
            query = query.where(FeedbackRecord.updated_at >= since)
        if until is not None:
            query = query.where(FeedbackRecord.updated_at < until)
        try:
            with Session(self.engine) as session:
                rows = session.execute(query).all()
        except SQLAlchemyError as err:
            raise StoreUnavailable(f"could not read feedback: {err.__class__.__name__}") from err
        records = []
        for fb, sug in rows:
            records.append(
                {
                    "ticket_id": fb.ticket_id,
                    "escalated": fb.escalated,
                    "target": fb.target,
                    "accepted_suggestion": fb.accepted_suggestion,
                    "note": fb.note,
                    "target_known": fb.target_known,
                    "model_version": fb.model_version,
                    "updated_at": _aware(fb.updated_at),
                    "decision": sug.decision if sug else None,
                    "suggested": list(sug.targets) if sug else [],
                }
            )
        columns = [
            "ticket_id",
            "escalated",
            "target",
            "accepted_suggestion",
            "note",
            "target_known",
            "model_version",
            "updated_at",
            "decision",
            "suggested",
        ]
        return pd.DataFrame.from_records(records, columns=columns)

    def summary(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """Acceptance and escalation rates per model version, and volume per target, over a time window."""
        until = _aware(until) if until else _now()
        since = _aware(since) if since else until - timedelta(days=30)
        try:
            with Session(self.engine) as session:
                suggestions = session.execute(
                    select(
                        SuggestionRecord.model_version,
                        SuggestionRecord.decision,
                        SuggestionRecord.escalation_probability,
                        SuggestionRecord.created_at,
                        SuggestionRecord.unfamiliar,
                    ).where(SuggestionRecord.created_at >= since, SuggestionRecord.created_at < until)
                ).all()
        except SQLAlchemyError as err:
            raise StoreUnavailable(f"could not read suggestions: {err.__class__.__name__}") from err
        frame = self.feedback_frame(since, until)
        versions: dict[str, dict[str, Any]] = {}
        for version, decision, *_ in suggestions:
            v = versions.setdefault(str(version), _empty_version())
            v["suggestions"] += 1
            v["decisions"][decision] = v["decisions"].get(decision, 0) + 1
        for row in frame.itertuples(index=False):
            v = versions.setdefault(str(row.model_version), _empty_version())
            v["feedback"] += 1
            v["_escalated"] += int(row.escalated)
            v["_accepted"] += int(row.accepted_suggestion)
            if row.escalated and row.suggested:
                v["_escalated_with_suggestion"] += 1
                v["_top1"] += int(row.target == row.suggested[0])
                v["_top3"] += int(row.target in row.suggested[:3])
            if row.decision == "resolve_first":
                v["_resolve_first"] += 1
                v["_avoided"] += int(not row.escalated)
        for v in versions.values():
            n, esc = v["feedback"], v.pop("_escalated_with_suggestion")
            v["escalation_rate"] = v.pop("_escalated") / n if n else None
            v["agent_accepted_rate"] = v.pop("_accepted") / n if n else None
            v["accepted_top1_rate"] = v.pop("_top1") / esc if esc else None
            v["accepted_top3_rate"] = v.pop("_top3") / esc if esc else None
            told, avoided = v.pop("_resolve_first"), v.pop("_avoided")
            v["escalations_avoided"] = avoided
            v["resolve_first_kept_rate"] = avoided / told if told else None
        per_target = (
            frame[frame["escalated"]].groupby("target").size().sort_values(ascending=False).to_dict()
            if len(frame)
            else {}
        )
        return {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "versions": versions,
            "escalations_per_target": {str(k): int(v) for k, v in per_target.items()},
            "unknown_targets": int((~frame["target_known"]).sum()) if len(frame) else 0,
            "weeks": _weeks(suggestions, frame),
            "acceptance_per_target": _acceptance(frame),
        }


def _week(moment: datetime) -> str:
    return _aware(moment).strftime(ISO_WEEK)


def _weeks(suggestions: list[Any], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per ISO week: the predicted escalation rate (mean P(escalation) of the suggestions given that week) and the
    observed one (the outcomes recorded that week), the share of outcomes whose suggestion was accepted, and the
    share of the week's suggestions whose ticket was unlike the training tickets (of those whose model says)."""
    weeks: dict[str, dict[str, Any]] = {}

    def week(moment: datetime) -> dict[str, Any]:
        empty = {"suggestions": 0, "_p": 0.0, "outcomes": 0, "_esc": 0, "_acc": 0, "_known": 0, "unfamiliar": 0}
        return weeks.setdefault(_week(moment), empty)

    for _, _, probability, created, unfamiliar in suggestions:
        w = week(created)
        w["suggestions"] += 1
        w["_p"] += float(probability)
        if unfamiliar is not None:
            w["_known"] += 1
            w["unfamiliar"] += int(unfamiliar)
    for row in frame.itertuples(index=False):
        w = week(row.updated_at)
        w["outcomes"] += 1
        w["_esc"] += int(row.escalated)
        w["_acc"] += int(row.accepted_suggestion)
    out = []
    for name, w in sorted(weeks.items()):
        n, m, known = w["suggestions"], w["outcomes"], w["_known"]
        out.append(
            {
                "week": name,
                "suggestions": n,
                "predicted_rate": w["_p"] / n if n else None,
                "outcomes": m,
                "observed_rate": w["_esc"] / m if m else None,
                "accepted_rate": w["_acc"] / m if m else None,
                "unfamiliar": w["unfamiliar"],
                "unfamiliar_rate": w["unfamiliar"] / known if known else None,
            }
        )
    return out


def _acceptance(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per target the tickets went to (first line for those resolved there): outcomes and the share accepted."""
    if not len(frame):
        return {}
    went = frame["target"].where(frame["escalated"], "first line").fillna("first line")
    grouped = frame.assign(went=went).groupby("went")["accepted_suggestion"].agg(["size", "mean"])
    return {str(t): {"outcomes": int(r["size"]), "accepted_rate": float(r["mean"])} for t, r in grouped.iterrows()}


def _empty_version() -> dict[str, Any]:
    return {
        "suggestions": 0,
        "feedback": 0,
        "decisions": {},
        "_escalated": 0,
        "_accepted": 0,
        "_escalated_with_suggestion": 0,
        "_top1": 0,
        "_top3": 0,
        "_resolve_first": 0,
        "_avoided": 0,
    }
