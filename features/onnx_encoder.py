"""The sentence encoder exported once to ONNX and run by ONNX Runtime: the same embeddings, less time per call.

The whole sentence-transformers model (transformer, pooling, normalisation) is traced into one graph, so any
model that traces works, whatever its pooling. PyTorch is needed only to export; the graph is cached on disk
by model and library versions, travels in the model artefact as `encoder.onnx`, and a server runs it with the
Rust tokenizer and ONNX Runtime alone. On 2 CPU cores it takes about half the time of PyTorch for one ticket,
where PyTorch's per-operation overhead dominates, and is also faster in batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from features.embed import EmbeddingModelError, load_encoder, resolve_model

log = logging.getLogger(__name__)

FILE_NAME = "encoder.onnx"
OPSET = 17


class OnnxExportError(EmbeddingModelError):
    """The sentence encoder could not be exported to ONNX (set `model.runtime: torch` to use it as it is)."""


@dataclass
class OnnxEncoder:
    """An exported sentence encoder: the graph's path, its tokenizer and input names; `encode` gives unit rows."""

    source: str  # the sentence-transformers model it was exported from
    tokenizer_json: str = field(repr=False)
    input_names: list[str]
    max_seq_length: int
    dimension: int
    path: Path | None = None  # the graph on disk; set again when a model artefact is loaded
    threads: int = 0  # ONNX Runtime threads inside one call (0: its default, one per core)
    _session: Any = field(default=None, repr=False, compare=False)
    _tokenizer: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the session, tokenizer and lock; the graph itself is saved as a file beside."""
        state = dict(self.__dict__)
        state.update(_session=None, _tokenizer=None, _lock=None, path=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def save(self, folder: Path) -> None:
        if self.path is None:
            raise OnnxExportError("this ONNX encoder has no graph file to save")
        shutil.copyfile(self.path, folder / FILE_NAME)

    def attach(self, folder: Path) -> OnnxEncoder:
        """Point at the graph saved in `folder` (a loaded model artefact)."""
        path = Path(folder) / FILE_NAME
        if not path.is_file():
            raise OnnxExportError(f"{folder} holds no {FILE_NAME}")
        self.path, self._session = path, None
        return self

    def _ready(self) -> tuple[Any, Any]:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session, self._tokenizer = self._open()
        return self._session, self._tokenizer

    def _open(self) -> tuple[Any, Any]:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # no warnings about nodes placed on the CPU
        session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_str(self.tokenizer_json)
        tokenizer.enable_truncation(self.max_seq_length)
        tokenizer.enable_padding()  # to the longest text of each call, as sentence-transformers pads
        return session, tokenizer

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text; texts are batched by length to pad little."""
        session, tokenizer = self._ready()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), max(1, batch_size))
        for start in tqdm(starts, desc="embedding", unit="batch", disable=not progress):
            rows = order[start : start + batch_size]
            encoded = tokenizer.encode_batch([texts[i] for i in rows])
            feed = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            vectors = session.run(None, {name: feed[name] for name in self.input_names})[0]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            out[rows] = vectors / np.maximum(norms, 1e-12)
        return out


def _export_key(reference: str, location: str) -> str:
    from importlib.metadata import version

    # A graph depends on the weights (their folder's files), the exporter and the model code that was traced.
    files = sorted(p for p in Path(location).rglob("*") if p.is_file()) if Path(location).is_dir() else []
    stamp = [(str(p.relative_to(location)), p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    raw = f"{reference}|{location}|{stamp}|{version('torch')}|{version('sentence-transformers')}|{OPSET}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def export_encoder(reference: str, max_seq_length: int | None, cache_dir: str | Path | None = None) -> OnnxEncoder:
    """The sentence encoder `reference` as an OnnxEncoder whose graph is cached in `cache_dir` (a temporary
    folder when None). Exporting takes a few seconds the first time; after that neither PyTorch nor the
    model is loaded (what the encoder needs besides the graph is cached beside it)."""
    location, _ = resolve_model(reference)
    folder = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="escalation-onnx-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"encoder-{_export_key(reference, location)}.onnx"
    about = path.with_suffix(".json")
    if not (path.is_file() and about.is_file()):
        _export(reference, path, about)
    meta = json.loads(about.read_text())
    return OnnxEncoder(
        source=reference,
        tokenizer_json=meta["tokenizer_json"],
        input_names=list(meta["input_names"]),
        max_seq_length=int(max_seq_length or meta["max_seq_length"]),
        dimension=int(meta["dimension"]),
        path=path,
    )


def _export(reference: str, path: Path, about: Path) -> None:
    model = load_encoder(reference)
    texts = ["an example ticket", "a second, somewhat longer example ticket text"]
    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
    sample = prepare(texts)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    fast = getattr(model.tokenizer, "backend_tokenizer", None)
    if fast is None or "input_ids" not in names or "attention_mask" not in names:
        raise OnnxExportError(f"{reference!r} has no fast tokenizer or no standard inputs; use model.runtime: torch")
    _trace(model, sample, names, path, reference)
    meta = {
        "source": reference,
        "tokenizer_json": fast.to_str(),
        "input_names": names,
        "max_seq_length": int(model.max_seq_length or 512),
        "dimension": int(model.get_embedding_dimension()),
    }
    partial = about.with_suffix(".partial")
    partial.write_text(json.dumps(meta))
    partial.replace(about)


def _trace(model: Any, sample: dict[str, Any], names: list[str], path: Path, reference: str) -> None:
    import warnings

    import torch

    class Whole(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    partial = path.with_suffix(".onnx.partial")
    log.info("exporting %s to ONNX (once; cached as %s)", reference, path)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes the dynamic axes already cover
            torch.onnx.export(
                Whole().eval(),
                tuple(sample[n] for n in names),
                str(partial),
                dynamo=False,
                input_names=names,
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=OPSET,
            )
        partial.replace(path)  # whole or not at all: a killed export leaves no half graph behind
    except Exception as err:  # the exporter raises many kinds; all mean "this model does not trace"
        partial.unlink(missing_ok=True)
        raise OnnxExportError(f"{reference!r} could not be exported to ONNX: {err}") from err


@lru_cache(maxsize=4)
def onnx_encoder(reference: str, max_seq_length: int | None, cache_dir: str | None = None) -> OnnxEncoder:
    """One exported encoder per model, length and cache folder in this process."""
    return export_encoder(reference, max_seq_length, cache_dir)
