"""The model served: what it is and knows, and the admin's reload."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import ADMIN, ANALYST, ERRORS, Model, State
from serving.schemas import ModelInfo, ReloadOut

router = APIRouter(responses=ERRORS)


@router.get("/v1/model", response_model=ModelInfo, tags=["model"], dependencies=[ANALYST])
def model_info(model: Model) -> ModelInfo:
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
        targets=[{"target": t, "kind": served.kinds[t]} for t in served.targets],
        first_line=served.first_line,
        pooled_as_other=served.pooled,
        thresholds={"escalate": served.thresholds.escalate, "resolve_first": served.thresholds.resolve_first},
        target_thresholds=thresholds.per_target if thresholds else {},
        target_threshold_fallback=thresholds.fallback if thresholds else None,
        target_precision=served.thresholds.target_precision,
        metrics=served.metrics,
        training={k: v for k, v in served.info.items() if isinstance(v, str | int | float)},
    )


@router.post("/v1/admin/reload", response_model=ReloadOut, tags=["admin"], dependencies=[ADMIN])
def reload(state: State) -> ReloadOut:
    """Check the registry alias now; swap to its version if it moved and the version loads and scores."""
    assert state.watcher is not None
    return ReloadOut(**state.watcher.check().__dict__)
