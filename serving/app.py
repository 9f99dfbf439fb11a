"""The FastAPI app: loads the champion once at start-up and serves explained escalation suggestions.

Routes live in `serving.routes` (one module per resource), their dependencies in `serving.deps` and the app's
typed state in `serving.state`; this module wires them together. Building an app changes nothing process-wide.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import ThreadpoolController

from features.settings import Settings, get_settings
from features.text.privacy import masker_for
from serving.auth import KeyRing
from serving.batcher import MicroBatcher
from serving.docs import serve_docs
from serving.hooks.connectors import configured
from serving.hooks.worker import HookWorker
from serving.limits import BodyGuard
from serving.model_store import (
    LoadedModel,
    ModelUnavailable,
    RegistryUnreachable,
    load_cached,
    load_champion,
    remember_later,
)
from serving.observe import Metrics, RequestContext, configure_logging
from serving.recorder import SuggestionRecorder
from serving.routes import feedback, health, hooks, model, suggestions
from serving.routes.console import serve_console
from serving.state import AppState, StoreHandle
from serving.watcher import ModelWatcher

log = logging.getLogger(__name__)


def keyring(settings: Settings) -> KeyRing | None:
    """The API keys the server checks, or None when auth is switched off for development (said loudly)."""
    if settings.auth_disabled:
        log.warning("AUTHENTICATION IS DISABLED (ESCALATION_AUTH_DISABLED=1): anyone who reaches this port is admin")
        return None
    ring = KeyRing(settings.keys_file)
    if not ring.keys():
        log.error(
            "no API keys in %s: every request will get 401; add one with `escalation keys add --role agent`",
            settings.keys_file,
        )
    return ring


def load_first(state: AppState, loader: Callable[[Settings], LoadedModel]) -> None:
    """The champion from the registry; else the last version served, kept locally; else no model, said why."""
    settings = state.settings
    try:
        state.model = loader(settings)
        remember_later(settings, state.model, lambda: state.model)
    except RegistryUnreachable as err:
        try:  # the last version served, kept locally, until the registry answers again
            state.model = load_cached(settings)
            version = state.model.version
            state.load_error = f"{err}; serving version {version} from the local cache, retrying the registry"
        except ModelUnavailable as cached:
            state.load_error = f"{err}; {cached}"
            log.error("starting without a model: %s", state.load_error)
    except ModelUnavailable as err:
        state.load_error = str(err)
        log.error("starting without a model: %s", err)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Keep the field and the reason; drop echoed input so huge or private texts are not sent back.
    detail = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    for d in detail:
        if d["type"] == "json_invalid" and len(d["loc"]) == 2:  # FastAPI gives ["body", position]
            d["msg"] = f"the body is not valid JSON (first error at character {d['loc'][1]})"
            d["loc"] = ["body"]
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": detail}))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail: Any = exc.detail
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        # FastAPI's words for JSON it cannot read; the body was already made valid UTF-8 (serving.limits)
        msg = "the body is not valid JSON, or nests too deeply"
        body = {"detail": [{"loc": ["body"], "msg": msg, "type": "json_invalid"}]}
        return JSONResponse(status_code=422, content=body)
    return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=exc.headers)


def create_app(settings: Settings | None = None, loader: Callable[[Settings], LoadedModel] = load_champion) -> FastAPI:
    """Build the app; the model is loaded in the lifespan so importing this module costs nothing."""
    settings = settings or get_settings()
    metrics = Metrics()
    state = AppState(
        settings=settings,
        masker=masker_for(settings),  # a bad names file stops start-up
        metrics=metrics,
        keyring=None,
        store=StoreHandle(settings.feedback_url, settings.retry_after_seconds),
        hooks=configured(settings),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One suggestion's matrix products are tiny: BLAS threads would only fight the encoder's threads for the cores.
        state.blas_limit = ThreadpoolController().limit(limits=settings.blas_threads, user_api="blas")
        state.keyring = keyring(settings)
        load_first(state, loader)
        state.mark_served()
        state.watcher = ModelWatcher(state, settings)
        state.watcher.start()
        state.batcher = MicroBatcher(settings.batch_max_tickets, settings.batch_wait_ms, settings.batch_timeout_seconds)
        state.recorder = SuggestionRecorder(state.store.get, metrics.record_failures.inc)
        if state.hooks:
            state.hook_worker = HookWorker(state, state.hooks)
            state.hook_worker.start()  # resumes whatever an earlier run left pending
        yield
        if state.hook_worker is not None:
            state.hook_worker.stop()
        state.watcher.stop()
        state.batcher.close()
        state.recorder.close()
        state.blas_limit.restore_original_limits()
        state.model = None  # served no more: its files go with it, even while something still holds this app

    app = FastAPI(
        title="Escalation router",
        version="0.1.0",
        summary="Whether and where to escalate a support ticket, with similar past tickets and key terms.",
        lifespan=lifespan,
        docs_url=None,  # served by serving.docs with local assets
        redoc_url=None,
    )
    serve_docs(app)
    serve_console(app)
    app.state.runtime = state
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # closed unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: every answer has a request id and is counted
    for routes in (suggestions, feedback, model, hooks, health):
        app.include_router(routes.router)
    return app


def worker_app() -> FastAPI:
    """The app of one `escalation serve --workers N` process: settings from the environment, its own logging."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
