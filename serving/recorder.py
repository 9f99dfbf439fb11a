"""Suggestion records written by a background thread in batches, so the agent's answer never waits on a disk."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from serving.feedback_store import FeedbackStore

log = logging.getLogger(__name__)


class SuggestionRecorder:
    """Queue rows from request threads; one writer stores everything queued in one transaction.

    A store that is down costs the join of feedback to suggestions, never an answer: the failure is logged and
    those rows are dropped. `flush` waits for what is queued (feedback and the summary call it first, so they
    see every suggestion already answered).
    """

    def __init__(self, open_store: Callable[[], FeedbackStore], on_drop: Callable[[int], None] = lambda n: None):
        self._open_store, self._on_drop = open_store, on_drop
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
            while True:  # everything queued meanwhile goes in the same transaction
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
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
