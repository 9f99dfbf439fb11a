"""`escalation train`, in named stages: prepare (validate, label, find the champion, split, embed), fit and
evaluate, challenge the champion on the holdout tickets neither trained on, log the run and register the model,
promote (or keep it as `challenger`)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from features.cluster import RayEngine
from features.config import RouterConfig, load_config
from features.data import DataError, fingerprint, load_export, to_tickets
from features.encoders import precision, same_embeddings
from features.model.provenance import Provenance, TicketKeys
from features.model.router import EscalationRouter
from features.settings import Settings
from features.text.privacy import masker_for
from training import register
from training.encode import Embedded, embed_tickets, settle_max_length
from training.evaluate import (
    Evaluation,
    confusion_png,
    coverage_precision_png,
    coverage_precision_table,
    evaluate,
    holdout_answers,
    quality_per_target,
    reliability_png,
    rule_report,
)
from training.fit import fit_router, split_holdout
from training.insights import Insights, find_themes, themes_figure
from training.labels import Labels, derive_labels
from training.model_card import HEADLINE, model_card
from training.rates import rates_figure, weekly_rates
from training.retrain import MergeReport, merge_feedback
from training.tracking import Tracker, store_missing
from training.tradeoff import param_key, tradeoff, tradeoff_figure, tradeoff_table
from training.validate import RowReport, check_columns, screen_rows, validate_export
from training.version import code_version

THEMES_KEPT = 20  # themes a model carries for the lead's view
WEEKS_KEPT = 26  # weeks of escalation rates it carries

log = logging.getLogger(__name__)
CHALLENGER = "challenger"


@dataclass
class TrainResult:
    """What a training run produced and whether it became the champion."""

    run_id: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    pooled: dict[str, int] = field(default_factory=dict)
    merge: MergeReport = field(default_factory=MergeReport)
    embeddings_reused: int = 0
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    compared_on: str = ""  # which tickets champion and challenger were both scored on
    rows: RowReport = field(default_factory=RowReport)


@dataclass
class Champion:
    """The version the serving alias points at (None: there is none) and its record of the tickets it trained on
    and held out (None: made before models kept one), read before the split; `error` says why it could not be
    loaded. Only the record is kept: the router itself is loaded again to be scored, not held through the fit."""

    version: ModelVersion | None = None
    provenance: Provenance | None = None
    error: str | None = None
    precisions: dict[str, float] = field(default_factory=dict)  # what leads set per target: a new version keeps it
    set_by: dict[str, str] = field(default_factory=dict)


@dataclass
class Prepared:
    """The `prepare` stage's output: usable tickets, their labels and keys, the champion, the holdout split and
    the embeddings."""

    config: RouterConfig
    tickets: pd.DataFrame
    train_t: pd.DataFrame
    hold_t: pd.DataFrame
    train_labels: Labels
    hold_labels: Labels
    how: str  # how the holdout was chosen
    embedded: Embedded
    train_idx: np.ndarray
    hold_idx: np.ndarray
    rows: RowReport
    merge: MergeReport
    keys: TicketKeys
    champion: Champion

    @property
    def train_embeddings(self) -> np.ndarray:
        return self.embedded.vectors[self.train_idx]

    @property
    def hold_embeddings(self) -> np.ndarray:
        return self.embedded.vectors[self.hold_idx]


@dataclass
class Fitted:
    """The `fit_and_evaluate` stage's output: the router and its holdout evaluation."""

    router: EscalationRouter
    evaluation: Evaluation
    fit_seconds: float
    graph_seconds: float
    themes: Insights  # recurring escalations among every ticket of the export


