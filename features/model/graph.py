"""Approximate nearest-neighbour search (usearch HNSW) for large similar-ticket indexes; exact search below."""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 50_000  # indexed tickets from which the approximate index pays for itself
QUICK_CHECK_EXPANSION = 32  # search width of the first pass of the build's self-check


class ApproximateIndex:
    """An HNSW graph over unit vectors with inner-product distance; `search` mirrors `exact_top_k`.

    The graph holds its vectors as int8 (`dtype`): distances cost less, so a million tickets build in minutes, and
    the saved graph is a quarter of the float one. Quantised distances blur the order of close neighbours, so a
    search takes its candidates from the graph and orders them by the exact cosine of the float
    vectors the index keeps anyway (every node the search visited, at least `rerank` times k)."""

    def __init__(
        self,
        vectors: np.ndarray,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 256,
        graph: bytes | None = None,
        threads: int = 0,
        dtype: str = "i8",
        rerank: int = 4,
    ):
        from usearch.index import Index

        self.size = len(vectors)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # the caller's array when already float32
        self.rerank = rerank
        self.restored = False
        if graph is not None:  # saved by `to_bytes` at training: restoring takes milliseconds, building minutes
            index = Index.restore(graph)
            if index is not None and len(index) == self.size and index.ndim == vectors.shape[1]:
                index.expansion_search = expansion_search
                self.index, self.restored = index, True
                return
        self.index = Index(
            ndim=vectors.shape[1],
            metric="ip",
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        # Built on every core (`threads` 0), then checked: a concurrent build (usearch 2.26) can leave some nodes
        # unreachable, so a stored ticket's own vector no longer finds it. Those are taken out and added again one
        # at a time until every node finds itself (`repaired` counts them); a single thread never lost one here.
        keys, rows = np.arange(len(vectors), dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float32)
        started = time.perf_counter()
        self.index.add(keys, rows, threads=threads)
        self.repaired = 0
        added = time.perf_counter()
        lost = self.unreachable(rows, threads)
        log.info(
            "similar-ticket graph: %d nodes added in %.0f s, checked in %.0f s, %d unreachable",
            len(rows),
            added - started,
            time.perf_counter() - added,
            len(lost),
        )
        for _ in range(3):
            if len(lost) == 0:
                break
            self.repaired += len(lost)
            self.index.remove(lost.astype(np.uint64))
            self.index.add(lost.astype(np.uint64), rows[lost], threads=1)
            lost = lost[self.unreachable(rows[lost], threads, lost)]
        if len(lost):  # still lost after three repairs: the whole graph again on one thread
            self.index.reset()
            self.index.add(keys, rows, threads=1)

    def unreachable(self, rows: np.ndarray, threads: int = 0, keys: np.ndarray | None = None) -> np.ndarray:
        """Positions (in `rows`) of stored vectors whose search does not find them, nor an identical vector.

        Checked cheaply first (the nearest one only, a narrow search: at a million tickets the full search of every
        node costs as much as the build), then the nodes that failed again with the index's own search."""
        keys = np.arange(len(rows), dtype=np.int64) if keys is None else np.asarray(keys, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        wide = self.index.expansion_search
        self.index.expansion_search = QUICK_CHECK_EXPANSION
        try:
            doubt = np.flatnonzero(~self._finds_itself(rows, keys, 1, threads))
        finally:
            self.index.expansion_search = wide
        if len(doubt) == 0:
            return doubt
        found = self._finds_itself(rows[doubt], keys[doubt], 10, threads)
        return doubt[~found]

    def _finds_itself(self, rows: np.ndarray, keys: np.ndarray, count: int, threads: int) -> np.ndarray:
        found = self.index.search(rows, count, threads=threads)
        hits = np.asarray(found.keys, dtype=np.int64).reshape(len(rows), -1)
        first = hits[:, 0]
        valid = (first >= 0) & (first < len(self.vectors))
        # an identical vector found instead counts as found: judged on the float vectors, since quantised inner
        # products are not bounded by 1
        same = np.einsum("rd,rd->r", rows, self.vectors[np.where(valid, first, 0)]) >= 1.0 - 1e-6
        return (hits == keys[:, None]).any(axis=1) | (valid & same)

    def to_bytes(self) -> bytes:
        """The graph (with its own copy of the vectors), to travel with the model."""
        return bytes(self.index.save())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of (approximately) the k nearest rows, best first."""
        k = min(k, self.size)
        if k == 0 or len(queries) == 0:
            return np.zeros((len(queries), 0), dtype=int), np.zeros((len(queries), 0))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        # the search visits `expansion_search` nodes whatever the count: re-ranking all it found costs microseconds
        wanted = max(k * self.rerank, int(self.index.expansion_search))
        found = self.index.search(queries, min(self.size, wanted))
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
        valid = (keys >= 0) & (keys < self.size)  # slots the graph could not fill
        safe = np.where(valid, keys, 0)
        sims = np.einsum("qd,qcd->qc", queries, self.vectors[safe]).astype(np.float64)
        sims[~valid] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(keys, order, axis=1), np.take_along_axis(sims, order, axis=1)


def available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True
