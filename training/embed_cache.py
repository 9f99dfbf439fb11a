"""Embeddings cached by content hash and model, so retraining and benchmarks embed only new texts."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from features.encoders import weights

if TYPE_CHECKING:
    from features.encoders import Encoder


STORE_EVERY = 512  # tickets embedded between two writes to the cache
# Vectors for texts, in their order, a chunk at a time (this process, or actors on a Ray cluster)
Compute = Callable[[list[str]], Iterator[np.ndarray]]


def _key(reference: str, max_seq_length: int | None, text: str, made_by: str = "fp32") -> str:
    """The entry's key; float entries keep the key they had before int8 graphs existed (so they count as fp32)."""
    tail = "" if made_by == "fp32" else f"\x00{made_by}"
    return hashlib.sha256(f"{reference}\x00{max_seq_length}\x00{text}{tail}".encode()).hexdigest()


class EmbeddingCache:
    """A sqlite file of float32 vectors keyed by sha256(model, max length, text)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("create table if not exists vectors (key text primary key, vec blob not null)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def embed(
        self,
        texts: list[str],
        encoder: Encoder,
        batch_size: int = 32,
        progress: bool = False,
        compute: Compute | None = None,
    ) -> tuple[np.ndarray, int]:
        """Vectors for `texts` (cached ones reused, new ones embedded by `encoder` and stored) and how many were
        reused. Entries are keyed by the encoder's source, length and precision, not its runtime: the float ONNX
        export of a model gives its PyTorch embeddings (checked at export: cosine > 0.9999), so both share them;
        an int8 graph's are its own. `compute` embeds the new
        texts elsewhere (on Ray); by default `encoder` does it here."""
        made_by = weights(encoder)
        keys = [_key(encoder.source, encoder.max_seq_length, t, made_by) for t in texts]
        if not keys:
            return encoder.encode([], batch_size), 0
        found: dict[str, np.ndarray] = {}
        with self._connect() as db:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows = db.execute(
                    f"select key, vec from vectors where key in ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        first_text = {k: t for k, t in zip(keys, texts, strict=True)}
        bar = tqdm(total=len(missing), desc="embedding", unit="ticket", disable=not progress or not missing)
        chunks = (compute or _here(encoder, batch_size))([first_text[k] for k in missing])
        done = 0
        # stored a chunk at a time: an embedding run that is stopped keeps what it computed
        for new in chunks:
            chunk, done = missing[done : done + len(new)], done + len(new)
            with self._connect() as db:
                db.executemany(
                    "insert or replace into vectors values (?, ?)",
                    [(k, v.astype(np.float32).tobytes()) for k, v in zip(chunk, new, strict=True)],
                )
            found.update(zip(chunk, new, strict=True))
            bar.update(len(chunk))
        bar.close()
        if done != len(missing):
            raise RuntimeError(f"embedding returned {done} vectors for {len(missing)} texts")
        fresh = set(missing)
        reused = sum(1 for k in keys if k not in fresh)
        return np.vstack([found[k] for k in keys]).astype(np.float32), reused


def _here(encoder: Encoder, batch_size: int) -> Compute:
    """Embed in this process, STORE_EVERY texts at a time."""

    def compute(texts: list[str]) -> Iterator[np.ndarray]:
        for start in range(0, len(texts), STORE_EVERY):
            yield encoder.encode(texts[start : start + STORE_EVERY], batch_size, False)

    return compute