@dataclass
class Challenge:
    """The `challenge` stage's output: both models on the same tickets, and whether the challenger replaces it.

    `tickets` is how many holdout tickets both were scored on; `verified` says they were checked against the
    tickets the champion trained on (`excluded` of the holdout were); `unverified` says why not (a champion that
    recorded none, or whose record another text cleaning made)."""

    champion: ModelVersion | None
    champion_metrics: dict[str, float] | None
    promoted: bool
    reason: str
    comparison: pd.DataFrame
    tickets: int = 0
    excluded: int = 0
    unverified: str | None = None  # why the tickets could not be checked against the champion's; None: they were

    @property
    def verified(self) -> bool:
        return self.unverified is None

    @property
    def compared_on(self) -> str:
        if self.champion_metrics is None:
            return ""
        if not self.verified:
            return f"{self.tickets} holdout tickets (unverified: {self.unverified})"
        return (
            f"{self.tickets} holdout tickets neither trained on ({self.excluded} left out: the champion trained on "
            "them or on word-for-word copies)"
        )


def train(
    data: str | Path,
    config_path: str | Path,
    settings: Settings,
    progress: bool = True,
    feedback: pd.DataFrame | None = None,
    dry_run: bool = False,
    strict: bool = False,
    engine: RayEngine | None = None,
) -> TrainResult:
    """Run the whole training job; raises ConfigError/DataError before anything is written to MLflow.

    `feedback` (rows of the feedback store) relabels export tickets with the same id first. With `dry_run` the
    challenger is trained and compared with the champion, but nothing is logged, registered or moved. Rows that
    cannot be used are skipped and reported (`TrainResult.rows`, `data_report.json`), or with `strict` refuse
    the whole file. With `engine` the tickets are embedded on Ray (the heads are still fitted here).
    """
    prepared = prepare(data, config_path, settings, progress, feedback, strict, engine)
    fitted = fit_and_evaluate(prepared, settings, progress)
    client = register.connect(settings)
    challenged = challenge(prepared, fitted, settings)
    if dry_run:
        return _result(prepared, fitted, challenged, "", "", f"dry run, nothing logged: would have {challenged.reason}")
    with Tracker.start(client, settings.experiment) as run:
        version = log_run(run, prepared, fitted, challenged, data, settings, feedback is not None)
        promoted, reason = promote(run, prepared, fitted, challenged, version, settings, client)
    return _result(prepared, fitted, challenged, run.run_id, str(version.version), reason, promoted)


def _result(
    prepared: Prepared,
    fitted: Fitted,
    challenged: Challenge,
    run_id: str,
    version: str,
    reason: str,
    promoted: bool | None = None,
) -> TrainResult:
    return TrainResult(
        run_id=run_id,
        version=version,
        promoted=challenged.promoted if promoted is None else promoted,
        reason=reason,
        metrics=fitted.evaluation.metrics,
        pooled=prepared.train_labels.pooled,
        merge=prepared.merge,
        embeddings_reused=prepared.embedded.reused,
        comparison=challenged.comparison,
        compared_on=challenged.compared_on,
        rows=prepared.rows,
    )


