"""`escalation train --engine ray`: the training tickets embedded by a pool of Ray actors, each holding the encoder
the model will serve with (shipped from the driver once, so every node embeds with the same graph), streamed back
in order into the same content-hash cache as embedding here."""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.cluster import RayEngine, actor_cpus, connect, reason, share_cores
from features.encoders import Encoder, removed_with
from training.embed_cache import STORE_EVERY, Compute


class EmbeddingFailed(RuntimeError):
    """An actor could not embed (its node lacks the encoder's runtime, a batch broke it, ...)."""


class Embedder:
    """A Ray actor: rebuilds the driver's encoder once from its pickle and files, then embeds batches of texts."""

    def __init__(self, encoder: bytes, files: Any, batch_size: int, threads: int):
        import ray

        if isinstance(files, ray.ObjectRef):
            files = ray.get(files)
        folder = Path(tempfile.mkdtemp(prefix="escalation-encoder-"))
        try:
            for name, data in files.items():
                (folder / name).write_bytes(data)
            self.encoder: Encoder = pickle.loads(encoder).attach(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        removed_with(self.encoder, folder)  # when the actor ends (Ray Data lets its pool go after the run)
        if not share_cores(self.encoder, threads) and self.encoder.runtime == "torch":
            import torch

            torch.set_num_threads(threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"vector": self.encoder.encode([str(t) for t in batch["text"]], self.batch_size)}


def packed(encoder: Encoder) -> dict[str, bytes]:
    """What `encoder.save` writes beside its pickle (the ONNX graph), as bytes to ship to the actors."""
    with tempfile.TemporaryDirectory() as tmp:
        encoder.save(Path(tmp))
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def ray_compute(encoder: Encoder, engine: RayEngine, batch_size: int) -> Compute:
    """Embed texts with `encoder` on `engine`'s actors (`batch_size` texts per encoder call), in order. Ray is
    joined (or started) and the encoder shipped only when there are texts to embed: a cache that holds them all
    needs no cluster."""

    def compute(texts: list[str]) -> Iterator[np.ndarray]:
        if not texts:
            return
        connect(engine.address)
        import ray
        import ray.data

        files = ray.put(packed(encoder))
        blob = pickle.dumps(encoder)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # vectors come back in the order of the texts
        dataset = ray.data.from_pandas(pd.DataFrame({"text": texts}))
        dataset = dataset.repartition(target_num_rows_per_block=engine.batch_size)  # spread over every actor
        per_actor, threads = actor_cpus(engine.actors)
        vectors = dataset.map_batches(
            Embedder,
            num_cpus=per_actor,
            fn_constructor_args=(blob, files, batch_size, threads),
            batch_format="numpy",
            batch_size=engine.batch_size,
            compute=ray.data.ActorPoolStrategy(size=engine.actors),
        )
        try:
            for batch in vectors.iter_batches(batch_format="numpy", batch_size=STORE_EVERY):
                yield np.asarray(batch["vector"], dtype=np.float32)
        except Exception as err:
            raise EmbeddingFailed(f"embedding on Ray failed: {reason(err)}") from None

    return compute
