"""The outbox on SQLite and PostgreSQL: a delivery is stored once, due events come out in order, retries wait,
and the status counts what happened."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine

from serving.feedback_store import FeedbackStore
from serving.hooks.connectors import HookEvent
from serving.hooks.outbox import Outbox
from tests.data.test_feedback_store import store  # noqa: F401 - the SQLite and PostgreSQL store fixture

CREATED = HookEvent("created", "T-1", "Charged twice", "please refund", {"channel": "email"})


def test_a_delivery_is_kept_once_and_worked_through(store: FeedbackStore) -> None:  # noqa: F811
    outbox = Outbox(store)
    assert outbox.add("zendesk", "ev-1", CREATED) and not outbox.add("zendesk", "ev-1", CREATED)
    assert outbox.add("zammad", "ev-1", CREATED)  # another helpdesk's delivery ids are its own
    first, second = outbox.due(lease_seconds=0)  # taken, and free to take again at once
    assert (first.helpdesk, first.event["subject"], first.event["metadata"]) == (
        "zendesk",
        "Charged twice",
        {"channel": "email"},
    )
    outbox.retry(first, "HelpdeskBusy: HTTP 503", wait_seconds=3600, max_attempts=5)
    assert [r.helpdesk for r in outbox.due()] == ["zammad"]  # the retried one waits
    assert outbox.due() == []  # the other is this worker's until its lease ends
    assert outbox.next_due() is not None and outbox.next_due() <= datetime.now(UTC) + timedelta(seconds=301)
    outbox.done(second, {"note": "n", "top_target": "billing", "decision": "escalate"})
    assert outbox.suggestion("zammad", "T-1") == {"note": "n", "top_target": "billing", "decision": "escalate"}
    assert outbox.suggestion("zendesk", "T-1") == {}
    found = outbox.status()
    assert found["helpdesks"] == {
        "zendesk": {"pending": 1, "done": 0, "failed": 0, "ignored": 0},
        "zammad": {"pending": 0, "done": 1, "failed": 0, "ignored": 0},
    }
    assert found["last_error"] == "zendesk ticket T-1: HelpdeskBusy: HTTP 503" and found["oldest_pending"] is not None


def test_an_event_that_keeps_failing_ends_failed(store: FeedbackStore) -> None:  # noqa: F811
    outbox = Outbox(store)
    outbox.add("jira", "j-1", CREATED)
    for _ in range(3):
        (row,) = outbox.due()
        outbox.retry(row, "HelpdeskBusy: HTTP 500", wait_seconds=0, max_attempts=3)
    assert outbox.due() == [] and outbox.status()["helpdesks"]["jira"]["failed"] == 1


def test_workers_sharing_the_outbox_take_each_event_once(store: FeedbackStore) -> None:  # noqa: F811
    for i in range(40):
        Outbox(store).add("zendesk", f"ev-{i}", CREATED)
    workers = [Outbox(store) for _ in range(4)]  # as `serve --workers 4` has, each with its own connections

    def take(outbox: Outbox) -> list[str]:
        taken: list[str] = []
        for _ in range(20):  # 40 events, 5 at a time: enough turns for one worker to take them all
            taken += [r.delivery for r in outbox.due(limit=5)]
        return taken

    with ThreadPoolExecutor(4) as pool:
        shares = list(pool.map(take, workers))
    taken = [d for share in shares for d in share]
    assert sorted(taken) == sorted(f"ev-{i}" for i in range(40))  # every event, none twice


def test_claimed_events_handed_back_are_due_again_at_once_with_their_attempts(store: FeedbackStore) -> None:  # noqa: F811
    outbox = Outbox(store)
    for i in range(3):
        outbox.add("zendesk", f"ev-{i}", CREATED)
    first, second, third = outbox.due(limit=3)  # claimed for five minutes
    outbox.retry(first, "HelpdeskBusy: HTTP 503", wait_seconds=3600, max_attempts=5)
    outbox.done(second, {"note": "n"})
    assert outbox.due() == []
    outbox.release([first, second, third])  # a worker stopping before it tried the third
    (again,) = outbox.due()
    assert (again.delivery, again.attempts, again.status) == ("ev-2", 0, "pending")  # the others kept how they ended
    assert outbox.status()["helpdesks"]["zendesk"] == {"pending": 2, "done": 1, "failed": 0, "ignored": 0}


def test_an_event_another_worker_claimed_after_a_lease_ran_out_is_not_handed_back(store: FeedbackStore) -> None:  # noqa: F811
    outbox, other = Outbox(store), Outbox(store)
    outbox.add("zendesk", "ev-1", CREATED)
    (mine,) = outbox.due(lease_seconds=0)  # this worker's lease runs out at once
    (theirs,) = other.due()  # and another worker claims the event for five minutes
    outbox.release([mine])  # the first worker, late, hands back what it did not attempt
    assert other.due() == [] and outbox.due() == []  # still the other worker's: nobody takes it a third time
    other.release([theirs])
    assert [r.delivery for r in outbox.due()] == ["ev-1"]


def test_a_store_that_does_not_answer_is_told_from_one_that_does(store: FeedbackStore, tmp_path: Path) -> None:  # noqa: F811
    assert Outbox(store).reachable()
    gone = SimpleNamespace(engine=create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'feedback.db'}"))
    assert not Outbox(gone).reachable()  # type: ignore[arg-type]