def prepare(
    data: str | Path,
    config_path: str | Path,
    settings: Settings,
    progress: bool,
    feedback: pd.DataFrame | None,
    strict: bool,
    engine: RayEngine | None = None,
) -> Prepared:
    """Read and screen the export, merge feedback, derive labels, load the champion, split the holdout (keeping
    what the champion held out) and embed every ticket."""
    config = load_config(config_path)
    export = load_export(data)
    check_columns(export.frame, config, data)
    tickets = to_tickets(export.frame, config)
    keep, rows = screen_rows(export, tickets, config, data, strict)
    if rows.skipped:
        log.warning("%s: %s", data, rows.summary())
    tickets = tickets[keep].reset_index(drop=True)
    validate_export(tickets, config, data)
    merge = MergeReport()
    if feedback is not None:
        tickets, merge = merge_feedback(tickets, feedback, config)
        log.info("%s", merge.summary())
    labels = derive_labels(tickets["target"].to_numpy(dtype=str), config.teams, config.min_examples)
    if len(labels.targets) < 2:
        pooling = (
            f" after pooling targets with fewer than {config.min_examples} tickets (min_examples)"
            if config.min_examples > 1
            else ""
        )
        raise DataError(
            f"{data}: tickets escalate to {len(labels.targets)} target(s){pooling}: {labels.targets}; a model "
            "needs two escalation targets to choose from (add data, or check teams.first_line)"
        )
    keys = TicketKeys.of(tickets, by_id=config.columns.id is not None)
    champion = find_champion(settings)
    train_idx, hold_idx, how = split_holdout(tickets, labels, config, keys, champion.provenance)
    config = settle_max_length(config, tickets["text"].iloc[train_idx].tolist(), settings.embedding_cache)
    texts = tickets["text"].tolist()
    embedded = embed_tickets(texts, train_idx, config.model, settings.embedding_cache, progress, engine)
    log.info(
        "embeddings (%s encoder, runtime %s): %d reused from cache, %d computed in %.0f s",
        config.model.encoder,
        embedded.encoder.runtime,
        embedded.reused,
        embedded.computed,
        embedded.seconds,
    )
    train_t, hold_t = tickets.iloc[train_idx].reset_index(drop=True), tickets.iloc[hold_idx].reset_index(drop=True)
    train_labels = derive_labels(train_t["target"].to_numpy(dtype=str), config.teams, config.min_examples)
    if len(train_labels.targets) < 2:
        raise DataError(
            f"{data}: the training split ({len(train_t)} tickets, holdout {how}) escalates only to "
            f"{train_labels.targets}; a model needs two escalation targets to choose from (add data"
            + (", or lower min_examples)" if config.min_examples > 1 else ")")
        )
    # The holdout is labelled with the training split's targets, so pooled names agree.
    hold_labels = derive_labels(hold_t["target"].to_numpy(dtype=str), config.teams, 1)
    return Prepared(
        config,
        tickets,
        train_t,
        hold_t,
        train_labels,
        hold_labels,
        how,
        embedded,
        train_idx,
        hold_idx,
        rows,
        merge,
        keys,
        champion,
    )


def find_champion(settings: Settings) -> Champion:
    """The serving alias's version and the record its model keeps, read before the split. A sqlite store that does
    not exist yet holds none, and is not created here: a run refused before it logs leaves no store."""
    if store_missing(settings.tracking_uri):
        return Champion()
    version = register.champion_version(register.connect(settings), settings)
    if version is None:
        return Champion()
    try:
        router = register.load_router(settings, version.version)
        chosen = router.target_thresholds
        if chosen is None:
            return Champion(version, router.provenance)
        return Champion(version, router.provenance, None, dict(chosen.precisions), dict(chosen.set_by))
    except Exception as err:  # a champion that cannot load is no reason to keep it, nor to drop a lead's choice
        log.warning("champion version %s could not be loaded: %s", version.version, err)
        precisions, set_by = register.lead_precisions(version)
        return Champion(version, None, str(err), precisions, set_by)


def fit_and_evaluate(prepared: Prepared, settings: Settings, progress: bool) -> Fitted:
    """Fit the router on the training split (what it stores masked) and evaluate it on the holdout."""
    started = time.perf_counter()
    mask = masker_for(settings)  # the listed names too, in everything training stores
    p = prepared
    router = fit_router(
        p.train_t,
        p.train_embeddings,
        p.train_labels,
        p.config,
        progress,
        p.embedded.encoder,
        mask,
        p.champion.precisions,
        p.champion.set_by,
    )
    training = p.config.training
    router.provenance = Provenance.of(p.keys, p.train_idx, p.hold_idx, p.how, training.seed, training.holdout_fraction)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    if router.index.build_graph(settings.ann_threshold):  # saved in the artefact: servers restore, not rebuild
        log.info("similar-ticket graph over %d tickets built in %.0f s", len(p.train_t), time.perf_counter() - started)
    graph_seconds = time.perf_counter() - started
    evaluation = evaluate(router, p.hold_t, p.hold_embeddings, p.hold_labels, mask=mask)
    router.metrics = dict(evaluation.metrics)
    router.per_target = quality_per_target(evaluation.per_target)
    router.routing_answers["holdout"] = holdout_answers(evaluation)
    router.tradeoff = tradeoff(router)
    # every ticket's embedding is at hand: the themes cost a clustering, and the server (no ticket text) shows them
    themes = find_themes(p.tickets, p.embedded.vectors, p.config.teams.first_line, mask)
    themes.rates = weekly_rates(p.tickets, p.config.teams.first_line, p.config.columns.metadata, mask)
    router.themes = [t.as_dict() for t in themes.themes[:THEMES_KEPT]]
    recent = themes.rates[themes.rates["week"].isin(sorted(set(themes.rates["week"]))[-WEEKS_KEPT:])]
    router.rates = recent.to_dict("records")
    return Fitted(router, evaluation, fit_seconds, graph_seconds, themes)


