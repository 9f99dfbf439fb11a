"""Faults provoked on a real `escalation serve` process: SIGTERM drains requests in flight, SIGKILL loses no
acknowledged feedback, and the logs are JSON lines carrying the request id."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving.feedback_store import FeedbackStore
from tests.conftest import Trained, bearer, serve_process, ticket


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    headers: dict[str, str]
    log: Path
    admin: dict[str, str]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout)


@pytest.fixture
def served(trained: Trained, tmp_path: Path) -> Iterator[Served]:
    """`escalation serve` on a free loopback port, on the trained store and its own feedback database."""
    settings = trained.settings
    env = {
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "ESCALATION_FEEDBACK_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "ESCALATION_KEYS_FILE": settings.keys_file,
        "ESCALATION_POLL_SECONDS": "0",
        "ESCALATION_LOG_FORMAT": "json",
    }
    log = tmp_path / "server.log"
    process, url = serve_process(env, log)
    server = Served(process, url, bearer(settings, "agent"), log, bearer(settings, "admin"))
    yield server
    if process.poll() is None:
        process.kill()
        process.wait()


def _wait_until_answering(served: Served, requests: int, timeout: float = 60) -> None:
    """Until the server's in-flight gauge shows `requests` being answered (besides the scrape asking)."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(f"{served.url}/metrics", headers=served.admin, timeout=10).text
        found = next(line for line in text.splitlines() if line.startswith("escalation_http_requests_in_flight "))
        if float(found.split()[1]) >= requests + 1:
            return
        assert time.monotonic() < deadline, f"{requests} requests not in flight after {timeout} s: {found}"


def test_sigterm_drains_requests_in_flight(served: Served) -> None:
    batch = {"tickets": [ticket(id=f"S-{i}", body=f"Charged twice, invoice {i}. Please refund.") for i in range(100)]}

    def post() -> httpx.Response:
        return httpx.post(f"{served.url}/v1/suggestions/batch", json=batch, headers=served.headers, timeout=120)

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(post) for _ in range(3)]
        _wait_until_answering(served, 3)  # the three are being answered: 300 tickets take seconds here
        assert not any(f.done() for f in futures)
        code = served.stop(signal.SIGTERM)
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(len(a.json()["results"]) == 100 for a in answers)
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its graceful shutdown
    assert "Application shutdown complete" in served.log.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.url}/healthz", timeout=2)


def test_acknowledged_feedback_survives_sigkill(served: Served, tmp_path: Path) -> None:
    acknowledged = []
    for i in range(40):
        body = {"ticket_id": f"K-{i}", "escalated": i % 2 == 0, "accepted_suggestion": True}
        if body["escalated"]:
            body["target"] = "billing"
        response = httpx.post(f"{served.url}/v1/feedback", json=body, headers=served.headers, timeout=30)
        if response.status_code == 200:
            acknowledged.append(body["ticket_id"])
    served.stop(signal.SIGKILL)  # no shutdown, no flush: only what was committed before each answer remains
    stored = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}").feedback_frame()
    assert len(acknowledged) == 40
    assert set(acknowledged) <= set(stored["ticket_id"])


def test_server_logs_are_json_lines_with_the_request_id(served: Served) -> None:
    response = httpx.post(
        f"{served.url}/v1/suggestions", json=ticket(id="L-1"), headers={**served.headers, "X-Request-ID": "trace-42"}
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == "trace-42"
    served.stop(signal.SIGTERM)
    lines = [json.loads(line) for line in served.log.read_text().splitlines() if line.startswith("{")]
    assert lines, served.log.read_text()[-2000:]
    traced = [line for line in lines if line["request_id"] == "trace-42"]
    assert {line["logger"] for line in traced} >= {"escalation.access", "serving.app"}
    assert any(line.get("ticket_ids") == ["L-1"] for line in traced)
    assert "Charged twice" not in served.log.read_text()
