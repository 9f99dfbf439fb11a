"""The champion is judged on tickets it never trained on: the split is a fixed function of each ticket, the model
records what it trained on, and champion and challenger are scored on the holdout tickets neither saw."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from features.config import load_config
from features.data import read_export, to_tickets
from tests.conftest import store_settings
from training.embed_cache import EmbeddingCache
from training.evaluate import evaluate
from training.labels import derive_labels
from training.register import load_router
from training.sample_data import SAMPLE_CONFIG, generate
from training.train import train

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "registered-fd12f5e"


def _undated(folder: Path, frame: pd.DataFrame, name: str, seed: int = 42) -> tuple[Path, Path]:
    """An export without dates (the split is then by ticket id) and its config."""
    data, config = folder / f"{name}.csv", folder / f"config-{seed}.yaml"
    frame.drop(columns=["created_at"]).to_csv(data, index=False)
    columns = {k: v for k, v in SAMPLE_CONFIG["columns"].items() if k != "created_at"}
    config.write_text(yaml.safe_dump({**SAMPLE_CONFIG, "columns": columns, "training": {"seed": seed}}))
    return data, config


def _unseen(data: Path, config: Path, settings, challenger: str, champion: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The challenger's holdout tickets (those of the export its similar-ticket index, which holds every training
    ticket, lacks) that the champion never trained on: not its id, nor its text."""
    tickets = to_tickets(read_export(data), load_config(config))
    trained_by_challenger = set(load_router(settings, challenger).index.ids)
    trained_by_champion = tickets["id"].isin(set(load_router(settings, champion).index.ids))
    held = ~tickets["id"].isin(trained_by_challenger)
    copies = tickets["text"].isin(set(tickets["text"][trained_by_champion]))
    return tickets[held & ~trained_by_champion & ~copies].reset_index(drop=True)


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Version 1 trained on 700 tickets; version 2 on the same export with 300 newly resolved tickets appended;
    version 3 on that export again, its holdout drawn with another seed."""
    folder = tmp_path_factory.mktemp("fair")
    settings = store_settings(folder)
    first = generate(700, seed=31)
    data1, config = _undated(folder, first, "first")
    v1 = train(data1, config, settings, progress=False)
    newer = generate(300, seed=32)
    newer["ticket_id"] = [f"N-{i:04d}" for i in range(len(newer))]
    data2, _ = _undated(folder, pd.concat([first, newer], ignore_index=True), "grown")
    v2 = train(data2, config, settings, progress=False)
    champion_before_v3 = v2.version if v2.promoted else v1.version
    _, reseeded = _undated(folder, pd.concat([first, newer], ignore_index=True), "grown", seed=7)
    v3 = train(data2, reseeded, settings, progress=False)
    return settings, (data1, data2), (config, reseeded), (v1, v2, v3), champion_before_v3


def _holdout_ids(export: Path, version: str, settings) -> set[str]:  # type: ignore[no-untyped-def]
    """The export's tickets a version did not train on (its similar-ticket index holds every training ticket)."""
    return set(pd.read_csv(export, dtype=str)["ticket_id"]) - set(load_router(settings, version).index.ids)


def test_a_retrain_on_a_grown_export_keeps_the_holdout_and_scores_the_champion_fairly(grown) -> None:  # type: ignore[no-untyped-def]
    settings, (data1, data2), (config, _), (v1, v2, _), _ = grown
    held1, held2 = _holdout_ids(data1, v1.version, settings), _holdout_ids(data2, v2.version, settings)
    assert held1 <= held2  # no ticket held out by version 1 was trained on by version 2
    unseen = _unseen(data2, config, settings, v2.version, v1.version)
    run = MlflowClient(settings.tracking_uri).get_run(v2.run_id)
    assert run.data.tags["comparison"] == "verified" and run.data.params["holdout"] == "by ticket id"
    assert run.data.metrics["comparison_tickets"] == len(unseen) > 0
    assert run.data.metrics["comparison_tickets"] + run.data.metrics["comparison_excluded"] == len(held2)
    assert f"on {len(unseen)} holdout tickets neither trained on" in v2.reason
    record = load_router(settings, v2.version).provenance
    assert record is not None and record.how == "by ticket id" and len(record.held_out) == len(held2)


def test_the_champion_is_scored_only_on_tickets_it_never_trained_on(grown) -> None:  # type: ignore[no-untyped-def]
    """Another seed draws another holdout: most of it the champion trained on, and none of that is scored."""
    settings, (_, data2), (_, reseeded), (_, _, v3), champion = grown
    held3 = _holdout_ids(data2, v3.version, settings)
    unseen = _unseen(data2, reseeded, settings, v3.version, champion)
    run = MlflowClient(settings.tracking_uri).get_run(v3.run_id)
    assert run.data.tags["comparison"] == "verified"
    assert run.data.metrics["comparison_excluded"] > len(held3) / 2  # the overlap scoring the whole holdout had
    assert run.data.metrics["comparison_tickets"] == len(unseen) > 0
    old = load_router(settings, champion)
    labels = derive_labels(unseen["target"].to_numpy(dtype=str), load_config(reseeded).teams, 1)
    vectors, reused = EmbeddingCache(settings.embedding_cache).embed(unseen["text"].tolist(), old.encoder)
    assert reused == len(unseen)  # the vectors the run scored with
    expected = evaluate(old, unseen, vectors, labels).metrics
    for metric in ("routing_score", "target_top1_accuracy", "escalation_average_precision"):
        assert run.data.metrics[f"champion_{metric}"] == pytest.approx(expected[metric], abs=1e-9), metric
        assert f"challenger_{metric}" in run.data.metrics
    assert np.isfinite(run.data.metrics["challenger_routing_score"])


def test_a_champion_that_recorded_nothing_is_compared_as_before_and_marked_unverified(
    grown,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    _, (data1, _), (config, _), _, _ = grown
    settings = store_settings(tmp_path)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.create_registered_model(settings.model_name)
    old = shutil.copytree(FIXTURE, tmp_path / "old-model")  # registered by the code at fd12f5e: no record
    version = client.create_model_version(settings.model_name, str(old))
    client.set_registered_model_alias(settings.model_name, settings.model_alias, version.version)
    result = train(data1, config, settings, progress=False)
    run = client.get_run(result.run_id)
    assert run.data.tags["comparison"] == "unverified"
    assert "unverified: the champion recorded no training tickets" in result.reason
    assert run.data.metrics["comparison_tickets"] == run.data.metrics["holdout_tickets"]
