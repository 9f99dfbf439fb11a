"""`escalation train --engine ray`: the training tickets embedded by Ray actors (Ray started on this machine) into
the same content-hash cache, with the vectors one process computes, so a later retrain here embeds nothing again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.cluster import RayEngine
from features.config import load_config
from training.embed_cache import EmbeddingCache
from training.encode import serving_encoder, settle_max_length, transformer_embeddings

pytest.importorskip("ray", reason="the ray extra is not installed (make install takes it)")
ESCALATION = str(Path(sys.executable).with_name("escalation"))


def test_ray_embeddings_are_one_process_embeddings_and_fill_the_cache(
    sample: tuple[Path, Path], tmp_path: Path
) -> None:
    import ray

    data, config_path = sample
    texts = pd.read_csv(data, dtype=str)["subject"].fillna("").head(300).tolist()
    texts = [f"{t} #{i}" for i, t in enumerate(texts)]  # unique, so every text is a new cache entry
    config = settle_max_length(load_config(config_path), texts, tmp_path / "cache.sqlite")
    encoder = serving_encoder(config.model, tmp_path / "cache.sqlite")
    cache = tmp_path / "cache.sqlite"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        on_ray, reused = transformer_embeddings(
            texts, config.model, cache, False, encoder, RayEngine(actors=2, batch_size=64)
        )
    finally:
        ray.shutdown()
    assert reused == 0 and on_ray.shape == (300, encoder.encode(["x"]).shape[1])
    here = encoder.encode(texts, config.model.embed_batch_size)
    assert np.abs(on_ray - here).max() < 1e-5  # the same graph on the actors as here
    again, reused = EmbeddingCache(cache).embed(texts + ["one new ticket"], encoder, config.model.embed_batch_size)
    assert reused == 300 and np.array_equal(again[:300], on_ray)


def test_train_on_ray_then_retrain_here_embeds_only_new_tickets(sample: tuple[Path, Path], tmp_path: Path) -> None:
    data, config = sample
    env = {
        **os.environ,
        "ESCALATION_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "ESCALATION_FEEDBACK_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "ESCALATION_EMBEDDING_CACHE": str(tmp_path / "embeddings.sqlite"),
    }
    common = ["--data", str(data), "--config", str(config), "--no-progress"]
    trained = subprocess.run(
        [ESCALATION, "train", *common, "--engine", "ray", "--actors", "2", "--batch-size", "64"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "version 1 of escalation-router" in trained.stdout
    run_id = trained.stdout.split("run ")[1].split()[0]
    params = MlflowClient(env["ESCALATION_TRACKING_URI"]).get_run(run_id).data.params
    assert params["embedding_engine"] == "ray (2 actors, started here)"
    retrained = subprocess.run(
        [ESCALATION, "retrain", *common, "--dry-run"], env=env, capture_output=True, text=True, timeout=900
    )
    assert retrained.returncode == 0, retrained.stderr[-2000:]
    assert f"rows: {len(pd.read_csv(data))} read, all usable" in retrained.stdout
    assert f"embeddings: {len(pd.read_csv(data))} reused from the cache" in retrained.stdout, retrained.stdout


def test_train_with_a_cluster_that_does_not_answer_is_one_line(sample: tuple[Path, Path], tmp_path: Path) -> None:
    data, config = sample
    env = {**os.environ, "ESCALATION_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    args = ["train", "--data", str(data), "--config", str(config), "--engine", "ray", "--address", "127.0.0.1:1"]
    done = subprocess.run([ESCALATION, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == "error: Ray cluster at 127.0.0.1:1 did not answer: Connection refused"
    assert not (tmp_path / "mlflow.db").exists()  # nothing started before the address was checked
