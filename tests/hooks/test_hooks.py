"""Helpdesk webhooks end to end: signed events from payloads written after each helpdesk's documentation, the real
app on a loopback port with a real trained model, and a fake helpdesk (a real HTTP server) taking the write-backs."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from features.settings import Settings
from serving.app import create_app
from serving.batcher import Busy
from serving.feedback_store import FeedbackStore, HookEventRecord
from serving.hooks.connectors import HookEvent, Zendesk
from serving.hooks.outbox import Outbox
from serving.hooks.worker import HookWorker
from serving.model_store import LoadedModel, ModelUnavailable
from serving.state import AppState
from tests.conftest import Trained, bearer, running, serve_process, store_settings
from tests.hooks.fake_helpdesk import FakeHelpdesk
from training.sample_data import FIRST_LINE

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = {"zendesk": "zd-signing-secret", "zammad": "zm-signing-secret", "jira": "jira-signing-secret"}
AUTH = {
    "zendesk": "Basic " + base64.b64encode(b"agent@example.com/token:zd-api-token").decode(),
    "zammad": "Token token=zm-api-token",
    "jira": "Basic " + base64.b64encode(b"jira@example.com:jira-api-token").decode(),
}
GROUPS = {"zendesk:360001": "billing", "zammad:Billing": "billing", "jira:Payments": "billing"}


def payload(name: str) -> bytes:
    return json.dumps(json.loads((PAYLOADS / f"{name}.json").read_text())).encode()


def signed(helpdesk: str, body: bytes, delivery: str = "d-1", secret: str | None = None) -> dict[str, str]:
    key = (secret or SECRET[helpdesk]).encode()
    if helpdesk == "zendesk":
        stamp = "2026-11-30T09:18:11Z"
        mac = base64.b64encode(hmac.new(key, stamp.encode() + body, hashlib.sha256).digest()).decode()
        return {"X-Zendesk-Webhook-Signature": mac, "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    if helpdesk == "zammad":
        mac = hmac.new(key, body, hashlib.sha1).hexdigest()
        return {"X-Hub-Signature": f"sha1={mac}", "X-Zammad-Delivery": delivery, "X-Zammad-Trigger": "escalation"}
    mac = hmac.new(key, body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature": f"sha256={mac}", "X-Atlassian-Webhook-Identifier": delivery}


@pytest.fixture
def desks() -> Iterator[dict[str, FakeHelpdesk]]:
    found = {name: FakeHelpdesk(AUTH[name]).start() for name in AUTH}
    yield found
    for desk in found.values():
        desk.stop()


def hook_settings(trained: Trained, folder: Path, desks: dict[str, FakeHelpdesk]) -> Settings:
    """The trained champion's registry, this test's own feedback store and outbox, every connector on."""
    own = store_settings(folder)
    return trained.settings.model_copy(
        update={
            "feedback_url": own.feedback_url,
            "keys_file": own.keys_file,
            "zendesk_url": desks["zendesk"].url,
            "zendesk_email": "agent@example.com",
            "zendesk_token": "zd-api-token",
            "zendesk_webhook_secret": SECRET["zendesk"],
            "zammad_url": desks["zammad"].url,
            "zammad_token": "zm-api-token",
            "zammad_webhook_secret": SECRET["zammad"],
            "jira_url": desks["jira"].url,
            "jira_email": "jira@example.com",
            "jira_token": "jira-api-token",
            "jira_webhook_secret": SECRET["jira"],
            "hook_groups": GROUPS,
            "hook_retry_seconds": 0.2,
            "console_url": "https://escalation.example",
        }
    )


def post(url: str, helpdesk: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/hooks/{helpdesk}", content=body, headers={"Content-Type": "application/json", **headers}
    )


def status(url: str, settings: Settings) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/hooks/status", headers=bearer(settings)).json()


def events(store: FeedbackStore) -> dict[str, HookEventRecord]:
    """The outbox's rows by ticket id, as they are now."""
    with Session(store.engine, expire_on_commit=False) as session:
        rows = list(session.scalars(select(HookEventRecord)))
        session.expunge_all()
    return {row.ticket_id: row for row in rows}


