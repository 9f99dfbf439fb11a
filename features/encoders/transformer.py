"""Sentence embeddings: resolve the configured model (bundled weights offline by default) and encode batches."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from features.encoders import Runtime
from features.encoders.bundled import BUNDLED_MODELS, BundledModelError
from features.model.timing import stage

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from features.encoders.onnx import OnnxEncoder

_lock = threading.Lock()


class EmbeddingModelError(RuntimeError):
    """The configured embedding model cannot be found or loaded."""


def resolve_model(reference: str) -> tuple[str, bool]:
    """Where to load `reference` from, and whether that is local (no hub needed)."""
    if Path(reference).expanduser().is_dir():
        return str(Path(reference).expanduser().resolve()), True
    bundled = BUNDLED_MODELS.get(reference)
    try:
        folder = bundled() if bundled else None
    except (BundledModelError, OSError) as err:
        raise EmbeddingModelError(f"embedding model {reference!r}: {err}") from err
    return (str(folder), True) if folder is not None else (reference, False)


@lru_cache(maxsize=4)
def load_encoder(reference: str, max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a sentence-transformers model once per process; local weights load with the hub switched off."""
    location, local = resolve_model(reference)
    from sentence_transformers import SentenceTransformer

    with _lock:
        try:  # local weights never ask a hub (and the process environment is left as it was)
            model = SentenceTransformer(location, device="cpu", local_files_only=local)
        except Exception as err:  # the library raises many kinds; all mean "cannot use this model"
            raise EmbeddingModelError(
                f"embedding model {reference!r} could not be loaded from {location!r}: {err}"
            ) from err
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def plain_tokenizer(tokenizer_json: str) -> Tokenizer:
    """A fresh Rust tokenizer from its JSON that neither pads nor truncates (counting and bagging see every token)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def choose_max_length(
    texts: list[str], reference: str, quantile: float = 0.9, step: int = 32, tokenizer: tuple[str, int] | None = None
) -> int:
    """A sequence length that reads `quantile` of `texts` whole: their token count's quantile, rounded up to a
    multiple of `step`, within [step, the model's own limit]. Long signatures and pasted logs add cost, not signal.
    `tokenizer` (its JSON and the model's limit) spares loading the model when known (an exported encoder)."""
    if tokenizer is None:
        model = load_encoder(reference)
        fast = getattr(model.tokenizer, "backend_tokenizer", None)
        limit = int(model.max_seq_length or 512)
        if fast is None:
            ids = model.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
            return _length_for([len(i) for i in ids], limit, quantile, step)
        tokenizer = (fast.to_str(), limit)
    tokenizer_json, limit = tokenizer
    # The Rust tokenizer: fast, and no warning about texts longer than the model's limit.
    counts = [len(e.ids) for e in plain_tokenizer(tokenizer_json).encode_batch(texts)] if texts else []
    return _length_for(counts, limit, quantile, step)


def _length_for(counts: list[int], limit: int, quantile: float, step: int) -> int:
    if not counts:
        return limit
    wanted = int(np.ceil(np.quantile(counts, quantile) / step) * step)
    return int(min(max(wanted, step), limit))


def embed_texts(
    texts: list[str],
    reference: str,
    max_seq_length: int | None = None,
    batch_size: int = 32,
    progress: bool = False,
    onnx: OnnxEncoder | None = None,
) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (through `onnx`, the same encoder exported, when given)."""
    if onnx is not None:
        return onnx.encode(texts, batch_size, progress)
    model = load_encoder(reference, max_seq_length)
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=progress,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)


@dataclass
class TransformerEncoder:
    """A sentence-transformers model run by PyTorch (loaded once per process, from bundled weights when it ships in
    a package); the artefact keeps only its reference and length."""

    source: str
    max_seq_length: int | None = None
    runtime: ClassVar[Runtime] = "torch"

    def encode(self, texts: list[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        if batch_size is None:
            # PyTorch sorts texts by length and pads each batch to its longest: a few short batches pad less than
            # one long one when a handful of tickets arrive together (a quarter of them is measured best).
            batch_size = max(1, min(32, len(texts) // 4))
        with stage("encode"):  # PyTorch's path tokenises inside
            return embed_texts(texts, self.source, self.max_seq_length, batch_size, progress)

    def save(self, folder: Path) -> None:
        """Nothing beside the pickle: the weights are found by reference."""

    def attach(self, folder: Path) -> TransformerEncoder:
        return self
