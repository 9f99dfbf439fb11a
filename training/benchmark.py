"""Side-by-side quality benchmark: the same stratified folds for baselines and the product's pipeline."""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_union
from sklearn.preprocessing import normalize
from tqdm.auto import tqdm

from features.config import ConfigError, RouterConfig, load_config, parse_config
from features.data import DataError, read_export, to_tickets
from features.model.router import EscalationRouter
from training.embed_cache import EmbeddingCache
from training.encode import serving_encoder, settle_max_length, static_encoder
from training.evaluate import Answers, operating_answers, operating_metrics, routing_decisions, target_metrics
from training.fit import fit_router, newest_split, target_selection_score
from training.labels import derive_labels
from training.validate import check_columns
from training.version import code_version


@dataclass
class Fold:
    """What every model sees of one fold: tickets (cleaned), raw texts, embeddings and labels."""

    tickets: pd.DataFrame
    raw_text: np.ndarray
    embeddings: np.ndarray
    escalate: np.ndarray
    resolver: np.ndarray


class Candidate(Protocol):
    name: str

    def fit(self, fold: Fold) -> Candidate: ...

    def predict(self, fold: Fold) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Escalation scores and target probabilities with their column names."""
        ...


class MostFrequent:
    """Always the most frequent answer: the floor every model must clear."""

    name = "most frequent target"

    def fit(self, fold: Fold) -> MostFrequent:
        self.rate_ = float(fold.escalate.mean())
        counts = pd.Series(fold.resolver[fold.escalate]).value_counts(normalize=True)
        self.classes_, self.prior_ = list(counts.index), counts.to_numpy()
        return self

    def predict(self, fold: Fold) -> tuple[np.ndarray, np.ndarray, list[str]]:
        n = len(fold.escalate)
        return np.full(n, self.rate_), np.tile(self.prior_, (n, 1)), self.classes_


INNER_FOLDS = 3  # inner cross-validation on the training part of each fold, for every candidate's settings


def tfidf_union() -> Any:
    """Word 1-2-grams and character 2-5-grams of the raw text, sublinear, min_df 2: the bag of words to beat."""
    return make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )


def inner_splits(y: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner folds of a training part, stratified by `y` (classes too small to stratify share one stratum)."""
    strata = pd.Series(y.astype(str))
    strata = strata.where(strata.map(strata.value_counts()) >= INNER_FOLDS, "\x00rare").to_numpy()
    return list(StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(y, strata))


def choose(
    grid: list[Any], fit_path: Callable[..., list[np.ndarray]], X: Any, y: np.ndarray
) -> tuple[Any, dict[str, float]]:
    """The grid value with the best inner-CV score on a training part: average precision for a boolean `y`
    (escalation), else the mean of top-1, top-3 and macro-F1 (teams), as the product chooses its own.

    `fit_path(grid, X_fit, y_fit, X_val, classes)` returns, for each grid value, scores of X_val: P(escalation)
    for a boolean `y`, else a column per class of `classes` (`np.unique(y)`). Ties go to the first grid value.
    """
    splits = inner_splits(y)
    binary = y.dtype == bool
    classes = None if binary else np.unique(y)
    paths = Parallel(n_jobs=min(len(splits), os.cpu_count() or 1))(
        delayed(fit_path)(grid, X[f], y[f], X[v], classes) for f, v in splits
    )
    found: dict[str, float] = {}
    for g, value in enumerate(grid):
        oof = np.zeros((len(y), *paths[0][g].shape[1:]))
        for (_, val_idx), path in zip(splits, paths, strict=True):
            oof[val_idx] = path[g]
        found[str(value)] = (
            float(average_precision_score(y, oof))
            if binary
            else target_selection_score(np.searchsorted(classes, y), oof)
        )
    best = max(range(len(grid)), key=lambda g: found[str(grid[g])])
    return grid[best], found


