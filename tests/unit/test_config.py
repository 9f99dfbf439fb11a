from pathlib import Path

import pytest
from pydantic import ValidationError

from features.config import ConfigError, load_config, parse_config
from features.settings import Settings

GOOD = {"columns": {"text": "body", "target": "team"}, "teams": {"first_line": "desk"}}


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(GOOD)
    assert config.columns.text == ["body"]
    assert config.teams.first_line == ["desk"]
    assert config.min_examples == 30 and config.training.target_precision == 0.9
    assert config.flat_params()["columns.text"] == "body"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"teams": {"first_line": ["desk"]}}, "columns: Field required"),
        ({**GOOD, "colums": {}}, "colums: unknown key"),
        ({**GOOD, "min_examples": 0}, "min_examples: Input should be greater than or equal to 1"),
        ({**GOOD, "teams": {"first_line": []}}, "teams.first_line"),
        ({**GOOD, "teams": {"first_line": ["a"], "hierarchical": ["a"]}}, "both first_line and hierarchical"),
        ({**GOOD, "training": {"target_precision": 1.5}}, "training.target_precision"),
        ("just text", "expected a mapping"),
    ],
)
def test_bad_config_names_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match="cfg.yaml") as err:
        parse_config(data, "cfg.yaml")
    assert message in str(err.value)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)


def test_teams_kind() -> None:
    teams = parse_config({**GOOD, "teams": {"first_line": ["desk"], "hierarchical": ["lead"]}}).teams
    assert [teams.kind(t) for t in ("desk", "lead", "billing")] == ["first_line", "hierarchical", "functional"]


@pytest.mark.parametrize("uri", ["file:///tmp/mlruns", "./mlruns", "mlruns"])
def test_plain_file_store_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="plain file store"):
        Settings(tracking_uri=uri)


def test_tracking_uri_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")
    assert Settings().tracking_uri == "sqlite:///other.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert Settings().tracking_uri == "sqlite:///mlflow.db"
