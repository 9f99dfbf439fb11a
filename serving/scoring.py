"""Scoring tickets, the service every caller shares (the suggestions route, the helpdesk worker): cut to the read
limit, scored in the batcher's shared calls, recorded, masked. It knows no HTTP: a busy batcher raises `Busy`, and
each caller says that in its own terms (the route answers 503, the worker retries)."""

from __future__ import annotations

import logging
import time

import pandas as pd

from features.model.present import present
from features.model.results import Suggestion
from features.model.timing import Stages
from features.settings import Settings
from features.text.clean import join_parts
from features.text.privacy import Masker
from serving.handoff import Message as HandoffMessage
from serving.handoff import build_handoff
from serving.model_store import LoadedModel
from serving.schemas import HandoffOut, ModelRef, SuggestionOut, TicketIn
from serving.state import AppState

log = logging.getLogger("serving.app")


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
    columns = {"id": [t.id for t in tickets], "text": [join_parts(t.parts()) for t in tickets]}
    for name in model.router.metadata:
        columns[name] = ["" if t.metadata.get(name) is None else str(t.metadata[name]) for t in tickets]
    return pd.DataFrame(columns)  # built whole: a column added at a time costs three times as much


def handoff_for(ticket: TicketIn, mask: Masker) -> HandoffOut:
    """The handoff note, with personal data masked: from the subject and body (what is asked, identifiers), and
    from the conversation when the request carries it (what was tried, how long the customer waits)."""
    # Masked before extraction too: identifiers are cut out of the text, and a cut e-mail no longer looks like one.
    messages = [HandoffMessage(m.author, mask(m.text), m.time) for m in ticket.messages]
    return HandoffOut(**mask.deep(build_handoff(mask(ticket.subject), mask(ticket.body), messages).__dict__))


def record(state: AppState, model: LoadedModel, results: list[Suggestion]) -> None:
    """Queue what was suggested for tickets with ids, so feedback can be joined to it (written off the hot path)."""
    rows = [
        {
            "ticket_id": r.id,
            "model_name": model.name,
            "model_version": model.version,
            "decision": r.escalation.decision,
            "escalation_probability": r.escalation.probability,
            "targets": [t.target for t in r.targets],
            "top_probability": r.routing.probability,
            "routing": r.routing.decision,
            "unfamiliar": r.familiarity.unfamiliar if r.familiarity is not None else None,
        }
        for r in results
        if r.id
    ]
    assert state.recorder is not None
    state.recorder.add(rows)


def suggest(
    tickets: list[TicketIn], model: LoadedModel, settings: Settings, state: AppState, stages: Stages | None = None
) -> list[SuggestionOut]:
    """The answers for `tickets`, in order; raises `serving.batcher.Busy` when no answer comes in time. `stages`
    gets the time of each stage (features/model/timing.py)."""
    stages = stages if stages is not None else Stages()
    tickets, notes = zip(*(cut(t, settings.max_text_chars) for t in tickets), strict=True)
    frame = to_frame(list(tickets), model)
    assert state.batcher is not None
    results = state.batcher.predict(model.router, frame, settings.top_k, settings.n_similar, stages)
    return _answers(list(tickets), list(notes), results, model, state, stages)


def suggest_each(
    tickets: list[TicketIn], model: LoadedModel, settings: Settings, state: AppState, deadline: float | None = None
) -> list[SuggestionOut | Exception]:
    """Each ticket's answer, or the error that ticket alone met: every ticket is a job of its own in the batcher,
    queued together so they share its calls (a call that fails is retried ticket by ticket, so one bad ticket fails
    alone). For callers that take a burst at once, like the helpdesk worker. `deadline` (time.monotonic): Busy for
    the tickets not answered by then, if sooner than the batcher's own timeout."""
    assert state.batcher is not None
    batcher = state.batcher
    cuts = [cut(t, settings.max_text_chars) for t in tickets]
    jobs = batcher.submit(model.router, [to_frame([t], model) for t, _ in cuts], settings.top_k, settings.n_similar)
    deadline = min(time.monotonic() + batcher.timeout, deadline if deadline is not None else float("inf"))
    found: list[SuggestionOut | Exception] = []
    for (ticket, note), job in zip(cuts, jobs, strict=True):
        try:
            results = batcher.wait(job, deadline)
            found += _answers([ticket], [note], results, model, state, Stages())
        except Exception as err:  # this ticket's own: the others are answered
            found.append(err)
    return found


def _answers(
    tickets: list[TicketIn],
    notes: list[str | None],
    results: list[Suggestion],
    model: LoadedModel,
    state: AppState,
    stages: Stages,
) -> list[SuggestionOut]:
    """The scored tickets recorded, counted, logged and presented (masked), with their handoff notes."""
    record(state, model, results)
    state.metrics.answered(results)
    log.info(
        "suggestions for %d ticket(s)",
        len(results),
        extra={"ticket_ids": [r.id for r in results], "model_version": model.version},
    )
    if log.isEnabledFor(logging.DEBUG):  # ticket text only where debug logging was switched on on purpose
        for t in tickets:
            log.debug("ticket %s text: %s", t.id, join_parts(t.parts()))
    ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
    mask, answers = state.masker, []
    for t, r, n in zip(tickets, results, notes, strict=True):
        with stages("handoff"):
            handoff = handoff_for(t, mask)
        with stages("present"):
            answers.append(
                SuggestionOut(**present(r, mask), handoff=handoff, model=ref, notes=[*([n] if n else []), *unlike(r)])
            )
    return answers


def unlike(answer: Suggestion) -> list[str]:
    """The note an unfamiliar ticket's answer carries, in words."""
    known = answer.familiarity
    if known is None or not known.unfamiliar:
        return []
    return [
        f"This ticket is unlike the tickets the model learned from (nearest {known.nearest_similarity:.2f} similar; "
        f"usually at least {known.usual:.2f}): the suggestion may be a guess, check it yourself."
    ]
