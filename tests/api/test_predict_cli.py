"""`escalation predict` and `train --skip-if-champion` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from escalation.cli import app
from tests.conftest import Trained


def test_predict_writes_one_line_per_ticket(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "scored.jsonl"
    env = {"MLFLOW_TRACKING_URI": trained.settings.tracking_uri}
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--data",
            str(trained.data),
            "--config",
            str(trained.config),
            "--output",
            str(out),
            "--no-progress",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 900 and "scored 900 tickets" in result.output
    assert [line["id"] for line in lines] == pd.read_csv(trained.data)["ticket_id"].tolist()
    assert set(lines[0]) == {"id", "escalation", "routing", "suggestions", "explanation", "model"}
    assert lines[0]["model"]["alias"] == "champion"
    assert not out.with_name(out.name + ".partial").exists()


def test_predict_needs_only_the_text_and_id_columns(trained: Trained, tmp_path: Path) -> None:
    backlog = tmp_path / "backlog.csv"
    pd.read_csv(trained.data)[["ticket_id", "subject", "body"]].head(20).to_csv(backlog, index=False)
    out = tmp_path / "scored.jsonl"
    args = ["predict", "--data", str(backlog), "--config", str(trained.config), "--output", str(out), "--no-progress"]
    result = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": trained.settings.tracking_uri})
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == pd.read_csv(backlog)["ticket_id"].astype(str).tolist()


def test_predict_without_champion_fails_cleanly(trained: Trained, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--data",
            str(trained.data),
            "--config",
            str(trained.config),
            "--output",
            str(tmp_path / "x.jsonl"),
        ],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'e.db'}"},
    )
    assert result.exit_code == 1 and "has alias 'champion'" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_train_skips_when_a_champion_exists(trained: Trained) -> None:
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(trained.data), "--config", str(trained.config), "--skip-if-champion"],
        env={"MLFLOW_TRACKING_URI": trained.settings.tracking_uri},
    )
    assert result.exit_code == 0 and "not training" in result.output
