"""What agents finally did, and the acceptance summary leads read."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from serving.deps import AGENT, ANALYST, ERRORS, State, Store, store_down
from serving.feedback_store import Feedback, StoreUnavailable
from serving.schemas import FeedbackIn, FeedbackOut, IsoDateTime, MetricsSummary

log = logging.getLogger("serving.app")
router = APIRouter(tags=["feedback"], responses=ERRORS)


@router.post("/v1/feedback", response_model=FeedbackOut, dependencies=[AGENT])
def feedback(body: FeedbackIn, store: Store, state: State) -> FeedbackOut:
    """Record what the agent finally did; a repeat for the same ticket updates it. Unknown targets are flagged."""
    assert state.recorder is not None
    state.recorder.flush()  # the suggestion it answers is joined, even one answered just now
    known = state.known_targets()
    try:
        stored = store.record_feedback(
            Feedback(body.ticket_id, body.escalated, body.target, body.accepted_suggestion, body.note), known
        )
    except StoreUnavailable as err:
        state.metrics.feedback_failures.inc()
        log.error("feedback for %s not stored: %s", body.ticket_id, err)
        raise store_down(state.store.retry_after) from None
    if stored.status == "created":  # one per ticket, as the store keeps it (a repeat updates the row)
        state.metrics.outcome(body.escalated, body.target, body.accepted_suggestion, known)
    return FeedbackOut(**stored.__dict__)


@router.get("/v1/metrics/summary", response_model=MetricsSummary, dependencies=[ANALYST])
def metrics_summary(
    store: Store, state: State, since: IsoDateTime | None = None, until: IsoDateTime | None = None
) -> MetricsSummary:
    """Acceptance rates per model version and escalations per target over a window (default: 30 days)."""
    assert state.recorder is not None
    state.recorder.flush()
    try:
        return MetricsSummary(**store.summary(since, until))
    except StoreUnavailable as err:
        log.error("%s", err)
        raise store_down(state.store.retry_after) from None
