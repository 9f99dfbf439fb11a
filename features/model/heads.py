"""The scoring maths both sides share: aligned head scores, the nearest-neighbour vote and the blend."""

from __future__ import annotations

from typing import Any

import numpy as np

MISSING_SCORE = -30.0  # a class the head never saw in training


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k nearest unit vectors, best first (exact search, chunked)."""
    k = min(k, len(vectors))
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), dtype=int), np.zeros((len(queries), 0))
    tops, sims = [], []
    for start in range(0, len(queries), chunk):
        s = queries[start : start + chunk] @ vectors.T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-part, axis=1)
        tops.append(np.take_along_axis(top, order, axis=1))
        sims.append(np.take_along_axis(part, order, axis=1))
    return np.vstack(tops), np.vstack(sims)


def rerank(
    candidates: np.ndarray,
    sims: np.ndarray,
    query_words: Any,
    ref_words: Any,
    weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank embedding candidates by (1 - weight) * embedding cosine + weight * word TF-IDF cosine, best first.

    Near-duplicate tickets (alerts naming the same host or job) share words that a sentence embedding blurs.
    """
    n, k = candidates.shape
    if weight <= 0 or k == 0 or ref_words is None:
        return candidates, sims
    rows = np.repeat(np.arange(n), k)
    word_sims = np.asarray(query_words[rows].multiply(ref_words[candidates.ravel()]).sum(axis=1)).reshape(n, k)
    mixed = (1 - weight) * sims + weight * word_sims
    order = np.argsort(-mixed, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(mixed, order, axis=1)


def aligned_scores(head: Any, X: Any, targets: list[str]) -> np.ndarray:
    """Decision scores of a fitted linear head, one column per target in `targets` order."""
    raw = head.decision_function(X)
    classes = list(head.classes_)
    if raw.ndim == 1:  # binary head: one score for classes[1]
        raw = np.column_stack([-raw, raw])
    out = np.full((raw.shape[0], len(targets)), MISSING_SCORE)
    for j, t in enumerate(targets):
        if t in classes:
            out[:, j] = raw[:, classes.index(t)]
    return out


def knn_vote(
    sims: np.ndarray, escalated: np.ndarray, target_idx: np.ndarray, n_targets: int, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted vote of neighbours: P(escalation) and P(target | escalation).

    `escalated` and `target_idx` (-1 for first-line) describe each neighbour, shape (n, k).
    """
    n = sims.shape[0]
    if sims.shape[1] == 0:
        return np.full(n, 0.5), np.full((n, n_targets), 1.0 / max(n_targets, 1))
    w = np.exp((sims - sims.max(axis=1, keepdims=True)) / temperature)
    p_esc = (w * escalated).sum(axis=1) / w.sum(axis=1)
    votes = np.zeros((n, n_targets))
    rows = np.repeat(np.arange(n), sims.shape[1])
    cols = target_idx.ravel()
    on = cols >= 0
    np.add.at(votes, (rows[on], cols[on]), w.ravel()[on])
    total = votes.sum(axis=1, keepdims=True)
    uniform = np.full((n, n_targets), 1.0 / max(n_targets, 1))
    return p_esc, np.where(total > 0, votes / np.maximum(total, 1e-12), uniform)


def blend_targets(scores: np.ndarray, temperature: float, knn: np.ndarray, weight: float) -> np.ndarray:
    """P(target | escalation): temperature-scaled head probabilities mixed with the neighbour vote."""
    p = softmax(scores / temperature)
    return p if weight <= 0 else (1 - weight) * p + weight * knn


KNN_FLOOR = 0.01  # smoothing of the vote inside the stacked blend's logarithm


def stacked_targets(scores: np.ndarray, knn: np.ndarray, top_sim: np.ndarray, params: tuple[float, ...]) -> np.ndarray:
    """P(target | escalation) from the head's scores and the vote, weighted by how close the nearest ticket is.

    logit = a * score + (b + c * top_similarity) * log(vote + floor): a near-duplicate's vote can outweigh the
    head, a distant neighbour's cannot. (a, b, c) are fitted on out-of-fold answers.
    """
    a, b, c = params
    logits = a * scores + (b + c * top_sim[:, None]) * np.log(knn + KNN_FLOOR)
    return softmax(logits)


def vote_of_neighbours(
    idx: np.ndarray,
    sims: np.ndarray,
    escalated: np.ndarray,
    target_idx: np.ndarray,
    n_targets: int,
    k: int,
    temperature: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vote of each row's k nearest resolved tickets (`idx` and `sims` best first, indices into `escalated`
    and `target_idx`): P(escalation), P(target | escalation) and the nearest one's similarity."""
    nb, near = idx[:, :k], sims[:, :k]
    p_esc, p_tgt = knn_vote(near, escalated[nb], target_idx[nb], n_targets, temperature)
    return p_esc, p_tgt, near[:, 0] if near.shape[1] else np.zeros(len(idx))


def target_probabilities(
    scores: np.ndarray,
    vote: np.ndarray,
    top_sim: np.ndarray,
    temperature: float,
    stack: tuple[float, ...] | None,
    weight: float,
) -> np.ndarray:
    """P(target | escalation), the same way at training (out of fold) and at serving: the stacked blend when its
    weights were fitted, else the head's softmax mixed with a fixed share `weight` of the vote (0: head alone)."""
    if stack is not None:
        return stacked_targets(scores, vote, top_sim, stack)
    return blend_targets(scores, temperature, vote, weight)


def calibrator_inputs(esc_scores: np.ndarray, knn_esc: np.ndarray, use_knn: bool) -> np.ndarray:
    """What the escalation calibrator sees: the head's score, and the neighbours' escalation share."""
    return np.column_stack([esc_scores, knn_esc]) if use_knn else esc_scores.reshape(-1, 1)
