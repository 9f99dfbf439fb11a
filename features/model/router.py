"""The model artefact: everything serving needs to turn tickets into ranked, explained suggestions."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.linear_model import LogisticRegression

from features.config import HelpdeskSource, Rule
from features.encoders import Encoder
from features.encoders.transformer import TransformerEncoder
from features.model.aliases import load_pickled
from features.model.heads import (
    aligned_scores,
    calibrator_inputs,
    linear_scores,
    positive_probability,
    rerank,
    target_probabilities,
    vote_of_neighbours,
)
from features.model.index import SIMILAR_CANDIDATES, SimilarIndex, distinct
from features.model.lexical import CHAR_SOURCE, LexicalFeatures, combine
from features.model.provenance import Provenance
from features.model.results import (
    EscalationCall,
    Familiarity,
    FiredRule,
    KeyTerm,
    Neighbour,
    RankedTarget,
    RoutingCall,
    Suggestion,
)
from features.model.timing import stage
from features.text.clean import snippet

# Words that carry signal for the model (inside bigrams, as style) but explain nothing to an agent on their own.
UNINFORMATIVE = ENGLISH_STOP_WORDS | {
    "able", "advise", "also", "anyone", "appreciate", "asap", "best", "checked", "com", "could", "dear", "did",
    "does", "doing", "done", "getting", "got", "gets", "hallo", "hello", "help", "hi", "kind", "kindly", "know",
    "let", "like", "look", "looking", "need", "needed", "needs", "ok", "please", "pls", "plz", "possible", "received",
    "regards", "request", "said", "say", "says", "sent", "sir", "soon", "still", "team", "tell", "thank", "thanks",
    "today", "told", "touch", "tried", "try", "trying", "unable", "urgent", "use", "used", "using", "want", "wants",
    "way", "went", "work", "working", "works", "would", "yesterday", "yes", "new", "show", "shows", "showing",
}  # fmt: skip

LinearHead = Any  # a fitted scikit-learn linear classifier: decision_function, coef_, classes_

ARTEFACT_FILE = "router.joblib"
OTHER = "other"  # the target that pools those with too few tickets: never suggested, nobody to send a ticket to


@dataclass
class Thresholds:
    """The operating point chosen on validation data: where `escalate` and `resolve_first` begin."""

    escalate: float
    resolve_first: float
    target_precision: float
    escalate_precision_reached: bool = True
    resolve_precision_reached: bool = True

    def decide(self, probability: float) -> tuple[str, float]:
        """`escalate` / `resolve_first` when confident enough, `uncertain` (human triage) between."""
        if probability >= self.escalate:
            return "escalate", self.escalate
        if probability < self.resolve_first:
            return "resolve_first", self.resolve_first
        return "uncertain", self.escalate


def _fill_defaults(obj: Any, state: dict[str, Any]) -> None:
    """Unpickle a dataclass saved before some of its fields existed: those take their defaults."""
    for f in fields(obj):
        if f.name not in state:
            if f.default is not MISSING:
                state[f.name] = f.default
            elif f.default_factory is not MISSING:
                state[f.name] = f.default_factory()
    obj.__dict__.update(state)


@dataclass
class TargetThresholds:
    """Per-target operating points on P(target): below its threshold the top target is `uncertain`.

    Targets with too few validation answers to show their precision are never routed (`unproven`; `fallback` is
    above 1). Artefacts made before `unproven` existed share the threshold chosen on all targets (`fallback`).
    Each threshold is the lowest whose out-of-fold answers keep `target_precision`, or the precision a lead set
    for that target (`precisions`, `set_by`: `escalation thresholds`).
    """

    per_target: dict[str, float]
    fallback: float
    target_precision: float
    unreached: list[str] = field(default_factory=list)  # targets that never reached the precision
    unproven: dict[str, int] | None = None  # targets with too few validation answers -> those answers (never routed)
    precisions: dict[str, float] = field(default_factory=dict)  # targets a lead set another precision for
    set_by: dict[str, str] = field(default_factory=dict)  # those targets -> who set it and when

    def __setstate__(self, state: dict[str, Any]) -> None:
        _fill_defaults(self, state)

    def precision_for(self, target: str) -> float:
        """The precision `target`'s threshold was chosen to keep."""
        return self.precisions.get(target, self.target_precision)

    def decide(self, target: str, probability: float) -> tuple[str, float, str]:
        """(`route` or `uncertain`, the threshold that applied, whose threshold it was)."""
        if target in self.per_target:
            threshold, scope = self.per_target[target], "target"
        elif self.unproven is not None:  # too few validation answers to show its precision: never routed
            threshold, scope = float(np.nextafter(1.0, 2.0)), "unproven"
        else:  # artefacts from before: one threshold chosen on all targets together
            threshold, scope = self.fallback, "all targets"
        return ("route" if probability >= threshold else "uncertain"), threshold, scope


