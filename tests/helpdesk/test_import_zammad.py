"""`escalation import zammad` against a fake Zammad read API (a real HTTP server): labels from the escalation paths
the fake was built with, nothing written at or after the first hop in the training text, resumable after the
helpdesk fails half way, incremental afterwards, and live outcomes read as the import did, from a model trained on
the import as it was written (import -> train -> predict itself is the Zendesk test's: the export is the same)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from features.helpdesk.source import history_source
from tests.helpdesk.fake_zammad import GROUPS, LEAD_ID, FakeZammad, Instance
from tests.helpdesk.importing import (
    LEAD,
    SINCE,
    Imported,
    imported_and_trained,
    labelled_as_built,
    one_line_per_ticket,
    resumed_as_one_run,
    served_outcomes_read_the_paths,
    settings_for,
    started,
)
from tests.hooks.test_hooks import payload
from training.importer import import_history


@pytest.fixture
def zammad() -> Iterator[FakeZammad]:
    yield from started(FakeZammad(Instance()))


def test_labels_follow_each_path_and_nothing_after_the_first_hop_reaches_training(
    zammad: FakeZammad, tmp_path: Path
) -> None:
    zammad.fail("/api/v1/tickets/search", 200, 429)  # the second page is rate-limited once: waited out
    zammad.fail("/api/v1/ticket_history/1030", 500)  # and one ticket's history fails once
    built = zammad.instance.tickets
    # the connector names a Zammad outcome's group `zammad:<name>`: the mapping joins it to the imported targets
    groups = {f"zammad:{name}": name for name in GROUPS.values()}
    # the system's auto-reply carries LEAK too: it reaches no training text either
    frame = labelled_as_built(
        zammad, tmp_path, {str(t.id): t for t in built.values()}, ("open", "deleted"), LEAD_ID, groups
    )
    html = [str(t.id) for t in built.values() if t.kind == "html"]
    assert not frame.loc[html, "text"].str.contains("<").any() and frame.loc[html, "text"].str.contains("\n- ").all()
    assert frame.loc["1001", "resolution"].startswith("LEAK resolution: all sorted for ticket 1001")
    assert set(frame["channel"]) == {"email", "web"} and set(frame["priority"]) == {"2 normal", "3 high"}
    assert zammad.requests.count("/api/v1/ticket_history/1030") == 2  # retried after the 500
    # pages of 40, each search from the last change read, to an empty page; one met a 429
    assert zammad.count("/api/v1/tickets/search") == 6


def test_an_interrupted_import_resumes_to_the_same_file_and_then_fetches_only_what_changed(
    zammad: FakeZammad, tmp_path: Path
) -> None:
    output, _ = resumed_as_one_run(zammad, FakeZammad(Instance()), tmp_path, "/api/v1/tickets/search")

    # later: one ticket reopened, moved to Engineering and closed again; one reopened by its customer
    instance = zammad.instance
    later = max(t.updated for t in instance.tickets.values()) + timedelta(days=1)
    instance.reroute(1001, later, "3")
    instance.reopen(1002, later + timedelta(hours=3))
    zammad.requests.clear()
    again = import_history("zammad", output, settings_for(zammad), None, None, [LEAD], progress=False)
    assert again.fetched == 2 and sorted(zammad.histories_fetched()) == [1001, 1002]
    frame = pd.read_csv(output, dtype=str).set_index("ticket_id")
    assert frame.loc["1001", ["target", "path"]].tolist() == ["Engineering", "Support > Engineering"]
    assert "1002" not in frame.index and len(frame) == 87 and again.open == 4  # reopened: not solved
    one_line_per_ticket(output, 91)  # none deleted
    assert not again.config_written and again.config_changes == []


def test_a_ticket_read_alone_is_what_the_search_listed(zammad: FakeZammad) -> None:
    """What a live outcome reads (`ticket` then `history`) is what the import read from the search."""
    source = history_source("zammad", settings_for(zammad))
    listed = {str(t["id"]): t for page in source.changed(None, pd.Timestamp(SINCE, tz="UTC")) for t in page.tickets}
    for ticket_id in ("1030", "1050", "1080", "1086"):  # Billing's, back to first line, the team lead's, HTML
        alone = source.ticket(ticket_id)
        assert alone == listed[ticket_id]
        assert source.history(alone) == source.history(listed[ticket_id])
    lead = source.history(source.ticket("1080"))
    assert [(s.group, s.assignee) for s in lead.steps] == [("Support", None), ("Billing", None), ("Billing", LEAD_ID)]
    said = {m.text: (m.public, m.by_customer) for m in lead.messages}  # the system's auto-reply left out
    assert not any("auto-reply" in text for text in said) and len(said) == 4
    assert said["LEAK handing to the team lead"] == (False, False)  # an internal note
    assert said["Some more detail on ticket 1080: it still happens today."] == (True, True)
    assert source.history(listed["1092"]).status == "deleted"  # listed by the index, gone from the database
    source.reader.close()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    yield from imported_and_trained(FakeZammad(Instance()), tmp_path_factory.mktemp("imported"))


@pytest.mark.slow
def test_a_live_outcome_reads_the_tickets_path_as_the_import_did(imported: Imported) -> None:
    """Closed events name only the final group: Billing for a ticket the team lead resolved, Support for one that
    Engineering fixed before it came back to close. The worker reads each ticket's history, so the feedback says
    team-lead and Engineering, as the imported labels do, with no ESCALATION_HOOK_GROUPS at all."""
    assert isinstance(imported.fake, FakeZammad)
    tickets = imported.fake.instance.tickets.values()
    lead, back = (next(t for t in tickets if t.kind == kind) for kind in ("lead", "back"))
    events = []
    for ticket in (lead, back):
        body = json.loads(payload("zammad_ticket_closed"))
        body["ticket"].update(id=ticket.id, group={"id": int(ticket.group_id), "name": GROUPS[ticket.group_id]})
        body["ticket"]["tags"] = []
        events.append(body)
    served_outcomes_read_the_paths(imported, str(lead.id), str(back.id), events, "closed")
