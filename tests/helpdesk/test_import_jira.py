"""`escalation import jira` against a fake Jira Cloud read API (a real HTTP server): labels from the escalation paths
the fake was built with (components and a lead by assignee, from changelogs the search cut and the importer read per
issue), nothing written at or after the first hop in the training text, resumable after Jira fails half way,
incremental afterwards, a live outcome reads an issue as the import did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from features.helpdesk.client import HelpdeskUnavailable
from features.helpdesk.paths import Directory, History, label
from features.helpdesk.source import history_source
from tests.helpdesk.fake_jira import COMPONENTS, LEAD_ID, FakeJira, Site
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
from tests.hooks.test_hooks import payload
from training.importer import import_history

CHANGELOG = "/rest/api/3/issue/{}/changelog"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    yield from started(FakeJira(Site()))


def test_labels_follow_each_path_and_nothing_after_the_first_hop_reaches_training(
    jira: FakeJira, tmp_path: Path
) -> None:
    jira.fail("/rest/api/3/search/jql", 200, 429)  # the second page is rate-limited once: waited out
    jira.fail("/rest/api/3/issue/SUP-30/comment", 500)  # and one issue's comments fail once
    built = jira.site.issues
    groups = {f"jira:{name}": name for name in COMPONENTS.values()}  # the Jira connector's: an issue's first component
    frame = labelled_as_built(jira, tmp_path, built, ("open", "vanished"), LEAD_ID, groups)
    lists = [key for key, i in built.items() if i.kind == "lists"]
    assert frame.loc[lists, "text"].str.startswith("Hello @Support Desk\nmy problem:\n- ").all()
    assert (
        frame.loc["SUP-1", "resolution"]
        == "LEAK resolution: all sorted for SUP-1, write to qm:customer-0001@example.org"
    )
    assert set(frame["priority"]) == {"High", "Medium"}
    # the changelog the search cut (more than its 2 most recent histories) was read per issue, the others were not
    cut = sorted(key for key, i in built.items() if len(i.histories) > 2 and i.kind != "vanished")
    assert sorted(set(jira.read("changelog"))) == cut and len(cut) == 38
    assert jira.requests.count("/rest/api/3/issue/SUP-30/comment?orderBy=created&startAt=0&maxResults=100") == 2
    assert jira.count("/rest/api/3/search/jql") == 4  # 3 pages, one met a 429


def test_an_interrupted_import_resumes_to_the_same_file_and_then_fetches_only_what_changed(
    jira: FakeJira, tmp_path: Path
) -> None:
    output, state = resumed_as_one_run(jira, FakeJira(Site()), tmp_path, "/rest/api/3/search/jql")
    assert state["cursor"].endswith("|SUP-40")  # page 1 is kept: its last issue, listed again on resuming, skipped

    # later: one issue reopened, moved to Engineering and resolved again; one labelled
    site = jira.site
    later = max(i.updated for i in site.issues.values()) + timedelta(days=1)
    site.reroute("SUP-1", later, "Engineering")
    site.relabel("SUP-2", later + timedelta(hours=3))
    jira.requests.clear()
    again = import_history("jira", output, settings_for(jira), None, None, [LEAD], progress=False)
    assert again.fetched == 2 and sorted(jira.read("comment")) == ["SUP-1", "SUP-2"]
    frame = pd.read_csv(output, dtype=str).set_index("ticket_id")
    assert frame.loc["SUP-1", ["target", "path"]].tolist() == ["Engineering", "Support > Engineering"]
    assert frame.loc["SUP-2", ["target", "path"]].tolist() == ["Support", "Support"] and len(frame) == 88
    one_line_per_ticket(output, 91)  # none deleted
    assert not again.config_written and again.config_changes == []


def test_an_issue_deleted_between_the_search_and_its_reads_is_left_out(jira: FakeJira, tmp_path: Path) -> None:
    jira.fail(CHANGELOG.format("SUP-50"), 404)  # its changelog was cut: read per issue, and gone by then
    jira.fail("/rest/api/3/issue/SUP-5/comment", 404)  # its changelog was whole: the comments tell
    code, said = run(jira, tmp_path / "history.csv", "--since", SINCE, "--no-progress")
    assert code == 0, said
    assert not {"SUP-5", "SUP-50"} & set(pd.read_csv(tmp_path / "history.csv", dtype=str)["ticket_id"])
    assert "86 solved tickets" in said


def test_a_live_outcome_reads_an_issue_as_the_import_did(jira: FakeJira, tmp_path: Path) -> None:
    """The worker's live path reads one issue (`ticket`, then `history`) with one try per request: the same history,
    so the same label, as the import's search and journal gave, for a lead's issue and one sent back to close."""
    output = tmp_path / "history.csv"
    import_history("jira", output, settings_for(jira), pd.Timestamp(SINCE, tz="UTC"), None, [LEAD], progress=False)
    journal = {h["id"]: History.from_dict(h) for h in map(json.loads, output.with_suffix(".import.jsonl").open())}
    live = history_source("jira", settings_for(jira), max_attempts=1)
    directory = Directory(("Support",), (), {LEAD_ID: "team-lead"})
    for key, path in (
        ("SUP-70", ["Support", "Billing", "team-lead"]),
        ("SUP-50", ["Support", "Engineering", "Support"]),
    ):
        assert jira.site.issues[key].path == path
        read = live.history(live.ticket(key))
        assert read == journal[key]
        assert list(label(read, directory).path) == path
    jira.fail("/rest/api/3/issue/SUP-70", 503)
    with pytest.raises(HelpdeskUnavailable, match="after 1 tries"):
        live.ticket("SUP-70")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    yield from imported_and_trained(FakeJira(Site()), tmp_path_factory.mktemp("imported"))


@pytest.mark.slow
def test_import_then_train_then_predict_learns_functional_and_hierarchical_targets(
    imported: Imported, tmp_path: Path
) -> None:
    """The Zendesk test's new tickets, asked of the model trained on the Jira import: routed to Billing, Engineering
    and the team lead alike."""
    routes_new_tickets(imported, tmp_path, "all sorted for SUP-")


@pytest.mark.slow
def test_a_served_jira_outcome_reads_the_issues_path_as_the_import_did(imported: Imported) -> None:
    """Resolved events name only the final component: Billing for an issue the team lead resolved, Support for one
    Engineering fixed before it came back to close. The worker reads each issue's changelog, so the feedback says
    team-lead and Engineering, as the imported labels do, with no ESCALATION_HOOK_GROUPS at all."""
    assert isinstance(imported.fake, FakeJira)
    issues = imported.fake.site.issues.values()
    lead, back = (next(i for i in issues if i.kind == kind) for kind in ("lead", "back"))
    assert lead.components == ["Billing"] and back.components == ["Support"]
    events = []
    for issue in (lead, back):
        body = json.loads(payload("jira_issue_resolved"))
        body["issue"].update(id=str(10_000 + issue.number), key=issue.key)
        body["issue"]["fields"]["components"] = [{"name": c} for c in issue.components]
        events.append(body)
    served_outcomes_read_the_paths(imported, lead.key, back.key, events, "resolved")