def until(holds: Callable[[], bool], seconds: float = 10, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not holds():
        assert time.monotonic() < deadline, f"{what} did not hold within {seconds} s"
        time.sleep(0.05)


def created(settings: Settings, ticket_id: str, subject: str, description: str) -> HookEvent:
    """A Zendesk `ticket.created` event for another ticket, read by the real connector."""
    body = json.loads((PAYLOADS / "zendesk_ticket_created.json").read_text())
    body["detail"].update(id=ticket_id, subject=subject, description=description)
    return Zendesk(settings).parse(body)


def test_a_signed_zendesk_ticket_gets_one_private_note_and_tags_with_no_personal_data(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks)
    body = payload("zendesk_ticket_created")
    with running(create_app(settings), ready="/readyz") as url:
        started = time.perf_counter()
        answer = post(url, "zendesk", body, signed("zendesk", body))
        took = time.perf_counter() - started
        assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
        assert took < 1.0  # answered before scoring, which happens in the background
        again = post(url, "zendesk", body, signed("zendesk", body))  # the same delivery twice
        assert again.status_code == 202 and again.json()["status"] == "duplicate"
        (write,) = desks["zendesk"].wait_for(1)
        time.sleep(0.5)
        assert len(desks["zendesk"].writes) == 1  # one note, not two
        assert status(url, settings)["helpdesks"]["zendesk"] == {"pending": 0, "done": 1, "failed": 0, "ignored": 0}
    assert write.method == "PUT" and write.path == "/api/v2/tickets/35436.json"
    ticket = write.body["ticket"]
    assert ticket["comment"]["public"] is False
    assert ticket["additional_tags"] == ["escalation-suggested", "escalation-target-billing"]
    note = ticket["comment"]["body"]
    assert "Decision: " in note and "1. billing (specialist team)" in note and "Similar resolved tickets:" in note
    assert "Handoff note:" in note and "https://escalation.example/console?ticket=35436" in note
    assert "jo.doe@example.com" not in note and "170 1234567" not in note  # masked as the API masks


def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks)
    with running(create_app(settings), ready="/readyz") as url:
        for helpdesk, name in (
            ("zendesk", "zendesk_ticket_created"),
            ("zammad", "zammad_ticket_created"),
            ("jira", "jira_issue_created"),
        ):
            body = payload(name)
            assert post(url, helpdesk, body, {}).status_code == 401
            forged = post(url, helpdesk, body, signed(helpdesk, body, secret="not-the-secret"))
            assert forged.status_code == 401 and forged.json()["detail"] == "webhook signature missing or wrong"
            tampered = post(url, helpdesk, body.replace(b"twice", b"thrice"), signed(helpdesk, body))
            assert tampered.status_code == 401
        assert post(url, "freshdesk", b"{}", {}).status_code == 404
        assert status(url, settings)["helpdesks"] == {}
    assert all(not d.writes for d in desks.values())


def test_a_helpdesk_that_is_down_then_back_gets_the_note_once(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks)
    desks["zendesk"].fail(500, 503, 429)  # down twice, then rate-limited with Retry-After: 1
    body = payload("zendesk_ticket_created")
    with running(create_app(settings), ready="/readyz") as url:
        assert post(url, "zendesk", body, signed("zendesk", body)).status_code == 202
        desks["zendesk"].wait_for(1, seconds=30)
        time.sleep(0.5)
        assert len(desks["zendesk"].writes) == 1 and not desks["zendesk"].failures
        assert status(url, settings)["helpdesks"]["zendesk"]["done"] == 1


