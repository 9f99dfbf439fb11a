import pickle

import numpy as np

from features.model.graph import RECALL_TARGET, ApproximateIndex, default_lists, tied_recall
from features.model.heads import exact_top_k
from features.model.router import SimilarIndex


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(rng: np.random.Generator, n: int, width: int = 64, topics: int = 30) -> np.ndarray:
    """Tickets cluster by topic (as bench/similar.py draws them): a topic's centre plus noise."""
    centres = _unit(rng.standard_normal((topics, width)))
    return _unit(centres[rng.integers(0, topics, n)] + 0.8 * rng.standard_normal((n, width)) / np.sqrt(width))


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(found, exact, strict=True)]))


def _index(n: int) -> SimilarIndex:
    rng = np.random.default_rng(0)
    vectors = _clustered(rng, n)
    empty = np.zeros(n, dtype=object)
    return SimilarIndex(np.arange(n).astype(str), vectors, empty, empty, np.zeros(n, bool), np.full(n, -1))


def test_large_index_goes_approximate_and_finds_the_same_neighbours() -> None:
    index = _index(3000)
    index.prepare(threshold=10_000)
    assert index.approximate is None  # below the threshold: exact
    index.prepare(threshold=1000)
    assert index.approximate is not None
    rng = np.random.default_rng(1)
    queries = _unit(index.vectors[:100] + 0.03 * rng.standard_normal((100, 64)).astype(np.float32))
    approx, sims = index.search(queries, 10)
    exact, exact_sims = exact_top_k(queries, index.vectors, 10)
    assert _recall(approx, exact) >= 0.99 and approx[:, 0].tolist() == list(range(100))
    assert np.allclose(sims[:, 0], exact_sims[:, 0], atol=1e-4)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first


def test_a_graph_built_at_load_is_not_pickled() -> None:
    index = _index(1500)
    index.prepare(threshold=1000)
    again = pickle.loads(pickle.dumps(index))
    assert again.approximate is None and again.search(index.vectors[:2], 1)[0][:, 0].tolist() == [0, 1]
    again.prepare(threshold=1000)
    assert again.approximate is not None and not again.approximate.restored  # built again


def test_an_index_built_at_training_travels_and_is_restored_not_rebuilt() -> None:
    index = _index(1500)
    assert not index.build_graph(threshold=2000)  # too small: exact search, nothing saved
    assert index.build_graph(threshold=1000) and index.graph
    probe = index.approximate.probe
    loaded = pickle.loads(pickle.dumps(index))
    assert loaded.approximate is None
    loaded.prepare(threshold=1000)
    assert loaded.approximate is not None and loaded.approximate.restored
    assert loaded.approximate.probe == probe  # the calibrated probe count travels with it
    assert index.approximate.calibration_recall is not None and loaded.approximate.calibration_recall is None
    queries = index.vectors[:50]
    assert np.array_equal(loaded.search(queries, 5)[0], index.search(queries, 5)[0])
    assert loaded.search(queries, 1)[0][:, 0].tolist() == list(range(50))


def test_an_index_that_does_not_match_the_vectors_or_an_older_graph_is_rebuilt() -> None:
    small, large = _index(1200), _index(1500)
    small.build_graph(threshold=1000)
    large.graph = small.graph
    large.prepare(threshold=1000)
    assert large.approximate is not None and not large.approximate.restored and large.approximate.size == 1500
    older = _index(1500)
    older.graph = b"\x00usearch graph bytes of a version before faiss"  # not a faiss index: built again
    older.prepare(threshold=1000)
    assert older.approximate is not None and not older.approximate.restored


def _stored_in_second_cell(built: ApproximateIndex, moved: np.ndarray) -> bytes:
    """`built`'s index saved with the `moved` tickets stored in the cell second nearest them instead of the nearest
    (a ticket the build's assignment and a search's disagree on, as near a border two ways of summing can)."""
    import faiss

    _, cells = built.quantiser.search(built.vectors, 2)
    assign = np.ascontiguousarray(cells[:, 0], dtype=np.int64)
    assign[moved] = cells[moved, 1]
    index = faiss.clone_index(built.index)
    index.reset()  # same centres and codebook, empty lists
    index.add_core(built.size, faiss.swig_ptr(built.vectors), None, faiss.swig_ptr(assign))
    return faiss.serialize_index(index).tobytes()


def test_a_ticket_stored_outside_its_nearest_cell_is_reported_and_still_found() -> None:
    rng = np.random.default_rng(3)
    vectors = _clustered(rng, 5_000)
    built = ApproximateIndex(vectors, threads=2)
    assert built.index.nlist == default_lists(5_000) == 125
    moved = np.arange(0, 5_000, 250)
    index = ApproximateIndex(vectors, graph=_stored_in_second_cell(built, moved), threads=2)
    assert index.restored and index.probe == built.probe > 1
    assert index.unreachable(vectors).tolist() == moved.tolist()  # the check sees exactly those
    keys, sims = index.search(vectors[moved], 1)  # a search scans `probe` cells, the second nearest among them
    assert keys[:, 0].tolist() == moved.tolist() and np.allclose(sims[:, 0], 1.0, atol=1e-5)
    strangers = _unit(rng.standard_normal((5, 64)))  # vectors the index does not hold
    assert index.unreachable(strangers, keys=np.arange(5)).tolist() == [0, 1, 2, 3, 4]


