"""The static encoder distilled from the real sentence encoder: meaning kept, tuned towards it, no PyTorch to serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from features.config import DEFAULT_EMBEDDING_MODEL
from features.encoders.static import StaticEncoder, fit_static
from features.encoders.transformer import embed_texts
from tests.conftest import Trained, predict_in_fresh_process, store_settings
from training.train import train

TEXTS = [
    "I forgot my password and cannot log in",
    "Password reset link does not arrive, locked out of my account",
    "I was charged twice for my subscription, please refund",
    "Invoice shows the wrong amount, I need a refund",
    "The export to CSV fails with error 500",
    "API returns 502 bad gateway since this morning",
]


@pytest.fixture(scope="session")
def table_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("static")


def test_static_embeddings_keep_topics_apart(table_dir: Path) -> None:
    encoder = fit_static(DEFAULT_EMBEDDING_MODEL, TEXTS * 3, table_dir)
    vectors = encoder.encode(["reset my password please", "refund the double charge", *TEXTS])
    assert vectors.shape == (8, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    password, refund, docs = vectors[0], vectors[1], vectors[2:]
    assert (docs @ password).argmax() in (0, 1)
    assert (docs @ refund).argmax() in (2, 3)
    assert np.all(encoder.encode([""]) == 0)  # nothing known: a zero row, not NaN
    assert (table_dir / next(p.name for p in table_dir.glob("static-*.npz"))).is_file()  # distilled once, cached


def test_tuning_moves_static_embeddings_towards_the_transformer(table_dir: Path, sample: tuple[Path, Path]) -> None:
    import pandas as pd

    texts = pd.read_csv(sample[0])["body"].astype(str).tolist()[:400]
    target = embed_texts(texts, DEFAULT_EMBEDDING_MODEL, 256)
    plain = fit_static(DEFAULT_EMBEDDING_MODEL, texts, table_dir).encode(texts)
    tuned = fit_static(DEFAULT_EMBEDDING_MODEL, texts, table_dir, targets=target).encode(texts)
    before, after = (plain * target).sum(axis=1).mean(), (tuned * target).sum(axis=1).mean()
    assert after > before + 0.1, (before, after)


def test_static_router_serves_without_pytorch(trained: Trained, tmp_path: Path, sample: tuple[Path, Path]) -> None:
    data, config = sample
    cfg = yaml.safe_load(config.read_text())
    cfg.setdefault("model", {})["encoder"] = "static"
    static_config = tmp_path / "config.yaml"
    static_config.write_text(yaml.safe_dump(cfg))
    settings = store_settings(tmp_path)
    settings.embedding_cache = trained.settings.embedding_cache  # transformer embeddings already cached
    result = train(data, static_config, settings, progress=False)
    assert result.metrics["target_top1_accuracy"] > 0.8
    from training.register import load_router

    router = load_router(settings, result.version)
    assert isinstance(router.encoder, StaticEncoder) and router.max_seq_length is None
    assert predict_in_fresh_process(router.save(tmp_path / "artefact")) == ("billing", False)