def _lr_path(grid: list[float], X: Any, y: np.ndarray, X_val: Any, classes: np.ndarray | None) -> list[np.ndarray]:
    """Logistic regression fitted on (X, y) at each C of `grid` (ascending, each fit warm-started from the one
    before): P(positive) of X_val, or its class probabilities aligned to `classes`."""
    model = LogisticRegression(max_iter=1000, warm_start=True)
    out = []
    for C in grid:
        proba = model.set_params(C=C).fit(X, y).predict_proba(X_val)
        if classes is None:
            out.append(proba[:, 1])
            continue
        aligned = np.zeros((proba.shape[0], len(classes)))
        aligned[:, np.searchsorted(classes, model.classes_)] = proba
        out.append(aligned)
    return out


class TunedLinear:
    """Logistic regression on TF-IDF of the raw text or on the embedding, each head's C chosen by an inner
    cross-validation on the training part (escalation by average precision, teams by top-1, top-3 and macro-F1)."""

    # Grids wide enough that the choice never sat on an edge of them on the IT tickets (it did at 1-100).
    ESCALATION_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
    TARGET_GRID = (10.0, 30.0, 100.0, 300.0, 1000.0)

    def __init__(self, name: str, features: str):
        self.name, self.features = name, features

    def _x(self, fold: Fold, fit: bool = False) -> Any:
        if self.features == "embedding":
            return fold.embeddings
        if fit:  # unsupervised: fitted on the whole training part, inner folds included
            self.vec_ = tfidf_union().fit(fold.raw_text)
        return self.vec_.transform(fold.raw_text)

    def fit(self, fold: Fold) -> TunedLinear:
        X, esc = self._x(fold, fit=True), fold.escalate
        Xe, ye = X[esc], fold.resolver[esc]
        C_esc, self.esc_scores_ = choose(list(self.ESCALATION_GRID), _lr_path, X, esc)
        C_tgt, self.tgt_scores_ = choose(list(self.TARGET_GRID), _lr_path, Xe, ye)
        self.params_ = {"escalation_C": C_esc, "target_C": C_tgt}
        self.esc_, self.tgt_ = Parallel(n_jobs=2)(
            delayed(LogisticRegression(C=c, max_iter=1000).fit)(Xf, yf)
            for c, Xf, yf in ((C_esc, X, esc), (C_tgt, Xe, ye))
        )
        return self

    def predict(self, fold: Fold) -> tuple[np.ndarray, np.ndarray, list[str]]:
        X = self._x(fold)
        return self.esc_.predict_proba(X)[:, 1], self.tgt_.predict_proba(X), list(self.tgt_.classes_)


def _knn_path(grid: list[int], X: Any, y: np.ndarray, X_val: Any, classes: np.ndarray | None) -> list[np.ndarray]:
    """For each k of `grid`, the cosine-weighted vote of the k nearest rows of X (unit rows): the share escalated
    for a boolean `y`, else each class's share (columns as `classes`)."""
    sims = np.asarray((X_val @ X.T).todense()) if sp.issparse(X) else X_val @ X.T
    order = np.argsort(-sims, axis=1)[:, : max(grid)]
    out = []
    for k in grid:
        top = order[:, : min(k, sims.shape[1])]
        w = np.maximum(np.take_along_axis(sims, top, axis=1), 0) + 1e-9
        if classes is None:
            out.append((w * y[top]).sum(axis=1) / w.sum(axis=1))
            continue
        votes = np.zeros((len(top), len(classes)))
        rows = np.repeat(np.arange(len(top)), top.shape[1])
        np.add.at(votes, (rows, np.searchsorted(classes, y[top]).ravel()), w.ravel())
        out.append(votes / votes.sum(axis=1, keepdims=True))
    return out


