"""A static embedding distilled from the sentence encoder: one vector per token, averaged with IDF weights.

Each vocabulary token is run through the encoder once, on its own (`[CLS] token [SEP]`), and its sentence
embedding is kept; a ticket's embedding is then the IDF-weighted mean of its tokens' vectors. Encoding a
ticket becomes a tokenizer call and a sparse product, about a thousand times cheaper than the transformer,
and serving does not load PyTorch at all. The token table depends only on the encoder, so it is cached on
disk; the IDF weights are fitted on the training texts and travel with the model.

When the transformer's embeddings of the training texts are at hand (the embedding cache keeps them), the token
vectors are also tuned so that each training ticket's static embedding comes close to its transformer embedding:
a ridge regression pulled towards the distilled vectors, solved by conjugate gradients in a few seconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from features.encoders import Runtime
from features.encoders.transformer import load_encoder, plain_tokenizer
from features.model.timing import stage

MAX_TOKENS = 512  # tokens of a ticket that count; beyond this a static mean changes little


@dataclass
class StaticEncoder:
    """Token vectors (unit rows), IDF weights and the tokenizer; `encode` gives unit ticket embeddings."""

    source: str  # the sentence encoder the token vectors came from
    tokenizer_json: str
    vectors: np.ndarray  # float16 (vocabulary, dimension): distilled unit rows, or tuned
    idf: np.ndarray  # float32 (vocabulary,); 0 for special tokens
    max_tokens: int = MAX_TOKENS
    _tokenizer: Any = field(default=None, repr=False, compare=False)
    _vectors32: np.ndarray | None = field(default=None, repr=False, compare=False)
    runtime: ClassVar[Runtime] = "static"
    max_seq_length: ClassVar[None] = None  # reads every token (up to max_tokens)

    def save(self, folder: Path) -> None:
        """Nothing beside the pickle: the table travels in it."""

    def attach(self, folder: Path) -> StaticEncoder:
        return self

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (built from its JSON on first use, not pickled)."""
        if self._tokenizer is None:
            self._tokenizer = plain_tokenizer(self.tokenizer_json)
        return self._tokenizer

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids[: self.max_tokens] for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def bag(self, texts: list[str]) -> sp.csr_matrix:
        """Texts as IDF-weighted token counts (rows: texts, columns: vocabulary)."""
        ids = self.token_ids(texts)
        indptr = np.cumsum([0, *map(len, ids)])
        cols = np.fromiter((i for row in ids for i in row), dtype=np.int64, count=int(indptr[-1]))
        bag = sp.csr_matrix((self.idf[cols], cols, indptr), shape=(len(texts), len(self.idf)))
        bag.sum_duplicates()
        return bag

    def encode(self, texts: list[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings; a text with no known token gets a zero row (one sparse product: no
        batches, nothing to show progress of)."""
        if self._vectors32 is None:
            self._vectors32 = self.vectors.astype(np.float32)
        with stage("tokenise"):
            bag = self.bag(texts)
        with stage("encode"):
            out = np.asarray(bag @ self._vectors32, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tokenizer"] = state["_vectors32"] = None  # rebuilt on first use
        return state


def _table_path(cache_dir: str | Path, reference: str) -> Path:
    digest = hashlib.sha256(reference.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"static-{digest}.npz"


def token_table(reference: str, cache_dir: str | Path | None = None, progress: bool = False) -> tuple[np.ndarray, str]:
    """Every vocabulary token's sentence embedding (float16, unit rows) and the tokenizer, cached per encoder."""
    path = _table_path(cache_dir, reference) if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as stored:
            return stored["vectors"], str(stored["tokenizer"])
    import torch

    model = load_encoder(reference)
    tokenizer = model.tokenizer
    size = len(tokenizer)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:  # tokenizers without [CLS]/[SEP] (e.g. some sentencepiece models)
        cls_id = sep_id = None
    vectors = np.zeros((size, model.get_embedding_dimension()), dtype=np.float32)
    batch = 1024
    with torch.inference_mode():
        for start in tqdm(range(0, size, batch), desc="distilling token vectors", unit="batch", disable=not progress):
            ids = torch.arange(start, min(start + batch, size)).unsqueeze(1)
            if cls_id is not None:
                ids = torch.cat([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            features = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if "token_type_ids" in tokenizer.model_input_names:
                features["token_type_ids"] = torch.zeros_like(ids)
            out = model(features)["sentence_embedding"]
            vectors[start : start + len(ids)] = torch.nn.functional.normalize(out, dim=1).numpy()
    table = vectors.astype(np.float16)
    tokenizer_json = tokenizer.backend_tokenizer.to_str()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, vectors=table, tokenizer=np.array(tokenizer_json))
        partial.replace(path)
    return table, tokenizer_json


def tune_vectors(
    bag: sp.csr_matrix, targets: np.ndarray, start: np.ndarray, ridge: float = 0.01, steps: int = 60
) -> np.ndarray:
    """Token vectors V minimising |mean_bag V - targets|^2 + ridge |V - start|^2 (conjugate gradients)."""
    sums = np.asarray(bag.sum(axis=1)).ravel()
    mean_bag = (sp.diags(1 / np.where(sums > 0, sums, 1.0)) @ bag).tocsr().astype(np.float32)
    vectors = start.astype(np.float32).copy()

    def normal(x: np.ndarray) -> np.ndarray:
        return mean_bag.T @ (mean_bag @ x) + ridge * x

    residual = mean_bag.T @ targets.astype(np.float32) + ridge * vectors - normal(vectors)
    direction = residual.copy()
    norm = (residual * residual).sum(axis=0)
    for _ in range(steps):  # one independent CG per embedding dimension, run together column-wise
        product = normal(direction)
        alpha = norm / np.maximum((direction * product).sum(axis=0), 1e-12)
        vectors += direction * alpha
        residual -= product * alpha
        new_norm = (residual * residual).sum(axis=0)
        direction = residual + direction * (new_norm / np.maximum(norm, 1e-12))
        norm = new_norm
    return vectors


def fit_static(
    reference: str,
    texts: list[str],
    cache_dir: str | Path | None = None,
    progress: bool = False,
    targets: np.ndarray | None = None,
) -> StaticEncoder:
    """A static encoder distilled from `reference`, with IDF weights from `texts` (the training tickets).

    With `targets` (the transformer's embeddings of `texts`) the token vectors are tuned towards them.
    """
    vectors, tokenizer_json = token_table(reference, cache_dir, progress)
    encoder = StaticEncoder(reference, tokenizer_json, vectors, np.ones(len(vectors), dtype=np.float32))
    df = np.zeros(len(vectors))
    for ids in encoder.token_ids(texts):
        df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
    encoder.idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)
    specials = encoder.tokenizer.get_added_tokens_decoder()
    encoder.idf[[i for i in specials if i < len(encoder.idf)]] = 0.0
    if targets is not None and len(texts):
        encoder.vectors = tune_vectors(encoder.bag(texts), targets, vectors).astype(np.float16)
    return encoder
