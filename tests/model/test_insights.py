"""Insights on a generated history with planted themes: a repeating fix and varied fixes are both found, the
repeating one ranked first though it is smaller, each named by its planted words, and nothing personal unmasked."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from escalation.cli import app
from tests.conftest import Trained, store_settings
from training.register import load_router

VPN = [
    "VPN token expired, I cannot connect to the VPN from home",
    "My VPN token says expired and the VPN client refuses to connect",
    "Cannot log in to VPN: token expired message since this morning",
    "The VPN keeps rejecting my token, expired again, working remotely",
]
INVOICE = [
    "The invoice for March shows the wrong amount, please correct the invoice",
    "Our invoice total is wrong, we were invoiced twice the agreed amount",
    "Invoice number mismatch and wrong VAT on the latest invoice",
    "Please send a corrected invoice, the amount on the invoice is wrong",
]
PASSWORD = ["How do I change my password?", "Forgot my password, how to reset it", "Password reset link please"]
FIXES = [
    "Credited the difference to the account.",
    "Reissued the invoice with the right VAT number.",
    "Refunded the duplicate charge to the card.",
    "Corrected the billing address and resent the invoice.",
    "Applied the contract discount that was missing.",
    "Merged the two customer accounts so one invoice is sent.",
    "Changed the currency of the account to EUR.",
    "Cancelled the unused add-on and prorated it.",
]


def history(dated: bool = True, with_fixes: bool = True) -> pd.DataFrame:
    rng, rows = random.Random(5), []
    for n in range(30):  # the repeating fix
        rows.append(
            (
                "vpn",
                f"{rng.choice(VPN)}. user{n}@example.com",
                "network",
                f"Reset the VPN token in the self-service portal for user{n}@example.com and reconnected.",
            )
        )
    for n in range(40):  # more tickets, but a different fix each time
        rows.append(("invoice", f"{rng.choice(INVOICE)}. billing{n}@example.com", "billing", FIXES[n % 8]))
    for n in range(40):  # first line: never a theme
        rows.append(("password", f"{rng.choice(PASSWORD)} {n}", "service-desk", "Sent the reset link."))
    rng.shuffle(rows)
    frame = pd.DataFrame(rows, columns=["kind", "body", "resolved_by", "resolution"])
    frame.insert(0, "ticket_id", [f"P-{i:03d}" for i in range(len(frame))])
    frame["subject"] = ""
    if dated:
        frame["created_at"] = pd.date_range("2026-01-05", periods=len(frame), freq="13h").strftime("%Y-%m-%d %H:%M")
    if not with_fixes:
        frame = frame.drop(columns="resolution")
    return frame


def run(tmp_path: Path, frame: pd.DataFrame) -> tuple[list[dict], str, Path]:
    data, config, out = tmp_path / "tickets.csv", tmp_path / "config.yaml", tmp_path / "insights"
    frame.drop(columns="kind").to_csv(data, index=False)
    columns = {"id": "ticket_id", "text": ["subject", "body"], "target": "resolved_by"}
    columns |= {k: k for k in ("created_at", "resolution") if k in frame}
    config.write_text(yaml.safe_dump({"columns": columns, "teams": {"first_line": ["service-desk"]}}))
    settings = store_settings(tmp_path)
    env = {"ESCALATION_EMBEDDING_CACHE": settings.embedding_cache}
    args = ["insights", "--data", str(data), "--config", str(config), "--output", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads((out / "themes.json").read_text()), result.output, out


def test_a_repeating_fix_is_ranked_before_a_larger_theme_of_varied_fixes(tmp_path: Path) -> None:
    frame = history()
    themes, said, out = run(tmp_path, frame)
    kinds = frame.set_index("ticket_id")["kind"]
    assert len(themes) == 2, themes
    vpn, invoice = themes
    assert {kinds[i] for i in vpn["examples"]} == {"vpn"} and {kinds[i] for i in invoice["examples"]} == {"invoice"}
    assert (vpn["tickets"], vpn["targets"]) == (30, {"network": 30})
    assert (invoice["tickets"], invoice["targets"]) == (40, {"billing": 40})
    planted = {w.lower().strip(",.:") for line in VPN for w in line.split()}
    assert set(vpn["words"][:3]) <= planted and {"vpn", "token"} <= set(vpn["words"][:3]), vpn["words"]
    assert "invoice" in invoice["words"][:3] and set(invoice["words"][:3]) <= {
        w.lower().strip(",.:") for line in INVOICE for w in line.split()
    }, invoice["words"]
    assert vpn["repeatability"] == 1.0 and invoice["repeatability"] <= 0.2
    assert vpn["resolution"] == "Reset the VPN token in the self-service portal for [email] and reconnected."
    assert sum(vpn["per_week"].values()) == 30
    assert f"1. {vpn['name']}: 30 tickets, 100% repeatable" in said and "and 2 draft runbooks" in said
    for written in [out / "themes.json", out / "report.md", *sorted((out / "runbooks").iterdir())]:
        text = written.read_text()
        assert "@" not in text and "example.com" not in text, written.name  # masked everywhere
    assert len(list((out / "runbooks").iterdir())) == 2
    rates = pd.read_csv(out / "rates.csv", keep_default_na=False)
    overall = rates[rates["scope"] == "all"]
    assert (overall["tickets"].sum(), overall["escalated"].sum()) == (110, 70)
    per_target = rates[rates["scope"] == "target"]
    assert set(per_target["value"]) == {"network", "billing"}
    assert per_target.groupby("value")["escalated"].sum().to_dict() == {"billing": 40, "network": 30}
    assert (out / "rates.png").stat().st_size > 0
    assert "of tickets escalated (first-contact resolution 36%)" in (out / "report.md").read_text()
    first = sorted((out / "runbooks").iterdir())[0]
    assert first.name.startswith("01-vpn") and "Reset the VPN token in the self-service portal" in first.read_text()


def test_without_dates_or_resolutions_it_says_what_it_cannot_show_and_ranks_by_volume(tmp_path: Path) -> None:
    themes, said, out = run(tmp_path, history(dated=False, with_fixes=False))
    assert [t["tickets"] for t in themes] == [40, 30]  # by volume alone
    assert all(t["repeatability"] is None and t["resolution"] is None and t["per_week"] == {} for t in themes)
    report = (out / "report.md").read_text()
    assert "Not shown: tickets per week (the export has no creation dates)" in report
    assert "not shown: how alike the fixes are and the most common one (the export has no resolutions)" in said
    assert not (out / "rates.csv").exists() and "Escalation over time" not in report


def test_since_without_dates_is_one_line(tmp_path: Path) -> None:
    frame = history(dated=False)
    frame.drop(columns="kind").to_csv(tmp_path / "t.csv", index=False)
    cols = {"id": "ticket_id", "text": ["body"], "target": "resolved_by"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"columns": cols, "teams": {"first_line": ["service-desk"]}}))
    args = ["insights", "--data", str(tmp_path / "t.csv"), "--config", str(tmp_path / "c.yaml"), "--output"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "o"), "--since", "2026-01-01"])
    assert result.exit_code == 1 and result.output.startswith("error: --since:"), result.output


def test_each_training_run_logs_its_themes_and_the_model_carries_them(trained: Trained) -> None:
    """The sample's escalations, themed at training from the embeddings it already has: logged for leads to compare
    runs, and carried (masked) by the model, since the server holds no ticket text."""
    client = MlflowClient(trained.settings.tracking_uri)
    run = client.get_run(trained.result.run_id)
    artefacts = {a.path for a in client.list_artifacts(run.info.run_id, "insights")}
    assert artefacts == {
        "insights/themes.json",
        "insights/report.md",
        "insights/themes.png",
        "insights/rates.json",
        "insights/rates.png",
    }
    router = load_router(trained.settings, trained.result.version)
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "insights/themes.json")).read_text())
    logged = pd.DataFrame(table["data"], columns=table["columns"])
    assert run.data.metrics["themes"] == len(logged) >= len(router.themes) > 0
    assert [t["name"] for t in router.themes] == logged["name"].tolist()[: len(router.themes)]
    weeks = {r["week"] for r in router.rates}
    assert 0 < len(weeks) <= 26 and {r["scope"] for r in router.rates} == {"all", "target", "channel", "customer_tier"}
    savings = [t["saving"] for t in router.themes]
    assert savings == sorted(savings, reverse=True)
    sample = pd.read_csv(trained.data, dtype=str).set_index("ticket_id")
    for theme in router.themes:  # examples are escalated tickets of the export, and the targets theirs
        assert set(sample.loc[theme["examples"], "resolved_by"]) <= set(theme["targets"]) - {"service-desk"}


pytestmark = pytest.mark.slow  # embeds with the real model


def test_since_on_an_export_whose_dates_are_all_empty_is_one_line(tmp_path: Path) -> None:
    frame = history()
    frame["created_at"] = ""
    frame.drop(columns="kind").to_csv(tmp_path / "t.csv", index=False)
    cols = {"id": "ticket_id", "text": ["body"], "target": "resolved_by", "created_at": "created_at"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"columns": cols, "teams": {"first_line": ["service-desk"]}}))
    args = ["insights", "--data", str(tmp_path / "t.csv"), "--config", str(tmp_path / "c.yaml"), "--output"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "o"), "--since", "2026-01-01"])
    assert result.exit_code == 1 and result.output.startswith("error: --since:"), result.output


def test_an_output_that_is_a_file_is_one_line_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    args = ["insights", "--data", str(tmp_path / "none.csv"), "--config", str(tmp_path / "none.yaml")]
    result = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "taken")])
    assert (
        result.exit_code == 1
        and result.output.strip() == f"error: --output {tmp_path / 'taken'}: is a file; give a folder"
    )
