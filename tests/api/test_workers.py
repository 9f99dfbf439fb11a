"""`escalation serve --workers 2` on PostgreSQL: two processes behind one port answer 16 clients at once, every
feedback row reaches the shared store, and /metrics counts the requests of both workers."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serving.feedback_store import FeedbackStore
from tests.conftest import Trained, bearer, serve_process, ticket
from tests.data.test_feedback_store import _postgres_schema

CLIENTS, EACH = 16, 5


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway schema in the test PostgreSQL database (skips, saying why, where none is reachable)."""
    yield from _postgres_schema()


def counted(metrics: str, route: str) -> float:
    line = f'escalation_http_requests_total{{method="POST",route="{route}",status="200"}} '
    return sum(float(x.removeprefix(line)) for x in metrics.splitlines() if x.startswith(line))


def test_two_workers_share_the_port_the_feedback_store_and_the_metrics(
    trained: Trained, tmp_path: Path, postgres: str
) -> None:
    settings, log, shared = trained.settings, tmp_path / "server.log", tmp_path / "metrics"
    env = {
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "ESCALATION_FEEDBACK_URL": postgres,
        "ESCALATION_KEYS_FILE": settings.keys_file,
        "ESCALATION_MODEL_CACHE_DIR": str(tmp_path / "served-model"),
        "ESCALATION_POLL_SECONDS": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    process, url = serve_process(env, log, "--workers", "2")
    try:
        deadline = time.monotonic() + 180  # the first worker answers /readyz; wait for the second too
        while log.read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        agent = bearer(settings, "agent")

        def client(c: int) -> list[str]:
            sent = []
            with httpx.Client(base_url=url, headers=agent, timeout=120) as http:
                for i in range(EACH):
                    tid = f"W-{c}-{i}"
                    body = f"Charged twice for the Team plan, invoice {c}-{i}. Please refund one."
                    assert http.post("/v1/suggestions", json=ticket(id=tid, body=body)).status_code == 200
                    feedback = {"ticket_id": tid, "escalated": True, "target": "billing", "accepted_suggestion": True}
                    answered = http.post("/v1/feedback", json=feedback)
                    assert answered.status_code == 200, answered.text
                    sent.append(tid)
            return sent

        with ThreadPoolExecutor(CLIENTS) as pool:
            sent = sorted(t for share in pool.map(client, range(CLIENTS)) for t in share)
        stored = FeedbackStore(postgres).feedback_frame()
        assert sorted(stored["ticket_id"].tolist()) == sent and len(sent) == CLIENTS * EACH
        metrics = httpx.get(f"{url}/metrics", headers=bearer(settings, "analyst"), timeout=30).text
        assert counted(metrics, "/v1/suggestions") == CLIENTS * EACH
        assert counted(metrics, "/v1/feedback") == CLIENTS * EACH
        assert 'escalation_model_info{alias="champion",name="escalation-router",version="1"} 1.0' in metrics
        workers = {f.stem.rsplit("_", 1)[-1] for f in shared.glob("counter_*.db")}
        assert len(workers) == 2, workers  # both processes counted requests, and /metrics added them up
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
