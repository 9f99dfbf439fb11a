"""The similar-ticket index: resolved training tickets as unit embeddings, with who resolved them and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from features.model.graph import DEFAULT_THRESHOLD, ApproximateIndex, available
from features.model.heads import exact_top_k

USUAL_QUANTILE = 0.05  # training tickets whose nearest distinct neighbour is rarer than this are unusual too
COPY = 0.995  # cosine at which two tickets are copies of one text


@dataclass
class SimilarIndex:
    """Unit embeddings of resolved training tickets, their labels and what is shown of them."""

    ids: np.ndarray
    vectors: np.ndarray  # float32, unit rows
    resolvers: np.ndarray
    snippets: np.ndarray
    escalated: np.ndarray  # bool: the first line did not resolve it
    target_idx: np.ndarray  # int: position in the router's targets, -1 for first-line tickets
    resolutions: np.ndarray | None = None
    words: sp.csr_matrix | None = None  # word TF-IDF rows, for re-ranking by shared words
    approximate: ApproximateIndex | None = field(default=None, repr=False, compare=False)  # live graph, not pickled
    graph: bytes | None = field(default=None, repr=False, compare=False)  # the graph saved at training, if built

    def prepare(self, threshold: int = DEFAULT_THRESHOLD) -> None:
        """Use the approximate index when the index is large enough for it to pay (and faiss is installed):
        restored from the graph saved at training, or built here (minutes at a million tickets)."""
        if self.approximate is None and len(self.vectors) >= threshold and available():
            self.approximate = ApproximateIndex(self.vectors, graph=getattr(self, "graph", None))

    def build_graph(self, threshold: int = DEFAULT_THRESHOLD) -> bool:
        """At training: build the approximate index once and keep it in the artefact, so loading restores it."""
        if len(self.vectors) < threshold or not available():
            return False
        self.approximate = ApproximateIndex(self.vectors)
        self.graph = self.approximate.to_bytes()
        return True

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine similarity for each query: approximate when prepared for it, else exact."""
        if self.approximate is not None:
            return self.approximate.search(queries, k)
        return exact_top_k(queries, self.vectors, k)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["approximate"] = None  # a native graph is rebuilt where it is needed, never pickled
        return state

    def usual_similarity(self, quantile: float = USUAL_QUANTILE, sample: int = 5000, seed: int = 0) -> float | None:
        """The similarity below which a ticket counts as unfamiliar: the `quantile` of the training tickets' cosine to
        their nearest *other, distinct* ticket (the ticket itself, a copy of its text or a near-copy does not count),
        on a sample of them. None for an index too small to say."""
        n = len(self.vectors)
        if n < 20:
            return None
        rows = np.random.default_rng(seed).choice(n, min(n, sample), replace=False)
        idx, sims = self.search(self.vectors[rows], min(n, 12))
        nearest = []
        for row, found, found_sims in zip(rows, idx, sims, strict=True):
            own = " ".join(str(self.snippets[row]).lower().split())
            for j, s in zip(found, found_sims, strict=True):
                if j != row and s < COPY and " ".join(str(self.snippets[j]).lower().split()) != own:
                    nearest.append(float(s))
                    break
        return round(float(np.quantile(nearest, quantile)), 4) if nearest else None


SIMILAR_CANDIDATES = 8  # nearest tickets searched per similar ticket shown, so duplicates can be skipped

NEAR_DUPLICATE = 0.95  # cosine between two past tickets above which an agent reads the same ticket twice


def distinct(
    idx: np.ndarray, sims: np.ndarray, snippets: np.ndarray, vectors: np.ndarray, n: int
) -> list[tuple[int, float]]:
    """The first `n` neighbours that differ from each other: not the same text (case and spacing aside) and not
    near-duplicates (cosine of their embeddings below NEAR_DUPLICATE)."""
    seen: set[str] = set()
    kept: list[tuple[int, float]] = []
    for j, s in zip(idx, sims, strict=True):
        key = " ".join(str(snippets[j]).lower().split())
        if key in seen or any(float(vectors[j] @ vectors[k]) >= NEAR_DUPLICATE for k, _ in kept):
            continue
        seen.add(key)
        kept.append((int(j), float(s)))
        if len(kept) == n:
            break
    return kept
