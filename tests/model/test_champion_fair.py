"""The champion is judged on tickets it never trained on: the split is a fixed function of each ticket, the model
records what it trained on, and champion and challenger are scored on the holdout tickets neither saw."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import store_settings
from training.register import load_router
from training.sample_data import SAMPLE_CONFIG, generate
from training.train import train

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "registered-fd12f5e"


def _undated(folder: Path, frame: pd.DataFrame, name: str) -> tuple[Path, Path]:
    """An export without dates (the split is then by ticket id) and its config."""
    data, config = folder / f"{name}.csv", folder / "config.yaml"
    frame.drop(columns=["created_at"]).to_csv(data, index=False)
    columns = {k: v for k, v in SAMPLE_CONFIG["columns"].items() if k != "created_at"}
    config.write_text(yaml.safe_dump({**SAMPLE_CONFIG, "columns": columns}))
    return data, config


def _holdout_ids(export: Path, version: str, settings) -> set[str]:  # type: ignore[no-untyped-def]
    """The export's tickets a version did not train on (its similar-ticket index holds every training ticket)."""
    return set(pd.read_csv(export, dtype=str)["ticket_id"]) - set(load_router(settings, version).index.ids)


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Version 1 trained on 700 tickets; version 2 on the same export with 300 newly resolved tickets appended."""
    folder = tmp_path_factory.mktemp("fair")
    settings = store_settings(folder)
    first = generate(700, seed=31)
    data1, config = _undated(folder, first, "first")
    v1 = train(data1, config, settings, progress=False)
    newer = generate(300, seed=32)
    newer["ticket_id"] = [f"N-{i:04d}" for i in range(len(newer))]
    data2, _ = _undated(folder, pd.concat([first, newer], ignore_index=True), "grown")
    v2 = train(data2, config, settings, progress=False)
    return settings, data1, data2, v1, v2


def test_the_champion_is_scored_only_on_tickets_it_never_trained_on(grown) -> None:  # type: ignore[no-untyped-def]
    settings, data1, data2, v1, v2 = grown
    held1, held2 = _holdout_ids(data1, v1.version, settings), _holdout_ids(data2, v2.version, settings)
    assert held1 <= held2  # no ticket held out by version 1 was trained on by version 2
    trained1 = set(load_router(settings, v1.version).index.ids)
    overlap = held2 & trained1  # what scoring the champion on the whole new holdout would have included
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(v2.run_id)
    assert run.data.tags["comparison"] == "verified"
    assert run.data.metrics["comparison_tickets"] == len(held2 - trained1) > 0
    assert run.data.metrics["comparison_excluded"] == len(overlap)
    assert run.data.params["holdout"] == "by ticket id"
    assert f"on {len(held2 - trained1)} holdout tickets neither trained on" in v2.reason
    assert v2.compared_on.startswith(f"{len(held2 - trained1)} holdout tickets neither trained on")
    for metric in ("routing_score", "target_top1_accuracy"):
        assert f"champion_{metric}" in run.data.metrics and f"challenger_{metric}" in run.data.metrics
    record = load_router(settings, v2.version).provenance
    assert record is not None and record.how == "by ticket id" and len(record.held_out) == len(held2)


def test_a_champion_that_recorded_nothing_is_compared_as_before_and_marked_unverified(
    grown,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    _, data1, _, _, _ = grown
    settings = store_settings(tmp_path)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.create_registered_model(settings.model_name)
    old = shutil.copytree(FIXTURE, tmp_path / "old-model")  # registered by the code at fd12f5e: no record
    version = client.create_model_version(settings.model_name, str(old))
    client.set_registered_model_alias(settings.model_name, settings.model_alias, version.version)
    result = train(data1, Path(data1).with_name("config.yaml"), settings, progress=False)
    run = client.get_run(result.run_id)
    assert run.data.tags["comparison"] == "unverified"
    assert "unverified: the champion recorded no training tickets" in result.reason
    assert run.data.metrics["comparison_tickets"] == run.data.metrics["holdout_tickets"]
