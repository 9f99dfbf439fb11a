"""The model served: what it is and knows, and the admin's reload."""

from __future__ import annotations

import math

from fastapi import APIRouter

from features.encoders import precision
from serving.deps import ADMIN, ANALYST, ERRORS, AppSettings, Model, State
from serving.schemas import ModelInfo, ReloadOut

router = APIRouter(responses=ERRORS)


def finite(numbers: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in numbers.items() if math.isfinite(v)}


def run_url(tracking_uri: str, info: dict[str, object]) -> str | None:
    """The training run's page in the MLflow UI, when the store is a tracking server (a file store has no UI)."""
    if not tracking_uri.startswith(("http://", "https://")) or not info.get("run_id") or not info.get("experiment_id"):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}"


@router.get("/v1/model", response_model=ModelInfo, tags=["model"], dependencies=[ANALYST])
def model_info(model: Model, settings: AppSettings) -> ModelInfo:
    """The served version, its holdout metrics and the targets it can suggest."""
    served = model.router
    thresholds, static = served.target_thresholds, served.encoder.runtime == "static"
    return ModelInfo(
        name=model.name,
        version=model.version,
        alias=model.alias,
        embedding_model=served.embedding_model,
        encoder="static" if static else "transformer",
        max_seq_length=served.max_seq_length,
        runtime=None if static else served.encoder.runtime,
        encoder_precision=precision(served.encoder),
        targets=[{"target": t, "kind": served.kinds[t]} for t in served.targets],
        first_line=served.first_line,
        pooled_as_other=served.pooled,
        thresholds={"escalate": served.thresholds.escalate, "resolve_first": served.thresholds.resolve_first},
        target_thresholds=thresholds.per_target if thresholds else {},
        target_threshold_fallback=thresholds.fallback if thresholds else None,
        target_precision=served.thresholds.target_precision,
        metrics=finite(served.metrics),  # NaN (no such answer on the holdout) is no JSON number
        per_target={t: finite(numbers) for t, numbers in served.per_target.items()},
        mlflow_run_url=run_url(settings.tracking_uri, served.info),
        training={k: v for k, v in served.info.items() if isinstance(v, str | int | float)},
        themes=served.themes,
        rates=served.rates,
        tradeoff=served.tradeoff,
    )


@router.post("/v1/admin/reload", response_model=ReloadOut, tags=["admin"], dependencies=[ADMIN])
def reload(state: State) -> ReloadOut:
    """Check the registry alias now; swap to its version if it moved and the version loads and scores."""
    assert state.watcher is not None
    return ReloadOut(**state.watcher.check().__dict__)