class KnnVote:
    """The nearest resolved tickets by TF-IDF cosine vote, weighted by similarity (teams among the nearest
    escalated tickets); each k chosen by inner CV on the training part."""

    name = "TF-IDF nearest-neighbour vote"
    ESCALATION_GRID = (10, 30, 60, 100)
    TARGET_GRID = (3, 5, 10, 30)

    def fit(self, fold: Fold) -> KnnVote:
        self.vec_ = tfidf_union().fit(fold.raw_text)
        X = normalize(self.vec_.transform(fold.raw_text))
        esc = fold.escalate
        self.X_, self.esc_y_ = X, esc
        self.Xe_, self.ye_ = X[esc], fold.resolver[esc]
        self.classes_ = np.unique(self.ye_)
        k_esc, self.esc_scores_ = choose(list(self.ESCALATION_GRID), _knn_path, X, esc)
        k_tgt, self.tgt_scores_ = choose(list(self.TARGET_GRID), _knn_path, self.Xe_, self.ye_)
        self.params_ = {"escalation_k": k_esc, "target_k": k_tgt}
        return self

    def predict(self, fold: Fold) -> tuple[np.ndarray, np.ndarray, list[str]]:
        X = normalize(self.vec_.transform(fold.raw_text))
        (p_esc,) = _knn_path([self.params_["escalation_k"]], self.X_, self.esc_y_, X, None)
        (p_tgt,) = _knn_path([self.params_["target_k"]], self.Xe_, self.ye_, X, self.classes_)
        return p_esc, p_tgt, list(self.classes_)


class Product:
    """The product's own pipeline (training.fit.fit_router) with the config's settings."""

    def __init__(self, name: str, config: RouterConfig, cache: str | Path | None = None):
        self.name, self.config, self.cache = name, config, cache

    def fit(self, fold: Fold) -> Product:
        labels = derive_labels(fold.resolver, self.config.teams, self.config.min_examples)
        opts, static, embeddings = self.config.model, None, fold.embeddings
        if opts.encoder == "static":  # fitted on this fold's training texts (and their transformer embeddings)
            static = static_encoder(fold.tickets["text"].tolist(), opts, self.cache, False, fold.embeddings)
            embeddings = static.encode(fold.tickets["text"].tolist())
        self.router_ = fit_router(fold.tickets, embeddings, labels, self.config, progress=False, encoder=static)
        self.params_ = dict(self.router_.head_params)
        return self

    def predict(self, fold: Fold) -> tuple[np.ndarray, np.ndarray, list[str]]:
        static = self.router_.encoder.runtime == "static"
        embeddings = None if static else fold.embeddings  # a static table encodes within the timing
        scored = self.router_.score(fold.tickets, embeddings)
        p_esc, p_tgt = scored.escalation, self.router_.suggestible(scored.targets)
        self.answers_ = operating_answers_on(self.router_, fold, p_esc, p_tgt)
        return p_esc, p_tgt, list(self.router_.targets)


def operating_answers_on(router: EscalationRouter, fold: Fold, p_esc: np.ndarray, p_tgt: np.ndarray) -> Answers:
    """The router's answers on a fold's unseen tickets at the thresholds chosen inside its training part."""
    on = fold.escalate
    top = p_tgt[on].argmax(axis=1)
    top1 = np.array(router.targets, dtype=object)[top]
    resolve_first = p_esc[on] < router.thresholds.resolve_first
    routed = routing_decisions(top1, p_tgt[on][np.arange(len(top)), top], router.target_thresholds, resolve_first)
    return operating_answers(fold.escalate, p_esc, router.thresholds, fold.resolver[on], top1, routed)


def recall_at_precision(y: np.ndarray, p: np.ndarray, precision: float = 0.9) -> float:
    prec, rec, _ = precision_recall_curve(y, p)
    ok = rec[prec >= precision]
    return float(ok.max()) if len(ok) else 0.0


def score(
    y_esc: np.ndarray, p_esc: np.ndarray, truth: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, float]:
    """The issue's metrics: escalation ranking on all tickets, target ranking on escalated ones."""
    targets, _ = target_metrics(truth, proba, classes)
    return {
        "escalation_roc_auc": float(roc_auc_score(y_esc, p_esc)),
        "escalation_average_precision": float(average_precision_score(y_esc, p_esc)),
        "escalation_recall_at_p90": recall_at_precision(y_esc, p_esc, 0.9),
        **targets,
    }