def challenge(prepared: Prepared, fitted: Fitted, settings: Settings) -> Challenge:
    """Score champion and challenger on the holdout tickets neither trained on and decide whether the challenger
    replaces it."""
    champion, p, router = prepared.champion, prepared, fitted.router
    if champion.version is None or champion.error is not None:
        promoted, reason = _decide(router.metrics, None, champion.error, champion.version, p.config, settings)
        return Challenge(champion.version, None, promoted, reason, _comparison(router.metrics, None), len(p.hold_t))
    record = champion.provenance
    seen = record.trained_on(p.keys.take(p.hold_idx)) if record is not None else np.zeros(len(p.hold_t), bool)
    unverified = (
        "the champion recorded no training tickets"
        if record is None
        else None
        if record.comparable
        else "the champion's record was made by another text cleaning"
    )
    shared = np.flatnonzero(~seen)
    new, old, error = _scored_on(settings, champion.version, router, p, shared)
    promoted, reason = _decide(new, old, error, champion.version, p.config, settings, unverified, len(shared))
    return Challenge(
        champion.version, old, promoted, reason, _comparison(new, old), len(shared), int(seen.sum()), unverified
    )


def _scored_on(
    settings: Settings, champion: ModelVersion, router: EscalationRouter, p: Prepared, rows: np.ndarray
) -> tuple[dict[str, float], dict[str, float] | None, str | None]:
    """(challenger's metrics, champion's metrics or None, why not) on the holdout tickets at `rows`; the champion
    is loaded here, and let go when scored."""
    if len(rows) == 0:
        return router.metrics, None, None
    tickets, labels = p.hold_t.iloc[rows].reset_index(drop=True), p.hold_labels.take(rows)
    embeddings = p.hold_embeddings[rows]
    new = router.metrics if len(rows) == len(p.hold_t) else evaluate(router, tickets, embeddings, labels).metrics
    try:
        old_router = register.load_router(settings, champion.version)
        same = same_embeddings(old_router.encoder, router.encoder)
        return new, evaluate(old_router, tickets, embeddings if same else None, labels).metrics, None
    except Exception as err:  # a champion that cannot score is no reason to keep it
        log.warning("champion version %s could not be evaluated: %s", champion.version, err)
        return new, None, str(err)


