"""`escalation init`: a config proposed from an export's columns, each guess explained, written only when asked, and
trained on as it is (the shared real exports where they are present)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from escalation.cli import app
from features.config import load_config
from tests.conftest import store_settings
from training.sample_data import write_sample

SHARED = Path(__file__).parents[3] / "shared" / "data"
IT = SHARED / "it_tickets" / "tickets.csv"
MULTILANG = SHARED / "synthetic_multilang" / "tickets_en_de.csv"
needs_shared = pytest.mark.skipif(not IT.exists() or not MULTILANG.exists(), reason=f"no shared data at {SHARED}")


def init(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["init", *args])
    return result.exit_code, result.output


def test_the_sample_export_gets_the_config_it_ships_with(tmp_path: Path) -> None:
    data, shipped = write_sample(tmp_path, rows=400, seed=3)
    code, said = init("--data", str(data), "--output", str(tmp_path / "proposed.yaml"))
    assert code == 0, said
    proposed, expected = load_config(tmp_path / "proposed.yaml"), load_config(shipped)
    assert proposed.columns == expected.columns and proposed.teams == expected.teams
    assert "service-desk: named like a front desk, resolves" in said
    assert "support-manager: named like a manager or lead" in said


def test_it_prints_until_asked_to_write_and_never_overwrites_unasked(tmp_path: Path) -> None:
    data, _ = write_sample(tmp_path, rows=200, seed=3)
    code, said = init("--data", str(data))
    assert code == 0 and "add --output CONFIG to write it" in said
    assert (
        yaml.safe_load(said[said.index("columns:") : said.index("add --output")])["columns"]["target"] == "resolved_by"
    )
    config = tmp_path / "mine.yaml"
    config.write_text("# my own\n")
    code, said = init("--data", str(data), "--output", str(config))
    assert (
        code == 1 and said.strip() == f"error: --output {config}: exists; give --force to overwrite it, or another path"
    )
    assert config.read_text() == "# my own\n"
    assert init("--data", str(data), "--output", str(config), "--force")[0] == 0
    assert load_config(config).columns.target == "resolved_by"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--first-line", "nobody"), "error: --first-line 'nobody': not a value of resolved_by"),
        (("--target", "colour"), "error: --target 'colour': no such column"),
    ],
)
def test_a_wrong_correction_is_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    data, _ = write_sample(tmp_path, rows=200, seed=3)
    code, said = init("--data", str(data), *args)
    assert code == 1 and said.startswith(message) and len(said.strip().splitlines()) == 1, said


def test_an_export_without_ticket_text_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "codes.csv"
    pd.DataFrame({"code": ["a", "b"] * 30, "team": ["x", "y", "z"] * 20}).to_csv(data, index=False)
    code, said = init("--data", str(data))
    assert code == 1 and said.startswith("error: no column holds ticket text"), said


def train(data: Path, config: Path, folder: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": store_settings(folder).tracking_uri}
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--config", str(config), "--no-progress"], env=env)
    assert result.exit_code == 0, result.output


@needs_shared
def test_the_it_export_gets_its_first_line_and_a_config_that_trains(tmp_path: Path) -> None:
    config = tmp_path / "it.yaml"
    code, said = init("--data", str(IT), "--output", str(config))
    assert code == 0, said
    assert "GRP_0: the most common target, 47% of tickets" in said
    proposed = load_config(config)
    assert proposed.teams.first_line == ["GRP_0"] and proposed.columns.target == "Assignment group"
    assert proposed.columns.text == ["Short description", "Description"] and proposed.columns.id is None


@needs_shared
def test_the_multilingual_export_says_why_and_trains_once_its_first_line_is_confirmed(tmp_path: Path) -> None:
    code, said = init("--data", str(MULTILANG))
    assert code == 0, said
    assert (
        "Customer Service: named like a front desk, resolves 17% of tickets; the most common, Technical Support" in said
    )
    config = tmp_path / "multi.yaml"
    code, said = init("--data", str(MULTILANG), "--first-line", "Customer Service", "--output", str(config))
    assert code == 0 and "Customer Service: given with --first-line" in said, said
    assert load_config(config).columns.resolution == "answer"


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("export", [IT, MULTILANG], ids=["it", "multilang"])
def test_a_proposed_config_trains_without_edits(tmp_path: Path, export: Path) -> None:
    """On 800 tickets of each export (the whole would take minutes to embed; the columns are the same)."""
    config = tmp_path / "proposed.yaml"
    confirmed = ["--first-line", "Customer Service"] if export == MULTILANG else []  # as the user would, once told why
    assert init("--data", str(export), "--output", str(config), *confirmed)[0] == 0
    part = tmp_path / "part.csv"
    pd.read_csv(export, dtype=str, keep_default_na=False).sample(800, random_state=1).to_csv(part, index=False)
    train(part, config, tmp_path)
