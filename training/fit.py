"""Fit the two heads on the training split: calibrated needs-escalation and the escalation target."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed
from scipy.optimize import minimize, minimize_scalar
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from tqdm.auto import tqdm

from features.config import RouterConfig
from features.encoders import Encoder
from features.encoders.transformer import TransformerEncoder
from features.model.heads import (
    aligned_scores,
    calibrator_inputs,
    exact_top_k,
    rerank,
    stacked_targets,
    target_probabilities,
    vote_of_neighbours,
)
from features.model.lexical import LexicalFeatures, combine
from features.model.provenance import Provenance, TicketKeys, uniform
from features.model.router import (
    OTHER,
    EscalationRouter,
    LinearHead,
    RoutingAnswers,
    SimilarIndex,
    TargetThresholds,
    Thresholds,
)
from features.text.clean import snippet
from features.text.privacy import Masker
from training.evaluate import team_macro_f1
from training.labels import Labels, heads_sample, stands_for


def split_holdout(
    tickets: pd.DataFrame,
    labels: Labels,
    config: RouterConfig,
    keys: TicketKeys,
    before: Provenance | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Hold out the newest tickets when dates exist, else each ticket by a fixed function of its id (or of its text
    where it has none); returns (train, holdout, how).

    A ticket's side does not depend on the other rows, so a retrain on a grown export never moves a held-out
    ticket into training: champion and challenger can be scored on tickets neither saw. Targets stay represented
    as a stratified split keeps them: one whose share of the holdout rounds to a ticket or more holds out at least
    one (its lowest draw), and one with two tickets or more keeps at least one to learn from. Tickets the last
    model (`before`) held out under the same draw stay held out, so those adjustments do not move either.
    """
    fraction, n = config.training.holdout_fraction, len(tickets)
    by_date = newest_split(tickets, fraction)
    if by_date is not None:
        return *by_date, "newest"
    how = "by ticket id" if config.columns.id and keys.by_id else "by ticket text"
    seed = config.training.seed
    split_keys = keys.split
    draw = uniform(split_keys, seed)
    pinned = before.pinned(keys, how, seed, fraction) if before is not None else np.zeros(n, dtype=bool)
    held = (draw < fraction) | pinned
    strata = np.where(labels.escalate, labels.target.astype(str), "")
    for value in np.unique(strata[labels.escalate]):
        members = np.flatnonzero(strata == value)
        if len(members) * fraction >= 0.5 and not held[members].any():
            held[members[np.argmin(draw[members])]] = True
        movable = members[held[members] & ~pinned[members]]
        if len(members) >= 2 and held[members].all() and len(movable):
            held[movable[np.argmax(draw[movable])]] = False
    if not held.any():  # a handful of tickets: at least one on each side
        held[np.argmin(draw)] = True
    if held.all():
        held[np.argmax(draw)] = False
    return np.flatnonzero(~held), np.flatnonzero(held), how


