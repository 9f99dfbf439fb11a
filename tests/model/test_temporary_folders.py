"""Every model load copies a registered version's files (about 113 MB with the ONNX graph) into the temporary
folder; they must go when the model is done with. Train (twice: the second scores the champion), predict, a hot
swap and a Ray run (embedding actors and scoring actors), with TMPDIR pointed at this test's own folder, leave
nothing behind; while a version is served, its one copy is all there is."""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from escalation.cli import app as cli
from features.cluster import RayEngine
from features.config import load_config
from serving.app import create_app
from tests.conftest import Trained, store_settings, ticket
from training.encode import serving_encoder, settle_max_length, transformer_embeddings
from training.train import train

# ONNX Runtime's telemetry keeps one 51-byte session note per temporary folder, written by each new process that
# runs a graph (Ray's workers here): not a copy of anything, and not this project's to remove.
FOREIGN = {".ses"}


def left(folder: Path, expected: int = 0, seconds: float = 60) -> list[str]:
    """What is in `folder` once it holds `expected` entries (or after `seconds`: the test then shows what stayed).
    Copies go when the last reference to their model does, and Ray's actors end a moment after their run."""
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()
        found = sorted(p.name for p in folder.iterdir() if p.name not in FOREIGN)
        if len(found) == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_train_predict_a_swap_and_a_ray_run_leave_nothing_in_the_temporary_folder(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "tmp"
    own.mkdir()
    monkeypatch.setenv("TMPDIR", str(own))  # for Ray's workers, started below
    monkeypatch.setenv("RAY_TMPDIR", "/tmp")  # Ray's session (its sockets need a short path) is Ray's own business
    monkeypatch.setattr(tempfile, "tempdir", str(own))  # this process read TMPDIR before
    # The session's embedding cache and ONNX graph: no ticket is embedded again, only fitted
    settings = store_settings(tmp_path).model_copy(update={"embedding_cache": trained.settings.embedding_cache})
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri, "ESCALATION_EMBEDDING_CACHE": settings.embedding_cache}

    first = train(trained.data, trained.config, settings, progress=False)
    second = train(trained.data, trained.config, settings, progress=False)  # loads the champion to score it
    assert left(own) == []

    backlog = tmp_path / "backlog.csv"
    pd.read_csv(trained.data, dtype=str).head(60).to_csv(backlog, index=False)
    common = ["predict", "--data", str(backlog), "--config", str(trained.config), "--no-progress"]
    done = CliRunner().invoke(cli, [*common, "--output", str(tmp_path / "answers.jsonl")], env=env)
    assert done.exit_code == 0, done.output
    assert left(own) == []

    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.set_registered_model_alias(settings.model_name, settings.model_alias, first.version)
    app = create_app(settings.model_copy(update={"poll_seconds": 0, "auth_disabled": True}))
    with TestClient(app) as http:
        served = left(own, 1)
        assert len(served) == 1 and served[0].startswith("escalation-model-")  # the version served, once
        assert http.post("/v1/suggestions", json=ticket()).json()["model"]["version"] == first.version
        client.set_registered_model_alias(settings.model_name, settings.model_alias, second.version)
        assert app.state.runtime.watcher.check().status == "changed"
        swapped = left(own, 1)  # nothing scored since: the batcher's last call does not keep the old one alive
        assert len(swapped) == 1 and swapped != served  # the version swapped out took its copy with it
        assert http.post("/v1/suggestions", json=ticket()).json()["model"]["version"] == second.version
    assert left(own) == []  # the server stopped

    ray = pytest.importorskip("ray", reason="the ray extra is not installed (make install takes it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        engine = RayEngine(actors=2, batch_size=32)
        texts = [f"{t} #{i}" for i, t in enumerate(pd.read_csv(backlog, dtype=str)["subject"].fillna(""))]
        config = settle_max_length(load_config(trained.config), texts, settings.embedding_cache)
        encoder = serving_encoder(config.model, settings.embedding_cache)
        vectors, _ = transformer_embeddings(texts, config.model, tmp_path / "ray.sqlite", False, encoder, engine)
        assert len(vectors) == len(texts)  # embedded by actors, each with its own copy of the encoder's graph
        on_ray = [*common, "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--actors", "2"]
        done = CliRunner().invoke(cli, [*on_ray, "--batch-size", "32"], env=env)
        assert done.exit_code == 0, done.output  # scored by actors, each with its own copy of the model
        assert left(own) == []
    finally:
        ray.shutdown()
    assert left(own, seconds=5) == []
