"""`escalation train`: validate, embed, fit, evaluate, log to MLflow, register and decide on `champion`."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np

from features.config import load_config
from features.data import DataError, fingerprint, read_export, to_tickets
from features.embed import embed_texts
from features.labels import derive_labels
from features.router import EscalationRouter
from features.settings import Settings
from training import register
from training.evaluate import (
    Evaluation,
    confusion_png,
    coverage_precision_png,
    coverage_precision_table,
    evaluate,
    reliability_png,
)
from training.fit import fit_router, split_holdout
from training.model_card import model_card
from training.validate import check_columns, validate_export

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced and whether it became the champion."""

    run_id: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    pooled: dict[str, int] = field(default_factory=dict)


def _code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def train(data: str | Path, config_path: str | Path, settings: Settings, progress: bool = True) -> TrainResult:
    """Run the whole training job; raises ConfigError/DataError before anything touches MLflow."""
    config = load_config(config_path)
    raw = read_export(data)
    check_columns(raw, config, data)
    tickets = to_tickets(raw, config)
    validate_export(raw, tickets, config, data)
    labels = derive_labels(tickets["target"].to_numpy(dtype=str), config.teams, config.min_examples)
    if len(labels.targets) < 2:
        raise DataError(
            f"{data}: after pooling targets with fewer than {config.min_examples} tickets "
            f"(min_examples) only {labels.targets} remain; lower min_examples or add data"
        )
    train_idx, hold_idx, how = split_holdout(tickets, labels, config)
    started = time.perf_counter()
    opts = config.model
    embeddings = embed_texts(
        tickets["text"].tolist(), opts.embedding_model, opts.max_seq_length, opts.embed_batch_size, progress
    )
    embed_seconds = time.perf_counter() - started

    train_t, hold_t = tickets.iloc[train_idx].reset_index(drop=True), tickets.iloc[hold_idx].reset_index(drop=True)
    train_labels = derive_labels(train_t["target"].to_numpy(dtype=str), config.teams, config.min_examples)
    if len(train_labels.targets) < 2:
        raise DataError(
            f"{data}: the training split ({len(train_t)} tickets, holdout {how}) has only {train_labels.targets} "
            f"after pooling targets with fewer than {config.min_examples} tickets; lower min_examples or add data"
        )
    # The holdout is labelled with the training split's targets, so pooled names agree.
    hold_labels = derive_labels(hold_t["target"].to_numpy(dtype=str), config.teams, 1)
    started = time.perf_counter()
    router = fit_router(train_t, embeddings[train_idx], train_labels, config, progress)
    fit_seconds = time.perf_counter() - started
    evaluation = evaluate(router, hold_t, embeddings[hold_idx], hold_labels)
    router.metrics = dict(evaluation.metrics)

    client = register.connect(settings)
    champion = register.champion_version(client, settings)
    with mlflow.start_run() as run:
        data_window = {}
        if "created_at" in tickets.columns and tickets["created_at"].notna().any():
            data_window = {"data_from": str(tickets["created_at"].min()), "data_to": str(tickets["created_at"].max())}
        router.info = {
            "run_id": run.info.run_id,
            "data_fingerprint": fingerprint(data),
            "holdout": how,
            "trained_rows": len(train_t),
            **data_window,
        }
        mlflow.log_params(config.flat_params())
        mlflow.log_params(
            {
                "data_path": str(data),
                "data_fingerprint": router.info["data_fingerprint"],
                "rows": len(tickets),
                "train_rows": len(train_t),
                "holdout_rows": len(hold_t),
                "holdout": how,
                "targets": len(router.targets),
                "pooled_targets": ",".join(sorted(train_labels.pooled)) or "none",
                "code_version": _code_version(),
                **data_window,
            }
        )
        mlflow.log_metrics(evaluation.metrics)
        mlflow.log_metrics(
            {
                "embed_seconds": embed_seconds,
                "fit_seconds": fit_seconds,
                "threshold_escalate": router.thresholds.escalate,
                "threshold_resolve_first": router.thresholds.resolve_first,
            }
        )
        if router.target_thresholds:
            mlflow.log_metric("target_threshold_fallback", router.target_thresholds.fallback)
        _log_evaluation(evaluation, router)
        register.log_json({"pooled_as_other": train_labels.pooled, "kinds": router.kinds}, "evaluation/labels.json")

        example = hold_t[["id", "text", *config.columns.metadata]].head(3).reset_index(drop=True)
        version = register.log_model(router, example, settings)
        promoted, reason = _decide(router, champion, hold_t, embeddings[hold_idx], hold_labels, config, settings)
        mlflow.set_tag("promotion", reason)
        client.set_model_version_tag(settings.model_name, version.version, "promotion", reason)
        card = model_card(router, evaluation, router.info, settings.model_name, str(version.version))
        mlflow.log_text(card, "model_card.md")
        client.update_model_version(
            settings.model_name, version.version, description=_description(run, evaluation, router, how, reason)
        )
        if promoted:
            client.set_registered_model_alias(settings.model_name, settings.model_alias, version.version)
    return TrainResult(run.info.run_id, str(version.version), promoted, reason, evaluation.metrics, train_labels.pooled)