class PeakMemory:
    """Peak RSS growth (MB) of this process while the block runs, sampled every 20 ms."""

    def __enter__(self) -> PeakMemory:
        self.proc = psutil.Process(os.getpid())
        self.start = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()
        self.mb = (self.peak - self.start) / 2**20


@dataclass
class BenchmarkResult:
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        cols = [
            ("model", "model", "{}"),
            ("escalation_average_precision", "esc. AP", "{:.3f}"),
            ("escalation_roc_auc", "esc. ROC-AUC", "{:.3f}"),
            ("escalation_recall_at_p90", "recall @ P90", "{:.3f}"),
            ("target_top1_accuracy", "team top-1", "{:.3f}"),
            ("target_top3_accuracy", "team top-3", "{:.3f}"),
            ("target_macro_f1", "team macro-F1", "{:.3f}"),
            ("escalate_precision", "escalate prec.", "{:.3f}"),
            ("resolve_first_precision", "resolve_first prec.", "{:.3f}"),
            ("uncertain_rate", "uncertain", "{:.3f}"),
            ("routing_coverage", "routed", "{:.3f}"),
            ("routing_precision", "routed prec.", "{:.3f}"),
            ("fit_seconds", "fit s/fold", "{:.1f}"),
            ("predict_ms_per_ticket", "predict ms/ticket", "{:.2f}"),
            ("peak_memory_mb", "peak MB", "{:.0f}"),
        ]
        return markdown_table(self.rows, cols)


def markdown_table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    """Rows as a markdown table; `cols` are (key, header, format); missing or NaN cells show as a dash."""
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [
            "–"
            if row.get(key) is None or (isinstance(row[key], float) and np.isnan(row[key]))
            else fmt.format(row[key])
            for key, _, fmt in cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def vector_units(cpuinfo: str) -> str:
    """The vector extensions `/proc/cpuinfo` lists that move encoder timings most (int8 gains little without VNNI),
    so two results files from machines of one name but other CPUs are told apart; 'unknown' where it lists none."""
    lines = cpuinfo.splitlines()
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), None)
    if flags is None:
        return "unknown"
    return ", ".join(f for f in VECTOR_FLAGS if f in flags) or "no AVX2"


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo")
    cpuinfo = info.read_text() if info.exists() else ""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "cpu": f"{cpu} ({vector_units(cpuinfo)})",
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "code_version": code_version(),  # "-dirty": measured on uncommitted changes
    }


def with_overrides(config: RouterConfig, overrides: dict[str, str]) -> RouterConfig:
    """A copy of the config with dotted keys set (`model.class_weight=balanced`), validated again."""
    data = config.model_dump()
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = None if value in ("null", "none", "None") else value
    return parse_config(data, "benchmark overrides")


@dataclass
class Labelled:
    """An export's usable tickets with their raw text (for the TF-IDF baseline), resolver and escalation label."""

    tickets: pd.DataFrame
    raw: pd.DataFrame
    raw_text: np.ndarray
    resolver: np.ndarray
    escalate: np.ndarray


def load_labelled(data: str | Path, config: RouterConfig) -> Labelled:
    """The tickets every candidate is scored on: those with text and a resolver."""
    raw = read_export(data)
    check_columns(raw, config, data)
    tickets = to_tickets(raw, config)
    keep = (tickets["text"].str.strip() != "") & (tickets["target"] != "")
    tickets, raw = tickets[keep].reset_index(drop=True), raw[keep.to_numpy()].reset_index(drop=True)
    raw_text = raw[config.columns.text].astype(str).agg(" ".join, axis=1).to_numpy(dtype=str)
    resolver = tickets["target"].to_numpy(dtype=str)
    escalate = np.array([config.teams.kind(r) != "first_line" for r in resolver])
    return Labelled(tickets, raw, raw_text, resolver, escalate)


