"""`escalation import zammad` against a fake Zammad read API (a real HTTP server): labels from the escalation paths
the fake was built with, nothing written at or after the first hop in the training text, resumable after the
helpdesk fails half way, incremental afterwards, and live outcomes read as the import did, from a model trained on
the import as it was written (import -> train -> predict itself is the Zendesk test's: the export is the same)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from escalation.cli import app
from features.config import load_config
from features.helpdesk.client import HelpdeskUnavailable
from features.helpdesk.source import history_source
from features.settings import Settings
from serving.app import create_app
from serving.feedback_store import FeedbackStore
from tests.conftest import running, store_settings
from tests.helpdesk.fake_zammad import GROUPS, LEAD_EMAIL, LEAD_ID, TOKEN, FakeZammad, Instance
from tests.helpdesk.test_import_zendesk import STORES
from tests.hooks.test_hooks import SECRET, payload, post, signed, until
from training.importer import import_history

SINCE = "2026-01-01"
LEAD = f"team-lead={LEAD_EMAIL}"


@pytest.fixture
def zammad() -> Iterator[FakeZammad]:
    fake = FakeZammad(Instance()).start()
    yield fake
    fake.stop()


def settings_for(fake: FakeZammad, **changes: object) -> Settings:
    base = {"import_retry_seconds": 0.05, "import_max_attempts": 3}
    return Settings(zammad_url=fake.url, zammad_token=TOKEN, **{**base, **changes})


def run(fake: FakeZammad, output: Path, *args: str, token: str = TOKEN) -> tuple[int, str]:
    env = {
        "ESCALATION_ZAMMAD_URL": fake.url,
        "ESCALATION_ZAMMAD_TOKEN": token,
        "ESCALATION_IMPORT_RETRY_SECONDS": "0.05",
    }
    result = CliRunner().invoke(app, ["import", "zammad", "--output", str(output), *args], env=env)
    return result.exit_code, result.output


def test_labels_follow_each_path_and_nothing_after_the_first_hop_reaches_training(
    zammad: FakeZammad, tmp_path: Path
) -> None:
    zammad.fail("/api/v1/tickets/search", 200, 429)  # the second page is rate-limited once: waited out
    zammad.fail("/api/v1/ticket_history/1030", 500)  # and one ticket's history fails once
    output = tmp_path / "history.csv"
    code, said = run(zammad, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")
    assert code == 0, said
    frame = pd.read_csv(output, dtype=str, keep_default_na=False).set_index("ticket_id")
    built = zammad.instance.tickets
    solved = {str(t.id): t for t in built.values() if t.kind not in ("open", "deleted")}
    assert sorted(frame.index) == sorted(solved)  # open tickets skipped, deleted ones absent
    assert {tid: row.target for tid, row in frame.iterrows()} == {tid: t.target for tid, t in solved.items()}
    assert {tid: row.path for tid, row in frame.iterrows()} == {tid: " > ".join(t.path) for tid, t in solved.items()}
    assert "88 solved tickets (64 escalated), 3 not solved yet skipped" in said
    assert "first line: Support (the group 100% of tickets start in" in said
    # no leakage: every text written at or after the first hop (internal notes, agent replies, the customer's later
    # messages) and the system's auto-reply carry LEAK in the fake; the description and the customer's follow-up
    # before the hop are there
    assert not frame["text"].str.contains("LEAK").any() and not frame["subject"].str.contains("LEAK").any()
    assert frame["text"].str.contains("it still happens today").all()
    html = [str(t.id) for t in built.values() if t.kind == "html"]
    assert not frame.loc[html, "text"].str.contains("<").any() and frame.loc[html, "text"].str.contains("\n- ").all()
    assert frame.loc["1001", "resolution"].startswith("LEAK resolution: all sorted for ticket 1001")
    assert set(frame["channel"]) == {"email", "web"} and set(frame["priority"]) == {"2 normal", "3 high"}
    assert zammad.requests.count("/api/v1/ticket_history/1030") == 2  # retried after the 500
    # pages of 40, each search from the last change read, to an empty page; one met a 429
    assert zammad.count("/api/v1/tickets/search") == 6
    config = load_config(output.with_suffix(".yaml"))
    assert (config.teams.first_line, config.teams.hierarchical) == (["Support"], ["team-lead"])
    assert config.helpdesk is not None and config.helpdesk.people == {"team-lead": LEAD_ID}
    # the connector names a Zammad outcome's group `zammad:<name>`: the mapping joins it to the imported targets
    assert json.loads(output.with_suffix(".hook-groups.json").read_text()) == {
        f"zammad:{name}": name for name in GROUPS.values()
    }
    for written in tmp_path.iterdir():
        assert LEAD_EMAIL not in written.read_text(encoding="utf-8"), written.name


def test_an_interrupted_import_resumes_to_the_same_file_and_then_fetches_only_what_changed(
    zammad: FakeZammad, tmp_path: Path
) -> None:
    settings = settings_for(zammad)
    since = pd.Timestamp(SINCE, tz="UTC").to_pydatetime()
    output = tmp_path / "resumed" / "history.csv"
    zammad.fail("/api/v1/tickets/search", 200, 500, 500, 500)  # page 1 read, then the helpdesk is down
    with pytest.raises(HelpdeskUnavailable, match="after 3 tries; run the import again to resume"):
        import_history("zammad", output, settings, since, None, [LEAD], progress=False)
    assert not output.exists()  # nothing half-written: no export until a run ends
    assert json.loads(output.with_suffix(".import.json").read_text())["cursor"] is not None  # page 1 is kept
    resumed = import_history("zammad", output, settings, None, None, [LEAD], progress=False)
    assert resumed.fetched == 93 - 40  # the rest only: the last ticket of page 1 is not read again

    other = FakeZammad(Instance()).start()  # the same instance, read in one run
    try:
        once = tmp_path / "once" / "history.csv"
        import_history("zammad", once, settings_for(other), since, None, [LEAD], progress=False)
    finally:
        other.stop()
    pd.testing.assert_frame_equal(pd.read_csv(output, dtype=str), pd.read_csv(once, dtype=str))
    assert output.with_suffix(".yaml").read_text() == once.with_suffix(".yaml").read_text().replace(
        other.url, zammad.url
    )

    # later: one ticket reopened, moved to Engineering and closed again; one reopened by its customer
    instance = zammad.instance
    later = max(t.updated for t in instance.tickets.values()) + timedelta(days=1)
    instance.reroute(1001, later, "3")
    instance.reopen(1002, later + timedelta(hours=3))
    zammad.requests.clear()
    again = import_history("zammad", output, settings, None, None, [LEAD], progress=False)
    assert again.fetched == 2 and sorted(zammad.histories_fetched()) == [1001, 1002]
    frame = pd.read_csv(output, dtype=str).set_index("ticket_id")
    assert frame.loc["1001", ["target", "path"]].tolist() == ["Engineering", "Support > Engineering"]
    assert "1002" not in frame.index and len(frame) == 87 and again.open == 4  # reopened: not solved
    journal = output.with_suffix(".import.jsonl").read_text().splitlines()
    assert len(journal) == len({json.loads(line)["id"] for line in journal}) == 91  # one line a ticket, none deleted
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: --since: give the date to import from on the first run"),
        (("--since", SINCE, "--hierarchical", "boss=nobody@example.com"), "no zammad user has that e-mail"),
    ],
)
def test_bad_input_gets_one_line_and_exit_1(
    zammad: FakeZammad, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, said = run(zammad, tmp_path / "history.csv", *args, "--no-progress")
    assert code == 1 and message in said and "Traceback" not in said, said
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "history.yaml").exists()


def test_a_wrong_token_says_which_settings_to_check(zammad: FakeZammad, tmp_path: Path) -> None:
    code, said = run(zammad, tmp_path / "history.csv", "--since", SINCE, "--no-progress", token="wrong")
    lines = said.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "zammad GET /api/v1/tickets/search: HTTP 401" in lines[0], said
    assert lines[0].endswith("(check the zammad e-mail and token settings)")


@dataclass
class Imported:
    fake: FakeZammad
    output: Path
    settings: Settings  # the registry the import trained into, and this fake's read settings


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    """The fake's history imported with `escalation import` and trained with `escalation train`, as a user would."""
    fake, folder = FakeZammad(Instance()).start(), tmp_path_factory.mktemp("imported")
    output = folder / "history.csv"
    try:
        assert run(fake, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")[0] == 0
        settings = settings_for(fake).model_copy(update=store_settings(folder).model_dump(include=STORES))
        args = ["train", "--data", str(output), "--config", str(output.with_suffix(".yaml")), "--no-progress"]
        trained = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": settings.tracking_uri})
        assert trained.exit_code == 0, trained.output
        yield Imported(fake, output, settings)
    finally:
        fake.stop()


@pytest.mark.slow
def test_a_live_outcome_reads_the_tickets_path_as_the_import_did(imported: Imported) -> None:
    """Closed events name only the final group: Billing for a ticket the team lead resolved, Support for one that
    Engineering fixed before it came back to close. The worker reads each ticket's history, so the feedback says
    team-lead and Engineering, as the imported labels do, with no ESCALATION_HOOK_GROUPS at all."""
    tickets = imported.fake.instance.tickets.values()
    lead, back = (next(t for t in tickets if t.kind == kind) for kind in ("lead", "back"))
    settings = imported.settings.model_copy(update={"zammad_webhook_secret": SECRET["zammad"], "hook_groups": {}})
    store = FeedbackStore(settings.feedback_url)
    with running(create_app(settings), ready="/readyz") as url:
        for n, ticket in enumerate([lead, back]):
            body = json.loads(payload("zammad_ticket_closed"))
            body["ticket"].update(id=ticket.id, group={"id": int(ticket.group_id), "name": GROUPS[ticket.group_id]})
            body["ticket"]["tags"] = []
            raw = json.dumps(body).encode()
            assert post(url, "zammad", raw, signed("zammad", raw, delivery=f"closed-{n}")).status_code == 202
        until(lambda: len(store.feedback_frame()) == 2, seconds=30, what="both outcomes recorded")
    feedback = store.feedback_frame().set_index("ticket_id")
    assert feedback.loc[str(lead.id), ["escalated", "target"]].tolist() == [True, "team-lead"]
    assert feedback.loc[str(back.id), ["escalated", "target"]].tolist() == [True, "Engineering"]
    assert feedback.loc[str(back.id), "note"] == "zammad outcome, path Support > Engineering > Support"
