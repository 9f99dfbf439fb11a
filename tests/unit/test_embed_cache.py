"""The embedding cache keeps what it computed, a chunk at a time, and gives the same vectors back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import training.embed_cache as embed_cache
from features.encoders.transformer import TransformerEncoder, embed_texts
from training.embed_cache import EmbeddingCache

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER = TransformerEncoder(MODEL, 64)
TEXTS = ["charged twice", "VPN certificate expired", "printer jam", "reset my password", "webhook fails"]


class StopsOnSecondCall(TransformerEncoder):
    """The real encoder, stopped (as by Ctrl-C) when the second chunk is embedded."""

    calls = 0

    def encode(self, texts: list[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().encode(texts, batch_size, progress)


def test_a_stopped_run_keeps_the_chunks_it_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_cache, "STORE_EVERY", 2)
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    with pytest.raises(KeyboardInterrupt):
        cache.embed(TEXTS, StopsOnSecondCall(MODEL, 64))
    vectors, reused = cache.embed(TEXTS, ENCODER)
    assert reused == 2  # the first chunk survived the stop
    assert np.allclose(vectors, embed_texts(TEXTS, MODEL, 64), atol=1e-5)
    again, reused = cache.embed(TEXTS[::-1], ENCODER)
    assert reused == len(TEXTS) and np.array_equal(again, vectors[::-1])
