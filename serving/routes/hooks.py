"""Helpdesk webhooks in (`POST /v1/hooks/NAME`: signature checked, stored in the outbox, answered 202 at once) and
the outbox's state for admins (`GET /v1/hooks/status`)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from serving.deps import ADMIN, ERRORS, State, store_down
from serving.feedback_store import StoreUnavailable
from serving.hooks.outbox import Outbox
from serving.schemas import HookAccepted, HooksStatus
from serving.state import StoreDown

log = logging.getLogger("serving.hooks")
router = APIRouter(tags=["helpdesks"], responses=ERRORS)


@router.post(
    "/v1/hooks/{name}",
    status_code=202,
    response_model=HookAccepted,
    responses={401: {"description": "Signature missing or wrong"}, 404: {"description": "No such connector"}},
)
async def hook(name: str, request: Request, state: State) -> Any:
    """A helpdesk's webhook: checked against its signing secret, kept in the outbox, handled in the background."""
    connector = (state.hooks or {}).get(name)
    if connector is None:
        raise HTTPException(404, f"no {name!r} connector is configured (set ESCALATION_{name.upper()}_URL)")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not connector.verify(headers, body):
        log.warning("%s webhook refused: signature missing or wrong", name)
        raise HTTPException(401, "webhook signature missing or wrong")
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
        event = connector.parse(payload)
    except (ValueError, TypeError, AttributeError) as err:
        raise HTTPException(422, f"body: not a {name} webhook payload ({err})") from None
    delivery = connector.delivery(headers, payload)
    if event.kind == "ignored":
        return HookAccepted(status="ignored", ticket_id=event.ticket_id or None, detail=event.why)
    if not delivery or not event.ticket_id:
        raise HTTPException(422, f"body: a {name} event needs a delivery id and a ticket id")
    try:
        added = Outbox(state.store.get()).add(name, delivery, event)
    except (StoreDown, StoreUnavailable):
        raise store_down(state.store.retry_after) from None  # the helpdesk retries: nothing is lost
    if state.hook_worker is not None:
        state.hook_worker.wake()
    return HookAccepted(status="queued" if added else "duplicate", ticket_id=event.ticket_id, detail=event.kind)


@router.get("/v1/hooks/status", response_model=HooksStatus, dependencies=[ADMIN])
def hooks_status(state: State) -> Any:
    """Events per helpdesk: pending, done, failed and ignored; the oldest pending one and the latest error."""
    try:
        found = Outbox(state.store.get()).status()
    except (StoreDown, StoreUnavailable):
        raise store_down(state.store.retry_after) from None
    return HooksStatus(configured=sorted(state.hooks or {}), **found)
