"""`escalation import HELPDESK` given bad input or a wrong token, against each helpdesk's fake read API (a real HTTP
server): one line that names the problem, exit 1, no stack trace, nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpdesk.fake_api import FakeReadAPI
from tests.helpdesk.fake_jira import HIDDEN_EMAIL
from tests.helpdesk.importing import SINCE, fake_of, run, started

NOBODY = ("--since", SINCE, "--hierarchical", "boss=nobody@example.com")
FIRST_CALL = {  # what the import reads first, and is refused with the wrong token
    "zendesk": "/api/v2/incremental/tickets/cursor.json",
    "zammad": "/api/v1/tickets/search",
    "jira": "/rest/api/3/myself",
}


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeReadAPI]:
    """A running fake of the helpdesk the test is parametrised with."""
    yield from started(fake_of(request.param))


@pytest.mark.parametrize(
    ("fake", "args", "exit_code", "message"),
    [
        ("zendesk", (), 1, "error: --since: give the date to import from on the first run"),
        ("zendesk", ("--since", "yesterday"), 2, "'yesterday': give a date as YYYY-MM-DD"),  # the CLI parser's error
        ("zendesk", NOBODY, 1, "no zendesk user has that e-mail"),
        (
            "zendesk",
            ("--since", SINCE, "--first-line", "Frontdesk"),
            1,
            "--first-line 'Frontdesk': no ticket was ever in that",
        ),
        ("zammad", (), 1, "error: --since: give the date to import from on the first run"),
        ("zammad", NOBODY, 1, "no zammad user has that e-mail"),
        ("jira", (), 1, "error: --since: give the date to import from on the first run"),
        ("jira", NOBODY, 1, "no jira user has that e-mail"),
        ("jira", ("--since", SINCE, "--hierarchical", f"boss={HIDDEN_EMAIL}"), 1, "hide their e-mail address"),
    ],
    indirect=["fake"],
)
def test_bad_input_gets_one_line_and_exit_1(
    fake: FakeReadAPI, tmp_path: Path, args: tuple[str, ...], exit_code: int, message: str
) -> None:
    """One line, exit 1; a value the CLI's parser rejects gets its usage error, exit 2."""
    code, said = run(fake, tmp_path / "history.csv", *args, "--no-progress")
    assert code == exit_code and message in said and "Traceback" not in said, said
    if exit_code == 1:
        assert len(said.strip().splitlines()) == 1, said
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "history.yaml").exists()
    assert HIDDEN_EMAIL not in said


@pytest.mark.parametrize("fake", list(FIRST_CALL), indirect=True)
def test_a_wrong_token_says_which_settings_to_check(fake: FakeReadAPI, tmp_path: Path) -> None:
    code, said = run(fake, tmp_path / "history.csv", "--since", SINCE, "--no-progress", token="wrong")
    lines = said.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in said, said
    assert f"{fake.helpdesk} GET {FIRST_CALL[fake.helpdesk]}: HTTP 401" in lines[0], said
    needs = {
        "zendesk": "EMAIL and ESCALATION_ZENDESK_TOKEN",
        "zammad": "TOKEN",
        "jira": "EMAIL and ESCALATION_JIRA_TOKEN",
    }
    assert lines[0].endswith(f"(check ESCALATION_{fake.helpdesk.upper()}_{needs[fake.helpdesk]})"), lines
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "history.yaml").exists()
