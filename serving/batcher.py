"""Concurrent requests scored together: one encoder call for the tickets that arrive while the last call runs."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from features.model.router import EscalationRouter
from features.model.timing import Stages, timing

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """No answer in time, or the service is shutting down: the caller should retry (503)."""


@dataclass
class _Job:
    router: EscalationRouter
    frame: pd.DataFrame
    top_k: int
    n_similar: int
    future: Future[list[dict[str, Any]]] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)
    stages: Stages = field(default_factory=Stages)  # the queue's wait and the shared call's stages

    def key(self) -> tuple[int, int, int]:
        return id(self.router), self.top_k, self.n_similar


class MicroBatcher:
    """One worker thread takes every job queued when it is free (up to `max_tickets`), waiting at most
    `max_wait_ms` for more, and scores them in one `predict` call.

    At concurrency 1 a job is scored the moment it arrives (no wait unless `max_wait_ms` > 0); under load the
    tickets that queue up while the encoder runs share its next call, so throughput approaches the encoder's
    batched rate instead of its one-at-a-time rate. Jobs for a different router (a model swap) or different
    answer sizes never share a call.
    """

    def __init__(self, max_tickets: int = 64, max_wait_ms: float = 0.0, timeout_s: float = 30.0):
        self.max_tickets, self.max_wait, self.timeout = max_tickets, max_wait_ms / 1000, timeout_s
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._held: _Job | None = None
        self._stopping = False  # close() began: new jobs are refused
        self._drained = False  # the worker took close()'s stop mark: it ends after this batch
        self._lock = threading.Lock()  # a job is queued before close()'s stop mark, or refused
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()
        self.calls = self.tickets = 0  # what the worker did, for benchmarks and /metrics

    def predict(
        self, router: EscalationRouter, frame: pd.DataFrame, top_k: int, n_similar: int, stages: Stages | None = None
    ) -> list[dict[str, Any]]:
        """The router's answers for `frame`, computed in a shared call; errors are raised here, in the caller.
        `stages` gets the time waited in the queue and the stages of each call it shared."""
        results: list[dict[str, Any]] = []
        # a large batch goes in chunks, so single requests arriving meanwhile are scored between them
        step = self.max_tickets if self.max_tickets > 1 else max(1, len(frame))
        for start in range(0, len(frame), step):
            chunk = frame.iloc[start : start + step].reset_index(drop=True)
            (job,) = self.submit(router, [chunk], top_k, n_similar)
            results += self.wait(job, time.monotonic() + self.timeout, stages)
        return results

    def submit(self, router: EscalationRouter, frames: list[pd.DataFrame], top_k: int, n_similar: int) -> list[_Job]:
        """Queue each frame as a job of its own, all at once (so the worker takes them into one call) and without
        waiting for them; `wait` gives each job's answers or its own error. Raises Busy when shutting down."""
        if self._stopping:
            raise Busy("the service is shutting down")
        jobs = [_Job(router, frame, top_k, n_similar) for frame in frames]
        if self.max_tickets <= 1:  # batching switched off: score in the caller's thread
            for job in jobs:
                with timing(job.stages):
                    try:
                        job.future.set_result(router.predict(job.frame, top_k=top_k, n_similar=n_similar))
                    except Exception as err:
                        job.future.set_exception(err)
            return jobs
        with self._lock:
            if self._stopping:
                raise Busy("the service is shutting down")
            with self._queue.mutex:  # all or none seen by the worker: queued in one step
                self._queue.queue.extend(jobs)
                self._queue.unfinished_tasks += len(jobs)
                self._queue.not_empty.notify()
        return jobs

    def wait(self, job: _Job, deadline: float, stages: Stages | None = None) -> list[dict[str, Any]]:
        """`job`'s answers once scored, its error raised here, or Busy at `deadline` (time.monotonic)."""
        try:
            results = job.future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            job.future.cancel()  # still queued: the worker skips it; already running: its answer is dropped
            raise Busy(f"no answer within {self.timeout:g} s: the service is overloaded, retry shortly") from None
        if stages is not None:
            stages.merge(job.stages)
        return results

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new jobs at once, then finish the ones queued before; whatever the worker has not taken within
        `timeout` gets an error instead of waiting forever."""
        with self._lock:
            self._stopping = True
            self._queue.put(None)
        self._thread.join(timeout)
        held, self._held = self._held, None  # failed here: a worker still in its call must not take it after
        leftovers = [held] if held is not None else []
        while True:
            try:
                leftovers.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._fail([j for j in leftovers if j is not None], Busy("the service is shutting down"))
        if self._thread.is_alive():  # still inside a call: its stop mark was failed above, so it gets another
            self._queue.put(None)

    def _next_batch(self) -> list[_Job] | None:
        if self._drained:
            return None
        first = self._held if self._held is not None else self._queue.get()
        self._held = None
        if first is None:
            return None
        jobs, size = [first], len(first.frame)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_tickets:
            try:
                remaining = deadline - time.monotonic()
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # stop after this batch
                self._drained = True
                break
            if job.key() != first.key() or size + len(job.frame) > self.max_tickets:
                self._held = job  # first in the next call
                break
            jobs.append(job)
            size += len(job.frame)
        return jobs

    def _run(self) -> None:
        while self._step():
            pass

    def _step(self) -> bool:
        """Score the next batch; False once close() was seen. Its jobs go with this call, so the worker, waiting for
        the next one, does not keep a swapped-out model (and its files) alive."""
        jobs = self._next_batch()
        if jobs is None:
            return False
        jobs = [j for j in jobs if self._runs(j)]  # callers that gave up, or that close() answered, are skipped
        if not jobs:
            return True
        try:
            self._score(jobs)
        except Exception as err:  # never let the worker die: every waiting request gets an answer
            log.exception("micro-batcher failed")
            self._fail([j for j in jobs if not j.future.done()], err)
        return True

    def _score(self, jobs: list[_Job], started: float | None = None) -> None:
        """Score `jobs` in one call; if it fails, each alone. `started`: when their first call began (a job's wait
        in the queue ends there; a failed shared call's stages count for each job, which waited for it)."""
        head, shared = jobs[0], Stages()
        started = time.perf_counter() if started is None else started
        try:
            frame = pd.concat([j.frame for j in jobs], ignore_index=True) if len(jobs) > 1 else head.frame
            with timing(shared):
                results = head.router.predict(frame, top_k=head.top_k, n_similar=head.n_similar)
        except Exception as err:
            if len(jobs) == 1:
                head.future.set_exception(err)
                return
            for job in jobs:  # one bad ticket must not fail the requests it shared a call with
                job.stages.merge(shared)
                self._score([job], started)
            return
        self.calls, self.tickets = self.calls + 1, self.tickets + len(frame)
        start = 0
        for job in jobs:
            job.stages.add("queue", max(0.0, started - job.queued_at))
            job.stages.merge(shared)  # the whole call: what this job waited for
            job.future.set_result(results[start : start + len(job.frame)])
            start += len(job.frame)

    @staticmethod
    def _runs(job: _Job) -> bool:
        """Mark the job running; False when its caller cancelled it or close() already failed it."""
        try:
            return job.future.set_running_or_notify_cancel()
        except RuntimeError:  # finished: close() gave up on the worker and answered it
            return False

    @staticmethod
    def _fail(jobs: list[_Job], err: Exception) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(err)