def _log_evaluation(evaluation: Evaluation, router: EscalationRouter) -> None:
    """The pictures and tables a lead reviews, under the run's `evaluation/` folder."""
    with tempfile.TemporaryDirectory() as tmp:
        for png in (
            confusion_png(evaluation, Path(tmp) / "confusion_matrix.png"),
            reliability_png(evaluation, Path(tmp) / "reliability.png"),
            coverage_precision_png(evaluation, router.thresholds, Path(tmp) / "coverage_precision.png"),
        ):
            mlflow.log_artifact(str(png), "evaluation")
    mlflow.log_table(evaluation.per_target, "evaluation/per_target.json")
    mlflow.log_table(evaluation.slices, "evaluation/slices.json")
    mlflow.log_table(coverage_precision_table(evaluation), "evaluation/coverage_precision.json")
    mlflow.log_table(evaluation.mistakes, "evaluation/mistakes.json")
    register.log_json(evaluation.metrics, "evaluation/metrics.json")


def _description(run, evaluation: Evaluation, router: EscalationRouter, how: str, reason: str) -> str:  # type: ignore[no-untyped-def]
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
    run_page = f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    return (
        f"Trained on {router.info['trained_rows']} tickets ({router.info['data_fingerprint'][:12]}), "
        f"run {run.info.run_id}. Holdout ({how}, {int(m['holdout_tickets'])} tickets): {numbers}.\n\n"
        f"Review: [run]({run_page}) · [model card]({run_page}/artifacts/model_card.md) · "
        f"[reliability]({run_page}/artifacts/evaluation/reliability.png) · "
        f"[coverage/precision]({run_page}/artifacts/evaluation/coverage_precision.png) · "
        f"[confusion]({run_page}/artifacts/evaluation/confusion_matrix.png) · "
        f"[slices]({run_page}/artifacts/evaluation/slices.json). "
        f"Artefacts: runs:/{run.info.run_id}/evaluation, runs:/{run.info.run_id}/model_card.md.\n\n{reason}"
    )


def _decide(router, champion, hold_t, hold_emb, hold_labels, config, settings) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    """Promote when there is no champion or the new version beats it on the same holdout."""
    metric = config.training.promotion_metric
    new = router.metrics.get(metric, float("nan"))
    if champion is None:
        return True, f"promoted: no {settings.model_alias} existed"
    try:
        old_router = register.load_router(settings, champion.version)
        same_encoder = (old_router.embedding_model, old_router.max_seq_length) == (
            router.embedding_model,
            router.max_seq_length,
        )
        old = evaluate(old_router, hold_t, hold_emb if same_encoder else None, hold_labels).metrics.get(metric)
    except Exception as err:  # a champion that cannot score is no reason to keep it
        log.warning("champion version %s could not be evaluated: %s", champion.version, err)
        return True, f"promoted: {settings.model_alias} v{champion.version} could not be evaluated ({err})"
    mlflow.log_metric(f"champion_{metric}", float(old) if old is not None else float("nan"))
    if old is None or np.isnan(old) or new > old:
        return True, f"promoted: {metric} {new:.4f} > {settings.model_alias} v{champion.version} {old:.4f}"
    return (
        False,
        f"kept {settings.model_alias} v{champion.version}: {metric} {new:.4f} <= {old:.4f} on the same holdout",
    )
