"""Bad exports and configs fail fast, name the file, column and rows, exit non-zero and write nothing."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from escalation.cli import app
from features.data import DataError, export_columns, read_export
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


CASES = {  # problems of the file as a whole: refused in every mode
    "missing column": "missing column(s) 'body'",
    "unknown first line": "teams.first_line: 'help-desk' never appear in column 'resolved_by'",
    "too few tickets": "only 20 usable ticket(s); training needs at least 50",
    "one target": "column 'resolved_by': only one value (service-desk)",
}
ROW_CASES = {  # problems of single rows: skipped and reported, or with --strict refused
    "empty text": "2 row(s) without text: row 5, row 10",
    "no resolver": "1 row(s) without a target: row 3",
    "bad dates": "1 row(s) with an unreadable date: row 8",
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


@pytest.mark.parametrize("case", ROW_CASES)
def test_strict_refuses_a_file_with_bad_rows(export: tuple, case: str) -> None:
    frame, config, tmp_path = export
    data, cfg = _write(tmp_path, *_broken(frame, config, case))
    with pytest.raises(DataError) as err:
        train(data, cfg, store_settings(tmp_path), progress=False, strict=True)
    assert f"{data}: --strict refuses the file: {ROW_CASES[case]}" in str(err.value)
    assert _runs(tmp_path / "mlflow.db") == 0


def _malformed(frame: pd.DataFrame, tmp_path: Path) -> Path:
    """The export with one row of each kind of damage appended (rows 301-305 of the file) and one bad line."""
    good = frame.to_csv(index=False).encode()
    cols = list(frame.columns)

    def row(tag: str, **values: str) -> bytes:
        base = {**dict(frame.iloc[0]), "ticket_id": f"BAD-{tag}", **values}
        return pd.DataFrame([base], columns=cols).to_csv(index=False, header=False).encode()

    extra = (
        row(tag="latin", body="R\u00fcckerstattung bitte").replace("ü".encode(), "ü".encode("latin-1"))
        + row(tag="notext", subject="", body="  ")
        + row(tag="na", resolved_by="n/a")
        + row(tag="date", created_at="yesterday-ish")
        + b'"too","many","fields","in","this","line","for","the","header","really"\n'
        + row(tag="unknown", resolved_by="Unknown")
    )
    path = tmp_path / "malformed.csv"
    path.write_bytes(good + extra)
    return path


@pytest.mark.slow  # trains a model through the command line
def test_malformed_rows_are_counted_reported_and_skipped(export: tuple) -> None:
    frame, config, tmp_path = export
    data = _malformed(frame, tmp_path)
    (tmp_path / "cfg").mkdir()
    _, cfg = _write(tmp_path / "cfg", frame, config)
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(data), "--config", str(cfg), "--no-progress"],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}", "ESCALATION_EMBEDDING_CACHE": ""},
    )
    assert result.exit_code == 0, result.output
    summary = result.stdout.splitlines()[0]
    assert summary.startswith("rows: 306 read, 300 kept, 6 skipped: ")
    for part in (
        "1 unreadable (wrong number of fields) (line 306 (expected 8 fields, saw 10))",
        "1 not UTF-8 (row 301)",
        "1 without text (row 302)",
        "2 without a target (row 303, row 305)",
        "1 with an unreadable date (row 304)",
    ):
        assert part in summary
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    run = client.search_runs([client.get_experiment_by_name("escalation-router").experiment_id])[0]
    assert run.data.params["rows_read"] == "306" and run.data.params["rows_skipped"] == "6"
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "data_report.json", str(tmp_path))).read_text())
    assert report["rows_kept"] == 300 and report["skipped"]["without a target"] == ["row 303", "row 305"]

    strict = CliRunner().invoke(
        app,
        ["train", "--data", str(data), "--config", str(cfg), "--no-progress", "--strict"],
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 's.db'}"},
    )
    assert strict.exit_code == 1 and "--strict refuses the file: 1 row(s) unreadable" in strict.output
    assert "Traceback" not in strict.output and _runs(tmp_path / "s.db") == 0


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


NOT_WHAT_THEY_CLAIM = [
    ("empty.csv", b"", "the file is empty"),
    ("blank.csv", b"\n\n  \n", "the file is empty"),
    ("header.csv", b"subject,body\n", "no rows"),
    ("latin.csv", "subject\nok\nRückerstattung\n".encode("latin-1"), "not UTF-8 text in row(s) 2"),
    ("sheet.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
    ("sheet.csv", b"PK\x03\x04\x14\x00rest of a workbook", "is a ZIP archive (an Excel .xlsx workbook?), not csv"),
    ("old.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "is an Excel .xls workbook, not csv text"),
    ("data.jsonl", b"PAR1\x15\x04", "is a Parquet file, not jsonl text"),
    ("utf16.csv", "subject,body\na,b\n".encode("utf-16"), "holds binary data, not csv text"),
    ("semi.csv", b"subject;body;resolved_by\na;b;c\n", "looks separated by semicolons, not commas"),
    ("tabs.csv", b"subject\tbody\tresolved_by\na\tb\tc\n", "looks separated by tabs, not commas"),
    ("lines.jsonl", b'{"subject": "a"}\nnot json\n', "not a JSON object at line 2"),
    ("broken.parquet", b"not parquet", "cannot be read as parquet"),
]


@pytest.mark.parametrize(("name", "content", "message"), NOT_WHAT_THEY_CLAIM)
def test_files_that_are_not_what_they_claim(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)):
        read_export(path)


@pytest.mark.parametrize(
    "name",
    ["empty.csv", "blank.csv", "sheet.xlsx", "sheet.csv", "old.csv", "data.jsonl", "utf16.csv", "semi.csv", "tabs.csv"]
    + ["broken.parquet"],
)
def test_a_head_that_is_not_what_it_claims_is_the_same_error(tmp_path: Path, name: str) -> None:
    """`predict` checks a file's head before any work: what the head shows, it says as the whole read does."""
    content = dict((n, c) for n, c, _ in NOT_WHAT_THEY_CLAIM)[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as whole:
        read_export(path)
    with pytest.raises(DataError) as head, path.open("rb") as stream:
        export_columns(stream, path, ["subject"])
    assert str(head.value) == str(whole.value)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_the_head_finds_the_columns_the_whole_read_finds(tmp_path: Path, suffix: str) -> None:
    """A JSON Lines record may leave a key out: a key only a later record has is found, one none has is not."""
    frame = generate(50, seed=5)
    frame["later"] = [None] * 49 + ["only in the last record"]
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        path.write_text(
            "".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in frame.to_dict("records"))
        )
    else:
        frame.to_parquet(path, index=False)
    wanted = ["subject", "later", "absent"]
    with path.open("rb") as stream:
        found = export_columns(stream, path, wanted)
    whole = read_export(path).columns
    assert [c for c in wanted if c in found] == [c for c in wanted if c in whole] == ["subject", "later"]


def test_training_split_with_one_target_left_is_a_clear_error(tmp_path: Path) -> None:
    data, config = write_sample(tmp_path, rows=300, seed=5)
    frame = pd.read_csv(data).sort_values("created_at", kind="stable")
    escalated = frame["resolved_by"] != "service-desk"
    newest = np.arange(len(frame)) >= 280  # only the newest tickets, all in the holdout, know a second team
    frame.loc[escalated & ~newest, "resolved_by"] = "billing"
    frame.loc[escalated & newest, "resolved_by"] = "engineering"
    frame.to_csv(data, index=False)
    with pytest.raises(
        DataError, match=r"the training split \(240 tickets, holdout newest\) escalates only to \['billing'\]"
    ):
        train(data, config, store_settings(tmp_path), progress=False)
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything reached MLflow
