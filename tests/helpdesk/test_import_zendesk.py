"""`escalation import zendesk` against a fake Zendesk read API (a real HTTP server): labels from the escalation
paths the fake was built with, nothing written at or after the first hop in the training text, resumable after the
helpdesk fails half way, incremental afterwards, and import -> train -> predict end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from serving.app import create_app
from serving.feedback_store import FeedbackStore
from tests.conftest import running, store_settings
from tests.helpdesk.fake_zendesk import GROUPS, LEAD_ID, Account, FakeZendesk, stamp
from tests.helpdesk.importing import (
    LEAD,
    SINCE,
    Imported,
    imported_and_trained,
    labelled_as_built,
    one_line_per_ticket,
    resumed_as_one_run,
    routes_new_tickets,
    run,
    served_outcomes_read_the_paths,
    settings_for,
    started,
)
from tests.hooks.test_hooks import SECRET, events, payload, post, signed, until
from training.importer import import_history


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    yield from started(FakeZendesk(Account()))


def test_labels_follow_each_path_and_nothing_after_the_first_hop_reaches_training(
    zendesk: FakeZendesk, tmp_path: Path
) -> None:
    zendesk.fail("/api/v2/incremental/", 200, 429)  # the second page is rate-limited once: waited out
    zendesk.fail("/api/v2/tickets/1030/audits.json", 500)  # and one ticket's audits fail once
    built = zendesk.account.tickets
    groups = {f"zendesk:{gid}": name for gid, name in GROUPS.items()}
    frame = labelled_as_built(
        zendesk, tmp_path, {str(t.id): t for t in built.values()}, ("open", "deleted"), LEAD_ID, groups
    )
    lead = next(t for t in built.values() if t.kind == "lead")
    assert frame.loc[str(lead.id), "path_at"] == " > ".join(  # created, moved to Billing 30 min on, the lead 1 h later
        stamp(lead.created + timedelta(minutes=m)) for m in (0, 30, 90)
    )
    html = [str(t.id) for t in built.values() if t.kind == "html"]
    assert not frame.loc[html, "text"].str.contains("<").any() and frame.loc[html, "text"].str.contains("\n- ").all()
    assert frame.loc["1001", "resolution"].startswith("LEAK resolution: all sorted for ticket 1001")
    assert zendesk.requests.count("/api/v2/tickets/1030/audits.json") == 2  # its first page retried after the 500
    assert zendesk.count("/api/v2/incremental/tickets/cursor.json") == 4  # 3 pages, one met a 429


def test_an_interrupted_import_resumes_to_the_same_file_and_then_fetches_only_what_changed(
    zendesk: FakeZendesk, tmp_path: Path
) -> None:
    output, _ = resumed_as_one_run(zendesk, FakeZendesk(Account()), tmp_path, "/api/v2/incremental/")

    # later: one ticket reopened, moved to Engineering and solved again; one deleted
    account, later = zendesk.account, max(t.updated for t in zendesk.account.tickets.values()) + timedelta(days=1)
    account.reroute(1001, later, "300")
    account.change(1002, later + timedelta(hours=3), status="deleted")
    zendesk.requests.clear()
    again = import_history("zendesk", output, settings_for(zendesk), None, None, [LEAD], progress=False)
    assert again.fetched == 2 and zendesk.audits_fetched() == [1001]
    frame = pd.read_csv(output, dtype=str).set_index("ticket_id")
    assert frame.loc["1001", ["target", "path"]].tolist() == ["Engineering", "Support > Engineering"]
    assert "1002" not in frame.index and len(frame) == 87
    one_line_per_ticket(output, 90)  # none deleted
    assert not again.config_written and again.config_changes == []


def test_a_ticket_deleted_between_the_feed_and_its_audits_is_left_out(zendesk: FakeZendesk, tmp_path: Path) -> None:
    zendesk.fail("/api/v2/tickets/1040/audits.json", 404)
    code, said = run(zendesk, tmp_path / "history.csv", "--since", SINCE, "--no-progress")
    assert code == 0, said
    assert "1040" not in set(pd.read_csv(tmp_path / "history.csv", dtype=str)["ticket_id"])
    assert "87 solved tickets" in said


def test_a_night_the_helpdesk_stays_down_keeps_yesterdays_export(zendesk: FakeZendesk, tmp_path: Path) -> None:
    output = tmp_path / "history.csv"
    assert run(zendesk, output, "--since", SINCE, "--no-progress")[0] == 0
    before = output.read_bytes()
    zendesk.fail("/api/v2/incremental/", *[503] * 6)
    code, said = run(zendesk, output, "--no-progress")
    assert code == 1 and said.strip().splitlines() == [
        "error: zendesk GET /api/v2/incremental/tickets/cursor.json: HTTP 503 after 6 tries; "
        "run the import again to resume where it stopped"
    ]
    assert output.read_bytes() == before


def test_a_rerun_keeps_an_edited_config_and_says_what_it_would_change(zendesk: FakeZendesk, tmp_path: Path) -> None:
    output = tmp_path / "history.parquet"
    assert run(zendesk, output, "--since", SINCE, "--no-progress")[0] == 0
    config = output.with_suffix(".yaml")
    edited = yaml.safe_load(config.read_text()) | {"min_examples": 5}
    config.write_text(yaml.safe_dump(edited, sort_keys=False))
    code, said = run(zendesk, output, "--first-line", "Support", "--first-line", "Billing", "--no-progress")
    assert code == 0, said
    assert yaml.safe_load(config.read_text()) == edited  # the user's file is left as it is
    assert "kept " + str(config) in said and "teams.first_line: ['Support'] -> ['Support', 'Billing']" in said
    assert "first line: Support, Billing (given with --first-line)" in said
    frame = pd.read_parquet(output).set_index("ticket_id")
    # the options win over the kept config: Billing is first line now, so only Engineering's tickets are escalated
    assert set(frame["target"]) == {"Support", "Billing", "Engineering"}
    assert "escalated" not in frame and said.count("(20 escalated)") == 1, said
    code, said = run(zendesk, output, "--first-line", "Support", "--first-line", "Acounts", "--no-progress")
    assert code == 1 and said.strip() == (  # a typo among several names is caught too
        "error: --first-line 'Acounts': no ticket was ever in that group (groups: Billing, Engineering, Support)"
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    yield from imported_and_trained(FakeZendesk(Account()), tmp_path_factory.mktemp("imported"))


@pytest.mark.slow
def test_import_then_train_then_predict_learns_functional_and_hierarchical_targets(
    imported: Imported, tmp_path: Path
) -> None:
    routes_new_tickets(imported, tmp_path, "all sorted for ticket ")


@pytest.mark.slow
def test_a_live_outcome_reads_the_tickets_path_as_the_import_did(imported: Imported) -> None:
    """Solved events name only the final group: Billing for a ticket the team lead resolved, Support for one that
    Engineering fixed before it came back to close. The worker reads each ticket's history, so the feedback says
    team-lead and Engineering, as the imported labels do, with no ESCALATION_HOOK_GROUPS at all."""
    assert isinstance(imported.fake, FakeZendesk)
    tickets = imported.fake.account.tickets.values()
    lead, back = (next(t for t in tickets if t.kind == kind) for kind in ("lead", "back"))
    events = []
    for n, ticket in enumerate([lead, back]):
        body = json.loads(payload("zendesk_status_solved"))
        body["id"] = f"solved-{n}"
        body["detail"].update(id=str(ticket.id), group_id=ticket.group_id)
        events.append(body)
    served_outcomes_read_the_paths(imported, str(lead.id), str(back.id), events, "solved")


@pytest.mark.slow
def test_a_live_outcome_of_a_ticket_reopened_or_deleted_since_is_not_guessed(imported: Imported) -> None:
    """By the time the worker reads it, one solved ticket is open again and one is deleted: the first is ignored
    (its outcome comes with its next solve), the second fails with the reason; neither is recorded as first line."""
    assert isinstance(imported.fake, FakeZendesk)
    tickets = imported.fake.account.tickets.values()
    reopened, deleted = (next(t for t in tickets if t.kind == kind) for kind in ("open", "deleted"))
    settings = imported.settings.model_copy(update={"zendesk_webhook_secret": SECRET["zendesk"], "hook_groups": {}})
    settings = settings.model_copy(update=store_settings(imported.folder / "gone").model_dump(include={"feedback_url"}))
    (imported.folder / "gone").mkdir(exist_ok=True)
    store = FeedbackStore(settings.feedback_url)
    with running(create_app(settings), ready="/readyz") as url:
        for n, ticket in enumerate([reopened, deleted]):
            body = json.loads(payload("zendesk_status_solved"))
            body["id"] = f"gone-{n}"
            body["detail"].update(id=str(ticket.id), group_id=ticket.group_id)
            raw = json.dumps(body).encode()
            assert post(url, "zendesk", raw, signed("zendesk", raw, delivery=f"gone-{n}")).status_code == 202
        until(lambda: {e.status for e in events(store).values()} == {"ignored", "failed"}, what="both ended")
    ended = events(store)
    assert ended[str(reopened.id)].result == {"recorded": False, "why": "reopened before its path was read"}
    assert ended[str(deleted.id)].last_error == f"zendesk ticket {deleted.id} is gone (deleted since it was solved)"
    assert store.feedback_frame().empty


@pytest.mark.slow
def test_a_model_imported_from_another_account_does_not_read_this_ones_paths(imported: Imported) -> None:
    """The served model came from the account at 127.0.0.1; the connector now points at `localhost` (another
    address): the worker does not read paths there, it falls back to the final group (unmapped here: ignored)."""
    assert isinstance(imported.fake, FakeZendesk)
    lead = next(t for t in imported.fake.account.tickets.values() if t.kind == "lead")
    other = imported.fake.url.replace("127.0.0.1", "localhost")
    update = {"zendesk_webhook_secret": SECRET["zendesk"], "hook_groups": {}, "zendesk_url": other}
    settings = imported.settings.model_copy(update=update)
    (imported.folder / "other").mkdir(exist_ok=True)
    settings = settings.model_copy(
        update=store_settings(imported.folder / "other").model_dump(include={"feedback_url"})
    )
    store = FeedbackStore(settings.feedback_url)
    imported.fake.requests.clear()
    with running(create_app(settings), ready="/readyz") as url:
        body = json.loads(payload("zendesk_status_solved"))
        body["id"] = "other-0"
        body["detail"].update(id=str(lead.id), group_id=lead.group_id)
        raw = json.dumps(body).encode()
        assert post(url, "zendesk", raw, signed("zendesk", raw, delivery="other-0")).status_code == 202
        until(lambda: str(lead.id) in events(store) and events(store)[str(lead.id)].status == "ignored", what="ended")
    assert events(store)[str(lead.id)].result == {
        "recorded": False,
        "why": "group zendesk:200 is not mapped to a target (ESCALATION_HOOK_GROUPS)",
    }
    assert imported.fake.requests == []  # nothing read at the other address (the same fake answers both)
