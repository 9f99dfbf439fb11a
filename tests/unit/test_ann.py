import pickle

import numpy as np

from features.model.heads import exact_top_k
from features.model.router import SimilarIndex


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _index(n: int) -> SimilarIndex:
    rng = np.random.default_rng(0)
    vectors = _unit(rng.standard_normal((n, 64)))
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
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.9 and approx[:, 0].tolist() == list(range(100))
    assert np.allclose(sims[:, 0], exact_sims[:, 0], atol=1e-4)
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first


def test_a_graph_built_at_load_is_not_pickled() -> None:
    index = _index(1500)
    index.prepare(threshold=1000)
    again = pickle.loads(pickle.dumps(index))
    assert again.approximate is None and again.search(index.vectors[:2], 1)[0][:, 0].tolist() == [0, 1]
    again.prepare(threshold=1000)
    assert again.approximate is not None and not again.approximate.restored  # built again


def test_a_graph_built_at_training_travels_and_is_restored_not_rebuilt() -> None:
    index = _index(1500)
    assert not index.build_graph(threshold=2000)  # too small: exact search, nothing saved
    assert index.build_graph(threshold=1000) and index.graph
    loaded = pickle.loads(pickle.dumps(index))
    assert loaded.approximate is None
    loaded.prepare(threshold=1000)
    assert loaded.approximate is not None and loaded.approximate.restored
    assert loaded.approximate.index.expansion_search == 256
    queries = index.vectors[:50]
    assert np.array_equal(loaded.search(queries, 5)[0], index.search(queries, 5)[0])
    assert loaded.search(queries, 1)[0][:, 0].tolist() == list(range(50))


def test_a_graph_that_does_not_match_the_vectors_is_rebuilt() -> None:
    small, large = _index(1200), _index(1500)
    small.build_graph(threshold=1000)
    large.graph = small.graph
    large.prepare(threshold=1000)
    assert large.approximate is not None and not large.approximate.restored and large.approximate.size == 1500


def test_a_graph_built_on_every_core_is_checked_and_every_node_finds_itself() -> None:
    from features.model.graph import ApproximateIndex

    rng = np.random.default_rng(3)
    vectors = _unit(rng.standard_normal((20_000, 64)))
    graph = ApproximateIndex(vectors, threads=2, dtype="f32")  # no clusters: the float graph's hard case
    assert len(graph.unreachable(vectors, threads=2)) == 0  # after the build's own check and repair
    queries = _unit(vectors[:300] + 0.05 * rng.standard_normal((300, 64)).astype(np.float32))
    approx, _ = graph.search(queries, 10)
    exact, _ = exact_top_k(queries, vectors, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.99, recall
    graph.index.remove(np.array([7, 11], dtype=np.uint64))  # what a lost node looks like to the check
    assert graph.unreachable(vectors[:20], threads=1).tolist() == [7, 11]


def test_int8_graph_answers_exact_cosines_and_a_float_graph_saved_before_still_restores() -> None:
    from features.model.graph import ApproximateIndex

    rng = np.random.default_rng(5)
    vectors = _unit(rng.standard_normal((5000, 64)))
    queries = _unit(vectors[:100] + 0.05 * rng.standard_normal((100, 64)).astype(np.float32))
    graph = ApproximateIndex(vectors, threads=2)
    keys, sims = graph.search(queries, 10)
    assert str(graph.index.dtype).lower().endswith("i8")
    assert np.allclose(sims, np.einsum("qd,qkd->qk", queries, vectors[keys]), atol=1e-6)  # exact, not quantised
    assert np.all(np.diff(sims, axis=1) <= 0)
    older = ApproximateIndex(vectors, threads=2, dtype="f32").to_bytes()  # what models trained before carry
    restored = ApproximateIndex(vectors, graph=older)
    assert restored.restored and np.array_equal(restored.search(queries, 10)[0], exact_top_k(queries, vectors, 10)[0])


def test_int8_graph_recall_on_clustered_embeddings() -> None:
    """Tickets cluster by topic (as bench/similar.py draws them): the int8 graph with its exact re-ranking keeps
    recall@10 at 0.99 or more against exact search."""
    from features.model.graph import ApproximateIndex

    rng = np.random.default_rng(11)
    centres = _unit(rng.standard_normal((200, 384)))
    vectors = _unit(centres[rng.integers(0, 200, 20_000)] + 0.8 * rng.standard_normal((20_000, 384)) / np.sqrt(384))
    queries = _unit(vectors[:300] + 0.3 * rng.standard_normal((300, 384)).astype(np.float32) / np.sqrt(384))
    approx, _ = ApproximateIndex(vectors, threads=2).search(queries, 10)
    exact, _ = exact_top_k(queries, vectors, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.99, recall
