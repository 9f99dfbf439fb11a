"""The scoring maths both sides share: aligned head scores, the nearest-neighbour vote and the blend."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.utils.extmath import safe_sparse_dot

MISSING_SCORE = -30.0  # a class the head never saw in training


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


TIE_SCALE = 1e5  # similarities equal to 1e-5 are a tie: batch-shaped float32 noise is about 1e-7
CHUNK_BYTES = 256 * 2**20  # working memory of one chunk of exact search (similarities and their positions)


def exact_top_k(
    queries: np.ndarray, vectors: np.ndarray, k: int, chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k nearest unit vectors, best first (exact search, in chunks of
    queries that keep the working memory near CHUNK_BYTES however many vectors there are).

    Similarities are compared to 1e-5, so the noise a batch's matrix product adds (about 1e-7) does not decide
    between duplicate tickets: the same query finds the same neighbours alone or in any batch, on one process or on
    Ray's actors, and among equal similarities the earlier row is shown first."""
    k = min(k, len(vectors))
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), dtype=int), np.zeros((len(queries), 0))
    n = len(vectors)
    chunk = chunk or max(1, min(2048, CHUNK_BYTES // (12 * n)))  # float32 similarities + int64 positions
    tops, sims = [], []
    for start in range(0, len(queries), chunk):
        s = queries[start : start + chunk] @ vectors.T
        rounded = np.round(s * TIE_SCALE)  # equal up to noise becomes equal: the selection below sees the same row
        top = np.argpartition(rounded, n - k, axis=1)[:, n - k :]
        ranked = np.take_along_axis(rounded, top, axis=1)
        order = np.lexsort((top, -ranked), axis=1)  # best first, then the earlier row
        top = np.take_along_axis(top, order, axis=1)
        tops.append(top)
        sims.append(np.take_along_axis(s, top, axis=1))
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
    order = np.argsort(-np.round(mixed * TIE_SCALE), axis=1, kind="stable")  # ties keep the candidates' order
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(mixed, order, axis=1)


def linear_scores(head: Any, X: Any) -> np.ndarray:
    """`head.decision_function(X)` of a fitted linear classifier, without scikit-learn's checks of its input on every
    call (most of a single ticket's time there): the same product plus intercept, so the same numbers to the bit.
    Input other than a float CSR matrix or array, or a head without coefficients, goes through scikit-learn."""
    plain = (sp.issparse(X) and X.format == "csr") or isinstance(X, np.ndarray)
    if (
        not plain
        or X.dtype.kind != "f"
        or X.ndim != 2
        or not hasattr(head, "coef_")
        or not np.isfinite(X.data if sp.issparse(X) else X).all()  # scikit-learn refuses it, saying why
    ):
        return np.asarray(head.decision_function(X))
    coef = head.coef_
    if X.shape[1] != coef.shape[-1]:
        raise ValueError(f"X has {X.shape[1]} features, but {type(head).__name__} expects {coef.shape[-1]}")
    scores = safe_sparse_dot(X, coef.T if coef.ndim == 2 else coef, dense_output=True) + head.intercept_
    return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores


def positive_probability(model: Any, X: Any) -> np.ndarray:
    """`model.predict_proba(X)[:, 1]` of a binary logistic regression, by the same formula (the logistic of its
    decision score) without the input checks; any other model through scikit-learn."""
    binary_logistic = isinstance(model, LogisticRegression) and len(model.classes_) == 2
    if binary_logistic and getattr(model, "multi_class", "auto") in ("auto", "ovr", "deprecated", "warn"):
        return expit(linear_scores(model, X))
    return np.asarray(model.predict_proba(X))[:, 1]


def aligned_scores(head: Any, X: Any, targets: list[str]) -> np.ndarray:
    """Decision scores of a fitted linear head, one column per target in `targets` order."""
    raw = linear_scores(head, X)
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
