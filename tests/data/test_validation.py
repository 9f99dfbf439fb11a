"""Bad exports and configs fail fast, name the file, column and rows, exit non-zero and write nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from escalation.cli import app
from features.data import DataError, read_export
from tests.conftest import store_settings
from training.sample_data import generate, write_sample
from training.train import train


@pytest.fixture
def export(tmp_path: Path) -> tuple[pd.DataFrame, dict, Path]:
    data, config = write_sample(tmp_path / "in", rows=300, seed=3)
    return pd.read_csv(data, dtype=str, keep_default_na=False), yaml.safe_load(config.read_text()), tmp_path


def _write(tmp_path: Path, frame: pd.DataFrame, config: dict) -> tuple[Path, Path]:
    data, cfg = tmp_path / "tickets.csv", tmp_path / "config.yaml"
    frame.to_csv(data, index=False)
    cfg.write_text(yaml.safe_dump(config))
    return data, cfg


def _runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        return conn.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else 0


def _broken(frame: pd.DataFrame, config: dict, case: str) -> tuple[pd.DataFrame, dict]:
    frame, config = frame.copy(), yaml.safe_load(yaml.safe_dump(config))
    if case == "missing column":
        frame = frame.drop(columns=["body"])
    elif case == "empty text":
        frame.loc[[4, 9], ["subject", "body"]] = ""
    elif case == "no resolver":
        frame.loc[[2], "resolved_by"] = ""
    elif case == "unknown first line":
        config["teams"]["first_line"] = ["help-desk"]
    elif case == "too few tickets":
        frame = frame.head(20)
    elif case == "one target":
        frame["resolved_by"] = "service-desk"
    elif case == "bad dates":
        frame.loc[[7], "created_at"] = "not a date"
    return frame, config


CASES = {
    "missing column": "missing column(s) 'body'",
    "empty text": "column(s) subject, body: empty text in 2 row(s): 5, 10",
    "no resolver": "column 'resolved_by': no resolver in 1 row(s): 3",
    "unknown first line": "teams.first_line: 'help-desk' never appear in column 'resolved_by'",
    "too few tickets": "only 20 usable ticket(s); training needs at least 50",
    "one target": "column 'resolved_by': only one value (service-desk)",
    "bad dates": "column 'created_at': unreadable dates in 1 row(s): 8",
}


@pytest.mark.parametrize("case", CASES)
def test_bad_export_is_refused_with_a_clear_message(export: tuple, case: str) -> None:
    frame, config, tmp_path = export
    data, cfg = _write(tmp_path, *_broken(frame, config, case))
    settings = store_settings(tmp_path)
    with pytest.raises(DataError) as err:
        train(data, cfg, settings, progress=False)
    assert str(data) in str(err.value)
    assert CASES[case] in str(err.value)
    assert _runs(tmp_path / "mlflow.db") == 0


def test_cli_exits_non_zero_with_one_line(export: tuple) -> None:
    frame, config, tmp_path = export
    data, cfg = _write(tmp_path, *_broken(frame, config, "missing column"))
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(data), "--config", str(cfg), "--no-progress"],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"},
    )
    assert result.exit_code == 1
    assert "error:" in result.output and "missing column(s) 'body'" in result.output
    assert "Traceback" not in result.output
    assert _runs(db) == 0


def test_cli_bad_config_key(export: tuple) -> None:
    frame, config, tmp_path = export
    config["colums"] = config.pop("columns")
    data, cfg = _write(tmp_path, frame, config)
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(data), "--config", str(cfg)],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'x.db'}"},
    )
    assert result.exit_code == 1
    assert "colums: unknown key" in result.output and "columns: Field required" in result.output


def test_cli_refuses_file_store(export: tuple) -> None:
    _, _, tmp_path = export
    result = CliRunner().invoke(
        app, ["train", "--data", "x.csv", "--config", "y.yaml"], env={"MLFLOW_TRACKING_URI": str(tmp_path / "mlruns")}
    )
    assert result.exit_code == 1 and "plain file store" in result.output


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_other_formats_read_the_same(tmp_path: Path, suffix: str) -> None:
    frame = generate(120, seed=5)
    path = tmp_path / f"t{suffix}"
    if suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    back = read_export(path)
    assert len(back) == 120 and set(frame.columns) <= set(back.columns)
    assert back["subject"].tolist() == frame["subject"].tolist()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "cannot be read as csv"),
        ("latin.csv", "subject\nRückerstattung\n".encode("latin-1"), "not UTF-8"),
        ("sheet.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
        ("broken.parquet", b"not parquet", "cannot be read as parquet"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_export(path)


def test_training_split_with_one_target_left_is_a_clear_error(tmp_path: Path) -> None:
    data, config = write_sample(tmp_path, rows=300, seed=5)
    with pytest.raises(DataError, match=r"the training split \(240 tickets, holdout newest\) has only \['other'\]"):
        train(data, config, store_settings(tmp_path), progress=False)
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything reached MLflow
