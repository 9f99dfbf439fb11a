"""The routes' dependencies: the app's state, the model served, the feedback store, settings and roles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from features.settings import Settings
from serving.auth import require
from serving.feedback_store import FeedbackStore
from serving.model_store import LoadedModel
from serving.schemas import ErrorOut
from serving.state import NO_STORE, AppState, StoreDown

NO_MODEL = "no model loaded"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No valid API key"},
    403: {"model": ErrorOut, "description": "The key's role may not use this route"},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}
AGENT, ANALYST, ADMIN = (Depends(require(role)) for role in ("agent", "analyst", "admin"))


def state_of(request: Request) -> AppState:
    """The running app's typed state (set in its lifespan)."""
    return request.app.state.runtime


async def get_state(request: Request) -> AppState:
    return state_of(request)


async def get_model(request: Request) -> LoadedModel:
    """The loaded champion, or 503 while there is none (async: no thread hop for a lookup)."""
    model = state_of(request).model
    if model is None:
        raise HTTPException(503, NO_MODEL)
    return model


async def get_app_settings(request: Request) -> Settings:
    return state_of(request).settings


def store_down(retry_after: int) -> HTTPException:
    """503 with Retry-After: the feedback store cannot take or give data now."""
    return HTTPException(503, NO_STORE, headers={"Retry-After": str(retry_after)})


def get_store(request: Request) -> FeedbackStore:
    """The suggestions and feedback store, or 503 with Retry-After while it is down."""
    try:
        return state_of(request).store.get()
    except StoreDown as err:
        raise store_down(err.retry_after) from None


State = Annotated[AppState, Depends(get_state)]
Model = Annotated[LoadedModel, Depends(get_model)]
Store = Annotated[FeedbackStore, Depends(get_store)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
