"""Suggestions for one ticket or a batch: the HTTP edge of `serving.scoring`."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from features.model.timing import Stages
from features.settings import Settings
from serving.batcher import Busy
from serving.deps import AGENT, ERRORS, AppSettings, Model, State
from serving.model_store import LoadedModel
from serving.schemas import BatchIn, BatchOut, SuggestionOut, TicketIn
from serving.scoring import suggest
from serving.state import AppState

router = APIRouter(tags=["suggestions"], dependencies=[AGENT], responses=ERRORS)


def invalid(loc: list[str | int], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


def answered(
    tickets: list[TicketIn], model: LoadedModel, settings: Settings, state: AppState, stages: Stages
) -> list[SuggestionOut]:
    """The scoring service's answers; a busy batcher is 503 with Retry-After, so the client retries shortly."""
    try:
        return suggest(tickets, model, settings, state, stages)
    except Busy as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from None


def timed_json(body: BaseModel, stages: Stages, route: str, settings: Settings, state: AppState) -> Response:
    """The answer's JSON (its serialisation timed too), each stage in /metrics and, unless switched off, in the
    Server-Timing header a browser's developer tools show."""
    with stages("serialise"):
        content = body.model_dump_json().encode()
    state.metrics.timed(stages, route)
    headers = {"Server-Timing": stages.header()} if settings.server_timing else None
    return Response(content, media_type="application/json", headers=headers)


@router.post("/v1/suggestions", response_model=SuggestionOut)
def suggestions(ticket: TicketIn, model: Model, settings: AppSettings, state: State) -> Response:
    """Suggest whether and where to escalate one ticket, with explanations."""
    stages = Stages()
    answer = answered([ticket], model, settings, state, stages)[0]
    return timed_json(answer, stages, "/v1/suggestions", settings, state)


@router.post("/v1/suggestions/batch", response_model=BatchOut)
def suggestions_batch(batch: BatchIn, model: Model, settings: AppSettings, state: State) -> Response:
    """Suggestions for several tickets, answered in the same order."""
    if len(batch.tickets) > settings.max_batch_size:
        raise invalid(["tickets"], f"{len(batch.tickets)} tickets; at most {settings.max_batch_size} per batch")
    stages = Stages()
    answers = BatchOut(results=answered(batch.tickets, model, settings, state, stages))
    return timed_json(answers, stages, "/v1/suggestions/batch", settings, state)
