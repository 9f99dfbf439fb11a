"""`escalation import` with a helpdesk's settings missing: one line naming exactly the settings to set, exit 1,
nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from escalation.cli import app


@pytest.mark.parametrize(
    ("helpdesk", "given", "missing"),
    [
        ("zendesk", {}, "ESCALATION_ZENDESK_URL, ESCALATION_ZENDESK_EMAIL, ESCALATION_ZENDESK_TOKEN"),
        (
            "zendesk",
            {"ESCALATION_ZENDESK_URL": "https://acme.zendesk.com"},
            "ESCALATION_ZENDESK_EMAIL, ESCALATION_ZENDESK_TOKEN",
        ),
        ("zammad", {"ESCALATION_ZAMMAD_URL": "https://zammad.example"}, "ESCALATION_ZAMMAD_TOKEN"),
        ("jira", {"ESCALATION_JIRA_TOKEN": "t"}, "ESCALATION_JIRA_URL, ESCALATION_JIRA_EMAIL"),
    ],
)
def test_missing_settings_are_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helpdesk: str, given: dict[str, str], missing: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    for name in ("URL", "EMAIL", "TOKEN"):
        for desk in ("ZENDESK", "ZAMMAD", "JIRA"):
            monkeypatch.delenv(f"ESCALATION_{desk}_{name}", raising=False)
    output = tmp_path / "history.csv"
    result = CliRunner().invoke(app, ["import", helpdesk, "--output", str(output), "--since", "2026-01-01"], env=given)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {helpdesk}: set {missing} (the connector's settings, docs/helpdesks.md)"
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_helpdesk_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["import", "freshdesk", "--output", str(tmp_path / "h.csv"), "--since", "2026-01-01"]
    )
    assert result.exit_code == 1 and result.output.strip() == (
        "error: helpdesk 'freshdesk': this version imports from zendesk, zammad, jira"
    )


def test_a_date_with_an_offset_keeps_it_and_a_plain_date_is_utc() -> None:
    from datetime import UTC, datetime

    from escalation.cli import _date

    assert _date("2026-01-01T00:00+05:00", "--since") == datetime(2025, 12, 31, 19, 0, tzinfo=UTC)
    assert _date("2026-01-01", "--since") == datetime(2026, 1, 1, tzinfo=UTC)
    assert _date(None, "--since") is None