@dataclass
class RoutingAnswers:
    """Top-1 answers for escalated tickets the heads did not train on: the out-of-fold ones the routing thresholds
    are chosen on, or the holdout's they are checked on. Positions index the router's targets; `truth` is -1 where
    the ticket went to a team the model cannot name. The holdout's carry every holdout ticket's P(escalation) and
    whether it was escalated too (the routing answers are its escalated tickets', in order), so the operating
    numbers can be counted again under other thresholds."""

    top: np.ndarray
    probability: np.ndarray  # P(top target)
    truth: np.ndarray
    weights: np.ndarray | None = None  # tickets each answer stands for (heads fitted on a sample)
    escalated: np.ndarray | None = None  # holdout: per ticket
    p_escalation: np.ndarray | None = None  # holdout: per ticket

    @property
    def correct(self) -> np.ndarray:
        return self.top == self.truth


@dataclass
class Scored:
    """A batch scored by the router, with what the explanations reuse."""

    escalation: np.ndarray  # calibrated P(escalation)
    targets: np.ndarray  # P(target | escalation), columns as the router's targets
    X: sp.csr_matrix
    embeddings: np.ndarray
    neighbours: np.ndarray
    similarities: np.ndarray
    nearest: np.ndarray | None = None  # cosine to the nearest training ticket (by embedding), when searched