def log_run(
    run: Tracker,
    prepared: Prepared,
    fitted: Fitted,
    challenged: Challenge,
    data: str | Path,
    settings: Settings,
    with_feedback: bool,
) -> ModelVersion:
    """Log the run a lead reviews (parameters, metrics, plots, tables, comparison) and register the model."""
    p, router, evaluation = prepared, fitted.router, fitted.evaluation
    data_window = {}
    if "created_at" in p.tickets.columns and p.tickets["created_at"].notna().any():
        data_window = {"data_from": str(p.tickets["created_at"].min()), "data_to": str(p.tickets["created_at"].max())}
    router.info = {
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "data_fingerprint": fingerprint(data),
        "holdout": p.how,
        "trained_rows": len(p.train_t),
        **data_window,
    }
    run.params(p.config.flat_params())
    run.params(
        {
            "data_path": str(data),
            "data_fingerprint": router.info["data_fingerprint"],
            "rows": len(p.tickets),
            "train_rows": len(p.train_t),
            "holdout_rows": len(p.hold_t),
            "holdout": p.how,
            "targets": len(router.targets),
            "pooled_targets": ",".join(sorted(p.train_labels.pooled)) or "none",
            "code_version": code_version(),
            "feedback_rows": p.merge.feedback_rows,
            "rows_read": p.rows.rows_read,
            "rows_skipped": p.rows.rows_skipped,
            "embedding_engine": p.embedded.engine,
            "encoder_precision_used": precision(router.encoder),  # int8 asked for but refused: fp32
            **data_window,
        }
    )
    run.params({f"chosen.{k}": v for k, v in router.head_params.items()})
    chosen = router.target_thresholds
    if chosen is not None and chosen.precisions:  # leads' choices on the champion, kept by this version
        run.params(
            {
                f"lead_precision.{param_key(t)}": f"{v:g} ({chosen.set_by.get(t, '?')})"
                for t, v in chosen.precisions.items()
            }
        )
    run.metrics(evaluation.metrics)
    run.metrics(
        {
            "embed_seconds": p.embedded.seconds,
            "embeddings_reused": p.embedded.reused,
            "fit_seconds": fitted.fit_seconds,
            "graph_seconds": fitted.graph_seconds,
            "threshold_escalate": router.thresholds.escalate,
            "threshold_resolve_first": router.thresholds.resolve_first,
            "feedback_relabelled": p.merge.changed,
        }
    )
    if router.target_thresholds:
        run.metrics({"target_threshold_fallback": router.target_thresholds.fallback})
    _log_evaluation(run, evaluation, router)
    _log_themes(run, fitted.themes)
    run.json({"pooled_as_other": p.train_labels.pooled, "kinds": router.kinds}, "evaluation/labels.json")
    if p.config.rules:
        rules = rule_report(router, p.hold_t, p.hold_t["target"].to_numpy(dtype=str))
        run.table(rules, "evaluation/rules.json")
        run.json([r.model_dump() for r in p.config.rules], "rules.json")
        for r in rules.itertuples():
            run.metrics({f"rule_{r.rule}_fired": r.fired})
            if r.fired:
                run.metrics({f"rule_{r.rule}_agreement": r.agreement})
    run.json(p.rows.as_dict(), "data_report.json")
    if with_feedback:
        run.json(p.merge.as_dict(), "feedback_merge.json")
    if challenged.champion_metrics is not None:
        _log_comparison(run, challenged)
    example = p.hold_t[["id", "text", *p.config.columns.metadata]].head(3).reset_index(drop=True)
    return register.log_model(run, router, example, settings)


def promote(
    run: Tracker,
    prepared: Prepared,
    fitted: Fitted,
    challenged: Challenge,
    version: ModelVersion,
    settings: Settings,
    client: MlflowClient,
) -> tuple[bool, str]:
    """Move the serving alias to the new version when it won and loads back and scores a ticket; else it becomes
    the `challenger`. Tags, model card and description say why."""
    promoted, reason = challenged.promoted, challenged.reason
    if promoted:  # a version that cannot be loaded back and score a ticket never becomes champion
        try:
            register.load_router(settings, version.version).smoke_test()
        except Exception as err:
            promoted, reason = False, f"not promoted: v{version.version} failed to load back and score ({err})"
            log.error("%s", reason)
    moved = _champion_moved(prepared.champion, settings, client)
    if promoted and moved:  # a lead's thresholds (or a promotion) landed while this trained: never undo it unseen
        promoted, reason = False, f"not promoted: {moved}; review this run and promote by hand (escalation promote)"
        log.warning("%s", reason)
    router, evaluation = fitted.router, fitted.evaluation
    register.tag_lead_precisions(client, settings, version.version, router)
    run.tag("promotion", reason)
    client.set_model_version_tag(settings.model_name, version.version, "promotion", reason)
    card = model_card(router, evaluation, router.info, settings.model_name, str(version.version))
    run.text(card, "model_card.md")
    description = _description(run, evaluation, router, prepared.how, reason)
    client.update_model_version(settings.model_name, version.version, description=description)
    alias = settings.model_alias if promoted else CHALLENGER
    client.set_registered_model_alias(settings.model_name, alias, version.version)
    return promoted, reason


