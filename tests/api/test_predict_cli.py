"""`escalation predict` and `train --skip-if-champion` through the real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from escalation.cli import app
from serving.predict import answers_in
from tests.conftest import ESCALATION, Trained


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
    assert set(lines[0]) == {"id", "familiarity", "escalation", "routing", "suggestions", "explanation", "model"}
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


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["interrupted", "killed"])
def test_a_run_stopped_half_way_leaves_nothing_for_the_next(trained: Trained, tmp_path: Path, stop: int) -> None:
    """A long run stopped after writing parts (Ctrl-C: cleaned up; kill -9: nothing can clean up), then a shorter
    run to the same output: the output holds the shorter run's answers and nothing else."""
    export = pd.read_csv(trained.data, dtype=str, keep_default_na=False)
    long = pd.concat([export.assign(ticket_id=export["ticket_id"] + f"-{i}") for i in range(3)])
    (tmp_path / "long.csv").write_text(long.to_csv(index=False), encoding="utf-8")
    export.head(20).to_csv(tmp_path / "short.csv", index=False)
    output = tmp_path / "scored.jsonl"
    partial = output.with_name(output.name + ".partial")
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained.settings.tracking_uri}
    args = ["predict", "--config", str(trained.config), "--output", f"{output}/", "--no-progress"]
    process = subprocess.Popen([ESCALATION, *args, "--data", str(tmp_path / "long.csv")], env=env)
    deadline = time.monotonic() + 300
    while not (partial / "part-00003.jsonl").exists():  # two of its eleven parts whole, a third begun
        assert process.poll() is None and time.monotonic() < deadline, "the long run ended before three parts"
        time.sleep(0.02)
    process.send_signal(stop)
    assert process.wait(timeout=120) != 0
    assert not output.exists()
    if stop == signal.SIGINT:
        assert not partial.exists(), sorted(p.name for p in partial.iterdir())
    done = subprocess.run([ESCALATION, *args, "--data", str(tmp_path / "short.csv")], env=env, timeout=300)
    assert done.returncode == 0
    assert [a["id"] for a in answers_in(output)] == export["ticket_id"].head(20).tolist()
    assert not partial.exists()
