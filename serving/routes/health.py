"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from serving.deps import ANALYST, ERRORS, NO_MODEL, State
from serving.model_store import CACHED
from serving.schemas import Health, ModelRef, Readiness, RegistryStatus

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **ERRORS},
    dependencies=[ANALYST],
)
def metrics_text(state: State) -> Response:
    """Prometheus metrics: requests and latency per route and status, model served, decision mix, failures."""
    state.mark_served()
    body, media_type = state.metrics.exposition()
    return Response(body, media_type=media_type)


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(state: State) -> Any:
    """Ready once a model is loaded; 503 with the reason before."""
    model, watcher = state.model, state.watcher
    assert watcher is not None
    registry = RegistryStatus(
        last_check=watcher.last_check, last_error=watcher.last_error, poll_seconds=watcher.settings.poll_seconds
    )
    if model is None:
        body = Readiness(status="not_ready", detail=state.load_error or NO_MODEL, registry=registry)
        return JSONResponse(status_code=503, content=jsonable_encoder(body))
    ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
    detail = watcher.last_error or (state.load_error if model.source == CACHED else None)
    return Readiness(status="ready", model=ref, model_source=model.source, detail=detail, registry=registry)