@dataclass
class EscalationRouter:
    """Fitted heads, labels, team kinds, thresholds, the encoder and the similar-ticket index."""

    encoder: Encoder
    embedding_weight: float
    lexical: LexicalFeatures
    escalation_head: LinearHead
    calibrator: LogisticRegression  # Platt scaling of the head's score (and the neighbours' vote)
    target_head: LinearHead
    targets: list[str]
    kinds: dict[str, str]
    first_line: list[str]
    metadata: list[str]
    thresholds: Thresholds
    index: SimilarIndex
    target_temperature: float = 1.0
    target_stack: tuple[float, float, float] | None = None  # (a, b, c) of the stacked blend, when fitted
    knn_k: int = 10
    knn_weight: float = 0.0
    knn_temperature: float = 0.05
    knn_words_weight: float = 0.0
    knn_candidates: int = 30
    pooled: dict[str, int] = field(default_factory=dict)
    target_thresholds: TargetThresholds | None = None
    rules: list[Rule] = field(default_factory=list)
    head_params: dict[str, Any] = field(default_factory=dict)  # the C and weights chosen out of fold
    metrics: dict[str, float] = field(default_factory=dict)
    # holdout quality per target (precision, recall, support, routed_precision, routed_coverage), for the lead's view
    per_target: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None  # which tickets it trained on and held out (None: made before it was kept)
    helpdesk: HelpdeskSource | None = None  # where an imported export came from: live outcomes read paths alike
    themes: list[dict[str, Any]] = field(default_factory=list)  # recurring escalations, masked (training/insights.py)
    usual_similarity: float | None = None  # below it a ticket is unfamiliar (SimilarIndex.usual_similarity)
    rates: list[dict[str, Any]] = field(default_factory=list)  # escalation per week (training/rates.py): no text
    # "out_of_fold" (thresholds chosen on) and "holdout" (checked on): a lead can choose another precision later
    routing_answers: dict[str, RoutingAnswers] = field(default_factory=dict)
    # per target, precision against coverage as its threshold moves, on each of routing_answers (training/tradeoff.py)
    tradeoff: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Artefacts saved before a field existed load with that field's default; those from before the one
        `encoder` field kept the encoder in four (a static table, an exported one, or a reference and a length)."""
        if "encoder" not in state:
            static, exported = state.pop("static", None), state.pop("onnx", None)
            reference, length = state.pop("embedding_model"), state.pop("max_seq_length", None)
            state["encoder"] = static or exported or TransformerEncoder(reference, length)
        _fill_defaults(self, state)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, folder / ARTEFACT_FILE, compress=3)
        self.encoder.save(folder)
        return folder

    @staticmethod
    def load(folder: str | Path) -> EscalationRouter:
        router = load_pickled(Path(folder) / ARTEFACT_FILE)
        if not isinstance(router, EscalationRouter):
            raise TypeError(f"{folder} does not hold an EscalationRouter")
        router.encoder.attach(Path(folder))
        return router

    def train_counts(self) -> dict[str, int]:
        """Training tickets per escalation target (from the similar-ticket index)."""
        on = self.index.target_idx >= 0
        counts = np.bincount(self.index.target_idx[on], minlength=len(self.targets))
        return {t: int(n) for t, n in zip(self.targets, counts, strict=True)}

    # -- scoring -----------------------------------------------------------------------------------
    @property
    def embedding_model(self) -> str:
        """The sentence encoder the embeddings come from."""
        return self.encoder.source

    @property
    def max_seq_length(self) -> int | None:
        return self.encoder.max_seq_length

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.encoder.encode(texts, progress=progress)

    def features(self, tickets: pd.DataFrame, embeddings: np.ndarray) -> sp.csr_matrix:
        return combine(self.lexical.transform(tickets), embeddings, self.embedding_weight)

    def score(self, tickets: pd.DataFrame, embeddings: np.ndarray | None = None, n_similar: int = 0) -> Scored:
        """Calibrated escalation and target probabilities, blended with the nearest resolved tickets' vote."""
        if embeddings is None:
            embeddings = self.embed(tickets["text"].to_numpy(dtype=str).tolist())
        with stage("lexical"):
            X = self.features(tickets, embeddings)
        with stage("neighbours"):
            idx, sims, nearest, knn_esc, knn_tgt, top_sim = self._neighbours(tickets, X, embeddings, n_similar)
        with stage("heads"):
            use_knn = self.knn_weight > 0
            esc_scores = linear_scores(self.escalation_head, X)
            p_esc = positive_probability(self.calibrator, calibrator_inputs(esc_scores, knn_esc, use_knn))
            scores = aligned_scores(self.target_head, X, self.targets)
            stack = self.target_stack if use_knn else None
            p_tgt = target_probabilities(scores, knn_tgt, top_sim, self.target_temperature, stack, self.knn_weight)
        # a few more than asked, so that near-identical texts can be dropped from what the agent sees
        shown = n_similar * SIMILAR_CANDIDATES
        return Scored(p_esc, p_tgt, X, embeddings, idx[:, :shown], sims[:, :shown], nearest)

    def _neighbours(
        self, tickets: pd.DataFrame, X: sp.csr_matrix, embeddings: np.ndarray, n_similar: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
        """The nearest resolved tickets (re-ranked by words where the model does), the similarity to the nearest
        by embedding, and their vote: (idx, sims, nearest, P(escalation) vote, P(target) vote, top similarity)."""
        use_knn = self.knn_weight > 0
        rerank_words = self.knn_words_weight > 0 and self.index.words is not None
        wanted = max(self.knn_k if use_knn else 0, n_similar * SIMILAR_CANDIDATES)
        if self.usual_similarity is not None:
            wanted = max(wanted, 1)  # the nearest training ticket says how familiar the ticket is
        idx, sims = self.index.search(embeddings, max(wanted, self.knn_candidates) if rerank_words else wanted)
        nearest = sims[:, 0].copy() if sims.shape[1] else None  # by embedding, before any re-ranking by words
        if rerank_words:
            words = X[:, : self.index.words.shape[1]]
            idx, sims = rerank(idx, sims, words, self.index.words, self.knn_words_weight)
        if use_knn:
            knn_esc, knn_tgt, top_sim = vote_of_neighbours(
                idx,
                sims,
                self.index.escalated,
                self.index.target_idx,
                len(self.targets),
                self.knn_k,
                self.knn_temperature,
            )
        else:  # the vote is switched off: search only for the similar tickets shown to the agent
            knn_esc, knn_tgt = np.zeros(len(tickets)), np.zeros((len(tickets), len(self.targets)))
            top_sim = np.zeros(len(tickets))
        return idx, sims, nearest, knn_esc, knn_tgt, top_sim

    def suggestible(self, p_tgt: np.ndarray) -> np.ndarray:
        """P(target) with the pooled 'other' column at 0: what the suggestions rank (other is never one)."""
        if OTHER not in self.targets:
            return p_tgt
        out = p_tgt.copy()
        out[:, self.targets.index(OTHER)] = 0.0
        return out

    # -- explanations ------------------------------------------------------------------------------
    def key_terms(self, row: sp.csr_matrix, target: int, n: int = 6) -> list[KeyTerm]:
        """Words and fields of this ticket that pushed escalation and the top target, strongest first."""
        n_lex = len(self.lexical.names_)
        row = row[:, :n_lex].tocoo()
        if row.nnz == 0:
            return []
        cols, vals = row.col, row.data
        esc = self.escalation_head.coef_[0, cols] * vals
        coef = self.target_head.coef_
        if coef.shape[0] == 1:  # binary target head stores one row for the second class
            coef = np.vstack([-coef, coef])
        classes = list(self.target_head.classes_)
        if self.targets[target] in classes:
            cls = classes.index(self.targets[target])
            tgt = (coef[cls, cols] - coef[:, cols].mean(axis=0)) * vals
        else:  # 'other' or a target only the neighbour vote knows: no words to show for it
            tgt = np.zeros_like(esc)
        found: list[KeyTerm] = []
        for towards, contrib in (("escalation", esc), (self.targets[target], tgt)):
            seen: set[str] = set()  # words already shown, so overlapping n-grams do not repeat them
            kept = 0
            for i in np.argsort(-np.abs(contrib)):
                if kept == n or abs(contrib[i]) < 1e-3:
                    break
                source, term = self.lexical.names_[cols[i]]
                if source == CHAR_SOURCE:
                    continue  # character n-grams help the model but read as noise to an agent
                words = set(term.split()) if source == "text" else {f"{source}={term}"}
                content = {w for w in words if w not in UNINFORMATIVE and not w.isdigit() and len(w) > 1}
                # function words carry signal inside bigrams but explain nothing to an agent
                if (towards != "escalation" and contrib[i] <= 0) or not content or content & seen:
                    continue
                seen |= content
                found.append(KeyTerm(term, source, round(float(contrib[i]), 4), towards))
                kept += 1
        return found

    def predict(
        self,
        tickets: pd.DataFrame,
        top_k: int = 3,
        n_similar: int = 3,
        embeddings: np.ndarray | None = None,
    ) -> list[Suggestion]:
        """One typed answer per ticket: escalation decision, ranked targets and explanation (unmasked: present
        them with `features.model.present`)."""
        if len(tickets) == 0:
            return []
        scored = self.score(tickets, embeddings, n_similar)
        with stage("explanation"):
            return self._answers(tickets, scored, top_k, n_similar)

    def _answers(self, tickets: pd.DataFrame, scored: Scored, top_k: int, n_similar: int) -> list[Suggestion]:
        """Each scored ticket's decisions, ranked targets and explanation (key terms, similar tickets, rules)."""
        p_esc, p_tgt, X = scored.escalation, scored.targets, scored.X
        fired = self.match_rules(tickets)
        # 'other' (targets pooled by min_examples) is no place an agent can send a ticket: never suggested
        suggestible = np.array([t != OTHER for t in self.targets])
        results = []
        for i, ticket_id in enumerate(tickets["id"].to_numpy(dtype=object)):
            decision, threshold = self.thresholds.decide(float(p_esc[i]))
            ranked = [t for t in np.argsort(-p_tgt[i]) if suggestible[t]][:top_k]
            top, p_top = self.targets[ranked[0]], float(p_tgt[i, ranked[0]])
            route, route_threshold, scope = (
                self.target_thresholds.decide(top, p_top) if self.target_thresholds else ("route", 0.0, "none")
            )
            chosen = self.target_thresholds
            precision = (chosen.precision_for(top), chosen.set_by.get(top)) if chosen else (None, None)
            if decision == "resolve_first" and route == "route":  # routing never contradicts the escalation answer
                route, scope = "uncertain", "escalation"
            known = self.familiarity(scored, i)
            if known is not None and known.unfamiliar:  # unlike anything learned: no confident answer (a rule may)
                decision, route, scope = "uncertain", "uncertain", "unfamiliar"
            answer = Suggestion(
                id=None if ticket_id is None else str(ticket_id),
                escalation=EscalationCall(
                    round(float(p_esc[i]), 4),
                    decision,  # type: ignore[arg-type]
                    round(threshold, 4),
                    round(self.thresholds.escalate, 4),
                    round(self.thresholds.resolve_first, 4),
                ),
                routing=RoutingCall(route, top, round(p_top, 4), round(route_threshold, 4), scope, *precision),  # type: ignore[arg-type]
                targets=[
                    RankedTarget(self.targets[t], self.kinds[self.targets[t]], round(float(p_tgt[i, t]), 4))  # type: ignore[arg-type]
                    for t in ranked
                ],
                similar=self.neighbours(scored.neighbours[i], scored.similarities[i], n_similar),
                key_terms=self.key_terms(X[i], int(ranked[0])),
                familiarity=known,
            )
            results.append(self.apply_rules(answer, fired[i], p_tgt[i], top_k))
        return results

    def familiarity(self, scored: Scored, i: int) -> Familiarity | None:
        """Ticket `i` against the usual similarity of training tickets to their nearest other ticket."""
        if self.usual_similarity is None or scored.nearest is None:
            return None
        nearest = round(float(scored.nearest[i]), 4)
        return Familiarity(nearest < self.usual_similarity, nearest, self.usual_similarity)

    def neighbours(self, idx: np.ndarray, sims: np.ndarray, n: int) -> list[Neighbour]:
        """The `n` most similar distinct resolved tickets: who resolved them and how."""
        found = []
        for j, s in distinct(idx, sims, self.index.snippets, self.index.vectors, n):
            resolver = str(self.index.resolvers[j])
            resolution = self.index.resolutions[j] if self.index.resolutions is not None else None
            found.append(
                Neighbour(
                    id=str(self.index.ids[j]),
                    similarity=round(float(s), 4),
                    target=resolver,
                    kind=self.kinds.get(resolver, "functional"),  # type: ignore[arg-type]
                    snippet=str(self.index.snippets[j]),
                    resolution=snippet(str(resolution), 300) if resolution else None,
                )
            )
        return found

    def match_rules(self, tickets: pd.DataFrame) -> list[list[tuple[Rule, str]]]:
        """Per ticket, the rules that fire and why (text and the metadata fields the model knows)."""
        texts = tickets["text"].to_numpy(dtype=str)
        if not self.rules:
            return [[] for _ in texts]
        meta = {name: tickets[name].to_numpy(dtype=str) for name in self.metadata if name in tickets.columns}
        fired = []
        for i, text in enumerate(texts):
            values = {k: v[i] for k, v in meta.items()}
            fired.append([(rule, why) for rule in self.rules if (why := rule.match(text, values)) is not None])
        return fired

    def apply_rules(
        self, answer: Suggestion, fired: list[tuple[Rule, str]], p_tgt: np.ndarray, top_k: int
    ) -> Suggestion:
        """Admins' rules beside the model: a `first` rule ranks its target first and escalates; `add` adds it."""
        for rule, why in fired:
            kind = rule.kind or self.kinds.get(rule.target, "functional")
            p = round(float(p_tgt[self.targets.index(rule.target)]) if rule.target in self.targets else 0.0, 4)
            entry = RankedTarget(rule.target, kind, p, rule.name)  # type: ignore[arg-type]
            others = [t for t in answer.targets if t.target != rule.target]
            if rule.action == "first":
                answer = replace(
                    answer,
                    targets=[entry, *others][:top_k],
                    escalation=replace(answer.escalation, decision="escalate", rule=rule.name),
                    routing=RoutingCall("route", rule.target, p, 0.0, "rule"),
                )
            elif all(t.target != rule.target for t in answer.targets):
                answer = replace(answer, targets=[*answer.targets[: max(top_k - 1, 0)], entry])
            shown = FiredRule(rule.name, rule.target, kind, rule.action, why)  # type: ignore[arg-type]
            answer = replace(answer, rules=[*answer.rules, shown])
        return answer

    def smoke_test(self) -> None:
        """Raise if the artefact cannot score a ticket end to end (used before serving a version)."""
        frame = pd.DataFrame({"id": ["smoke"], "text": ["I was charged twice and want a refund"]})
        for name in self.metadata:
            frame[name] = ""
        result = self.predict(frame, top_k=1, n_similar=1)
        if not result or not 0.0 <= result[0].escalation.probability <= 1.0:
            raise RuntimeError("smoke prediction returned no valid probability")
