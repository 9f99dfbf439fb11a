"""Approximate nearest-neighbour search (faiss inverted lists) for large similar-ticket indexes; exact search below."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from features.model.heads import exact_top_k

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 50_000  # indexed tickets from which the approximate index pays for itself
TRAIN_PER_LIST = 40  # k-means sample per list (faiss asks for at least 39)
RECALL_TARGET = 0.995  # recall@10 the build's probe calibration asks of stored tickets
CALIBRATION_QUERIES = 256  # stored tickets the probe count is calibrated on
SEARCH_CHUNK = 2048  # queries searched at once: their candidates' vectors take 2048 * 4k * 4 * dimension bytes
CHECK_COUNT = 10  # a stored vector must be among the first this many answers of its own search


def default_lists(size: int) -> int:
    """About 4 * sqrt(size) lists (faiss's rule of thumb), each with enough tickets to train its centre."""
    return max(1, min(round(4 * math.sqrt(size)), size // TRAIN_PER_LIST))


@contextmanager
def _threads(threads: int) -> Iterator[None]:
    """faiss's OpenMP threads for a build: `threads` (0: every core), then as they were."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class ApproximateIndex:
    """Inverted lists over unit vectors with inner-product distance (faiss IVF); `search` mirrors `exact_top_k`.

    k-means on a sample cuts the space into `lists` cells; every ticket is stored in the cell of its nearest centre,
    as int8 codes (faiss's 8-bit scalar quantiser, a quarter of the floats). A search scans the `probe` cells nearest
    the query and orders the best candidates (`rerank` times k) by the exact cosine of the float vectors the index
    keeps anyway, so agents see the float order. Building is one k-means and one assignment, both on every core and
    deterministic: a stored ticket lies in the cell its own search opens first, so none can be lost the way a
    concurrent graph build loses nodes, and the build checks that every one finds itself. The probe count is
    calibrated at the build: the fewest cells (doubling) at which stored tickets find RECALL_TARGET of their exact
    ten nearest."""

    def __init__(
        self,
        vectors: np.ndarray,
        lists: int | None = None,
        probe: int | None = None,
        graph: bytes | None = None,
        threads: int = 0,
        rerank: int = 4,
    ):
        import faiss

        self.size = len(vectors)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # the caller's array when already float32
        self.rerank = rerank
        self.restored = False
        self.unfound = 0
        self.calibration_recall: float | None = None  # what the calibration measured at its probe (None: restored)
        if graph is not None:  # saved by `to_bytes` at training: restoring takes a second, building minutes
            index = _restore(graph)
            if index is not None and index.ntotal == self.size and index.d == self.vectors.shape[1]:
                self.index, self.restored = index, True
                if probe:
                    self.index.nprobe = probe
                return
        width = self.vectors.shape[1]
        lists = lists or default_lists(self.size)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(self.size, min(self.size, lists * TRAIN_PER_LIST), replace=False))
        started = time.perf_counter()
        with _threads(threads):
            quantiser = faiss.IndexFlatIP(width)
            index = faiss.IndexIVFScalarQuantizer(
                quantiser, width, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            index.cp.seed = 0
            index.train(self.vectors[sample])
            trained = time.perf_counter()
            index.add(self.vectors)
            added = time.perf_counter()
            self.quantiser, self.index = quantiser, index  # the list index refers to its quantiser: keep both alive
            self.index.nprobe = probe or self._calibrate(rng)
            calibrated = time.perf_counter()
            self.unfound = len(self.unreachable(self.vectors))
        log.info(
            "similar-ticket index: %d tickets in %d lists, trained in %.0f s, added in %.0f s, probe %d "
            "(calibrated in %.0f s, recall@10 %s), checked in %.0f s, %d not found by their own search",
            self.size,
            lists,
            trained - started,
            added - trained,
            self.index.nprobe,
            calibrated - added,
            "not measured" if self.calibration_recall is None else f"{self.calibration_recall:.4f}",
            time.perf_counter() - calibrated,
            self.unfound,
        )

    @property
    def probe(self) -> int:
        return int(self.index.nprobe)

    def _calibrate(self, rng: np.random.Generator) -> int:
        """The fewest cells to scan (8, 16, 32, ... all) at which stored tickets find RECALL_TARGET of their exact
        ten nearest (themselves aside; counted by similarity, so that any of many identical tickets counts)."""
        lists = int(self.index.nlist)
        queries = self.vectors[rng.choice(self.size, min(self.size, CALIBRATION_QUERIES), replace=False)]
        k = min(10, self.size - 1)
        if k < 1:
            return lists
        _, exact = exact_top_k(queries, self.vectors, k + 1)
        probe = min(8, lists)
        while True:
            self.index.nprobe = probe
            _, found = self.search(queries, k + 1)
            self.calibration_recall = recall = tied_recall(found[:, 1:], exact[:, 1:])
            if recall >= RECALL_TARGET or probe >= lists:
                return probe
            probe = min(lists, probe * 2)

    def unreachable(self, rows: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        """Positions (in `rows`) of stored vectors whose own search does not find them nor an identical vector."""
        keys = np.arange(len(rows), dtype=np.int64) if keys is None else np.asarray(keys, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        probe = self.index.nprobe
        self.index.nprobe = 1  # a stored ticket lies in the cell its own search opens first
        # as many candidates as `search` re-ranks for CHECK_COUNT answers: by the int8 codes alone a ticket with
        # about twenty near-identical ones (alerts that differ by a number) often misses its first ten, which the
        # float re-ranking of `search` does not (tests/unit/test_ann.py: 12,647 of 30,000 counted lost, none are)
        candidates = min(self.size, max(CHECK_COUNT * self.rerank, 40))
        try:
            _, hits = self.index.search(np.ascontiguousarray(rows, dtype=np.float32), candidates)
        finally:
            self.index.nprobe = probe
        first = hits[:, 0]
        valid = first >= 0
        same = np.einsum("rd,rd->r", rows, self.vectors[np.where(valid, first, 0)]) >= 1.0 - 1e-6
        return np.flatnonzero(~((hits == keys[:, None]).any(axis=1) | (valid & same)))

    def to_bytes(self) -> bytes:
        """The index (centres, lists and codes; calibrated probe count included), to travel with the model."""
        import faiss

        return faiss.serialize_index(self.index).tobytes()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and cosine similarities of (approximately) the k nearest rows, best first."""
        k = min(k, self.size)
        if k == 0 or len(queries) == 0:
            return np.zeros((len(queries), 0), dtype=int), np.zeros((len(queries), 0))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) > SEARCH_CHUNK:  # the candidates' float vectors are gathered: bound them for a big batch
            parts = [self.search(queries[i : i + SEARCH_CHUNK], k) for i in range(0, len(queries), SEARCH_CHUNK)]
            return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])
        _, keys = self.index.search(queries, min(self.size, max(k * self.rerank, 40)))
        keys = keys.astype(np.int64, copy=False)
        valid = (keys >= 0) & (keys < self.size)  # slots the scanned cells could not fill
        safe = np.where(valid, keys, 0)
        sims = np.einsum("qd,qcd->qc", queries, self.vectors[safe]).astype(np.float64)
        sims[~valid] = -np.inf
        order = np.lexsort((keys, -sims), axis=1)[:, :k]  # ties: the lower row first, as exact search orders them
        return np.take_along_axis(keys, order, axis=1), np.take_along_axis(sims, order, axis=1)


def tied_recall(found: np.ndarray, exact: np.ndarray, tolerance: float = 1e-5) -> float:
    """Recall of approximate answers by their similarities (rows best first): the share of the k found that are
    at least as similar as the exact k-th. Counting by ids would fault a search for finding another of a thousand
    identical tickets (alerts repeat word for word) than the thousand-and-first the exact search happened to list."""
    if found.size == 0:
        return 1.0
    return float(np.mean(found >= exact[:, -1:] - tolerance))


def _restore(graph: bytes):  # type: ignore[no-untyped-def]
    """The faiss index saved in `graph`, or None when it is not one (a usearch graph saved by an older version)."""
    import faiss

    try:
        return faiss.deserialize_index(np.frombuffer(graph, dtype=np.uint8))
    except (RuntimeError, ValueError):
        return None


def available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True
