"""Approximate nearest-neighbour search (usearch HNSW) for large similar-ticket indexes; exact search below."""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 50_000  # indexed tickets from which the approximate index pays for itself


class ApproximateIndex:
    """An HNSW graph over unit vectors with inner-product distance; `search` mirrors `exact_top_k`."""

    def __init__(
        self,
        vectors: np.ndarray,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 256,
        graph: bytes | None = None,
        threads: int = 0,
    ):
        from usearch.index import Index

        self.size = len(vectors)
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
            dtype="f32",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        # Built on every core (`threads` 0), then checked: a concurrent build (usearch 2.26) can leave some nodes
        # unreachable, so a stored ticket's own vector no longer finds it. Those are taken out and added again one
        # at a time until every node finds itself (`repaired` counts them); a single thread never lost one here.
        keys, rows = np.arange(len(vectors), dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float32)
        self.index.add(keys, rows, threads=threads)
        self.repaired = 0
        lost = self.unreachable(rows, threads)
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
        """Positions (in `rows`) of stored vectors whose search does not find them, nor an identical vector."""
        keys = np.arange(len(rows)) if keys is None else keys
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        found = self.index.search(rows, 10, threads=threads)
        hits = np.asarray(found.keys, dtype=np.int64).reshape(len(rows), -1)
        best = 1.0 - np.asarray(found.distances, dtype=np.float64).reshape(len(rows), -1)[:, 0]
        itself = (hits == np.asarray(keys, dtype=np.int64)[:, None]).any(axis=1) | (best >= 1.0 - 1e-6)
        return np.flatnonzero(~itself)

    def to_bytes(self) -> bytes:
        """The graph (with its own copy of the vectors), to travel with the model."""
        return bytes(self.index.save())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of (approximately) the k nearest rows, best first."""
        k = min(k, self.size)
        if k == 0 or len(queries) == 0:
            return np.zeros((len(queries), 0), dtype=int), np.zeros((len(queries), 0))
        found = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
        sims = 1.0 - np.asarray(found.distances, dtype=np.float64).reshape(len(queries), -1)
        return keys, sims


def available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True
