"""Side-by-side quality benchmark: the same stratified folds for baselines and the product's pipeline."""

from __future__ import annotations

import json
import os
import platform
import subprocess
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
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_union
from tqdm.auto import tqdm

from features.config import ConfigError, RouterConfig, load_config, parse_config
from features.data import DataError, read_export, to_tickets
from features.embed_cache import EmbeddingCache
from features.labels import OTHER, derive_labels
from features.router import EscalationRouter
from training.encode import exported_encoder, settle_max_length, static_encoder
from training.evaluate import routing_decisions, target_metrics
from training.fit import fit_router
from training.validate import check_columns


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


class LinearBaseline:
    """Logistic regression with library defaults, on TF-IDF of the raw text or on the embedding."""

    def __init__(self, name: str, features: str):
        self.name, self.features = name, features

    def _x(self, fold: Fold, fit: bool = False) -> Any:
        if self.features == "embedding":
            return fold.embeddings
        if fit:
            self.vec_ = make_union(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
            ).fit(fold.raw_text)
        return self.vec_.transform(fold.raw_text)

    def fit(self, fold: Fold) -> LinearBaseline:
        X = self._x(fold, fit=True)
        self.esc_ = LogisticRegression(max_iter=1000).fit(X, fold.escalate)
        esc = fold.escalate
        self.tgt_ = LogisticRegression(max_iter=1000).fit(X[esc], fold.resolver[esc])
        return self

    def predict(self, fold: Fold) -> tuple[np.ndarray, np.ndarray, list[str]]:
        X = self._x(fold)
        return self.esc_.predict_proba(X)[:, 1], self.tgt_.predict_proba(X), list(self.tgt_.classes_)


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
        self.router_ = fit_router(fold.tickets, embeddings, labels, self.config, progress=False, static=static)
        return self

    def predict(self, fold: Fold) -> tuple[np.ndarray, np.ndarray, list[str]]:
        embeddings = None if self.router_.static is not None else fold.embeddings  # static encodes in the timing
        scored = self.router_.score(fold.tickets, embeddings)
        p_esc, p_tgt = scored.escalation, scored.targets
        self.answers_ = operating_counts(self.router_, fold, p_esc, p_tgt)
        return p_esc, p_tgt, list(self.router_.targets)


def operating_counts(router: EscalationRouter, fold: Fold, p_esc: np.ndarray, p_tgt: np.ndarray) -> np.ndarray:
    """Answers and right answers at the router's thresholds on unseen tickets: whether they hold their precision.

    Counts: escalate, escalate right, resolve_first, resolve_first right, escalated, routed, routed right.
    """
    t = router.thresholds
    esc, res = p_esc >= t.escalate, p_esc < t.resolve_first
    on = fold.escalate
    top = p_tgt[on].argmax(axis=1)
    top1 = np.array(router.targets, dtype=object)[top]
    truth = np.array([r if r in router.targets else OTHER for r in fold.resolver[on]], dtype=object)
    routed = routing_decisions(top1, p_tgt[on][np.arange(len(top)), top], router.target_thresholds)
    return np.array(
        [
            esc.sum(),
            (esc & fold.escalate).sum(),
            res.sum(),
            (res & ~fold.escalate).sum(),
            on.sum(),
            routed.sum(),
            (routed & (top1 == truth)).sum(),
        ],
        dtype=float,
    )


def operating_metrics(counts: np.ndarray, n: int) -> dict[str, float]:
    esc, esc_ok, res, res_ok, escalated, routed, routed_ok = counts
    return {
        "escalate_precision": esc_ok / esc if esc else float("nan"),
        "resolve_first_precision": res_ok / res if res else float("nan"),
        "uncertain_rate": 1 - (esc + res) / n,
        "routing_coverage": routed / escalated if escalated else float("nan"),
        "routing_precision": routed_ok / routed if routed else float("nan"),
    }


def recall_at_precision(y: np.ndarray, p: np.ndarray, precision: float = 0.9) -> float:
    prec, rec, _ = precision_recall_curve(y, p)
    ok = rec[prec >= precision]
    return float(ok.max()) if len(ok) else 0.0


def score(
    y_esc: np.ndarray, p_esc: np.ndarray, truth: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, float]:
    """The issue's metrics: escalation ranking on all tickets, target ranking on escalated ones."""
    # Macro-F1 over the teams that were really escalated to, so a model cannot skip the ones it never predicts.
    targets, _ = target_metrics(truth, proba, classes, sorted(set(truth)))
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


def machine() -> dict[str, Any]:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()  # "-dirty": measured on uncommitted changes to that commit
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "code_version": commit or "unknown",
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


