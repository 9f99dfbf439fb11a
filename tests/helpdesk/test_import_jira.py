"""`escalation import jira` against a fake Jira Cloud read API (a real HTTP server): labels from the escalation paths
the fake was built with (components and a lead by assignee, from changelogs the search cut and the importer read per
issue), nothing written at or after the first hop in the training text, resumable after Jira fails half way,
incremental afterwards, a live outcome reads an issue as the import did."""

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
from features.helpdesk.paths import Directory, History, label
from features.helpdesk.source import history_source
from features.settings import Settings
from serving.app import create_app
from serving.feedback_store import FeedbackStore
from tests.conftest import running, store_settings
from tests.helpdesk import test_import_zendesk as zendesk
from tests.helpdesk.fake_jira import COMPONENTS, EMAIL, HIDDEN_EMAIL, LEAD_EMAIL, LEAD_ID, TOKEN, FakeJira, Site
from tests.hooks.test_hooks import SECRET, payload, post, signed, until
from training.importer import import_history

SINCE = "2026-01-01"
LEAD = f"team-lead={LEAD_EMAIL}"
CHANGELOG = "/rest/api/3/issue/{}/changelog"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    fake = FakeJira(Site()).start()
    yield fake
    fake.stop()


def settings_for(fake: FakeJira, **changes: object) -> Settings:
    base = {"import_retry_seconds": 0.05, "import_max_attempts": 3}
    return Settings(jira_url=fake.url, jira_email=EMAIL, jira_token=TOKEN, **{**base, **changes})


def run(fake: FakeJira, output: Path, *args: str, token: str = TOKEN) -> tuple[int, str]:
    env = {
        "ESCALATION_JIRA_URL": fake.url,
        "ESCALATION_JIRA_EMAIL": EMAIL,
        "ESCALATION_JIRA_TOKEN": token,
        "ESCALATION_IMPORT_RETRY_SECONDS": "0.05",
    }
    result = CliRunner().invoke(app, ["import", "jira", "--output", str(output), *args], env=env)
    return result.exit_code, result.output


def test_labels_follow_each_path_and_nothing_after_the_first_hop_reaches_training(
    jira: FakeJira, tmp_path: Path
) -> None:
    jira.fail("/rest/api/3/search/jql", 200, 429)  # the second page is rate-limited once: waited out
    jira.fail("/rest/api/3/issue/SUP-30/comment", 500)  # and one issue's comments fail once
    output = tmp_path / "history.csv"
    code, said = run(jira, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")
    assert code == 0, said
    frame = pd.read_csv(output, dtype=str, keep_default_na=False).set_index("ticket_id")
    built = jira.site.issues
    solved = {key: i for key, i in built.items() if i.kind not in ("open", "vanished")}
    assert sorted(frame.index) == sorted(solved)  # open issues skipped, the deleted ones absent
    assert {key: row.target for key, row in frame.iterrows()} == {key: i.target for key, i in solved.items()}
    assert {key: row.path for key, row in frame.iterrows()} == {key: " > ".join(i.path) for key, i in solved.items()}
    assert "88 solved tickets (64 escalated), 3 not solved yet skipped" in said
    assert "first line: Support (the group 100% of tickets start in" in said
    # no leakage: internal notes, agent replies, the customer's later comments and the resolution carry LEAK
    assert not frame["text"].str.contains("LEAK").any() and not frame["subject"].str.contains("LEAK").any()
    assert frame["text"].str.contains("it still happens today").all()
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
    config = load_config(output.with_suffix(".yaml"))
    assert (config.teams.first_line, config.teams.hierarchical) == (["Support"], ["team-lead"])
    assert config.helpdesk is not None and config.helpdesk.people == {"team-lead": LEAD_ID}
    assert json.loads(output.with_suffix(".hook-groups.json").read_text()) == {
        f"jira:{name}": name for name in COMPONENTS.values()
    }  # what the Jira connector names an outcome's group: its first component
    for written in tmp_path.iterdir():
        assert LEAD_EMAIL not in written.read_text(encoding="utf-8"), written.name


def test_an_interrupted_import_resumes_to_the_same_file_and_then_fetches_only_what_changed(
    jira: FakeJira, tmp_path: Path
) -> None:
    settings = settings_for(jira)
    since = pd.Timestamp(SINCE, tz="UTC").to_pydatetime()
    output = tmp_path / "resumed" / "history.csv"
    jira.fail("/rest/api/3/search/jql", 200, 500, 500, 500)  # page 1 read, then Jira is down
    with pytest.raises(HelpdeskUnavailable, match="after 3 tries; run the import again to resume"):
        import_history("jira", output, settings, since, None, [LEAD], progress=False)
    assert not output.exists()  # nothing half-written: no export until a run ends
    state = json.loads(output.with_suffix(".import.json").read_text())
    assert state["cursor"].endswith("|SUP-40")  # page 1 is kept: its last issue
    resumed = import_history("jira", output, settings, None, None, [LEAD], progress=False)
    assert resumed.fetched == 93 - 40  # pages 2 and 3 only: the cursor's own issue, listed again, is skipped

    other = FakeJira(Site()).start()  # the same site, read in one run
    try:
        once = tmp_path / "once" / "history.csv"
        import_history("jira", once, settings_for(other), since, None, [LEAD], progress=False)
    finally:
        other.stop()
    pd.testing.assert_frame_equal(pd.read_csv(output, dtype=str), pd.read_csv(once, dtype=str))
    assert output.with_suffix(".yaml").read_text() == once.with_suffix(".yaml").read_text().replace(other.url, jira.url)

    # later: one issue reopened, moved to Engineering and resolved again; one labelled
    site = jira.site
    later = max(i.updated for i in site.issues.values()) + timedelta(days=1)
    site.reroute("SUP-1", later, "Engineering")
    site.relabel("SUP-2", later + timedelta(hours=3))
    jira.requests.clear()
    again = import_history("jira", output, settings, None, None, [LEAD], progress=False)
    assert again.fetched == 2 and sorted(jira.read("comment")) == ["SUP-1", "SUP-2"]
    frame = pd.read_csv(output, dtype=str).set_index("ticket_id")
    assert frame.loc["SUP-1", ["target", "path"]].tolist() == ["Engineering", "Support > Engineering"]
    assert frame.loc["SUP-2", ["target", "path"]].tolist() == ["Support", "Support"] and len(frame) == 88
    journal = output.with_suffix(".import.jsonl").read_text().splitlines()
    assert len(journal) == len({json.loads(line)["id"] for line in journal}) == 91  # one line an issue, none deleted
    assert not again.config_written and again.config_changes == []


def test_an_issue_deleted_between_the_search_and_its_reads_is_left_out(jira: FakeJira, tmp_path: Path) -> None:
    jira.fail(CHANGELOG.format("SUP-50"), 404)  # its changelog was cut: read per issue, and gone by then
    jira.fail("/rest/api/3/issue/SUP-5/comment", 404)  # its changelog was whole: the comments tell
    code, said = run(jira, tmp_path / "history.csv", "--since", SINCE, "--no-progress")
    assert code == 0, said
    assert not {"SUP-5", "SUP-50"} & set(pd.read_csv(tmp_path / "history.csv", dtype=str)["ticket_id"])
    assert "86 solved tickets" in said


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        ((), TOKEN, "error: --since: give the date to import from on the first run"),
        (("--since", SINCE, "--hierarchical", "boss=nobody@example.com"), TOKEN, "no jira user has that e-mail"),
        (("--since", SINCE, "--hierarchical", f"boss={HIDDEN_EMAIL}"), TOKEN, "hide their e-mail address"),
        (("--since", SINCE), "wrong", "(check the jira e-mail and token settings)"),
    ],
)
def test_bad_input_gets_one_line_and_exit_1(
    jira: FakeJira, tmp_path: Path, args: tuple[str, ...], token: str, message: str
) -> None:
    code, said = run(jira, tmp_path / "history.csv", *args, "--no-progress", token=token)
    assert code == 1 and message in said and "Traceback" not in said, said
    assert len(said.strip().splitlines()) == 1, said
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "history.yaml").exists()
    assert HIDDEN_EMAIL not in said


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


