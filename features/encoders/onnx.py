"""The sentence encoder exported once to ONNX and run by ONNX Runtime: the same embeddings, less time per call.

The whole sentence-transformers model (transformer, pooling, normalisation) is traced into one graph, so any
model that traces works, whatever its pooling; where ONNX Runtime's transformer optimizer recognises attention,
layer norms and GELU, they are fused into its own operators. Each export, fused or not, is checked against the
model's own embeddings (one text and a batch of mixed lengths, cosine above 0.9999) before it is used. PyTorch is
needed only to export; the graph is cached on disk by model files and library versions, travels in the model
artefact as `encoder.onnx`, and a server runs it with the Rust tokenizer and ONNX Runtime alone. On 2 CPU cores it
takes about half the time of PyTorch for one ticket, where PyTorch's per-operation overhead dominates; in batches
of 32 the two are close.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from features.encoders import Precision, Runtime
from features.encoders.transformer import EmbeddingModelError, load_encoder, resolve_model
from features.model.timing import stage

log = logging.getLogger(__name__)

FILE_NAME = "encoder.onnx"
OPSET = 17
GRAPH = "eager-fused"  # how the graph is made (traced with eager attention, then fused): in the cache key


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
    precision: Precision = "fp32"  # 'int8': the graph's weights quantised (dynamic, per channel)
    quantised: str = ""  # int8: which quantisation (float graph, ONNX Runtime, settings): in file and cache keys
    _session: Any = field(default=None, repr=False, compare=False)
    _tokenizer: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)
    runtime: ClassVar[Runtime] = "onnx"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the session, tokenizer and lock; the graph itself is saved as a file beside."""
        state = dict(self.__dict__)
        state.update(_session=None, _tokenizer=None, _lock=None, path=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("precision", "fp32")  # pickled before int8 existed: the float graph
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def save(self, folder: Path) -> None:
        if self.path is None:
            raise OnnxExportError("this ONNX encoder has no graph file to save")
        shutil.copyfile(self.path, folder / FILE_NAME)

    def use_threads(self, threads: int) -> None:
        """Run with `threads` threads inside one call from now on (several encoders sharing a machine's cores)."""
        with self._lock:
            self.threads, self._session = threads, None

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
                    session, self._tokenizer = self._open()
                    self._session = session  # last: a thread that sees the session sees the tokenizer too
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
        return session, configured_tokenizer(Tokenizer.from_str(self.tokenizer_json), self.max_seq_length)

    def encode(self, texts: list[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text; texts are batched by length to pad little. ONNX
        Runtime's cost per call is small, so padding is what batching costs: for a few tickets of mixed lengths one
        call per ticket measured fastest (125/s against 54/s for 16 tickets in one call), hence 1 by default."""
        session, tokenizer = self._ready()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        # int8: each text alone. Dynamic quantisation scales activations per call, so a text's embedding would move
        # with the texts it shares a call with (measured on 300 IT tickets, alone against batches of 32: cosine
        # 0.991 mean, 0.977 worst); alone, training, serving and any batch give a text the same vector.
        size = 1 if self.precision == "int8" else max(1, batch_size or 1)
        for start in tqdm(range(0, len(texts), size), desc="embedding", unit="batch", disable=not progress):
            rows = order[start : start + size]
            with stage("tokenise"):
                encoded = tokenizer.encode_batch([texts[i] for i in rows])
                feed = {
                    "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
                }
            with stage("encode"):
                vectors = session.run(None, {name: feed[name] for name in self.input_names})[0]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            out[rows] = vectors / np.maximum(norms, 1e-12)
        return out


def configured_tokenizer(tokenizer: Any, max_seq_length: int) -> Any:
    """The tokenizer cutting at `max_seq_length` and padding to the longest text of a call, keeping the side, pad
    token and strategy the model's own tokenizer was saved with (RoBERTa pads with id 1, some models on the left)."""
    cut = tokenizer.truncation or {}
    tokenizer.enable_truncation(
        max_seq_length,
        stride=cut.get("stride", 0),
        strategy=cut.get("strategy", "longest_first"),
        direction=cut.get("direction", "right"),
    )
    pad = tokenizer.padding
    if pad is None:
        tokenizer.enable_padding()
    else:  # length None: to the longest text of each call, as sentence-transformers pads
        tokenizer.enable_padding(
            direction=pad["direction"],
            pad_id=pad["pad_id"],
            pad_type_id=pad["pad_type_id"],
            pad_token=pad["pad_token"],
            pad_to_multiple_of=pad["pad_to_multiple_of"],
        )
    return tokenizer


def _export_key(reference: str, location: str) -> str:
    from importlib.metadata import version

    # A graph depends on the weights (their folder's files), the exporter and the model code that was traced.
    files = sorted(p for p in Path(location).rglob("*") if p.is_file()) if Path(location).is_dir() else []
    stamp = [(str(p.relative_to(location)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    libraries = [
        version(name) for name in ("torch", "transformers", "sentence-transformers", "tokenizers", "onnxruntime")
    ]
    raw = f"{reference}|{location}|{stamp}|{libraries}|{OPSET}|{GRAPH}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def export_encoder(
    reference: str, max_seq_length: int | None, cache_dir: str | Path | None = None, precision: Precision = "fp32"
) -> OnnxEncoder:
    """The sentence encoder `reference` as an OnnxEncoder whose graph is cached in `cache_dir` (a folder of this
    process, removed at exit, when None). Exporting takes a few seconds the first time; after that neither
    PyTorch nor the model is loaded (what the encoder needs besides the graph is cached beside it). Any failure,
    including a graph whose embeddings differ from the model's own, is an OnnxExportError."""
    location, _ = resolve_model(reference)
    folder = Path(cache_dir) if cache_dir else _process_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"encoder-{_export_key(reference, location)}.onnx"
    about = path.with_suffix(".json")
    try:
        meta = json.loads(about.read_text()) if path.is_file() and about.is_file() else None
    except (OSError, ValueError):
        meta = None  # a damaged note: export again
    if meta is None:
        meta = _export(reference, path, about)
        _prune(folder, reference, keep=path)
    encoder = OnnxEncoder(
        source=reference,
        tokenizer_json=meta["tokenizer_json"],
        input_names=list(meta["input_names"]),
        max_seq_length=int(max_seq_length or meta["max_seq_length"]),
        dimension=int(meta["dimension"]),
        path=path,
    )
    if precision == "fp32":
        return encoder
    identity = _quantisation(path)
    quantised = path.with_name(f"{path.stem}-int8-{identity}.onnx")
    if not quantised.is_file():
        _quantise(encoder, quantised, reference, identity)
        _prune(folder, reference, keep=path, keep_int8=quantised)
    return _with_graph(encoder, quantised, identity)


def _prune(folder: Path, reference: str, keep: Path, keep_int8: Path | None = None) -> None:
    """Remove the graphs `folder` holds for `reference` under other keys (exported by other library versions or an
    earlier way of exporting, or quantised otherwise), so upgrades do not pile up 100 MB files; any of them is made
    again when asked for. Graphs of other models are left alone."""
    stale: list[Path] = []
    for note in folder.glob("encoder-*.json"):
        try:
            source = json.loads(note.read_text()).get("source")
        except (OSError, ValueError):
            continue  # unreadable: not known to be this model's
        if source != reference:
            continue
        int8 = folder.glob(f"{note.stem}-int8-*.onnx")
        if note.stem != keep.stem:
            stale += [note.with_suffix(".onnx"), note, *int8]
        elif keep_int8 is not None:  # a new int8 graph of the kept one: its other int8 graphs go
            stale += [g for g in int8 if g != keep_int8]
    freed = 0
    for graph in stale:
        try:
            size = graph.stat().st_size
            graph.unlink()
            freed += size
        except OSError:  # gone already, or another process's: left
            continue
    if freed:
        log.info("removed %.0f MB of %s's graphs from other versions in %s", freed / 2**20, reference, folder)


# DefaultTensorType: a fused graph's operators are ONNX Runtime's own, whose outputs shape inference cannot type
QUANTISE_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False, "default_tensor": "FLOAT"}


def _quantisation(float_graph: Path) -> str:
    """Which int8 graph: the float graph's key, ONNX Runtime's version and the quantiser's settings. Two int8 graphs
    are each close to the float one, not to each other: vectors one made are not served with another's."""
    from importlib.metadata import version

    raw = f"{float_graph.stem}|{version('onnxruntime')}|{sorted(QUANTISE_SETTINGS.items())}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _with_graph(encoder: OnnxEncoder, path: Path, identity: str) -> OnnxEncoder:
    """`encoder` on the int8 graph at `path`: a session, tokenizer and lock of its own (a copy would share the
    float graph's session)."""
    return replace(
        encoder, path=path, precision="int8", quantised=identity, _session=None, _tokenizer=None, _lock=threading.Lock()
    )


class QuantiseError(OnnxExportError):
    """The float graph exported, but no int8 graph could be made from it that keeps its embeddings."""


INT8_MIN_COSINE = 0.97  # the int8 graph's embeddings against the float graph's, on every check text


def _quantise(encoder: OnnxEncoder, path: Path, reference: str, identity: str) -> None:
    """Quantise the float graph's weights to int8 (ONNX Runtime's dynamic quantisation, per output channel: per
    tensor lost too much, cosine 0.958 mean on IT tickets), into `path`, whole or not at all; refused when its
    embeddings stray from the float graph's."""
    try:
        from onnx import TensorProto
        from onnxruntime.quantization import QuantType, quantize_dynamic

        partial = _temporary(path)
        try:
            settings = QUANTISE_SETTINGS
            quantize_dynamic(
                str(encoder.path),
                str(partial),
                weight_type=getattr(QuantType, str(settings["weight_type"])),
                per_channel=bool(settings["per_channel"]),
                reduce_range=bool(settings["reduce_range"]),
                extra_options={"DefaultTensorType": getattr(TensorProto, str(settings["default_tensor"]))},
            )
            trial = _with_graph(encoder, partial, identity)  # it embeds each text alone, however batched
            got, expected = trial.encode(CHECK_TEXTS), encoder.encode(CHECK_TEXTS, batch_size=1)
            worst = float((got * expected).sum(axis=1).min())
            if not worst >= INT8_MIN_COSINE:
                raise QuantiseError(
                    f"{reference!r} quantised to int8 strays from its float graph (cosine {worst:.4f} < "
                    f"{INT8_MIN_COSINE})"
                )
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    except OnnxExportError:
        raise
    except Exception as err:  # the quantiser raises many kinds; all mean "no int8 graph for this model"
        raise QuantiseError(f"{reference!r} could not be quantised to int8: {err}") from err


@lru_cache(maxsize=1)
def _process_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="escalation-onnx-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


CHECK_TEXTS = ["", "vpn", "Passwort zurücksetzen bitte", "job failed on host prod-17 with error 0x80070005 " * 40]


def _export(reference: str, path: Path, about: Path) -> dict[str, Any]:
    """Trace the model into `path`, check the graph against the model, and write its note `about`."""
    model = load_encoder(reference)
    if getattr(model, "default_prompt_name", None):
        raise OnnxExportError(f"{reference!r} adds a prompt to every text, which the export does not carry")
    if sum(p.numel() * p.element_size() for p in model.parameters()) > 1_500_000_000:
        raise OnnxExportError(f"{reference!r} is too large for a single-file ONNX graph")
    try:
        prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        sample = prepare(["an example ticket", "a second, somewhat longer example ticket text"])
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
        fast = getattr(model.tokenizer, "backend_tokenizer", None)
        if fast is None or "input_ids" not in names or "attention_mask" not in names:
            raise OnnxExportError(f"{reference!r} has no fast tokenizer or no standard inputs")
        meta = {
            "source": reference,
            "tokenizer_json": fast.to_str(),  # after a call, so it holds the model's own padding and truncation
            "input_names": names,
            "max_seq_length": min(int(model.max_seq_length or 512), 8192),
            "dimension": int(model.get_embedding_dimension()),
        }
        graph, note = _temporary(path), _temporary(about)
        try:
            _trace(model, sample, names, graph, reference)
            _check(model, meta, graph, reference)
            _fuse(model, meta, graph, reference)
            note.write_text(json.dumps(meta))
            # Whole or not at all; a concurrent export of the same model writes the same files.
            graph.replace(path)
            note.replace(about)
        finally:
            graph.unlink(missing_ok=True)
            note.unlink(missing_ok=True)
        return meta
    except OnnxExportError:
        raise
    except Exception as err:  # the exporter and the runtime raise many kinds; all mean "this model does not export"
        raise OnnxExportError(f"{reference!r} could not be exported to ONNX: {err}") from err


def _temporary(path: Path) -> Path:
    """A name beside `path` that no other process or thread writes to."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.partial")


def _check(model: Any, meta: dict[str, Any], graph: Path, reference: str) -> None:
    """The graph must give the model's own embeddings, one text at a time and in a batch of mixed lengths."""
    limit = int(model.max_seq_length or meta["max_seq_length"])
    trial = OnnxEncoder(reference, meta["tokenizer_json"], meta["input_names"], limit, meta["dimension"], graph)
    expected = model.encode(CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    for got in (trial.encode(CHECK_TEXTS, batch_size=len(CHECK_TEXTS)), trial.encode(CHECK_TEXTS, batch_size=1)):
        worst = float((got * expected).sum(axis=1).min())
        if not worst > 0.9999:
            raise OnnxExportError(f"{reference!r} exported to ONNX gives other embeddings (cosine {worst:.4f})")


FUSED_OPERATORS = {  # what ONNX Runtime's transformer optimizer makes (a traced graph has LayerNormalization already)
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "GemmFastGelu",
}


def _fuse(model: Any, meta: dict[str, Any], graph: Path, reference: str) -> None:
    """Fuse the checked graph's attention, layer norms and GELU into ONNX Runtime's own operators (its transformer
    optimizer; about a tenth less time per ticket for MiniLM on 2 cores, by hand), in place, if the fused graph
    still gives the model's own embeddings; otherwise the graph stays as traced (fusion is a speed-up, not a need).
    `meta["fused"]` records the operators made, empty when none were kept."""
    meta["fused"] = {}
    fused = _temporary(graph)
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        config = next((m.config for m in model.modules() if hasattr(m, "set_attn_implementation")), None)
        heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
        optimised = optimize_model(str(graph), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
        made = optimised.get_fused_operator_statistics().items()
        operators = {k: int(v) for k, v in made if v and k in FUSED_OPERATORS}
        if not operators:
            log.info("kept %s's graph as traced (nothing ONNX Runtime's optimizer knows to fuse)", reference)
            return
        optimised.save_model_to_file(str(fused))
        _check(model, meta, fused, reference)
        fused.replace(graph)
        meta["fused"] = operators
        log.info("fused %s's graph: %s", reference, operators)
    except Exception as err:  # the optimizer knows only some architectures; any failure keeps the traced graph
        log.info("kept %s's graph as traced (not fused: %s)", reference, err)
    finally:
        fused.unlink(missing_ok=True)


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
    log.info("exporting %s to ONNX (once, then cached)", reference)
    # The tracer warns about shapes and branches it fixes; _check then proves the graph on other shapes.
    with _TRACING, torch.no_grad(), warnings.catch_warnings(), _eager_attention(model):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Whole().eval(),
            tuple(sample[n] for n in names),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=OPSET,
        )


_TRACING = threading.Lock()  # the model is switched to eager attention while it is traced: one trace at a time


@contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Attention written out as matrix products while tracing (the pattern ONNX Runtime's optimizer fuses; PyTorch's
    fused kernel traces to one it does not know), then each model part back to what it used; parts that cannot
    switch are traced as they are. Hold `_TRACING`: a model loaded once per process is shared."""
    parts = [
        (m, m.config._attn_implementation)
        for m in model.modules()
        if hasattr(m, "set_attn_implementation") and getattr(m.config, "_attn_implementation", None) is not None
    ]
    try:
        for module, before in parts:
            if before != "eager" and module.config._attn_implementation != "eager":
                try:
                    module.set_attn_implementation("eager")
                except Exception:  # an architecture without an eager path: traced as it is
                    continue
        yield
    finally:
        for module, before in parts:  # outer parts first, so an inner part's own setting is the one left
            try:
                module.set_attn_implementation(before)
            except Exception as err:
                log.warning("attention of %s not switched back to %s: %s", type(module).__name__, before, err)


@lru_cache(maxsize=4)
def onnx_encoder(
    reference: str, max_seq_length: int | None, cache_dir: str | None = None, precision: Precision = "fp32"
) -> OnnxEncoder:
    """One exported encoder per model, length, cache folder and precision in this process."""
    return export_encoder(reference, max_seq_length, cache_dir, precision)
