"""Suggestion records written by a background thread in batches, so the agent's answer never waits on a disk."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from serving.feedback_store import FeedbackStore

log = logging.getLogger(__name__)
LINGER_SECONDS = 0.25  # how long the writer gathers rows after the first before one transaction stores them all


class SuggestionRecorder:
    """Queue rows from request threads; one writer stores everything queued within `linger` seconds of the first
    row in one transaction (at one request at a time too, so a write per answer does not compete with the next
    answer for the processor; a flush or close writes at once).

    A store that is down costs the join of feedback to suggestions, never an answer: the failure is logged and
    those rows are dropped. `flush` waits for what is queued (feedback and the summary call it first, so they
    see every suggestion already answered).
    """

    def __init__(
        self,
        open_store: Callable[[], FeedbackStore],
        on_drop: Callable[[int], None] = lambda n: None,
        linger: float = LINGER_SECONDS,
    ):
        self._open_store, self._on_drop, self.linger = open_store, on_drop, linger
        self._queue: queue.Queue[list[dict[str, Any]] | threading.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="suggestion-recorder", daemon=True)
        self._thread.start()
        self.written = self.dropped = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._queue.put(rows)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued before this call is written (or dropped); False on timeout."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            deadline = time.monotonic() + self.linger
            urgent = not isinstance(items[0], list)  # a flush or close: write what is queued now
            while True:  # everything queued meanwhile goes in the same transaction
                wait = 0.0 if urgent else deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                urgent = urgent or not isinstance(item, list)
            rows = [row for item in items if isinstance(item, list) for row in item]
            if rows:
                self._write(rows)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
                stop = stop or item is None

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            self._open_store().record_suggestions(rows)
            self.written += len(rows)
        except Exception as err:  # StoreUnavailable, or the 503 of a store still in its retry wait
            self.dropped += len(rows)
            self._on_drop(len(rows))
            log.warning("suggestions for %d tickets not recorded: %s", len(rows), getattr(err, "detail", err))
