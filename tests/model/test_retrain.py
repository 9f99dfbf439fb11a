"""Retraining on the export plus stored feedback: the merge, the cache, champion vs challenger and dry runs."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from escalation.cli import app
from serving.feedback_store import Feedback, FeedbackStore
from tests.conftest import point_mlflow_at, store_settings
from training.sample_data import write_sample
from training.train import train


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("retrain")
    data, config = write_sample(folder, rows=600, seed=5)
    first = train(data, config, store_settings(folder), progress=False)
    assert first.promoted and first.embeddings_reused == 0
    export = pd.read_csv(data)
    store = FeedbackStore(store_settings(folder).feedback_url)
    newest_billing = export[export["resolved_by"] == "billing"].tail(5)["ticket_id"]
    for ticket_id in newest_billing:  # agents say these went to the manager
        store.record_feedback(Feedback(ticket_id, True, "support-manager", False, "customer asked for a manager"))
    store.record_feedback(Feedback("T-not-in-export", False, None, True))
    strict = yaml.safe_load(config.read_text())
    strict["training"] = {"promotion_margin": 1.0}  # no challenger can win by a whole point
    strict_config = folder / "strict.yaml"
    strict_config.write_text(yaml.safe_dump(strict))
    return folder, data, strict_config


def _env(folder: Path) -> dict[str, str]:
    s = store_settings(folder)
    return {
        "MLFLOW_TRACKING_URI": s.tracking_uri,
        "ESCALATION_FEEDBACK_URL": s.feedback_url,
        "ESCALATION_EMBEDDING_CACHE": s.embedding_cache,
    }


def test_dry_run_compares_but_changes_nothing(setup: tuple[Path, Path, Path]) -> None:
    folder, data, config = setup
    result = CliRunner().invoke(
        app, ["retrain", "--data", str(data), "--config", str(config), "--dry-run", "--no-progress"], env=_env(folder)
    )
    assert result.exit_code == 0, result.output
    assert (
        "feedback: 6 rows, 5 match export tickets (0 agree, 5 relabelled by feedback), 1 not in the export"
        in result.output
    )
    assert "embeddings: 600 reused from the cache" in result.output
    # the newest 120 are held out; those whose text the champion trained on word for word are left out
    compared = re.search(r"champion vs challenger on (\d+) holdout tickets neither trained on \((\d+) ", result.output)
    assert compared and int(compared[1]) + int(compared[2]) == 120 and int(compared[1]) > 0
    assert "target_top1_accuracy" in result.output
    assert "dry run, nothing logged: would have kept champion v1" in result.output
    client = MlflowClient(store_settings(folder).tracking_uri)
    assert [str(v.version) for v in client.search_model_versions("name='escalation-router'")] == ["1"]


def test_losing_challenger_is_registered_as_challenger_with_the_reason(
    setup: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, data, config = setup
    result = CliRunner().invoke(
        app, ["retrain", "--data", str(data), "--config", str(config), "--no-progress"], env=_env(folder)
    )
    assert result.exit_code == 0, result.output
    settings = store_settings(folder)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    assert str(client.get_model_version_by_alias("escalation-router", "champion").version) == "1"
    challenger = client.get_model_version_by_alias("escalation-router", "challenger")
    assert str(challenger.version) == "2" and challenger.tags["promotion"].startswith("kept champion v1: routing_score")
    assert "+ margin 1" in challenger.tags["promotion"]
    run = client.get_run(challenger.run_id)
    assert run.data.params["feedback_rows"] == "6" and run.data.metrics["feedback_relabelled"] == 5
    assert run.data.metrics["embeddings_reused"] == 600
    assert "champion_target_top1_accuracy" in run.data.metrics
    paths = {a.path for a in client.list_artifacts(run.info.run_id, "comparison")}
    assert paths == {"comparison/champion_vs_challenger.json", "comparison/champion_vs_challenger.png"}
    point_mlflow_at(settings, monkeypatch)
    merge = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/feedback_merge.json")
    assert merge["changed"] == 5 and merge["not_in_export"] == 1


def test_retrain_without_a_reachable_store_is_a_clear_error(setup: tuple[Path, Path, Path]) -> None:
    folder, data, config = setup
    env = {**_env(folder), "ESCALATION_FEEDBACK_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(app, ["retrain", "--data", str(data), "--config", str(config)], env=env)
    assert result.exit_code != 0 and "feedback store" in result.output and "Traceback" not in result.output