def _champion_moved(champion: Champion, settings: Settings, client: MlflowClient) -> str | None:
    """Why the champion read before training is no longer the one serving (None: it still is)."""
    now = register.champion_version(client, settings)
    before = champion.version.version if champion.version else None
    after = now.version if now else None
    if str(before) == str(after):
        return None
    return f"{settings.model_alias} moved from v{before} to v{after} while this version trained"


def _comparison(new: dict[str, float], old: dict[str, float] | None) -> pd.DataFrame:
    """Both models' numbers side by side: the routing score (the default promotion metric) and the headline."""
    rows = []
    for key in ("routing_score", *(k for k, _ in HEADLINE)):
        if key in new:
            before = old.get(key) if old else None
            rows.append(
                {
                    "metric": key,
                    "champion": before,
                    "challenger": new[key],
                    "delta": None if before is None else new[key] - before,
                }
            )
    return pd.DataFrame(rows, columns=["metric", "champion", "challenger", "delta"])


def _log_comparison(run: Tracker, challenged: Challenge) -> None:
    """Champion and challenger side by side on the same tickets: a table, metrics, how many tickets and whether
    they were checked against the champion's training tickets (tag `comparison`), and a picture."""
    comparison = challenged.comparison
    champion_version = challenged.champion.version if challenged.champion else "?"
    run.table(comparison, "comparison/champion_vs_challenger.json")
    compared = [r for r in comparison.itertuples() if r.champion is not None and r.champion == r.champion]
    run.metrics({f"champion_{r.metric}": float(r.champion) for r in compared})
    run.metrics({f"challenger_{r.metric}": float(r.challenger) for r in compared})
    run.metrics({"comparison_tickets": challenged.tickets, "comparison_excluded": challenged.excluded})
    run.tag("comparison", "verified" if challenged.verified else "unverified")
    shown = comparison.dropna(subset=["champion"])
    fig = Figure(figsize=(8, 0.45 * len(shown) + 1.5))
    ax = fig.subplots()
    y = np.arange(len(shown))
    ax.barh(y - 0.2, shown["champion"], height=0.4, label=f"champion v{champion_version}", color="#999999")
    ax.barh(y + 0.2, shown["challenger"], height=0.4, label="challenger (this run)", color="#1f77b4")
    ax.set_yticks(y, shown["metric"])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_title(f"Champion vs challenger on the same {challenged.tickets} holdout tickets")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    run.figure(fig, "comparison/champion_vs_challenger.png")


def _log_evaluation(run: Tracker, evaluation: Evaluation, router: EscalationRouter) -> None:
    """The pictures and tables a lead reviews, under the run's `evaluation/` folder."""
    with tempfile.TemporaryDirectory() as tmp:
        for png in (
            confusion_png(evaluation, Path(tmp) / "confusion_matrix.png"),
            reliability_png(evaluation, Path(tmp) / "reliability.png"),
            coverage_precision_png(evaluation, router.thresholds, Path(tmp) / "coverage_precision.png"),
        ):
            run.files([png], "evaluation")
    run.table(evaluation.per_target, "evaluation/per_target.json")
    if router.tradeoff:  # per target, precision against coverage: out of fold and on the holdout
        run.table(tradeoff_table(router), "evaluation/tradeoff.json")
        run.json(router.tradeoff, "evaluation/tradeoff_curves.json")
        run.figure(tradeoff_figure(router), "evaluation/tradeoff.png")
    run.table(evaluation.slices, "evaluation/slices.json")
    run.table(coverage_precision_table(evaluation), "evaluation/coverage_precision.json")
    run.table(evaluation.mistakes, "evaluation/mistakes.json")
    run.json(evaluation.metrics, "evaluation/metrics.json")


