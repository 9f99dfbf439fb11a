"""What the `escalation import HELPDESK` tests share, whichever fake read API they run against: the settings and
environment that point the importer at a fake, the command run as a user runs it, a fake's history imported and
trained once for a module, and the checks every helpdesk's import must pass (each returns what it read, for the
helpdesk's own checks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
from typer.testing import CliRunner

from escalation.cli import app
from features.config import load_config
from features.helpdesk.client import HelpdeskUnavailable
from features.settings import Settings
from serving.app import create_app
from serving.feedback_store import FeedbackStore
from tests.conftest import running, store_settings
from tests.helpdesk.fake_api import FakeReadAPI
from tests.helpdesk.fake_jira import FakeJira, Site
from tests.helpdesk.fake_zammad import FakeZammad, Instance
from tests.helpdesk.fake_zendesk import Account, FakeZendesk
from tests.hooks.test_hooks import SECRET, post, signed, until
from training.importer import import_history

SINCE = "2026-01-01"
LEAD_EMAIL = "lead@example.com"  # the team lead's e-mail in every fake
LEAD = f"team-lead={LEAD_EMAIL}"
PACE = {"zendesk": {"zendesk_export_per_minute": 6000.0}}  # a helpdesk's own pacing, lifted so the tests run fast
STORES = {"tracking_uri", "feedback_url", "embedding_cache", "keys_file", "model_cache_dir"}

Fake = TypeVar("Fake", bound=FakeReadAPI)


def fake_of(helpdesk: str) -> FakeReadAPI:
    """A fake of the helpdesk serving the account every test knows, not started."""
    if helpdesk == "zendesk":
        return FakeZendesk(Account())
    return FakeZammad(Instance()) if helpdesk == "zammad" else FakeJira(Site())


def started(fake: Fake) -> Iterator[Fake]:
    """The fake, running until the generator is closed (for a fixture's `yield from`)."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def settings_for(fake: FakeReadAPI, **changes: object) -> Settings:
    """Read settings for the fake (its URL and credentials, retries quick), with `changes`."""
    name = fake.helpdesk
    read = {f"{name}_url": fake.url, f"{name}_token": fake.token} | (
        {f"{name}_email": fake.email} if fake.email else {}
    )
    base = {**PACE.get(name, {}), "import_retry_seconds": 0.05, "import_max_attempts": 3}
    return Settings(**read, **{**base, **changes})


def env_for(fake: FakeReadAPI, token: str | None = None) -> dict[str, str]:
    """The environment `escalation import` reads the fake's settings from; `token` instead of the right one."""
    name = fake.helpdesk.upper()
    env = {f"ESCALATION_{name}_URL": fake.url, f"ESCALATION_{name}_TOKEN": token or fake.token}
    if fake.email:
        env[f"ESCALATION_{name}_EMAIL"] = fake.email
    env |= {f"ESCALATION_{key.upper()}": str(value) for key, value in PACE.get(fake.helpdesk, {}).items()}
    return env | {"ESCALATION_IMPORT_RETRY_SECONDS": "0.05"}


def run(fake: FakeReadAPI, output: Path, *args: str, token: str | None = None) -> tuple[int, str]:
    """`escalation import HELPDESK --output OUTPUT ARGS` against the fake: the exit code and what it said."""
    command = ["import", fake.helpdesk, "--output", str(output), *args]
    result = CliRunner().invoke(app, command, env=env_for(fake, token))
    return result.exit_code, result.output


def labelled_as_built(
    fake: FakeReadAPI,
    folder: Path,
    built: dict[str, Any],
    gone: tuple[str, ...],
    lead_id: str,
    hook_groups: dict[str, str],
) -> pd.DataFrame:
    """`escalation import HELPDESK --since SINCE --hierarchical LEAD` into `folder` and the checks every helpdesk's
    import passes, of the fake's `built` tickets by id (those of the kinds `gone` are open or deleted): the export
    (returned) holds the solved ones, labelled and pathed as built, with no text from the first hop on; the config
    and hook groups are written; the lead's e-mail is nowhere in the folder."""
    output = folder / "history.csv"
    code, said = run(fake, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")
    assert code == 0, said
    frame = pd.read_csv(output, dtype=str, keep_default_na=False).set_index("ticket_id")
    solved = {tid: t for tid, t in built.items() if t.kind not in gone}
    assert sorted(frame.index) == sorted(solved)  # open tickets skipped, deleted ones absent
    assert {tid: row.target for tid, row in frame.iterrows()} == {tid: t.target for tid, t in solved.items()}
    assert {tid: row.path for tid, row in frame.iterrows()} == {tid: " > ".join(t.path) for tid, t in solved.items()}
    assert "88 solved tickets (64 escalated), 3 not solved yet skipped" in said
    assert "first line: Support (the group 100% of tickets start in" in said
    # no leakage: every text written at or after the first hop (internal notes, agent replies, the customer's later
    # messages, the resolution) carries LEAK in the fakes; the description and the customer's follow-up before the
    # hop are there
    assert not frame["text"].str.contains("LEAK").any() and not frame["subject"].str.contains("LEAK").any()
    assert frame["text"].str.contains("it still happens today").all()
    # the config trains as it is; the person is named by NAME, the e-mail written nowhere
    config = load_config(output.with_suffix(".yaml"))
    assert (config.teams.first_line, config.teams.hierarchical) == (["Support"], ["team-lead"])
    assert config.helpdesk is not None and config.helpdesk.people == {"team-lead": [lead_id]}
    assert json.loads(output.with_suffix(".hook-groups.json").read_text()) == hook_groups
    for written in output.parent.iterdir():
        assert LEAD_EMAIL not in written.read_text(encoding="utf-8"), written.name
    return frame


def resumed_as_one_run(fake: FakeReadAPI, again: FakeReadAPI, folder: Path, feed: str) -> tuple[Path, dict[str, Any]]:
    """An import into `folder`/resumed that the fake fails after the first page of `feed` (a path prefix) leaves no
    export but a cursor, and a second run ends it with only the rest (93 tickets, 40 a page), to the same files as
    one run of `again` (a fresh fake of the same account). The export, and the state the failed run left."""
    name, settings = fake.helpdesk, settings_for(fake)
    since = pd.Timestamp(SINCE, tz="UTC").to_pydatetime()
    output = folder / "resumed" / "history.csv"
    fake.fail(feed, 200, 500, 500, 500)  # page 1 read, then the helpdesk is down
    with pytest.raises(HelpdeskUnavailable, match="after 3 tries; run the import again to resume"):
        import_history(name, output, settings, since, None, [LEAD], progress=False)
    assert not output.exists()  # nothing half-written: no export until a run ends
    state = json.loads(output.with_suffix(".import.json").read_text())
    assert state["cursor"] is not None  # page 1 is kept
    resumed = import_history(name, output, settings, None, None, [LEAD], progress=False)
    assert resumed.fetched == 93 - 40  # the rest only: what page 1 held is not read again

    again.start()  # the same account, read in one run
    try:
        once = folder / "once" / "history.csv"
        import_history(name, once, settings_for(again), since, None, [LEAD], progress=False)
    finally:
        again.stop()
    pd.testing.assert_frame_equal(pd.read_csv(output, dtype=str), pd.read_csv(once, dtype=str))
    assert output.with_suffix(".yaml").read_text() == once.with_suffix(".yaml").read_text().replace(again.url, fake.url)
    return output, state


def one_line_per_ticket(output: Path, count: int) -> None:
    """The import's journal holds `count` lines, one a ticket."""
    journal = output.with_suffix(".import.jsonl").read_text().splitlines()
    assert len(journal) == len({json.loads(line)["id"] for line in journal}) == count


@dataclass
class Imported:
    fake: FakeReadAPI
    folder: Path
    output: Path
    settings: Settings  # the registry the import trained into, and this fake's read settings


def imported_and_trained(fake: FakeReadAPI, folder: Path) -> Iterator[Imported]:
    """The fake's history imported with `escalation import` and trained with `escalation train`, as a user would
    (for a module-scoped fixture's `yield from`)."""
    output = folder / "history.csv"
    fake.start()
    try:
        assert run(fake, output, "--since", SINCE, "--hierarchical", LEAD, "--no-progress")[0] == 0
        settings = settings_for(fake).model_copy(update=store_settings(folder).model_dump(include=STORES))
        args = ["train", "--data", str(output), "--config", str(output.with_suffix(".yaml")), "--no-progress"]
        trained = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": settings.tracking_uri})
        assert trained.exit_code == 0, trained.output
        yield Imported(fake, folder, output, settings)
    finally:
        fake.stop()


def routes_new_tickets(imported: Imported, tmp_path: Path, reply: str) -> None:
    """New tickets asked of the model trained on the import go to Billing, Engineering and the team lead; similar
    tickets show the public reply at solve time (it holds `reply`), masked."""
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
    assert shown and all(reply in r for r in shown)  # the public reply at solve time
    assert not any("@example.org" in r for r in shown)  # masked like every output
    top = {k: (a["suggestions"][0]["target"], a["suggestions"][0]["kind"]) for k, a in answers.items()}
    assert top == {
        "n1": ("Billing", "functional"),
        "n2": ("Engineering", "functional"),
        "n3": ("team-lead", "hierarchical"),
    }


def served_outcomes_read_the_paths(
    imported: Imported, lead: str, back: str, events: list[dict[str, Any]], delivery: str
) -> None:
    """The outcome `events` (of the lead's ticket `lead`, then of `back`, sent back to first line to close), signed
    and posted to the service serving the imported model with no ESCALATION_HOOK_GROUPS: the worker reads each
    ticket's history, so the feedback says team-lead and Engineering, as the imported labels do."""
    name = imported.fake.helpdesk
    settings = imported.settings.model_copy(update={f"{name}_webhook_secret": SECRET[name], "hook_groups": {}})
    store = FeedbackStore(settings.feedback_url)
    with running(create_app(settings), ready="/readyz") as url:
        for n, event in enumerate(events):
            raw = json.dumps(event).encode()
            assert post(url, name, raw, signed(name, raw, delivery=f"{delivery}-{n}")).status_code == 202
        until(lambda: len(store.feedback_frame()) == 2, seconds=30, what="both outcomes recorded")
    feedback = store.feedback_frame().set_index("ticket_id")
    assert feedback.loc[lead, ["escalated", "target"]].tolist() == [True, "team-lead"]
    assert feedback.loc[back, ["escalated", "target"]].tolist() == [True, "Engineering"]
    assert feedback.loc[back, "note"] == f"{name} outcome, path Support > Engineering > Support"
