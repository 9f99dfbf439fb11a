"""The int8 encoder (issue 27, item 1): the exported graph quantised per channel, cached beside the float graph,
close to its embeddings, chosen by `model.encoder_precision`, kept apart in the embedding cache and recorded by the
model; a float model pickled before keeps loading as fp32."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from features.config import DEFAULT_EMBEDDING_MODEL, load_config
from features.data import to_tickets
from features.encoders import same_embeddings, weights
from features.encoders.onnx import INT8_MIN_COSINE, OnnxEncoder, export_encoder
from serving.app import create_app
from tests.conftest import bearer, store_settings
from training.embed_cache import EmbeddingCache
from training.register import load_router
from training.sample_data import write_sample
from training.train import train

TEXTS = [
    "",
    "vpn",
    "I was charged twice for the Team plan this month, please refund one of the payments.",
    "Passwort zurücksetzen bitte, ich bin seit heute morgen gesperrt",
    "job_scheduler failed on host abc-prod-17: error 0x80070005 access denied " * 30,
]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxEncoder, OnnxEncoder]:
    folder = tmp_path_factory.mktemp("int8")
    return export_encoder(DEFAULT_EMBEDDING_MODEL, 128, folder), export_encoder(
        DEFAULT_EMBEDDING_MODEL, 128, folder, "int8"
    )


def test_the_int8_graph_sits_beside_the_float_one_and_keeps_its_embeddings(
    graphs: tuple[OnnxEncoder, OnnxEncoder],
) -> None:
    fp32, int8 = graphs
    assert int8.precision == "int8" and fp32.precision == "fp32"
    assert int8.path == fp32.path.with_name(f"{fp32.path.stem}-int8-{int8.quantised}.onnx") and int8.quantised
    assert weights(int8) == f"int8-{int8.quantised}" and weights(fp32) == "fp32"  # which graph made a vector
    assert int8.path.stat().st_size < fp32.path.stat().st_size / 2  # weights in a byte, not four
    a, b = fp32.encode(TEXTS, batch_size=2), int8.encode(TEXTS, batch_size=2)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= INT8_MIN_COSINE and cosine.max() < 0.99999  # close, and really another graph
    # each text alone whatever the batch: its activations are not scaled with other texts' (dynamic quantisation)
    assert np.allclose(int8.encode(TEXTS, batch_size=5), np.vstack([int8.encode([t]) for t in TEXTS]), atol=1e-6)
    stamp = int8.path.stat().st_mtime_ns
    again = export_encoder(DEFAULT_EMBEDDING_MODEL, 128, fp32.path.parent, "int8")
    assert again.path == int8.path and int8.path.stat().st_mtime_ns == stamp  # cached, not quantised again
    assert not same_embeddings(fp32, int8) and same_embeddings(int8, again)
    assert not [p for p in fp32.path.parent.iterdir() if p.name.endswith(".partial")]


def test_the_embedding_cache_keeps_int8_and_float_vectors_apart(
    graphs: tuple[OnnxEncoder, OnnxEncoder], tmp_path: Path
) -> None:
    fp32, int8 = graphs
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    first, reused = cache.embed(TEXTS, int8)
    assert reused == 0 and np.allclose(first, int8.encode(TEXTS), atol=1e-5)
    floats, reused = cache.embed(TEXTS, fp32)
    assert reused == 0 and np.allclose(floats, fp32.encode(TEXTS), atol=1e-5)  # not the int8 rows
    assert cache.embed(TEXTS, int8)[1] == len(TEXTS)


def test_an_onnx_encoder_pickled_before_int8_loads_as_fp32(graphs: tuple[OnnxEncoder, OnnxEncoder]) -> None:
    fp32, _ = graphs
    state = fp32.__getstate__()
    del state["precision"]  # as pickled before the field existed
    old = OnnxEncoder.__new__(OnnxEncoder)
    old.__setstate__(state)
    assert old.precision == "fp32"
    assert pickle.loads(pickle.dumps(fp32)).precision == "fp32"


def test_a_model_trained_with_int8_embeds_and_serves_with_it(tmp_path: Path) -> None:
    data, config = write_sample(tmp_path, rows=600, seed=5)
    raw = yaml.safe_load(config.read_text())
    raw.setdefault("model", {})["encoder_precision"] = "int8"
    config.write_text(yaml.safe_dump(raw))
    settings = store_settings(tmp_path)
    result = train(data, config, settings, progress=False)
    router = load_router(settings, result.version)
    assert isinstance(router.encoder, OnnxEncoder) and router.encoder.precision == "int8"
    # the index holds the training tickets' embeddings by the same int8 graph the server embeds with
    tickets = to_tickets(pd.read_csv(data), load_config(config)).set_index("id")
    ids = router.index.ids[:8].astype(str)
    served = router.embed(tickets.loc[ids, "text"].tolist())
    assert np.allclose(served, router.index.vectors[:8], atol=1e-4)
    params = MlflowClient(settings.tracking_uri).get_run(result.run_id).data.params
    assert params["model.encoder_precision"] == "int8" and params["encoder_precision_used"] == "int8"
    with TestClient(create_app(settings), headers=bearer(settings, "analyst")) as http:
        assert http.get("/v1/model").json()["encoder_precision"] == "int8"