def test_near_identical_tickets_are_not_counted_as_lost() -> None:
    """Alerts that differ by a number: ~20 near-identical vectors a ticket. By int8 codes alone a ticket often
    misses its own first ten; the search re-ranks by the float cosine and finds it first, so the check does too."""
    rng = np.random.default_rng(5)
    rows = _clustered(rng, 1_500, topics=40)
    vectors = _unit(rows[rng.integers(0, 1_500, 30_000)] + 0.01 * rng.standard_normal((30_000, 64)) / 8)
    index = ApproximateIndex(vectors, threads=2)
    assert index.unfound == 0
    index.index.nprobe = 1  # even when only the ticket's own cell is scanned
    assert np.array_equal(index.search(vectors, 1)[0][:, 0], np.arange(30_000))


def test_the_calibrated_probe_is_the_fewest_cells_recall_needs() -> None:
    """On stored tickets the calibration did not see (most of these 1,000), the calibrated probe count reaches
    RECALL_TARGET and half of it falls clearly short: the calibration neither stops early nor scans more."""
    rng = np.random.default_rng(7)
    vectors = _clustered(rng, 10_000)
    index = ApproximateIndex(vectors, threads=2)
    stored = vectors[rng.choice(10_000, 1_000, replace=False)]
    _, exact = exact_top_k(stored, vectors, 11)

    def recall(probe: int) -> float:
        index.index.nprobe = probe
        _, found = index.search(stored, 11)
        return tied_recall(found[:, 1:], exact[:, 1:])  # themselves aside, as the calibration counts

    probe = index.probe
    assert 8 < probe < index.index.nlist  # these vectors need more than the first step and less than every cell
    assert RECALL_TARGET <= index.calibration_recall <= 1  # what the calibration measured at that probe, reported
    assert recall(probe) >= RECALL_TARGET and recall(probe // 2) < RECALL_TARGET - 0.005


def test_answers_are_exact_cosines_best_first() -> None:
    rng = np.random.default_rng(5)
    vectors = _clustered(rng, 5000)
    queries = _unit(vectors[:100] + 0.05 * rng.standard_normal((100, 64)).astype(np.float32))
    keys, sims = ApproximateIndex(vectors, threads=2).search(queries, 10)
    assert np.allclose(sims, np.einsum("qd,qkd->qk", queries, vectors[keys]), atol=1e-6)  # exact, not quantised
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_recall_on_clustered_embeddings_and_on_vectors_without_clusters() -> None:
    """Queries the probe count was not calibrated on (stored tickets plus noise) find 0.99 of their exact ten
    nearest: on tickets that cluster by topic, and on unclustered vectors, where calibration scans more cells."""
    rng = np.random.default_rng(11)
    vectors = _unit(_clustered(rng, 20_000, width=384, topics=200))
    queries = _unit(vectors[:300] + 0.3 * rng.standard_normal((300, 384)).astype(np.float32) / np.sqrt(384))
    clustered = ApproximateIndex(vectors, threads=2)
    assert _recall(clustered.search(queries, 10)[0], exact_top_k(queries, vectors, 10)[0]) >= 0.99
    plain = _unit(rng.standard_normal((20_000, 64)))
    queries = _unit(plain[:300] + 0.05 * rng.standard_normal((300, 64)).astype(np.float32))
    unclustered = ApproximateIndex(plain, threads=2)
    assert _recall(unclustered.search(queries, 10)[0], exact_top_k(queries, plain, 10)[0]) >= 0.99
    assert unclustered.probe > clustered.probe  # no structure: more of the space is scanned


def test_identical_tickets_do_not_make_the_calibration_scan_every_cell() -> None:
    """Alerts repeat word for word: with thousands of identical vectors the exact ten nearest are one arbitrary pick
    among ties. Recall counted by similarity keeps the probe small (counted by ids it scanned every cell), and the
    answers are as similar as the exact ones."""
    rng = np.random.default_rng(5)
    distinct_rows = _clustered(rng, 1_500, width=64, topics=40)
    vectors = distinct_rows[rng.integers(0, len(distinct_rows), 30_000)]  # each text about 20 times
    index = ApproximateIndex(vectors, threads=2)
    assert index.probe < index.index.nlist // 4
    queries = _unit(distinct_rows[:300] + 0.05 * rng.standard_normal((300, 64)).astype(np.float32))
    _, sims = index.search(queries, 10)
    _, exact = exact_top_k(queries, vectors, 10)
    assert tied_recall(sims, exact) >= 0.99
    assert tied_recall(exact - 0.01, exact) == 0.0  # the measure sees answers less similar than the exact ones


def test_a_batch_larger_than_a_chunk_gets_the_same_answers_as_one_by_one() -> None:
    from features.model import graph

    index = graph.ApproximateIndex(_clustered(np.random.default_rng(2), 5_000), threads=2)
    queries = index.vectors[:50]
    before = graph.SEARCH_CHUNK
    graph.SEARCH_CHUNK = 7
    try:
        keys, sims = index.search(queries, 5)
    finally:
        graph.SEARCH_CHUNK = before
    whole_keys, whole_sims = index.search(queries, 5)
    assert keys.shape == (50, 5) and np.array_equal(keys, whole_keys) and np.allclose(sims, whole_sims)