def newest_split(tickets: pd.DataFrame, fraction: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(oldest, newest `fraction`) row positions where (nearly) every ticket has a date, else None."""
    if "created_at" not in tickets.columns or tickets["created_at"].notna().mean() <= 0.95:
        return None
    order = np.argsort(tickets["created_at"].to_numpy(dtype="datetime64[ns]"), kind="stable")
    cut = int(round(len(order) * (1 - fraction)))
    return np.sort(order[:cut]), np.sort(order[cut:])


def choose_thresholds(
    y: np.ndarray, p: np.ndarray, target_precision: float, weights: np.ndarray | None = None
) -> Thresholds:
    """Lowest escalate threshold and highest resolve_first threshold whose answers reach the precision.

    Neither answer may contradict the probability: `escalate` needs p >= 0.5 and `resolve_first` p < 0.5,
    so a ticket that probably stays with the first line is never told to escalate to fill coverage. `weights`
    (how many tickets each stands for) give a sample its history's class balance back.
    """
    y = y.astype(bool)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    found = lowest_precise_threshold(y, p, target_precision, weights=w)
    escalate, esc_reached = (found, True) if found is not None else (float(np.nextafter(1.0, 2.0)), False)
    order = np.argsort(p, kind="stable")
    ascending = p[order]
    weight_below = np.concatenate([[0.0], np.cumsum(w[order])])
    positives_below = np.concatenate([[0.0], np.cumsum((w * y)[order])])
    candidates = np.unique(p)  # ties share one threshold: an answer covers all tickets at that score
    below = np.searchsorted(ascending, candidates, side="left")  # tickets with p < t
    weight, pos = weight_below[below], positives_below[below]
    res_precision = np.where(below > 0, (weight - pos) / np.maximum(weight, 1e-12), 0.0)
    ok = np.flatnonzero(res_precision >= target_precision)
    resolve, res_reached = (float(candidates[ok[-1]]), True) if len(ok) else (0.0, False)
    return Thresholds(
        escalate=max(escalate, 0.5),
        resolve_first=min(resolve, 0.5),
        target_precision=target_precision,
        escalate_precision_reached=esc_reached,
        resolve_precision_reached=res_reached,
    )


def wilson_lower(p: np.ndarray, n: np.ndarray, z: float) -> np.ndarray:
    """Lower end of the Wilson interval of a precision `p` shown on `n` answers: strict on few, close to p on many."""
    return (p + z * z / (2 * n) - z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def lowest_precise_threshold(
    correct: np.ndarray, p: np.ndarray, precision: float, z: float = 0.0, weights: np.ndarray | None = None
) -> float | None:
    """Lowest probability t such that answers with p >= t are right at least `precision` of the time.

    With z > 0 the precision must hold for the lower end of its Wilson interval (on the number of answers), so a
    threshold picked on a handful of validation answers does not promise more than it can keep on new tickets.
    With `weights` each answer counts as that many tickets in the precision.
    """
    if len(p) == 0:
        return None
    order = np.argsort(-p, kind="stable")
    n = np.arange(1, len(p) + 1)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)[order]
    shown = np.cumsum(correct[order] * w) / np.cumsum(w)
    estimate = wilson_lower(shown, n, z) if z > 0 else shown
    last = np.r_[p[order][1:] != p[order][:-1], True]  # ties share one threshold
    ok = np.flatnonzero((estimate >= precision - 1e-12) & last)
    return float(p[order][ok[-1]]) if len(ok) else None


ROUTE_FLOOR = 0.5  # `route` needs the top target to be likelier than all others together, as `escalate` needs p >= 0.5


def choose_target_thresholds(
    truth: np.ndarray,
    proba: np.ndarray,
    targets: list[str],
    precision: float,
    min_answers: int = 20,
    z: float = 1.0,
    weights: np.ndarray | None = None,
    precisions: dict[str, float] | None = None,
    set_by: dict[str, str] | None = None,
) -> TargetThresholds:
    """Per-target thresholds on the top target's probability, from out-of-fold answers of escalated tickets.

    `truth` holds target positions. A target is routed only once its precision is shown: one whose top-1 answers
    never reach the precision, or with fewer than `min_answers` answers to show it, gets a threshold above 1
    (always `uncertain`, still suggested). No threshold sits below ROUTE_FLOOR. `weights` count each answer as the
    tickets it stands for in the precision. `precisions` are those a lead set for some targets (`set_by` who),
    kept instead of `precision` for them.
    """
    top = proba.argmax(axis=1)
    p_top = proba[np.arange(len(top)), top]
    return thresholds_for(
        RoutingAnswers(top, p_top, truth, weights), targets, precision, precisions, set_by, min_answers, z
    )


def thresholds_for(
    answers: RoutingAnswers,
    targets: list[str],
    precision: float,
    precisions: dict[str, float] | None = None,
    set_by: dict[str, str] | None = None,
    min_answers: int = 20,
    z: float = 1.0,
) -> TargetThresholds:
    """`choose_target_thresholds` on answers already reduced to their top target (a model's out-of-fold ones)."""
    precisions = {t: p for t, p in (precisions or {}).items() if t in targets}
    correct, never = answers.correct, float(np.nextafter(1.0, 2.0))
    per_target, unreached, unproven = {}, [], {}
    for j, name in enumerate(targets):
        mine = answers.top == j
        if mine.sum() < min_answers:
            unproven[name] = int(mine.sum())
            continue
        # only answers a threshold may route (at or above the floor): a precision shown below it is none to keep
        mine &= answers.probability >= ROUTE_FLOOR
        weights = None if answers.weights is None else answers.weights[mine]
        wanted = precisions.get(name, precision)
        found = lowest_precise_threshold(correct[mine], answers.probability[mine], wanted, z, weights)
        per_target[name] = never if found is None else found
        if found is None:
            unreached.append(name)
    kept_by = {t: who for t, who in (set_by or {}).items() if t in precisions}
    return TargetThresholds(per_target, never, precision, unreached, unproven, precisions, kept_by)


@dataclass(frozen=True)
class HeadParams:
    """One setting of a linear head: its C and whether small classes are up-weighted."""

    C: float
    balanced: bool = False


@dataclass(frozen=True)
class HeadJob:
    """One head to fit: `fold` -1 is a final head on all training tickets, else the fold whose rest it scores."""

    head: str  # "escalation" or "target"
    params: HeadParams
    fold: int = -1


def head_grid(config: RouterConfig) -> tuple[list[HeadParams], list[HeadParams]]:
    """The settings out-of-fold selection chooses from: (escalation head, target head)."""
    opts = config.model
    cs = opts.C_grid if opts.C == "auto" else [float(opts.C)]
    weights = [False, True] if opts.class_weight == "auto" else [opts.class_weight == "balanced"]
    return [HeadParams(c) for c in cs], [HeadParams(c, w) for w in weights for c in cs]


def _head(config: RouterConfig, params: HeadParams) -> LinearHead:
    weight = "balanced" if params.balanced else None
    opts = config.model
    if opts.head == "linear_svm":
        return LinearSVC(C=params.C, class_weight=weight, tol=opts.tol, random_state=config.training.seed)
    return LogisticRegression(
        C=params.C, max_iter=2000, class_weight=weight, tol=opts.tol, random_state=config.training.seed
    )


def _fit_head(
    config: RouterConfig,
    params: HeadParams,
    X: sp.csr_matrix,
    y: np.ndarray,
    X_val: sp.csr_matrix | None,
    targets: list[str] | None,
) -> Any:
    """A fitted head, or (with `X_val`) its scores there: aligned to `targets` for a target head."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        head = _head(config, params).fit(X, y)
    if X_val is None:
        return head
    return aligned_scores(head, X_val, targets) if targets is not None else head.decision_function(X_val)


def target_selection_score(truth: np.ndarray, scores: np.ndarray) -> float:
    """What choosing a target head maximises: what an agent sees, the mean of top-1 accuracy, top-3 accuracy (an
    answer shows three teams) and macro-F1 over the true teams (small teams count as much as large ones)."""
    ranked = np.argsort(-scores, axis=1)[:, :3]
    top1 = (ranked[:, 0] == truth).mean()
    top3 = (ranked == truth[:, None]).any(axis=1).mean()
    return float((top1 + top3 + team_macro_f1(truth, ranked[:, 0])) / 3)


def _fit_temperature(scores: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The softmax temperature that minimises out-of-fold log loss of the target head's scores (weighted)."""
    rows = np.arange(len(truth))

    def nll(t: float) -> float:
        z = scores / t
        z = z - z.max(axis=1, keepdims=True)
        return float(-np.average(z[rows, truth] - np.log(np.exp(z).sum(axis=1)), weights=weights))

    return float(minimize_scalar(nll, bounds=(0.01, 50.0), method="bounded").x) if len(truth) else 1.0


def _fit_stack(
    scores: np.ndarray,
    knn: np.ndarray,
    top_sim: np.ndarray,
    truth: np.ndarray,
    temperature: float,
    weights: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """(a, b, c) of `stacked_targets` minimising out-of-fold log loss (weighted), starting from the temperature."""
    rows = np.arange(len(truth))

    def nll(params: np.ndarray) -> float:
        p = stacked_targets(scores, knn, top_sim, tuple(params))
        return float(-np.average(np.log(p[rows, truth] + 1e-12), weights=weights))

    start = np.array([1.0 / temperature, 0.0, 0.0])
    found = minimize(nll, start, method="Nelder-Mead", options={"maxiter": 400, "xatol": 1e-3, "fatol": 1e-5})
    return tuple(float(v) for v in found.x)  # type: ignore[return-value]


def target_positions(labels: Labels, targets: list[str]) -> np.ndarray:
    """Each ticket's position in the router's targets, -1 for first-line tickets."""
    return np.array([targets.index(t) if e else -1 for t, e in zip(labels.target, labels.escalate, strict=True)])


def fit_router(
    tickets: pd.DataFrame,
    embeddings: np.ndarray,
    labels: Labels,
    config: RouterConfig,
    progress: bool = True,
    encoder: Encoder | None = None,
    mask: Masker | None = None,
    precisions: dict[str, float] | None = None,
    set_by: dict[str, str] | None = None,
) -> EscalationRouter:
    """Train both heads; calibrate them and pick thresholds on out-of-fold scores blended with the neighbour vote.
    The similar-ticket snippets and resolutions the model keeps are masked with `mask` (patterns only by default).
    `encoder` is what made `embeddings` and what the model will serve with (default: the config's transformer on
    PyTorch). `precisions` are those leads set per target on the champion (`set_by`: who), kept by this model."""
    opts = config.model
    if opts.max_seq_length == "auto":
        raise ValueError("settle model.max_seq_length 'auto' first (training.encode.settle_max_length)")
    everyone, every_vector, all_labels = tickets, embeddings, labels
    sample = heads_sample(labels, config.training.max_fit_tickets, config.training.seed)
    weights = None  # each ticket counts once; a sampled ticket counts as the tickets of its target it stands for
    if sample is not None:  # the heads learn from a stratified sample; the index below keeps every ticket
        weights = stands_for(labels, sample)
        tickets, embeddings, labels = (
            tickets.iloc[sample].reset_index(drop=True),
            embeddings[sample],
            labels.take(sample),
        )
    steps = tqdm(total=opts.calibration_folds + 3, desc="fitting", disable=not progress, unit="step")
    lexical = LexicalFeatures(
        tuple(config.columns.metadata), opts.max_terms, opts.lexical, opts.char_ngrams, opts.max_char_terms
    )
    X = combine(lexical.fit_transform(tickets), embeddings, opts.embedding_weight)
    y = labels.escalate.astype(int)
    targets = list(labels.targets)
    target_idx = target_positions(labels, targets)
    words = X[:, : lexical.n_words].tocsr() if opts.knn_words_weight > 0 and lexical.n_words else None
    candidates = opts.knn_candidates if words is not None else 0
    steps.update()

    folds = StratifiedKFold(opts.calibration_folds, shuffle=True, random_state=config.training.seed)
    escalated = np.flatnonzero(labels.escalate)

    splits = list(folds.split(X, y))
    esc_grid, tgt_grid = head_grid(config)
    jobs = [HeadJob("escalation", p, i) for p in esc_grid for i in range(len(splits))]
    jobs += [HeadJob("target", p, i) for p in tgt_grid for i in range(len(splits))]
    chosen = len(esc_grid) == len(tgt_grid) == 1
    if chosen:  # nothing to choose: the final heads go with the folds' in one parallel round
        jobs += [HeadJob("escalation", esc_grid[0]), HeadJob("target", tgt_grid[0])]
    finals: dict[str, LinearHead] = {}
    oof: dict[HeadJob, np.ndarray] = {}

    def data_for(head: str, fold: int) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix | None]:
        """(X, y, X_val) of a head on a fold (-1: all training tickets)."""
        if fold < 0:
            return (X, y, None) if head == "escalation" else (X[escalated], labels.target[escalated].astype(str), None)
        fit_idx, val_idx = splits[fold]
        if head == "escalation":
            return X[fit_idx], y[fit_idx], X[val_idx]
        esc_fit = fit_idx[labels.escalate[fit_idx]]
        return X[esc_fit], labels.target[esc_fit].astype(str), X[val_idx]

    def run(batch: list[HeadJob]) -> None:
        # Every head is independent: fitted in parallel processes (threads would share liblinear's global random
        # state, and the same data would no longer give the same model). One fold at a time, its slices made once
        # for all the settings tried on it and dropped before the next: memory holds one fold's copy, not all.
        for fold in sorted({job.fold for job in batch}):
            group = [job for job in batch if job.fold == fold]
            data = {head: data_for(head, fold) for head in sorted({job.head for job in group})}
            results = Parallel(n_jobs=opts.fit_jobs or os.cpu_count() or 1, return_as="generator")(
                delayed(_fit_head)(config, job.params, *data[job.head], targets if job.head == "target" else None)
                for job in group
            )
            for job, result in zip(group, results, strict=True):
                if job.fold < 0:
                    finals[job.head] = result
                else:
                    oof[job] = result
                steps.update()
            del data

    def gathered(head: str, params: HeadParams) -> np.ndarray:
        parts = [oof[HeadJob(head, params, i)] for i in range(len(splits))]
        out = np.zeros((len(y), *parts[0].shape[1:]))
        for (_, val_idx), part in zip(splits, parts, strict=True):
            out[val_idx] = part
        return out

    steps.total = len(jobs) + (0 if chosen else 2) + 1
    run(jobs)
    esc_params = max(esc_grid, key=lambda p: average_precision_score(y, gathered("escalation", p)))
    truth = target_idx[escalated]
    tgt_params = max(tgt_grid, key=lambda p: target_selection_score(truth, gathered("target", p)[escalated]))
    if not chosen:
        run([HeadJob("escalation", esc_params), HeadJob("target", tgt_params)])
    oof_esc, oof_scores = gathered("escalation", esc_params), gathered("target", tgt_params)
    # Each training ticket's nearest tickets in the other folds, as many as the largest k tried, best first.
    ks = opts.knn_k_grid if opts.knn_k == "auto" else [opts.knn_k]
    oof_nb = np.zeros((len(y), max(ks)), dtype=int)
    oof_sims = np.full((len(y), max(ks)), -np.inf)  # slots a small fold cannot fill weigh nothing in the vote
    for fit_idx, val_idx in splits:
        nb, sims = exact_top_k(embeddings[val_idx], embeddings[fit_idx], max(max(ks), candidates))
        if words is not None:
            nb, sims = rerank(nb, sims, words[val_idx], words[fit_idx], opts.knn_words_weight)
        width = min(max(ks), nb.shape[1])
        oof_nb[val_idx, :width], oof_sims[val_idx, :width] = fit_idx[nb[:, :width]], sims[:, :width]
    escalation_head, target_head = finals["escalation"], finals["target"]
    use_knn = opts.knn_weight > 0
    # Calibration and thresholds see the history's balance: a sample's own (every target kept at 50 tickets or more)
    # would shift P(escalation) and the precision each threshold shows.
    esc_weights = weights[escalated] if weights is not None else None
    temperature = _fit_temperature(oof_scores[escalated], truth, esc_weights)

    def blended(k: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...] | None]:
        """Out of fold with the vote of k neighbours: (P(escalation) vote, P(target) of escalated, stack)."""
        knn_esc, knn, top = vote_of_neighbours(
            oof_nb, oof_sims, labels.escalate, target_idx, len(targets), k, opts.knn_temperature
        )
        e = escalated
        stack = None
        if opts.target_blend == "stacked" and use_knn:
            stack = _fit_stack(oof_scores[e], knn[e], top[e], truth, temperature, esc_weights)
        probabilities = target_probabilities(oof_scores[e], knn[e], top[e], temperature, stack, opts.knn_weight)
        return knn_esc, probabilities, stack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tried = {k: blended(k) for k in (ks if use_knn else ks[:1])}
        knn_k = max(tried, key=lambda k: (target_selection_score(truth, tried[k][1]), -k))
        oof_knn_esc, oof_targets, stack = tried[knn_k]
        inputs = calibrator_inputs(oof_esc, oof_knn_esc, use_knn)
        calibrator = LogisticRegression(C=1e6).fit(inputs, y, sample_weight=weights)
        precision = config.training.target_precision
        thresholds = choose_thresholds(y, calibrator.predict_proba(inputs)[:, 1], precision, weights)
        # the top target as served: the pooled 'other' is never suggested, so never an answer either
        shown = oof_targets if OTHER not in targets else np.where(np.array(targets) == OTHER, -1.0, oof_targets)
        top = shown.argmax(axis=1)
        oof_answers = RoutingAnswers(
            top.astype(np.int32),
            oof_targets[np.arange(len(top)), top].astype(np.float64),  # as served: thresholds compare float64
            truth.astype(np.int32),
            None if esc_weights is None else esc_weights.astype(np.float64),
        )
        target_thresholds = thresholds_for(oof_answers, targets, precision, precisions, set_by)
    steps.close()

    mask = mask or Masker()  # the index travels with the model and is shown to agents: no personal data in it
    if sample is not None:  # the index: every training ticket, not only the heads' sample
        words = lexical.words(everyone) if words is not None else None
        tickets, embeddings, labels = everyone, every_vector, all_labels
        target_idx = target_positions(labels, targets)
    resolutions = None
    if "resolution" in tickets.columns:
        resolutions = np.array(
            [mask(r) if isinstance(r, str) else r for r in tickets["resolution"].to_numpy(dtype=object)], dtype=object
        )
    index = SimilarIndex(
        ids=tickets["id"].to_numpy(dtype=str),
        vectors=np.ascontiguousarray(embeddings, dtype=np.float32),
        resolvers=tickets["target"].to_numpy(dtype=str),
        snippets=np.array([snippet(mask(t)) for t in tickets["text"].to_numpy(dtype=str)], dtype=object),
        escalated=labels.escalate.copy(),
        target_idx=target_idx,
        resolutions=resolutions,
        words=words,
    )
    kinds = dict(labels.kinds)
    kinds.update({t: config.teams.kind(t) for t in set(tickets["target"].to_numpy(dtype=str)) if t not in kinds})
    kinds.update({r.target: r.kind or config.teams.kind(r.target) for r in config.rules if r.target not in kinds})
    return EscalationRouter(
        encoder=encoder or TransformerEncoder(opts.embedding_model, opts.max_seq_length),
        embedding_weight=opts.embedding_weight,
        lexical=lexical,
        escalation_head=escalation_head,
        calibrator=calibrator,
        target_head=target_head,
        targets=targets,
        kinds=kinds,
        first_line=list(config.teams.first_line),
        metadata=list(config.columns.metadata),
        thresholds=thresholds,
        index=index,
        target_temperature=temperature,
        target_stack=stack,
        knn_k=knn_k,
        knn_weight=opts.knn_weight,
        knn_temperature=opts.knn_temperature,
        knn_words_weight=opts.knn_words_weight if words is not None else 0.0,
        knn_candidates=opts.knn_candidates,
        pooled=dict(labels.pooled),
        target_thresholds=target_thresholds,
        rules=list(config.rules),
        helpdesk=config.helpdesk,
        usual_similarity=index.usual_similarity(),
        routing_answers={"out_of_fold": oof_answers},
        head_params={
            "escalation_C": esc_params.C,
            "target_C": tgt_params.C,
            "target_class_weight": "balanced" if tgt_params.balanced else "none",
            "knn_k": knn_k,
            "heads_fitted_on": len(sample) if sample is not None else len(everyone),
        },
    )