@dataclass
class Imported:
    fake: FakeJira
    output: Path
    settings: Settings  # the registry the import trained into, and this fake's read settings


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    """The fake's history imported with `escalation import jira` and trained with `escalation train`, as a user
    would."""
    fake, folder = FakeJira(Site()).start(), tmp_path_factory.mktemp("imported")
    output = folder / "history.csv"
    try:
        assert run(fake, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")[0] == 0
        settings = settings_for(fake).model_copy(update=store_settings(folder).model_dump(include=zendesk.STORES))
        args = ["train", "--data", str(output), "--config", str(output.with_suffix(".yaml")), "--no-progress"]
        trained = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": settings.tracking_uri})
        assert trained.exit_code == 0, trained.output
        yield Imported(fake, output, settings)
    finally:
        fake.stop()


@pytest.mark.slow
def test_import_then_train_then_predict_learns_functional_and_hierarchical_targets(
    imported: Imported, tmp_path: Path
) -> None:
    """The Zendesk import's new tickets, asked of the model trained on the Jira import: routed to Billing, Engineering
    and the team lead alike."""
    zendesk.test_import_then_train_then_predict_learns_functional_and_hierarchical_targets(imported, tmp_path)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_served_jira_outcome_reads_the_issues_path_as_the_import_did(imported: Imported) -> None:
    """Resolved events name only the final component: Billing for an issue the team lead resolved, Support for one
    Engineering fixed before it came back to close. The worker reads each issue's changelog, so the feedback says
    team-lead and Engineering, as the imported labels do, with no ESCALATION_HOOK_GROUPS at all."""
    issues = imported.fake.site.issues.values()
    lead, back = (next(i for i in issues if i.kind == kind) for kind in ("lead", "back"))
    settings = imported.settings.model_copy(update={"jira_webhook_secret": SECRET["jira"], "hook_groups": {}})
    store = FeedbackStore(settings.feedback_url)
    with running(create_app(settings), ready="/readyz") as url:
        for n, issue in enumerate([lead, back]):
            body = json.loads(payload("jira_issue_resolved"))
            body["issue"].update(id=str(10_000 + issue.number), key=issue.key)
            body["issue"]["fields"]["components"] = [{"name": c} for c in issue.components]
            raw = json.dumps(body).encode()
            assert post(url, "jira", raw, signed("jira", raw, delivery=f"resolved-{n}")).status_code == 202
        until(lambda: len(store.feedback_frame()) == 2, seconds=30, what="both outcomes recorded")
    feedback = store.feedback_frame().set_index("ticket_id")
    assert lead.components == ["Billing"] and back.components == ["Support"]
    assert feedback.loc[lead.key, ["escalated", "target"]].tolist() == [True, "team-lead"]
    assert feedback.loc[back.key, ["escalated", "target"]].tolist() == [True, "Engineering"]
    assert feedback.loc[back.key, "note"] == "jira outcome, path Support > Engineering > Support"