def fold_splits(resolver: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds by resolver; resolvers with fewer tickets than folds share one stratum."""
    strata = pd.Series(resolver)
    strata = strata.where(strata.map(strata.value_counts()) >= folds, "rare").to_numpy()
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(resolver, strata))


SIZE_BUCKETS = ((100, "100+"), (30, "30-99"), (10, "10-29"), (0, "under 10"))


def size_bucket(tickets: int) -> str:
    """The team-size group a team with this many tickets in the data set belongs to."""
    return next(name for floor, name in SIZE_BUCKETS if tickets >= floor)


def bucket_scores(truth: np.ndarray, proba: np.ndarray, classes: list[str], sizes: dict[str, int]) -> dict[str, Any]:
    """Team top-1, top-3 and macro-F1 within each team-size group (teams by their tickets in the data set)."""
    buckets = np.array([size_bucket(sizes.get(t, 0)) for t in truth])
    out: dict[str, Any] = {}
    for _, name in SIZE_BUCKETS:
        on = buckets == name
        if on.any():
            found, _ = target_metrics(truth[on], proba[on], classes)
            out[name] = {**found, "tickets": int(on.sum()), "teams": len(set(truth[on]))}
    return out


EMBEDDING_KEYS = {
    "model.embedding_model",
    "model.max_seq_length",
    "model.seq_length_quantile",
    "model.encoder_precision",
}


@dataclass
class Split:
    """How candidates are scored: cross-validation folds, or one train/test split (a column's two values)."""

    parts: list[tuple[np.ndarray, np.ndarray]]
    description: str


def cross_language(raw: pd.DataFrame, column: str, train_value: str, test_value: str) -> Split:
    """Train on the rows whose `column` is `train_value`, score the rows where it is `test_value`."""
    if column not in raw.columns:
        raise DataError(f"split column {column!r} is not in the file")
    values = raw[column].astype(str).to_numpy(dtype=str)
    train, test = np.flatnonzero(values == train_value), np.flatnonzero(values == test_value)
    for value, rows in ((train_value, train), (test_value, test)):
        if not len(rows):
            raise DataError(f"no rows with {column} = {value!r}")
    return Split(
        [(train, test)],
        f"trained on {column} = {train_value} ({len(train)} tickets), "
        f"scored on {column} = {test_value} ({len(test)} tickets)",
    )


def newest_holdout(tickets: pd.DataFrame, fraction: float) -> Split | None:
    """Oldest tickets to train, the newest `fraction` to score, as training holds out where dates exist."""
    parts = newest_split(tickets, fraction)
    return Split([parts], f"newest {fraction:.0%} held out by date") if parts else None


def reused_baselines(
    path: str | Path, data: str | Path, tickets: int, split: str, embedding_model: str
) -> list[dict[str, Any]]:
    """The baseline rows of an earlier result on the same data, tickets and split: the baselines do not depend on
    the product's settings, and the tuned TF-IDF one costs most of a run. The embeddings baseline is kept only
    when the earlier run embedded with the same model."""
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read earlier results ({err})") from None
    same = (Path(str(earlier.get("data"))).resolve() == Path(data).resolve(), earlier.get("tickets") == tickets)
    if not all(same) or earlier.get("split") != split:
        raise DataError(f"{path}: earlier results are of other data or another split; run the baselines again")
    skip = set(earlier.get("variants", {}))
    if earlier.get("embedding_model") != embedding_model:
        skip |= {row["model"] for row in earlier["rows"] if row["model"].startswith("embeddings")}
    return [row for row in earlier["rows"] if row["model"] not in skip]


def run_benchmark(
    data: str | Path,
    config_path: str | Path,
    folds: int = 5,
    seed: int = 42,
    variants: dict[str, dict[str, str]] | None = None,
    cache: str | Path = ".cache/embeddings.sqlite",
    baselines: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    split_by: tuple[str, str, str] | None = None,
    baselines_from: str | Path | None = None,
) -> BenchmarkResult:
    """Score every candidate on the same folds (or on one split by a column's values, `split_by`) and return one
    row per candidate; with dates, the product is also scored on the newest tickets."""
    for name, overrides in (variants or {}).items():
        shared = sorted(k for k in overrides if k in EMBEDDING_KEYS)
        if shared:
            raise ConfigError(
                f"variant {name!r} sets {', '.join(shared)}: every column shares one set of embeddings, so run the "
                "benchmark again with a config that sets it"
            )
    config = load_config(config_path)
    labelled = load_labelled(data, config)
    tickets, raw, raw_text = labelled.tickets, labelled.raw, labelled.raw_text
    resolver, escalate = labelled.resolver, labelled.escalate
    config = settle_max_length(config, tickets["text"].tolist(), cache)  # unlabelled texts only
    opts = config.model
    started = time.perf_counter()
    embeddings, reused = EmbeddingCache(cache).embed(
        tickets["text"].tolist(),
        serving_encoder(opts.model_copy(update={"encoder": "transformer"}), cache),
        opts.embed_batch_size,
        progress,
    )
    embed_seconds = time.perf_counter() - started
    log(
        f"{len(tickets)} tickets; embeddings: {reused} reused from cache, {len(tickets) - reused} computed "
        f"in {embed_seconds:.0f} s"
    )

    configs = {name: with_overrides(config, overrides) for name, overrides in (variants or {"product": {}}).items()}
    for variant in configs.values():  # a variant may add metadata fields the base config does not name
        for column in variant.columns.metadata:
            if column not in raw.columns:
                raise DataError(f"{data}: variant metadata column {column!r} is not in the file")
            if column not in tickets.columns:
                tickets[column] = raw[column].astype(str).to_numpy(dtype=str)
    candidates: list[Callable[[], Candidate]] = []
    if baselines:
        candidates += [
            MostFrequent,
            lambda: TunedLinear("TF-IDF (word 1-2 + char 2-5) + LR, C by inner CV", "tfidf"),
            KnnVote,
            lambda: TunedLinear("embeddings + LR, C by inner CV", "embedding"),
        ]
    products = [lambda n=name, c=variant: Product(n, c, cache) for name, variant in configs.items()]

    split = (
        cross_language(raw, *split_by)
        if split_by
        else Split(fold_splits(resolver, folds, seed), f"{folds}-fold stratified cross-validation (seed {seed})")
    )
    sizes = pd.Series(resolver[escalate]).value_counts().to_dict()

    def part(idx: np.ndarray) -> Fold:
        return Fold(
            tickets.iloc[idx].reset_index(drop=True), raw_text[idx], embeddings[idx], escalate[idx], resolver[idx]
        )

    def scored(make: Callable[[], Candidate], parts: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
        name = make().name
        on_test = np.concatenate([test for _, test in parts])
        p_esc = np.zeros(len(tickets))
        truth_rows, proba_rows, params = [], [], []
        fit_s = pred_s = 0.0
        peak = 0.0
        answers: Answers | None = None
        for train_idx, test_idx in tqdm(parts, desc=name, disable=not progress, leave=False):
            train, test = part(train_idx), part(test_idx)
            with PeakMemory() as mem:
                t0 = time.perf_counter()
                model = make().fit(train)
                t1 = time.perf_counter()
                esc, proba, classes = model.predict(test)
                t2 = time.perf_counter()
            fit_s, pred_s, peak = fit_s + t1 - t0, pred_s + t2 - t1, max(peak, mem.mb)
            p_esc[test_idx] = esc
            params.append(getattr(model, "params_", {}))
            if isinstance(model, Product):
                answers = model.answers_ if answers is None else answers + model.answers_
            # team ranking among specialist teams only, on the tickets that were escalated
            specialist = [i for i, c in enumerate(classes) if config.teams.kind(c) != "first_line"]
            on = test.escalate
            truth_rows.append(test.resolver[on])
            proba_rows.append(pd.DataFrame(proba[on][:, specialist], columns=[classes[i] for i in specialist]))
        proba_all = pd.concat(proba_rows, ignore_index=True).fillna(0.0)
        truth, columns = np.concatenate(truth_rows), list(proba_all.columns)
        row = {"model": name, **score(escalate[on_test], p_esc[on_test], truth, proba_all.to_numpy(), columns)}
        if answers is not None:
            row.update(operating_metrics(answers))
            row["per_team_routing"] = answers.per_team
        row.update(
            fit_seconds=fit_s / len(parts),
            predict_ms_per_ticket=1000 * pred_s / len(on_test),
            peak_memory_mb=peak,
            by_team_size=bucket_scores(truth, proba_all.to_numpy(), columns, sizes),
            chosen=params,
        )
        log(f"{name}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)))
        return row

    reused_rows = (
        reused_baselines(baselines_from, data, len(tickets), split.description, opts.embedding_model)
        if baselines_from
        else []
    )
    if reused_rows:
        candidates = []
        log(f"baselines reused from {baselines_from} (same data, tickets and split)")
    rows = reused_rows + [scored(make, split.parts) for make in candidates + products]
    newest = None if split_by else newest_holdout(tickets, config.training.holdout_fraction)
    newest_rows = [scored(make, newest.parts) for make in products] if newest else []
    meta = {
        "data": str(data),
        "config": str(config_path),
        "tickets": len(tickets),
        "escalated": int(escalate.sum()),
        "teams": len(set(resolver)),
        "folds": folds if not split_by else 1,
        "split": split.description,
        "seed": seed,
        "embedding_model": opts.embedding_model,
        "max_seq_length": opts.max_seq_length,
        "embed_seconds": embed_seconds,
        "embeddings_reused": reused,
        "target_precision": config.training.target_precision,
        "variants": variants or {"product": {}},
        "team_sizes": {name: sum(1 for n in sizes.values() if size_bucket(n) == name) for _, name in SIZE_BUCKETS},
        "newest": {"split": newest.description, "rows": newest_rows} if newest else None,
        "machine": machine(),
    }
    return BenchmarkResult(rows, meta)


def size_table(rows: list[dict[str, Any]]) -> str:
    """Team top-1 / top-3 / macro-F1 of every model within each team-size group."""
    cols = [("model", "model", "{}")]
    flat = []
    for row in rows:
        cells: dict[str, Any] = {"model": row["model"]}
        for name, found in row.get("by_team_size", {}).items():
            cells[name] = (
                f"{found['target_top1_accuracy']:.3f} / {found['target_top3_accuracy']:.3f} / "
                f"{found['target_macro_f1']:.3f}"
            )
        flat.append(cells)
    sizes = rows[0].get("by_team_size", {}) if rows else {}
    cols += [(name, f"{name} ({v['teams']} teams, {v['tickets']} tickets)", "{}") for name, v in sizes.items()]
    return markdown_table(flat, cols)


def routing_table(row: dict[str, Any], sizes: dict[str, int]) -> str:
    """Per team of the product: escalated tickets, the share routed and how often routing was right."""
    teams = sorted(row.get("per_team_routing", {}).items(), key=lambda kv: -kv[1][0])
    flat = [
        {
            "team": team,
            "size": size_bucket(sizes.get(team, 0)),
            "escalated": n,
            "routed": routed / n if n else float("nan"),
            "precision": right / routed if routed else float("nan"),
        }
        for team, (n, routed, right) in teams
    ]
    cols = [
        ("team", "team", "{}"),
        ("size", "team size", "{}"),
        ("escalated", "escalated (unseen)", "{}"),
        ("routed", "routed", "{:.3f}"),
        ("precision", "routed prec.", "{:.3f}"),
    ]
    return markdown_table(flat, cols)


def write_results(result: BenchmarkResult, folder: str | Path, name: str) -> tuple[Path, Path]:
    """bench/results/quality_NAME.md and .json: the tables with the data, split and machine it ran on."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"quality_{name}.md", folder / f"quality_{name}.json"
    m = result.meta
    sizes = {}
    for row in result.rows:
        for team, (n, _, _) in row.get("per_team_routing", {}).items():
            sizes[team] = sizes.get(team, 0) + n
    parts = [
        f"# Quality benchmark: {name}\n",
        f"{m['tickets']} tickets ({m['escalated']} escalated, {m['teams']} resolvers) from `{m['data']}`, "
        f"{m['split']}; embeddings {m['embedding_model']} (max {m['max_seq_length']} tokens), excluded from fit "
        "time.",
        "Escalation metrics over all scored tickets; team metrics over escalated tickets, ranked among specialist "
        "teams. A suggestion is right only when it names the team that resolved the ticket: a pooled answer "
        "('other') or a team the model does not know is wrong. Every baseline's C (or k) is chosen by a "
        f"{INNER_FOLDS}-fold cross-validation inside each training part, on the same criteria the product chooses "
        "its own with (escalation: average precision; teams: mean of top-1, top-3 and macro-F1); `chosen` in the "
        "JSON lists them per fold.",
        "For the product, the thresholds chosen inside each training part are applied to its unseen tickets: "
        "`escalate prec.` and `resolve_first prec.` are the precision those answers reach (the target is "
        f"{m.get('target_precision', 0.9)}), `uncertain` the share sent to human triage, `routed` the share of "
        "escalated tickets routed automatically (top team sure and the escalation answer not `resolve_first`) and "
        "`routed prec.` how often that team is the one that resolved it.\n",
        result.table(),
        "\n## By team size\n",
        "Team top-1 / top-3 / macro-F1 on escalated tickets whose team has that many escalated tickets in the data "
        "set.\n",
        size_table(result.rows),
    ]
    if m.get("newest"):
        parts += [
            f"\n## On the newest tickets\n\nThe product trained on the oldest tickets and scored on the "
            f"{m['newest']['split']}.\n",
            BenchmarkResult(m["newest"]["rows"]).table(),
        ]
    for row in result.rows:
        if row.get("per_team_routing"):
            parts += [f"\n## Routing per team: {row['model']}\n", routing_table(row, sizes)]
    parts += [
        f"\nProduct variants: `{json.dumps(m['variants'])}`\n",
        f"Machine: {m['machine']['cpu']}, {m['machine']['cores']} cores, {m['machine']['memory_gb']} GB, "
        f"Python {m['machine']['python']}; {m['machine']['date']}, code {m['machine']['code_version']}.\n",
    ]
    md.write_text("\n".join(parts), encoding="utf-8")
    js.write_text(json.dumps({"rows": result.rows, **m}, indent=2, default=str), encoding="utf-8")
    return md, js


def log_to_mlflow(result: BenchmarkResult, name: str, tracking_uri: str, files: tuple[Path, Path]) -> str:
    """One MLflow run in experiment 'escalation-benchmark' with every row's metrics and the table (through a
    client on `tracking_uri`: MLflow's process-wide URI is left as it was)."""
    from mlflow import MlflowClient

    from training.tracking import Tracker

    metrics: dict[str, float] = {}
    for row in result.rows:
        slug = "".join(ch if ch.isalnum() else "_" for ch in row["model"]).strip("_")[:40]
        metrics.update({f"{slug}.{k}": v for k, v in row.items() if isinstance(v, float) and not np.isnan(v)})
        for bucket, found in row.get("by_team_size", {}).items():
            key = "".join(ch if ch.isalnum() else "_" for ch in bucket)
            metrics.update({f"{slug}.size_{key}.{k}": float(v) for k, v in found.items()})
    with Tracker.start(MlflowClient(tracking_uri), "escalation-benchmark", run_name=f"quality-{name}") as run:
        run.params({k: v for k, v in result.meta.items() if isinstance(v, str | int)})
        run.metrics(metrics)
        run.files(files)
    return run.run_id
