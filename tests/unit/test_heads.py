import numpy as np
from sklearn.svm import LinearSVC

from features.model.heads import MISSING_SCORE, aligned_scores, blend_targets, exact_top_k, knn_vote
from training.benchmark import recall_at_precision, score


def test_exact_top_k_orders_by_similarity() -> None:
    vectors = np.eye(4, dtype=np.float32)
    query = np.array([[0.1, 0.9, 0.3, 0.0]], dtype=np.float32)
    idx, sims = exact_top_k(query, vectors, 3, chunk=1)
    assert idx.tolist() == [[1, 2, 0]] and np.allclose(sims, [[0.9, 0.3, 0.1]])


def test_knn_vote_weights_close_neighbours() -> None:
    sims = np.array([[0.9, 0.5, 0.4]])
    p_esc, p_tgt = knn_vote(sims, np.array([[True, False, True]]), np.array([[1, -1, 0]]), 2, temperature=0.05)
    assert 0.99 < p_esc[0] <= 1.0  # the nearest neighbour dominates
    assert p_tgt[0, 1] > 0.99 and np.isclose(p_tgt.sum(), 1.0)
    _, none = knn_vote(sims, np.zeros((1, 3), bool), np.full((1, 3), -1), 2, 0.05)
    assert np.allclose(none, 0.5)  # no escalated neighbour: no opinion on the target


def test_aligned_scores_fill_unseen_targets() -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    head = LinearSVC().fit(X, ["a", "a", "b", "b"])
    scores = aligned_scores(head, X, ["b", "c", "a"])
    assert (scores[:, 1] == MISSING_SCORE).all() and (scores[:, 0] == -scores[:, 2]).all()
    p = blend_targets(scores, 1.0, np.full((4, 3), 1 / 3), 0.3)
    assert np.allclose(p.sum(axis=1), 1.0) and (p[:, 1] > 0.09).all()


def test_benchmark_metrics() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    assert recall_at_precision(y, p, 0.9) == 2 / 3
    m = score(y, p, np.array(["a", "b"]), np.array([[0.7, 0.3], [0.6, 0.4]]), ["a", "b"])
    assert m["target_top1_accuracy"] == 0.5 and m["target_top3_accuracy"] == 1.0


def test_stacked_blend_reduces_to_temperature_and_trusts_near_duplicates() -> None:
    from features.model.heads import softmax, stacked_targets

    scores = np.array([[2.0, 0.0, -1.0], [2.0, 0.0, -1.0]])
    vote = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    plain = stacked_targets(scores, vote, np.array([0.99, 0.2]), (0.5, 0.0, 0.0))
    assert np.allclose(plain, softmax(scores * 0.5))
    trusting = stacked_targets(scores, vote, np.array([0.99, 0.2]), (1.0, 0.0, 2.0))
    assert trusting[0].argmax() == 1  # the near-duplicate's vote wins
    assert trusting[1].argmax() == 0  # a distant neighbour's does not
    assert np.allclose(trusting.sum(axis=1), 1.0)


def test_exact_top_k_finds_the_same_duplicates_in_any_batch() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 64)).astype(np.float32)
    vectors[100:130] = vectors[5]  # thirty copies of one ticket: more ties than k
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:200] + rng.normal(scale=1e-3, size=(200, 64)).astype(np.float32)
    together, sims = exact_top_k(queries, vectors, 10)
    alone = np.vstack([exact_top_k(queries[i : i + 1], vectors, 10)[0] for i in range(200)])
    assert np.array_equal(together, alone)
    assert set(together[5]) <= {5, *range(100, 130)} and np.all(np.diff(sims, axis=1) <= 1e-5)
