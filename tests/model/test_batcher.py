"""Concurrent requests share encoder calls and still get their own answers; the recorder loses no row."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from features.model.results import Suggestion
from features.model.router import EscalationRouter
from features.model.timing import Stages
from serving.batcher import Busy, MicroBatcher
from serving.feedback_store import FeedbackStore
from serving.recorder import SuggestionRecorder
from tests.conftest import Trained
from training.register import load_router

TEXTS = [
    "I was charged twice for the Team plan, please refund one charge",
    "The CSV export fails with error 500 since the last release",
    "Please delete all my personal data under GDPR",
    "Someone logged into my account from another country",
    "How do I change my password?",
    "Our dashboard has not loaded for anyone in the company since 9am",
]


def frame(i: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"B-{i}"], "text": [TEXTS[i % len(TEXTS)]], "channel": ["email"], "customer_tier": ["standard"]}
    )


def test_concurrent_requests_share_calls_and_get_their_own_answers(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    alone = {i: router.predict(frame(i), top_k=3, n_similar=2)[0] for i in range(len(TEXTS))}
    batcher = MicroBatcher(max_tickets=64, max_wait_ms=20)
    try:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: batcher.predict(router, frame(i), 3, 2)[0], range(48)))
    finally:
        batcher.close()
    assert batcher.tickets == 48
    assert batcher.calls < 48  # at least some requests were scored together
    for i, answer in enumerate(answers):
        assert answer.id == f"B-{i}"
        expected = alone[i % len(TEXTS)]
        assert [t.target for t in answer.targets] == [t.target for t in expected.targets]
        assert answer.escalation.probability == pytest.approx(expected.escalation.probability, abs=2e-3)


def test_different_answer_sizes_are_not_mixed_and_errors_reach_the_caller(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    batcher = MicroBatcher(max_tickets=64, max_wait_ms=20)
    try:
        with ThreadPoolExecutor(4) as pool:
            small = pool.submit(batcher.predict, router, frame(0), 1, 0)
            large = pool.submit(batcher.predict, router, frame(1), 5, 3)
            assert len(small.result()[0].targets) == 1
            assert len(large.result()[0].targets) == 5
            assert len(large.result()[0].similar) == 3
        assert batcher.calls == 2  # both arrived within the 20 ms window, yet were scored apart
        with pytest.raises(KeyError):
            batcher.predict(router, pd.DataFrame({"id": ["x"]}), 3, 0)  # no text column
        assert batcher.predict(router, frame(2), 3, 0)[0].id == "B-2"  # the worker survived the error
    finally:
        batcher.close()


def test_large_batches_go_in_chunks_and_shutdown_refuses_new_jobs(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    batcher = MicroBatcher(max_tickets=4, max_wait_ms=50)
    try:
        big = pd.concat([frame(i) for i in range(10)], ignore_index=True)
        answers = batcher.predict(router, big, 3, 0)
        assert [a.id for a in answers] == [f"B-{i}" for i in range(10)]
        assert batcher.calls == 3  # 4 + 4 + 2
        with ThreadPoolExecutor(2) as pool:  # a job that fails on its own fails alone; the worker goes on
            bad = pool.submit(batcher.predict, router, frame(2).drop(columns="text"), 3, 0)
            with pytest.raises(KeyError):
                bad.result()
            assert pool.submit(batcher.predict, router, frame(1), 3, 0).result()[0].id == "B-1"
    finally:
        batcher.close()
    with pytest.raises(Busy, match="shutting down"):
        batcher.predict(router, frame(0), 3, 0)


class Gated:
    """The real router behind a gate the test opens: the worker is busy exactly as long as the test needs,
    however fast or loaded the machine is."""

    def __init__(self, router: EscalationRouter) -> None:
        self.router, self.started, self.gate = router, threading.Event(), threading.Event()

    def predict(self, frame: pd.DataFrame, **kwargs: int) -> list[Suggestion]:
        self.started.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return self.router.predict(frame, **kwargs)


def test_a_caller_that_waits_too_long_gets_busy_and_its_job_is_skipped(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    gated = Gated(router)
    batcher = MicroBatcher(max_tickets=64, timeout_s=30)
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(batcher.predict, gated, frame(2), 3, 0)  # type: ignore[arg-type]
            assert gated.started.wait(30)  # the worker is inside the first call, held at the gate
            batcher.timeout = 0.02
            with pytest.raises(Busy, match="no answer within 0.02 s"):
                batcher.predict(gated, frame(0), 3, 0)  # type: ignore[arg-type]
            batcher.timeout = 30.0
            gated.gate.set()
            assert first.result()[0].id == "B-2"  # the patient caller still gets its answer
        assert batcher.predict(router, frame(1), 3, 0)[0].id == "B-1"  # the worker goes on
        assert batcher.calls == 2  # the first and the last; the single whose caller gave up was never scored
    finally:
        gated.gate.set()
        batcher.close()


def test_shutdown_refuses_new_work_at_once_and_answers_the_work_already_queued(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    gated = Gated(router)
    batcher = MicroBatcher(max_tickets=64, timeout_s=30)
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(batcher.predict, gated, frame(0), 3, 0)  # type: ignore[arg-type]
        assert gated.started.wait(30)  # the worker is inside this call
        queued = pool.submit(batcher.predict, router, frame(1), 3, 0)
        deadline = time.monotonic() + 10
        while batcher._queue.qsize() < 1:  # the second job waits in the queue
            assert time.monotonic() < deadline
            time.sleep(0.01)
        closing = pool.submit(batcher.close)
        while batcher._queue.qsize() < 2:  # close() has begun: its stop mark is queued behind that job
            assert time.monotonic() < deadline
            time.sleep(0.01)
        threading.Timer(3.0, gated.gate.set).start()  # the call in flight ends 3 s from now
        started = time.perf_counter()
        with pytest.raises(Busy, match="shutting down"):
            batcher.predict(router, frame(2), 3, 0)  # arrives while close() waits for the worker
        assert time.perf_counter() - started < 1.0  # refused at once, not when the worker is done or times out
        closing.result(timeout=30)
        assert running.result()[0].id == "B-0" and queued.result()[0].id == "B-1"  # drained, not dropped


def test_a_job_that_close_answered_is_not_taken_by_the_worker_still_in_its_call(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    first, second = Gated(router), Gated(router)
    batcher = MicroBatcher(max_tickets=64, timeout_s=30)
    escaped: list[BaseException | None] = []
    hook, threading.excepthook = threading.excepthook, lambda args: escaped.append(args.exc_value)
    try:
        with ThreadPoolExecutor(3) as pool:
            running = pool.submit(batcher.predict, first, frame(0), 3, 0)  # type: ignore[arg-type]
            assert first.started.wait(30)
            gated = pool.submit(batcher.predict, second, frame(1), 3, 0)  # type: ignore[arg-type]
            held = pool.submit(batcher.predict, router, frame(2), 3, 0)  # another router: never in its call
            deadline = time.monotonic() + 10
            while batcher._queue.qsize() < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            first.gate.set()  # the worker takes the gated job and holds the other back for its next call
            assert second.started.wait(30) and batcher._held is not None
            batcher.close(timeout=0.5)  # gives up on the worker, still in the gated call: the held job is answered
            with pytest.raises(Busy, match="shutting down"):
                held.result(timeout=5)
            second.gate.set()
            assert running.result()[0].id == "B-0" and gated.result()[0].id == "B-1"
            batcher._thread.join(10)
        assert not batcher._thread.is_alive() and escaped == []  # it ended, not on an error
    finally:
        threading.excepthook = hook
        first.gate.set(), second.gate.set()


def test_recorder_writes_every_row_from_many_threads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    recorder = SuggestionRecorder(lambda: store)
    row = {
        "model_name": "m",
        "model_version": "1",
        "decision": "escalate",
        "escalation_probability": 0.9,
        "targets": ["billing"],
        "top_probability": 0.8,
        "routing": "route",
    }
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: recorder.add([{**row, "ticket_id": f"R-{i}"}]), range(200)))
    assert recorder.flush()
    recorder.close()
    assert recorder.written == 200 and recorder.dropped == 0
    from sqlalchemy import text

    with store.engine.connect() as conn:
        assert conn.execute(text("select count(distinct ticket_id) from suggestions")).scalar() == 200


def test_requests_sharing_a_call_each_report_its_stages_and_their_own_wait(trained: Trained) -> None:
    router = load_router(trained.settings, trained.result.version)
    batcher = MicroBatcher(max_tickets=64, max_wait_ms=200)  # long enough for all four to share one call
    timed = [Stages() for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: batcher.predict(router, frame(i), 3, 2, timed[i]), range(4)))
    finally:
        batcher.close()
    assert batcher.calls == 1
    encode = {s.seconds["encode"] for s in timed}
    assert len(encode) == 1 and encode.pop() > 0  # the shared call's time, which each of them waited for
    assert all(s.seconds["queue"] >= 0 for s in timed)
    assert {"lexical", "neighbours", "heads", "explanation"} <= set(timed[0].seconds)
