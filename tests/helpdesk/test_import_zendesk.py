"""`escalation import zendesk` against a fake Zendesk read API (a real HTTP server): labels from the escalation
paths the fake was built with, nothing written at or after the first hop in the training text, resumable after the
helpdesk fails half way, incremental afterwards, and import -> train -> predict end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from escalation.cli import app
from features.config import load_config
from features.helpdesk.client import HelpdeskUnavailable
from features.settings import Settings
from serving.app import create_app
from serving.feedback_store import FeedbackStore
from tests.conftest import running, store_settings
from tests.helpdesk.fake_zendesk import EMAIL, GROUPS, LEAD_EMAIL, LEAD_ID, TOKEN, Account, FakeZendesk, stamp
from tests.hooks.test_hooks import SECRET, payload, post, signed, until
from training.importer import import_history

SINCE = "2026-01-01"
LEAD = f"team-lead={LEAD_EMAIL}"


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk(Account()).start()
    yield fake
    fake.stop()


def settings_for(fake: FakeZendesk, **changes: object) -> Settings:
    base = {"zendesk_export_per_minute": 6000.0, "import_retry_seconds": 0.05, "import_max_attempts": 3}
    return Settings(zendesk_url=fake.url, zendesk_email=EMAIL, zendesk_token=TOKEN, **{**base, **changes})


def env_for(fake: FakeZendesk, token: str = TOKEN) -> dict[str, str]:
    return {
        "ESCALATION_ZENDESK_URL": fake.url,
        "ESCALATION_ZENDESK_EMAIL": EMAIL,
        "ESCALATION_ZENDESK_TOKEN": token,
        "ESCALATION_ZENDESK_EXPORT_PER_MINUTE": "6000",
        "ESCALATION_IMPORT_RETRY_SECONDS": "0.05",
    }


def run(fake: FakeZendesk, output: Path, *args: str, token: str = TOKEN) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["import", "zendesk", "--output", str(output), *args], env=env_for(fake, token))
    return result.exit_code, result.output


def test_labels_follow_each_path_and_nothing_after_the_first_hop_reaches_training(
    zendesk: FakeZendesk, tmp_path: Path
) -> None:
    zendesk.fail("/api/v2/incremental/", 200, 429)  # the second page is rate-limited once: waited out
    zendesk.fail("/api/v2/tickets/1030/audits.json", 500)  # and one ticket's audits fail once
    output = tmp_path / "history.csv"
    code, said = run(zendesk, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")
    assert code == 0, said
    frame = pd.read_csv(output, dtype=str, keep_default_na=False).set_index("ticket_id")
    built = zendesk.account.tickets
    solved = {str(t.id): t for t in built.values() if t.kind not in ("open", "deleted")}
    assert sorted(frame.index) == sorted(solved)  # open tickets skipped, deleted ones absent
    assert {tid: row.target for tid, row in frame.iterrows()} == {tid: t.target for tid, t in solved.items()}
    assert {tid: row.path for tid, row in frame.iterrows()} == {tid: " > ".join(t.path) for tid, t in solved.items()}
    lead = next(t for t in solved.values() if t.kind == "lead")
    assert frame.loc[str(lead.id), "path_at"] == " > ".join(  # created, moved to Billing 30 min on, the lead 1 h later
        stamp(lead.created + timedelta(minutes=m)) for m in (0, 30, 90)
    )
    assert "88 solved tickets (64 escalated), 3 not solved yet skipped" in said
    assert "first line: Support (the group 100% of tickets start in" in said
    # no leakage: every text written at or after the first hop (internal notes, agent replies, the customer's later
    # messages) carries LEAK in the fake; the description and the customer's follow-up before the hop are there
    assert not frame["text"].str.contains("LEAK").any() and not frame["subject"].str.contains("LEAK").any()
    assert frame["text"].str.contains("it still happens today").all()
    html = [str(t.id) for t in built.values() if t.kind == "html"]
    assert not frame.loc[html, "text"].str.contains("<").any() and frame.loc[html, "text"].str.contains("\n- ").all()
    assert frame.loc["1001", "resolution"].startswith("LEAK resolution: all sorted for ticket 1001")
    assert zendesk.requests.count("/api/v2/tickets/1030/audits.json") == 2  # its first page retried after the 500
    assert zendesk.count("/api/v2/incremental/tickets/cursor.json") == 4  # 3 pages, one met a 429
    # the config trains as it is; the person is named by NAME, the e-mail written nowhere
    config = load_config(output.with_suffix(".yaml"))
    assert (config.teams.first_line, config.teams.hierarchical) == (["Support"], ["team-lead"])
    assert config.helpdesk is not None and config.helpdesk.people == {"team-lead": LEAD_ID}
    assert json.loads(output.with_suffix(".hook-groups.json").read_text()) == {
        f"zendesk:{gid}": name for gid, name in GROUPS.items()
    }
    for written in tmp_path.iterdir():
        assert LEAD_EMAIL not in written.read_text(encoding="utf-8"), written.name


def test_an_interrupted_import_resumes_to_the_same_file_and_then_fetches_only_what_changed(
    zendesk: FakeZendesk, tmp_path: Path
) -> None:
    settings = settings_for(zendesk)
    since = pd.Timestamp(SINCE, tz="UTC").to_pydatetime()
    output = tmp_path / "resumed" / "history.csv"
    zendesk.fail("/api/v2/incremental/", 200, 500, 500, 500)  # page 1 read, then the helpdesk is down
    with pytest.raises(HelpdeskUnavailable, match="after 3 tries; run the import again to resume"):
        import_history("zendesk", output, settings, since, None, [LEAD], progress=False)
    assert not output.exists()  # nothing half-written: no export until a run ends
    state = json.loads(output.with_suffix(".import.json").read_text())
    assert state["cursor"] is not None  # page 1 is kept
    resumed = import_history("zendesk", output, settings, None, None, [LEAD], progress=False)
    assert resumed.fetched == 93 - 40  # pages 2 and 3 only

    other = FakeZendesk(Account()).start()  # the same account, read in one run
    try:
        once = tmp_path / "once" / "history.csv"
        import_history("zendesk", once, settings_for(other), since, None, [LEAD], progress=False)
    finally:
        other.stop()
    pd.testing.assert_frame_equal(pd.read_csv(output, dtype=str), pd.read_csv(once, dtype=str))
    assert output.with_suffix(".yaml").read_text() == once.with_suffix(".yaml").read_text().replace(
        other.url, zendesk.url
    )

    # later: one ticket reopened, moved to Engineering and solved again; one deleted
    account, later = zendesk.account, max(t.updated for t in zendesk.account.tickets.values()) + timedelta(days=1)
    account.reroute(1001, later, "300")
    account.change(1002, later + timedelta(hours=3), status="deleted")
    zendesk.requests.clear()
    again = import_history("zendesk", output, settings, None, None, [LEAD], progress=False)
    assert again.fetched == 2 and zendesk.audits_fetched() == [1001]
    frame = pd.read_csv(output, dtype=str).set_index("ticket_id")
    assert frame.loc["1001", ["target", "path"]].tolist() == ["Engineering", "Support > Engineering"]
    assert "1002" not in frame.index and len(frame) == 87
    journal = output.with_suffix(".import.jsonl").read_text().splitlines()
    assert len(journal) == len({json.loads(line)["id"] for line in journal}) == 90  # one line a ticket, none deleted
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
    code, said = run(zendesk, output, "--first-line", "Support", "--first-line", "Accounts", "--no-progress")
    assert code == 0, said
    assert yaml.safe_load(config.read_text()) == edited  # the user's file is left as it is
    assert "kept " + str(config) in said and "teams.first_line: ['Support'] -> ['Support', 'Accounts']" in said
    assert "first line: Support, Accounts (given with --first-line)" in said
    frame = pd.read_parquet(output)
    assert set(frame["target"]) == {"Support", "Billing", "Engineering"}  # no person named: the lead's are Billing's


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        ((), TOKEN, "error: --since: give the date to import from on the first run"),
        (("--since", "yesterday"), TOKEN, "'yesterday': give a date as YYYY-MM-DD"),
        (("--since", SINCE, "--hierarchical", "boss=nobody@example.com"), TOKEN, "no zendesk user has that e-mail"),
        (
            ("--since", SINCE, "--first-line", "Frontdesk"),
            TOKEN,
            "--first-line 'Frontdesk': no ticket was ever in that",
        ),
    ],
)
def test_bad_input_gets_one_line_and_exit_1(
    zendesk: FakeZendesk, tmp_path: Path, args: tuple[str, ...], token: str, message: str
) -> None:
    code, said = run(zendesk, tmp_path / "history.csv", *args, "--no-progress", token=token)
    assert code != 0 and message in said and "Traceback" not in said, said
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "history.yaml").exists()


def test_a_wrong_token_says_which_settings_to_check(zendesk: FakeZendesk, tmp_path: Path) -> None:
    code, said = run(zendesk, tmp_path / "history.csv", "--since", SINCE, "--no-progress", token="wrong")
    assert code == 1 and said.strip().splitlines()[-1].endswith("(check the zendesk e-mail and token settings)")


@dataclass
class Imported:
    fake: FakeZendesk
    folder: Path
    output: Path
    settings: Settings  # the registry the import trained into, and this fake's read settings


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    """The fake's history imported with `escalation import` and trained with `escalation train`, as a user would."""
    fake, folder = FakeZendesk(Account()).start(), tmp_path_factory.mktemp("imported")
    output = folder / "history.csv"
    try:
        assert run(fake, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")[0] == 0
        settings = settings_for(fake).model_copy(update=store_settings(folder).model_dump(include=STORES))
        args = ["train", "--data", str(output), "--config", str(output.with_suffix(".yaml")), "--no-progress"]
        trained = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": settings.tracking_uri})
        assert trained.exit_code == 0, trained.output
        yield Imported(fake, folder, output, settings)
    finally:
        fake.stop()


STORES = {"tracking_uri", "feedback_url", "embedding_cache", "keys_file", "model_cache_dir"}


@pytest.mark.slow
def test_import_then_train_then_predict_learns_functional_and_hierarchical_targets(
    imported: Imported, tmp_path: Path
) -> None:
    asks = pd.DataFrame(
        {
            "ticket_id": ["n1", "n2", "n3"],
            "subject": ["Charged twice", "Export broken", "I demand a manager"],
            "text": [
                "I was charged twice on my card this month, please refund the duplicate payment.",
                "The CSV export fails with error 500 since the release, nothing downloads.",
                "Third complaint and nobody helps; I want to speak to a manager or I cancel the contract.",
            ],
            "channel": ["email"] * 3,
            "priority": ["normal"] * 3,
        }
    )
    asks.to_csv(tmp_path / "new.csv", index=False)
    scored, config = tmp_path / "scored.jsonl", imported.output.with_suffix(".yaml")
    args = ["predict", "--data", str(tmp_path / "new.csv"), "--config", str(config), "--output", str(scored)]
    predicted = CliRunner().invoke(
        app, [*args, "--no-progress"], env={"MLFLOW_TRACKING_URI": imported.settings.tracking_uri}
    )
    assert predicted.exit_code == 0, predicted.output
    answers = {a["id"]: a for a in map(json.loads, scored.read_text().splitlines())}
    shown = [n["resolution"] for a in answers.values() for n in a["explanation"]["similar_tickets"]]
    assert shown and all("all sorted for" in r for r in shown)  # the public reply at solve time
    assert not any("@example.org" in r for r in shown)  # masked like every output
    top = {k: (a["suggestions"][0]["target"], a["suggestions"][0]["kind"]) for k, a in answers.items()}
    assert top == {
        "n1": ("Billing", "functional"),
        "n2": ("Engineering", "functional"),
        "n3": ("team-lead", "hierarchical"),
    }


@pytest.mark.slow
def test_a_live_outcome_reads_the_tickets_path_as_the_import_did(imported: Imported) -> None:
    """Solved events name only the final group: Billing for a ticket the team lead resolved, Support for one that
    Engineering fixed before it came back to close. The worker reads each ticket's history, so the feedback says
    team-lead and Engineering, as the imported labels do, with no ESCALATION_HOOK_GROUPS at all."""
    tickets = imported.fake.account.tickets.values()
    lead, back = (next(t for t in tickets if t.kind == kind) for kind in ("lead", "back"))
    settings = imported.settings.model_copy(update={"zendesk_webhook_secret": SECRET["zendesk"], "hook_groups": {}})
    store = FeedbackStore(settings.feedback_url)
    with running(create_app(settings), ready="/readyz") as url:
        for n, ticket in enumerate([lead, back]):
            body = json.loads(payload("zendesk_status_solved"))
            body["id"] = f"solved-{n}"
            body["detail"].update(id=str(ticket.id), group_id=ticket.group_id)
            raw = json.dumps(body).encode()
            assert post(url, "zendesk", raw, signed("zendesk", raw)).status_code == 202
        until(lambda: len(store.feedback_frame()) == 2, seconds=30, what="both outcomes recorded")
    feedback = store.feedback_frame().set_index("ticket_id")
    assert feedback.loc[str(lead.id), ["escalated", "target"]].tolist() == [True, "team-lead"]
    assert feedback.loc[str(back.id), ["escalated", "target"]].tolist() == [True, "Engineering"]
    assert feedback.loc[str(back.id), "note"] == "zendesk outcome, path Support > Engineering > Support"
