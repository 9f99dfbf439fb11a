"""The outbox's worker: one background thread that writes notes for new tickets and records outcomes as feedback,
and resumes whatever a restart left pending. Every attempt at an event ends: done, retried with backoff while it may
pass (the helpdesk down or rate-limiting, the scorer busy, no model yet, the store down), or failed with the reason
(the helpdesk refused, nothing to score). The due events are claimed together (up to `hook_batch`) and the new
tickets among them scored in one shared call of the micro-batcher, each as a job of its own, so one bad ticket fails
alone; then each event's attempt is taken to its end in turn, so one whose end cannot be recorded holds up no other,
and whatever is not attempted in time (a stop, half the lease gone) is handed back at once. A condition of this
service (no model yet, the scorer busy, the store down) is waited out however long it lasts; only the helpdesk's own
failures use up `hook_max_attempts`."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from pydantic import ValidationError

from features.helpdesk.client import HelpdeskUnavailable
from features.helpdesk.errors import HelpdeskBusy, HelpdeskNotFound, HelpdeskRefused
from features.helpdesk.paths import FINAL, Directory, History, label
from features.helpdesk.source import helpdesks, history_source
from features.model.router import EscalationRouter
from serving.batcher import Busy
from serving.feedback_store import Feedback, HookEventRecord, StoreUnavailable
from serving.hooks.connectors import Connector
from serving.hooks.note import note_for, tags_for
from serving.hooks.outbox import LEASE_SECONDS, Outbox
from serving.schemas import Message, SuggestionOut, TicketIn
from serving.scoring import suggest_each  # the API's own path: same scoring, recording, masking
from serving.state import StoreDown

if TYPE_CHECKING:
    from serving.model_store import LoadedModel
    from serving.state import AppState

log = logging.getLogger("serving.hooks")
IDLE_SECONDS = 2.0  # the longest the worker sleeps when nothing is due and nobody woke it


class HookWorker:
    """Works through due outbox events; `wake` after adding one so it is handled at once."""

    def __init__(self, state: AppState, connectors: dict[str, Connector], http: httpx.Client | None = None):
        self.state, self.connectors = state, connectors
        self.settings = state.settings
        self.http = http or httpx.Client(timeout=10.0)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hook-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.http.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            pause = IDLE_SECONDS
            try:
                outbox = Outbox(self.state.store.get())
                self.work(outbox)
                upcoming = outbox.next_due()
                if upcoming is not None:
                    pause = min(pause, max(0.05, (upcoming - datetime.now(UTC)).total_seconds()))
            except StoreDown as err:
                pause = float(err.retry_after)
            except Exception:  # the worker must outlive anything one event does
                log.exception("helpdesk worker")
            self._wake.wait(pause)
            self._wake.clear()

    def work(self, outbox: Outbox) -> int:
        """Handle the events due now, claimed up to `hook_batch` at a time, the new tickets among them scored
        together; how many were handled. Each attempt is taken to its end alone: one whose end cannot be recorded (a
        database error on that row) is logged and taken again when its lease ends, and the others go on at once;
        when the store itself no longer answers, the rest wait for their lease (no note is written that could not be
        recorded). Events not attempted before the worker stops or half their lease is gone are handed back."""
        handled = 0
        while not self._stop.is_set() and (rows := outbox.due(limit=self.settings.hook_batch)):
            claimed = time.monotonic()
            try:
                scored = self._score(rows)
            except BaseException:  # nothing attempted: every claimed event handed back
                self._release(outbox, rows)
                raise
            for n, row in enumerate(rows):
                if self._stop.is_set() or time.monotonic() - claimed > LEASE_SECONDS / 2:
                    self._release(outbox, rows[n:])
                    return handled
                try:
                    self.attempt(outbox, row, scored.get(row.id))
                except StoreDown:
                    self._release(outbox, rows[n + 1 :])
                    raise
                except Exception:
                    log.exception("%s ticket %s: could not record how the attempt ended", row.helpdesk, row.ticket_id)
                    if not outbox.reachable():  # the store is down, not this row: no more notes it cannot record
                        left = len(rows) - n - 1
                        log.warning("the outbox store is down: %d claimed events wait for their lease", left)
                        return handled + 1
                handled += 1
        return handled

    @staticmethod
    def _release(outbox: Outbox, rows: list[HookEventRecord]) -> None:
        """Hand back claimed events not attempted; when even that fails, their lease ends them instead."""
        if not rows:
            return
        try:
            outbox.release(rows)
        except Exception as err:
            log.warning("%d claimed events not handed back (%s): taken again when their lease ends", len(rows), err)

    def _score(self, rows: list[HookEventRecord]) -> dict[int, SuggestionOut | Exception]:
        """The new tickets among `rows` scored together: each event's answer, or the error it alone met (Busy for
        those not answered within a quarter of the lease, so the attempts have the rest of its first half)."""
        deadline = time.monotonic() + LEASE_SECONDS / 4
        notes = [row for row in rows if row.kind == "created" and row.helpdesk in self.connectors]
        found: dict[int, SuggestionOut | Exception] = {}
        tickets: dict[int, TicketIn] = {}
        model = self.state.model
        for row in notes:
            try:
                tickets[row.id] = self._ticket(row, model)
            except Exception as err:  # nothing to score, no model yet, not a ticket: that event's own end
                found[row.id] = err
        if tickets and model is not None:
            try:
                answers = suggest_each(list(tickets.values()), model, self.settings, self.state, deadline)
            except Exception as err:  # the batcher refused them all (shutting down)
                answers = [err] * len(tickets)
            found.update(zip(tickets, answers, strict=True))
        return found

    def attempt(self, outbox: Outbox, row: HookEventRecord, scored: SuggestionOut | Exception | None = None) -> None:
        """One attempt at one event, ended whatever it raises: done, retried later when it may pass, or failed with
        the reason when it cannot; never left claimed, so the events claimed with it go on at once. `scored`: a new
        ticket's answer (or the error scoring it met) when it was scored with others; else it is scored here."""
        connector = self.connectors.get(row.helpdesk)
        if connector is None:
            outbox.fail(row, f"no {row.helpdesk} connector is configured now")
            return
        try:
            if row.kind == "created":
                self._note(outbox, row, connector, scored)
            else:
                self._outcome(outbox, row)
        except (HelpdeskRefused, Unscorable) as err:
            log.error("%s ticket %s: %s", row.helpdesk, row.ticket_id, err)
            outbox.fail(row, str(err))
        except ValidationError as err:
            why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'ticket'}: {e['msg']}" for e in err.errors())
            log.error("%s ticket %s: not a ticket: %s", row.helpdesk, row.ticket_id, why)
            outbox.fail(row, f"not a ticket the model can score: {why}")
        except (NoModel, StoreUnavailable, StoreDown, Busy) as err:  # this service's own state: never fails the event
            self._retry(outbox, row, err, may_fail=False)
        except (HelpdeskBusy, httpx.TransportError) as err:
            self._retry(outbox, row, err)
        except Exception as err:  # unforeseen: retried like a passing failure, so it fails after hook_max_attempts
            log.exception("%s ticket %s", row.helpdesk, row.ticket_id)
            self._retry(outbox, row, err)

    def _retry(self, outbox: Outbox, row: HookEventRecord, err: Exception, *, may_fail: bool = True) -> None:
        wait = getattr(err, "retry_after", None) or self.backoff(row.attempts)
        log.warning("%s ticket %s: %s; retry in %.0f s", row.helpdesk, row.ticket_id, err, wait)
        limit = self.settings.hook_max_attempts if may_fail else None
        outbox.retry(row, f"{err.__class__.__name__}: {err}", wait, limit)

    def backoff(self, attempts: int) -> float:
        return min(self.settings.hook_retry_seconds * 2**attempts, 3600.0)

    @staticmethod
    def _ticket(row: HookEventRecord, model: LoadedModel | None) -> TicketIn:
        """The event's ticket as the API takes it, with the metadata `model` reads."""
        event = row.event
        if not (event["subject"].strip() or event["description"].strip()):
            raise Unscorable("nothing to score: the ticket has no subject and no description")
        if model is None:
            raise NoModel("no model loaded yet")
        return TicketIn(
            id=row.ticket_id,
            subject=event["subject"],
            messages=[Message(author="customer", text=event["description"])] if event["description"].strip() else [],
            metadata={k: v for k, v in event["metadata"].items() if k in model.router.metadata},
        )

    def _note(
        self, outbox: Outbox, row: HookEventRecord, connector: Connector, scored: SuggestionOut | Exception | None
    ) -> None:
        if scored is None:  # attempted outside `work`: scored alone, the same way
            scored = self._score([row])[row.id]
        if isinstance(scored, Exception):
            raise scored
        answer = scored
        prefix = self.settings.hook_tag_prefix
        note, tags = note_for(answer, row.ticket_id, prefix, self.settings.console_url), tags_for(answer, prefix)
        connector.write(self.http, row.ticket_id, note, tags)
        top = answer.suggestions[0].target if answer.suggestions else None
        outbox.done(row, {"note": note, "tags": tags, "top_target": top, "decision": answer.escalation.decision})
        log.info("%s ticket %s: note written (%s)", row.helpdesk, row.ticket_id, answer.escalation.decision)

    def _outcome(self, outbox: Outbox, row: HookEventRecord) -> None:
        event, prefix = row.event, self.settings.hook_tag_prefix
        model = self.state.model
        if model is None:  # which targets are the first line's is the model's to say: wait for it, never guess
            raise NoModel("no model loaded yet")
        found = self._history(row, model.router)
        if found is not None and found.status != FINAL:  # reopened since: its outcome comes with its next solve
            outbox.done(row, {"recorded": False, "why": "reopened before its path was read"}, status="ignored")
            return
        path = label(found, self._directory(model.router)) if found is not None else None
        if path is not None:  # the ticket's own history, read as the importer reads it
            escalated, target, source = path.escalated, path.target, f"path {' > '.join(path.path)}"
        else:  # the final group, mapped by ESCALATION_HOOK_GROUPS
            group = event.get("group")
            target = self.settings.hook_groups.get(group) if group else None
            if target is None:
                why = f"group {group} is not mapped to a target (ESCALATION_HOOK_GROUPS)" if group else "no group"
                outbox.done(row, {"recorded": False, "why": why}, status="ignored")
                return
            escalated, source = target not in set(model.router.first_line), f"group {group}"
        tags = set(event.get("tags") or [])
        if f"{prefix}accepted" in tags or f"{prefix}wrong" in tags:
            accepted = f"{prefix}accepted" in tags  # the agent's own word wins
        else:
            said = outbox.suggestion(row.helpdesk, row.ticket_id)
            accepted = said.get("top_target") == target if escalated else said.get("decision") == "resolve_first"
        feedback = Feedback(
            row.ticket_id, escalated, target if escalated else None, accepted, f"{row.helpdesk} outcome, {source}"
        )
        known = self.state.known_targets()
        if self.state.recorder is not None:  # the note's suggestion may still be queued: joined, as the API joins it
            self.state.recorder.flush()
        stored = self.state.store.get().record_feedback(feedback, known)
        if stored.status == "created":  # an agent's feedback for the ticket came first: counted then
            self.state.metrics.outcome(escalated, feedback.target, accepted, known)
        result = {"recorded": True, "escalated": escalated, "target": feedback.target, "accepted": accepted}
        outbox.done(row, {**result, "flags": list(stored.flags)})

    def _history(self, row: HookEventRecord, router: EscalationRouter) -> History | None:
        """The solved ticket's history, read as the importer reads it, when the model was trained on an import from
        this helpdesk and its history can be read; None: fall back to the final group. A ticket deleted since is
        refused (the event fails with that reason)."""
        source = router.helpdesk
        if source is None or source.kind != row.helpdesk or row.helpdesk not in helpdesks():
            return None
        try:
            history = history_source(row.helpdesk, self.settings, http=self.http, max_attempts=1)
        except HelpdeskRefused:  # no read credentials configured
            return None
        if source.url and source.url.rstrip("/") != history.reader.base:  # imported from another account
            return None
        try:
            found = history.history(history.ticket(row.ticket_id))
        except HelpdeskNotFound:
            found = History(row.ticket_id, "deleted")
        except HelpdeskUnavailable as err:  # the outbox retries, after the helpdesk's Retry-After when it gave one
            raise HelpdeskBusy(str(err), err.retry_after) from None
        if found.status == "deleted":
            gone = f"{row.helpdesk} ticket {row.ticket_id} is gone (deleted since it was solved)"
            raise HelpdeskRefused(gone)
        return found

    @staticmethod
    def _directory(router: EscalationRouter) -> Directory:
        people = router.helpdesk.people if router.helpdesk is not None else {}
        return Directory.of_model(router.first_line, router.kinds, people)


class NoModel(Exception):
    """Nothing to score with yet: try again later."""


class Unscorable(Exception):
    """The event holds nothing the model can read: retrying would not help."""
