"""A sqlite MLflow store keeps its artefacts beside its database, whatever folder a command runs in."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from training.tracking import artifact_location, experiment_id


def test_a_new_experiment_keeps_its_artefacts_beside_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # where a command runs; MLflow's default put ./mlruns here
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    client = MlflowClient(uri, uri)
    created = client.get_experiment(experiment_id(client, "escalation router/v2"))
    assert created.artifact_location == str(tmp_path / "store" / "mlruns" / "escalation-router-v2")
    run = client.create_run(created.experiment_id)
    client.log_text(run.info.run_id, "kept beside the database", "note.txt")
    assert (tmp_path / "store" / "mlruns" / "escalation-router-v2").is_dir()
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert experiment_id(client, "escalation router/v2") == created.experiment_id  # found, not created again


def test_only_a_sqlite_file_store_is_given_a_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert artifact_location("sqlite:///mlflow.db", "x") == str(tmp_path / "mlruns" / "x")  # the default, as before
    assert artifact_location("sqlite:////srv/mlflow/mlflow.db?timeout=20", "x") == "/srv/mlflow/mlruns/x"
    for uri in ("sqlite:///:memory:", "http://127.0.0.1:5000", "postgresql+psycopg://postgres@127.0.0.1/mlflow"):
        assert artifact_location(uri, "x") is None, uri
