"""The outbox: accepted helpdesk events and their state, in the feedback database (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from serving.feedback_store import FeedbackStore, HookEventRecord, StoreUnavailable
from serving.hooks.connectors import HookEvent

LEASE_SECONDS = 300.0  # how long a worker holds an event it took before another may take it


def now() -> datetime:
    return datetime.now(UTC)


class Outbox:
    """Add events once, hand out the due ones, and record how each ended."""

    def __init__(self, store: FeedbackStore):
        self.engine = store.engine

    def add(self, helpdesk: str, delivery: str, event: HookEvent) -> bool:
        """Store a pending event; False when this delivery was stored before (nothing changes)."""
        at = now()
        row = HookEventRecord(
            helpdesk=helpdesk,
            delivery=delivery[:200],
            kind=event.kind,
            ticket_id=event.ticket_id[:200],
            event=event.as_dict(),
            status="pending",
            attempts=0,
            next_attempt_at=at,
            created_at=at,
            updated_at=at,
        )
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
        except IntegrityError:
            return False
        except SQLAlchemyError as err:
            raise StoreUnavailable(f"could not store the {helpdesk} event: {err.__class__.__name__}") from err
        return True

    def due(self, limit: int = 20, lease_seconds: float = LEASE_SECONDS) -> list[HookEventRecord]:
        """Pending events whose time has come, oldest first (detached copies), each claimed for this worker: its
        next attempt moves `lease_seconds` on, so another worker (`serve --workers N`, another replica) does not take
        it too, and takes it after the lease if this one dies before saying how it ended."""
        at = now()
        query = (
            select(HookEventRecord)
            .where(HookEventRecord.status == "pending", HookEventRecord.next_attempt_at <= at)
            .order_by(HookEventRecord.id)
            .limit(limit)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            rows = list(session.scalars(query))
            session.expunge_all()
        lease, claimed = at + timedelta(seconds=lease_seconds), []
        try:
            for row in rows:
                if self._claim(row.id, at, lease):
                    row.next_attempt_at = lease  # the claim this worker holds (what `release` hands back)
                    claimed.append(row)
        except SQLAlchemyError:  # the store failed part-way: the events claimed so far are handed back if it can
            with contextlib.suppress(SQLAlchemyError):
                self.release(claimed)
            raise
        return claimed

    def reachable(self) -> bool:
        """Whether the store answers at all (after a failed write: the row's own trouble, or the store down)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def _claim(self, row_id: int, at: datetime, lease: datetime) -> bool:
        """Whether this worker took the event: the update finds it still due only once (the database serialises
        the writes; PostgreSQL re-reads the row after the other writer commits)."""
        claim = (
            update(HookEventRecord)
            .where(
                HookEventRecord.id == row_id,
                HookEventRecord.status == "pending",
                HookEventRecord.next_attempt_at <= at,
            )
            .values(next_attempt_at=lease, updated_at=at)
        )
        with Session(self.engine) as session, session.begin():
            return session.execute(claim).rowcount == 1

    def next_due(self) -> datetime | None:
        query = select(func.min(HookEventRecord.next_attempt_at)).where(HookEventRecord.status == "pending")
        with Session(self.engine) as session:
            found = session.scalar(query)
        return found if found is None or found.tzinfo else found.replace(tzinfo=UTC)

    def _set(self, row_id: int, **values: Any) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(HookEventRecord).where(HookEventRecord.id == row_id).values(updated_at=now(), **values)
            )

    def done(self, row: HookEventRecord, result: dict[str, Any], status: str = "done") -> None:
        self._set(row.id, status=status, result=result, attempts=row.attempts + 1, last_error=None)

    def retry(self, row: HookEventRecord, error: str, wait_seconds: float, max_attempts: int | None) -> None:
        """Try again in `wait_seconds`; failed once `max_attempts` were made (None: never)."""
        attempts = row.attempts + 1
        if max_attempts is not None and attempts >= max_attempts:
            self._set(row.id, status="failed", attempts=attempts, last_error=error)
        else:
            later = now() + timedelta(seconds=wait_seconds)
            self._set(row.id, attempts=attempts, last_error=error, next_attempt_at=later)

    def release(self, rows: list[HookEventRecord]) -> None:
        """Hand back events claimed by `due` and not attempted: due again at once, their attempts unchanged. One whose
        attempt ended meanwhile (its attempts moved on), or that another worker claimed after this one's lease ran
        out (its lease moved on), is left as it is."""
        at = now()
        with Session(self.engine) as session, session.begin():
            for row in rows:
                session.execute(
                    update(HookEventRecord)
                    .where(
                        HookEventRecord.id == row.id,
                        HookEventRecord.status == "pending",
                        HookEventRecord.attempts == row.attempts,
                        HookEventRecord.next_attempt_at == row.next_attempt_at,
                    )
                    .values(next_attempt_at=at, updated_at=at)
                )

    def fail(self, row: HookEventRecord, error: str) -> None:
        self._set(row.id, status="failed", attempts=row.attempts + 1, last_error=error)

    def suggestion(self, helpdesk: str, ticket_id: str) -> dict[str, Any]:
        """What the note written for this ticket suggested (`top_target`, `decision`); empty when none was."""
        query = (
            select(HookEventRecord.result)
            .where(
                HookEventRecord.helpdesk == helpdesk,
                HookEventRecord.ticket_id == ticket_id,
                HookEventRecord.kind == "created",
                HookEventRecord.status == "done",
            )
            .order_by(HookEventRecord.id.desc())
            .limit(1)
        )
        with Session(self.engine) as session:
            result = session.scalar(query)
        return dict(result or {})

    def status(self) -> dict[str, Any]:
        """Events per helpdesk and state, the oldest pending one and the latest error."""
        counts: dict[str, dict[str, int]] = {}
        with Session(self.engine) as session:
            for helpdesk, state, n in session.execute(
                select(HookEventRecord.helpdesk, HookEventRecord.status, func.count()).group_by(
                    HookEventRecord.helpdesk, HookEventRecord.status
                )
            ):
                counts.setdefault(helpdesk, {"pending": 0, "done": 0, "failed": 0, "ignored": 0})[state] = n
            oldest = session.scalar(
                select(func.min(HookEventRecord.created_at)).where(HookEventRecord.status == "pending")
            )
            error = session.execute(
                select(HookEventRecord.helpdesk, HookEventRecord.ticket_id, HookEventRecord.last_error)
                .where(HookEventRecord.last_error.is_not(None))
                .order_by(HookEventRecord.updated_at.desc())
                .limit(1)
            ).first()
        return {
            "helpdesks": counts,
            "oldest_pending": oldest,
            "last_error": f"{error[0]} ticket {error[1]}: {error[2]}" if error else None,
        }