def serve(settings: Settings, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`escalation serve` in its own process, configured through the environment as an operator would."""
    names = ("feedback_url", "keys_file", "jira_url", "jira_email", "jira_token", "jira_webhook_secret")
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri, "ESCALATION_POLL_SECONDS": "0"}
    env.update({f"ESCALATION_{n.upper()}": str(getattr(settings, n)) for n in names})
    env.update(ESCALATION_HOOK_RETRY_SECONDS="0.5", ESCALATION_HOOK_GROUPS=json.dumps(GROUPS))
    return serve_process(env, folder / "server.log")


def test_events_pending_when_the_server_is_killed_are_written_after_a_restart(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks)
    desks["jira"].fail(*[503] * 1000)  # Jira is down for as long as the first server lives
    body = payload("jira_issue_created")
    process, url = serve(settings, tmp_path)
    try:
        assert post(url, "jira", body, signed("jira", body, delivery="j-1")).status_code == 202
        for _ in range(200):
            if status(url, settings)["last_error"]:
                break
            time.sleep(0.1)
        assert status(url, settings)["helpdesks"]["jira"]["pending"] == 1
    finally:
        process.kill()  # SIGKILL: no shutdown, nothing flushed but what the outbox already holds
        process.wait()
    assert desks["jira"].writes == []
    with desks["jira"].lock:
        desks["jira"].failures.clear()  # Jira is back
    process, url = serve(settings, tmp_path)
    try:
        (write,) = desks["jira"].wait_for(1)
        time.sleep(0.5)
        assert len(desks["jira"].writes) == 1 and status(url, settings)["helpdesks"]["jira"]["done"] == 1
    finally:
        process.terminate()
        process.wait(60)
    assert write.path == "/rest/servicedeskapi/request/SUP-42/comment"
    assert write.body["public"] is False and "billing" in write.body["body"]


def test_zammad_gets_an_internal_note_and_its_tags(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks)
    body = payload("zammad_ticket_created")
    with running(create_app(settings), ready="/readyz") as url:
        assert post(url, "zammad", body, signed("zammad", body, delivery="zm-1")).status_code == 202
        writes = desks["zammad"].wait_for(3)  # the note, then one call per tag
    note, *tags = writes
    assert note.path == "/api/v1/ticket_articles"
    assert note.body["ticket_id"] == 81 and note.body["internal"] is True and note.body["type"] == "note"
    assert "billing" in note.body["body"] and "emily@example.com" not in note.body["body"]
    assert [t.path for t in tags] == ["/api/v1/tags/add"] * 2
    assert [t.body["item"] for t in tags] == ["escalation-suggested", "escalation-target-billing"]
    assert all(t.body["object"] == "Ticket" and t.body["o_id"] == 81 for t in tags)


def test_outcomes_come_back_as_feedback(trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]) -> None:
    settings = hook_settings(trained, tmp_path, desks)
    with running(create_app(settings), ready="/readyz") as url:
        created, solved = payload("zendesk_ticket_created"), payload("zendesk_status_solved")
        assert post(url, "zendesk", created, signed("zendesk", created)).status_code == 202
        desks["zendesk"].wait_for(1)
        assert post(url, "zendesk", solved, signed("zendesk", solved)).json()["status"] == "queued"
        closed = payload("zammad_ticket_closed")  # the agent tagged the Zammad suggestion wrong
        assert post(url, "zammad", closed, signed("zammad", closed, delivery="zm-9")).status_code == 202
        resolved = payload("jira_issue_resolved")  # and the Jira one accepted
        assert post(url, "jira", resolved, signed("jira", resolved, delivery="j-9")).status_code == 202
        ignored = post(url, "jira", payload("jira_issue_created").replace(b"issue_created", b"issue_deleted"), {})
        assert ignored.status_code == 401  # unsigned: refused before anything is read
        for _ in range(100):
            counts = status(url, settings)["helpdesks"]
            if sum(c["done"] for c in counts.values()) >= 4:
                break
            time.sleep(0.1)
    rows = FeedbackStore(settings.feedback_url).feedback_frame().set_index("ticket_id")
    assert rows.loc["35436", "escalated"] and rows.loc["35436", "target"] == "billing"
    assert rows.loc["35436", "accepted_suggestion"]  # the note suggested billing, and billing solved it
    assert rows.loc["35436", "model_version"] == trained.result.version  # joined to the suggestion the note made
    assert rows.loc["81", "target"] == "billing" and not rows.loc["81", "accepted_suggestion"]
    assert rows.loc["SUP-42", "target"] == "billing" and rows.loc["SUP-42", "accepted_suggestion"]


def test_an_outcome_in_an_unmapped_group_is_not_guessed(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks).model_copy(update={"hook_groups": {}})
    solved = payload("zendesk_status_solved")
    with running(create_app(settings), ready="/readyz") as url:
        assert post(url, "zendesk", solved, signed("zendesk", solved)).status_code == 202
        for _ in range(100):
            if status(url, settings)["helpdesks"]["zendesk"]["ignored"] == 1:
                break
            time.sleep(0.1)
        assert status(url, settings)["helpdesks"]["zendesk"]["ignored"] == 1
    assert FeedbackStore(settings.feedback_url).feedback_frame().empty


def test_an_event_with_no_text_fails_at_once_and_a_busy_batcher_delays_the_others_without_failing_them(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks).model_copy(update={"batch_timeout_seconds": 2.0})
    store = FeedbackStore(settings.feedback_url)
    admin = bearer(settings)
    app = create_app(settings)
    with running(app, ready="/readyz") as url:
        state: AppState = app.state.runtime
        assert state.hook_worker is not None and state.hooks and state.batcher is not None
        state.hook_worker.stop()  # the events below wait for the next worker, claimed together as after a restart
        refund = "I was charged twice for my plan this month. Please refund one of the payments."
        for n, (ticket_id, subject, description) in enumerate(
            [("501", "", " "), ("502", "Charged twice", refund), ("503", "Charged twice", refund)]
        ):
            assert Outbox(store).add("zendesk", f"d-{n}", created(settings, ticket_id, subject, description))
        busy, let_go = threading.Event(), threading.Event()

        class Held:
            """A call that keeps the batcher busy until the test lets it go."""

            def predict(self, frame: pd.DataFrame, top_k: int, n_similar: int) -> list[Any]:
                busy.set()
                let_go.wait(30)
                return []

        def occupy() -> None:
            assert state.batcher is not None
            with contextlib.suppress(Busy):  # this caller gives up after the timeout; the call goes on
                state.batcher.predict(Held(), pd.DataFrame({"id": ["held"], "text": ["held"]}), 1, 0)  # type: ignore[arg-type]

        threading.Thread(target=occupy, daemon=True).start()
        assert busy.wait(10)
        state.hook_worker = HookWorker(state, state.hooks)
        state.hook_worker.start()
        # the two tickets wait behind the held call together, for up to 2 s: both retried, neither failed
        until(lambda: events(store)["503"].attempts == 1, what="the events that met a busy batcher retried")
        rows, shown = events(store), httpx.get(f"{url}/v1/hooks/status", headers=admin).json()
        let_go.set()
        assert (rows["501"].status, rows["501"].attempts) == ("failed", 1)
        assert rows["501"].last_error == "nothing to score: the ticket has no subject and no description"
        for ticket_id in ("502", "503"):
            assert rows[ticket_id].status == "pending" and rows[ticket_id].attempts == 1
            assert rows[ticket_id].last_error.startswith("Busy: no answer within 2 s")
        assert shown["helpdesks"]["zendesk"] == {"pending": 2, "done": 0, "failed": 1, "ignored": 0}
        assert shown["last_error"].startswith("zendesk ticket 50")
        assert "Busy: no answer within 2 s" in shown["last_error"]
        writes = desks["zendesk"].wait_for(2, seconds=10)  # on their retry, once the batcher is free
        assert sorted(w.path for w in writes) == ["/api/v2/tickets/502.json", "/api/v2/tickets/503.json"]
        until(lambda: events(store)["503"].status == "done", what="both notes recorded")
        until(lambda: events(store)["502"].status == "done", what="both notes recorded")
        shown = httpx.get(f"{url}/v1/hooks/status", headers=admin).json()
    assert shown["helpdesks"]["zendesk"] == {"pending": 0, "done": 2, "failed": 1, "ignored": 0}
    assert shown["last_error"] == "zendesk ticket 501: nothing to score: the ticket has no subject and no description"
    rows = events(store)
    assert [rows[t].attempts for t in ("501", "502", "503")] == [1, 2, 2]
    assert len(desks["zendesk"].writes) == 2


def test_a_burst_of_new_tickets_is_scored_in_one_shared_call_and_a_bad_one_fails_alone(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = hook_settings(trained, tmp_path, desks).model_copy(update={"hook_max_attempts": 1})
    store = FeedbackStore(settings.feedback_url)
    app = create_app(settings)
    texts = [
        ("Charged twice", "I was charged twice for my plan this month. Please refund one of the payments."),
        ("Cannot log in", "The login page says my password is wrong after the reset e-mail."),
        ("API errors", "Our integration gets HTTP 500 from the export endpoint since this morning."),
        ("Invoice address", "Please change the billing address printed on our invoices."),
        ("Data deletion", "Delete every record you hold about me, as the GDPR allows."),
    ]
    with running(app, ready="/readyz"):
        state: AppState = app.state.runtime
        assert state.hook_worker is not None and state.hooks and state.batcher is not None and state.model
        state.hook_worker.stop()  # the burst waits for the next worker, due together
        for n, (subject, body) in enumerate(texts):
            assert Outbox(store).add("zendesk", f"b-{n}", created(settings, f"70{n}", subject, body))
        calls, tickets = state.batcher.calls, state.batcher.tickets
        state.hook_worker = HookWorker(state, state.hooks)
        state.hook_worker.start()
        writes = desks["zendesk"].wait_for(5, seconds=30)
        assert sorted(w.path for w in writes) == [f"/api/v2/tickets/70{n}.json" for n in range(5)]
        assert (state.batcher.calls - calls, state.batcher.tickets - tickets) == (1, 5)  # one call for the five
        until(lambda: all(r.status == "done" for r in events(store).values()), what="five notes recorded")

        # a ticket that makes the router fail fails alone: the shared call is retried ticket by ticket
        state.hook_worker.stop()
        router, scoring = state.model.router, state.model.router.predict

        def fails_on_802(frame: pd.DataFrame, **kwargs: Any) -> list[Any]:
            if "802" in set(frame["id"]):
                raise ValueError("the router cannot read ticket 802")
            return scoring(frame, **kwargs)

        monkeypatch.setattr(router, "predict", fails_on_802)
        for n, (subject, body) in enumerate(texts[:3]):
            assert Outbox(store).add("zendesk", f"c-{n}", created(settings, f"80{n}", subject, body))
        state.hook_worker = HookWorker(state, state.hooks)
        state.hook_worker.start()
        writes = desks["zendesk"].wait_for(7, seconds=30)
        assert sorted(w.path for w in writes[5:]) == ["/api/v2/tickets/800.json", "/api/v2/tickets/801.json"]
        until(lambda: events(store)["802"].status == "failed", what="the bad ticket failed")
        until(lambda: events(store)["801"].status == "done", what="the others recorded")
        rows = events(store)
    assert rows["802"].last_error == "ValueError: the router cannot read ticket 802"
    assert rows["800"].status == "done" and rows["800"].result["decision"] in {"escalate", "resolve_first", "uncertain"}
    assert len(desks["zendesk"].writes) == 7


def test_an_outcome_that_arrives_before_a_model_is_loaded_waits_for_one(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    groups = {**GROUPS, "zendesk:360002": FIRST_LINE}  # solved by the first line: not an escalation
    # one attempt before an event fails: waiting for a model must not use them up
    update = {"hook_groups": groups, "poll_seconds": 0, "hook_max_attempts": 1, "hook_retry_seconds": 0.2}
    settings = hook_settings(trained, tmp_path, desks).model_copy(update=update)

    def not_yet(settings: Settings) -> LoadedModel:
        raise ModelUnavailable("no version has the alias yet")

    store = FeedbackStore(settings.feedback_url)
    app = create_app(settings, loader=not_yet)
    solved = payload("zendesk_status_solved").replace(b'"360001"', b'"360002"')
    with running(app) as url:
        state: AppState = app.state.runtime
        assert state.model is None and state.watcher is not None
        assert post(url, "zendesk", solved, signed("zendesk", solved)).status_code == 202
        until(lambda: "35436" in events(store) and events(store)["35436"].attempts >= 2, what="a second attempt")
        row = events(store)["35436"]
        assert (row.status, row.last_error) == ("pending", "NoModel: no model loaded yet")
        assert store.feedback_frame().empty
        assert state.watcher.check().status == "changed"  # the champion is loaded
        until(lambda: events(store)["35436"].status == "done", what="the outcome recorded")
    feedback = store.feedback_frame().set_index("ticket_id")
    assert not feedback.loc["35436", "escalated"] and pd.isna(feedback.loc["35436", "target"])


def test_an_event_whose_end_cannot_be_recorded_holds_up_no_other(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk]
) -> None:
    settings = hook_settings(trained, tmp_path, desks)
    store = FeedbackStore(settings.feedback_url)
    app = create_app(settings)
    with running(app, ready="/readyz") as url:
        state: AppState = app.state.runtime
        assert state.hook_worker is not None and state.hooks and url
        state.hook_worker.stop()  # both events wait for the next worker, due together as after a restart
        refund = "I was charged twice for my plan this month. Please refund one of the payments."
        for n, ticket_id in enumerate(["601", "602"]):
            assert Outbox(store).add("zendesk", f"d-{n}", created(settings, ticket_id, "Charged twice", refund))
        with store.engine.begin() as db:  # a real database error, on that one row: how its attempt ended is refused
            db.exec_driver_sql(
                "CREATE TRIGGER refuse_601 BEFORE UPDATE OF status, attempts ON hook_events "
                "WHEN NEW.ticket_id = '601' BEGIN SELECT RAISE(ABORT, 'the disk refused this row'); END"
            )
        state.hook_worker = HookWorker(state, state.hooks)
        state.hook_worker.start()
        writes = desks["zendesk"].wait_for(2, seconds=15)  # not after 601's five-minute lease
        assert [w.path for w in writes] == ["/api/v2/tickets/601.json", "/api/v2/tickets/602.json"]
        until(lambda: events(store)["602"].status == "done", what="the other event recorded")
        row = events(store)["601"]
    assert (row.status, row.attempts, row.last_error) == ("pending", 0, None)  # taken again when its lease ends
    assert row.next_attempt_at.replace(tzinfo=None) > datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=200)


@pytest.fixture
def postgres_database() -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A throwaway PostgreSQL database for the feedback store and a switch that takes it down (every connection
    ended, no new one allowed) or back up; skips with the reason when no server is reachable."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from tests.data.test_feedback_store import POSTGRES, no_postgres

    name = f"esc_down_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except OperationalError as err:  # no server to test against (any other error is the test's own)
        admin.dispose()
        no_postgres(POSTGRES, err)

    def switch(up: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'true' if up else 'false'}"))
            if not up:
                conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))

    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}", switch
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_a_store_that_goes_down_mid_burst_gets_no_more_notes_and_loses_no_event(
    trained: Trained, tmp_path: Path, desks: dict[str, FakeHelpdesk], postgres_database: tuple[str, Any]
) -> None:
    url, switch = postgres_database
    settings = hook_settings(trained, tmp_path, desks).model_copy(update={"feedback_url": url})
    store = FeedbackStore(url)
    try:
        _store_goes_down_mid_burst(settings, store, desks["zendesk"], switch)
    finally:
        store.engine.dispose()


def _store_goes_down_mid_burst(
    settings: Settings, store: FeedbackStore, desk: FakeHelpdesk, switch: Callable[[bool], None]
) -> None:
    app = create_app(settings)
    desk.on_write = lambda write: switch(False)  # the store goes down while the first note is being written
    refund = "I was charged twice for my plan this month. Please refund one of the payments."
    with running(app, ready="/readyz"):
        state: AppState = app.state.runtime
        assert state.hook_worker is not None and state.hooks
        state.hook_worker.stop()  # the three events wait for the next worker, claimed together
        for n in range(3):
            assert Outbox(store).add("zendesk", f"e-{n}", created(settings, f"90{n}", "Charged twice", refund))
        state.hook_worker = HookWorker(state, state.hooks)
        state.hook_worker.start()
        desk.wait_for(1, seconds=30)
        time.sleep(2)  # time enough for the other two notes, were any written
        assert len(desk.writes) == 1  # no note the store could not record
        desk.on_write = None
        switch(True)
        rows = events(store)
        assert {r.status for r in rows.values()} == {"pending"} and len(rows) == 3  # none lost, none failed
        assert all(r.attempts == 0 for r in rows.values())
        with store.engine.begin() as db:  # their leases run out: the worker takes them again
            db.execute(update(HookEventRecord).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        state.hook_worker.wake()
        until(lambda: all(r.status == "done" for r in events(store).values()), seconds=30, what="all three done")
    written = sorted(w.path for w in desk.writes)
    # the first ticket's note again (its end was not recorded), then the two that waited
    assert written == [f"/api/v2/tickets/90{n}.json" for n in (0, 0, 1, 2)]