def _log_themes(run: Tracker, themes: Insights) -> None:
    """Recurring escalations under `insights/`: the ranked table, the report and a figure, so leads compare runs."""
    frame = pd.DataFrame([t.as_dict() for t in themes.themes]).drop(columns=["per_week"], errors="ignore")
    if not frame.empty:
        frame["targets"] = frame["targets"].map(json.dumps)
        frame["words"] = frame["words"].map(", ".join)
        frame["examples"] = frame["examples"].map(", ".join)
    run.table(frame, "insights/themes.json")
    run.text(themes.report(), "insights/report.md")
    run.figure(themes_figure(themes), "insights/themes.png")
    if not themes.rates.empty:
        run.table(themes.rates, "insights/rates.json")
        run.figure(rates_figure(themes.rates), "insights/rates.png")
    run.metrics({"themes": len(themes.themes), "themes_tickets": themes.in_themes})


def _description(run: Tracker, evaluation: Evaluation, router: EscalationRouter, how: str, reason: str) -> str:
    """The registered version's description: headline numbers and links to the run's review material."""
    m = evaluation.metrics
    numbers = ", ".join(
        f"{k}={m[k]:.3f}"
        for k in (
            "escalation_average_precision",
            "target_top1_accuracy",
            "target_top3_accuracy",
            "target_macro_f1",
            "routing_coverage",
            "routing_precision",
        )
        if k in m
    )
    run_page = f"#/experiments/{run.experiment_id}/runs/{run.run_id}"
    return (
        f"Trained on {router.info['trained_rows']} tickets ({router.info['data_fingerprint'][:12]}), "
        f"run {run.run_id}. Holdout ({how}, {int(m['holdout_tickets'])} tickets): {numbers}.\n\n"
        f"Review: [run]({run_page}) · [model card]({run_page}/artifacts/model_card.md) · "
        f"[reliability]({run_page}/artifacts/evaluation/reliability.png) · "
        f"[coverage/precision]({run_page}/artifacts/evaluation/coverage_precision.png) · "
        f"[confusion]({run_page}/artifacts/evaluation/confusion_matrix.png) · "
        f"[slices]({run_page}/artifacts/evaluation/slices.json). "
        f"Artefacts: runs:/{run.run_id}/evaluation, runs:/{run.run_id}/model_card.md.\n\n{reason}"
    )


def _decide(
    new: dict[str, float],
    old: dict[str, float] | None,
    old_error: str | None,
    champion: ModelVersion | None,
    config: RouterConfig,
    settings: Settings,
    unverified: str | None = "no champion",
    tickets: int = 0,
) -> tuple[bool, str]:
    """Promote when there is no champion, it cannot score, or the challenger beats it by the margin on the same
    tickets; keep it when no holdout ticket is unseen by it (nothing fair to compare on)."""
    metric, margin = config.training.promotion_metric, config.training.promotion_margin
    alias = settings.model_alias
    if champion is None:
        return True, f"promoted: no {alias} existed"
    if old is None and old_error is not None:
        return True, f"promoted: {alias} v{champion.version} could not be evaluated ({old_error})"
    if old is None:
        return (
            False,
            f"kept {alias} v{champion.version}: it trained on every holdout ticket, so there is nothing to compare "
            "on; review the run and promote by hand (escalation promote)",
        )
    on = f"on {tickets} holdout tickets" + (
        " neither trained on" if unverified is None else f" (unverified: {unverified})"
    )
    value, before = new.get(metric, float("nan")), old.get(metric, float("nan"))
    if np.isnan(before) or value > before + margin:
        return (
            True,
            f"promoted: {metric} {value:.4f} > {alias} v{champion.version} {before:.4f} + margin {margin:g} {on}",
        )
    return False, f"kept {alias} v{champion.version}: {metric} {value:.4f} <= {before:.4f} + margin {margin:g} {on}"