EMBEDDING_KEYS = {"model.embedding_model", "model.max_seq_length", "model.seq_length_quantile"}


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
) -> BenchmarkResult:
    """Cross-validate every candidate on the same folds and return one row per candidate."""
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
        opts.embedding_model,
        opts.max_seq_length,
        opts.embed_batch_size,
        progress,
        exported_encoder(opts.model_copy(update={"encoder": "transformer"}), cache),
    )
    log(
        f"{len(tickets)} tickets; embeddings: {reused} reused from cache, {len(tickets) - reused} computed "
        f"in {time.perf_counter() - started:.0f} s"
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
            lambda: LinearBaseline("TF-IDF (word 1-2 + char 2-5) + LR", "tfidf"),
            lambda: LinearBaseline("embeddings + LR", "embedding"),
        ]
    for name, variant in configs.items():
        candidates.append(lambda n=name, c=variant: Product(n, c, cache))

    splits = fold_splits(resolver, folds, seed)

    def part(idx: np.ndarray) -> Fold:
        return Fold(
            tickets.iloc[idx].reset_index(drop=True), raw_text[idx], embeddings[idx], escalate[idx], resolver[idx]
        )

    rows = []
    for make in candidates:
        name = make().name
        p_esc = np.zeros(len(tickets))
        truth_rows, proba_rows = [], []
        fit_s = pred_s = 0.0
        peak = 0.0
        answers = np.zeros(7)
        for train_idx, test_idx in tqdm(splits, desc=name, disable=not progress, leave=False):
            train, test = part(train_idx), part(test_idx)
            with PeakMemory() as mem:
                t0 = time.perf_counter()
                model = make().fit(train)
                t1 = time.perf_counter()
                esc, proba, classes = model.predict(test)
                t2 = time.perf_counter()
            fit_s, pred_s, peak = fit_s + t1 - t0, pred_s + t2 - t1, max(peak, mem.mb)
            p_esc[test_idx] = esc
            if isinstance(model, Product):
                answers += model.answers_
            # team ranking among specialist teams only, on the tickets that were escalated
            specialist = [i for i, c in enumerate(classes) if config.teams.kind(c) != "first_line"]
            on = test.escalate
            truth_rows.append(test.resolver[on])
            proba_rows.append(pd.DataFrame(proba[on][:, specialist], columns=[classes[i] for i in specialist]))
        proba_all = pd.concat(proba_rows, ignore_index=True).fillna(0.0)
        row = {
            "model": name,
            **score(escalate, p_esc, np.concatenate(truth_rows), proba_all.to_numpy(), list(proba_all.columns)),
        }
        if answers.any():
            row.update(operating_metrics(answers, len(tickets)))
        row.update(fit_seconds=fit_s / folds, predict_ms_per_ticket=1000 * pred_s / len(tickets), peak_memory_mb=peak)
        log(f"{name}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)))
        rows.append(row)
    meta = {
        "data": str(data),
        "config": str(config_path),
        "tickets": len(tickets),
        "escalated": int(escalate.sum()),
        "teams": len(set(resolver)),
        "folds": folds,
        "seed": seed,
        "embedding_model": opts.embedding_model,
        "max_seq_length": opts.max_seq_length,
        "target_precision": config.training.target_precision,
        "variants": variants or {"product": {}},
        "machine": machine(),
    }
    return BenchmarkResult(rows, meta)


def write_results(result: BenchmarkResult, folder: str | Path, name: str) -> tuple[Path, Path]:
    """bench/results/quality_NAME.md and .json: the table with the data, folds and machine it ran on."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"quality_{name}.md", folder / f"quality_{name}.json"
    m = result.meta
    md.write_text(
        f"# Quality benchmark: {name}\n\n"
        f"{m['tickets']} tickets ({m['escalated']} escalated, {m['teams']} resolvers) from `{m['data']}`, "
        f"{m['folds']}-fold stratified cross-validation (seed {m['seed']}); embeddings {m['embedding_model']} "
        f"(max {m['max_seq_length']} tokens), excluded from fit time.\n"
        "Escalation metrics over all tickets; team metrics over escalated tickets, ranked among specialist teams.\n"
        "For the product, the thresholds chosen inside each training fold are applied to its unseen fold: "
        "`escalate prec.` and `resolve_first prec.` are the precision those answers reach (the target is "
        f"{m.get('target_precision', 0.9)}), `uncertain` the share sent to human triage, `routed` the share of "
        "escalated tickets whose top team clears its threshold and `routed prec.` how often that team is right.\n\n"
        f"{result.table()}\n\n"
        f"Product variants: `{json.dumps(m['variants'])}`\n\n"
        f"Machine: {m['machine']['cpu']}, {m['machine']['cores']} cores, {m['machine']['memory_gb']} GB, "
        f"Python {m['machine']['python']}; {m['machine']['date']}, code {m['machine']['code_version']}.\n",
        encoding="utf-8",
    )
    js.write_text(json.dumps({"rows": result.rows, **m}, indent=2), encoding="utf-8")
    return md, js


def log_to_mlflow(result: BenchmarkResult, name: str, tracking_uri: str, files: tuple[Path, Path]) -> str:
    """One MLflow run in experiment 'escalation-benchmark' with every row's metrics and the table."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("escalation-benchmark")
    with mlflow.start_run(run_name=f"quality-{name}") as run:
        mlflow.log_params({k: v for k, v in result.meta.items() if isinstance(v, str | int)})
        for row in result.rows:
            slug = "".join(ch if ch.isalnum() else "_" for ch in row["model"]).strip("_")[:40]
            mlflow.log_metrics({f"{slug}.{k}": v for k, v in row.items() if isinstance(v, float) and not np.isnan(v)})
        for path in files:
            mlflow.log_artifact(str(path))
    return run.info.run_id
