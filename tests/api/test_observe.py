"""What an operator watches: Prometheus metrics, a request id in the response header and in JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import re
import time

from fastapi.testclient import TestClient

from features.model.timing import STAGES, parse_header
from serving.app import create_app
from serving.observe import JsonFormatter
from tests.conftest import Trained, bearer, ticket


def _value(text: str, sample: str) -> float:
    """The value of one sample line, e.g. 'escalation_decisions_total{decision="escalate"}' (0 when absent)."""
    found = re.search(rf"^{re.escape(sample)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_requests_decisions_and_the_model_served(client: TestClient, trained: Trained) -> None:
    analyst = bearer(trained.settings, "analyst")
    before = client.get("/metrics", headers=analyst).text
    route = 'escalation_http_requests_total{method="POST",route="/v1/suggestions",status="200"}'
    bad = 'escalation_http_requests_total{method="POST",route="/v1/suggestions",status="422"}'
    answers = [client.post("/v1/suggestions", json=ticket(id=f"M-{i}")).json() for i in range(3)]
    client.post("/v1/suggestions", json={"body": ""})
    response = client.get("/metrics", headers=analyst)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert _value(after, route) - _value(before, route) == 3
    assert _value(after, bad) - _value(before, bad) == 1
    decision = answers[0]["escalation"]["decision"]
    mix = f'escalation_decisions_total{{decision="{decision}"}}'
    assert _value(after, mix) - _value(before, mix) >= 1
    assert 'escalation_model_info{alias="champion",name="escalation-router",version="1"} 1.0' in after
    histogram = 'escalation_http_request_duration_seconds_count{method="POST",route="/v1/suggestions",status="200"}'
    assert _value(after, histogram) - _value(before, histogram) == 3
    assert "escalation_feedback_write_failures_total 0.0" in after
    assert _value(after, "escalation_http_requests_in_flight") == 1  # the scrape itself, nothing left hanging
    assert client.get("/metrics", headers=bearer(trained.settings, "agent")).status_code == 403


def test_metrics_show_what_the_alerting_rules_watch(client: TestClient, trained: Trained) -> None:
    """Unfamiliar answers, the predicted escalation rate's sum and recorded outcomes, under the names the rules in
    docs/alerts/ use."""
    analyst = bearer(trained.settings, "analyst")
    before = client.get("/metrics", headers=analyst).text
    odd = client.post(
        "/v1/suggestions", json=ticket(id="A-1", subject="Laptop", body="Laptop does not connect to wifi")
    )
    usual = client.post("/v1/suggestions", json=ticket(id="A-2")).json()
    feedback = {"ticket_id": "A-2", "escalated": True, "target": "billing", "accepted_suggestion": True}
    assert client.post("/v1/feedback", json=feedback).status_code == 200
    assert client.post("/v1/feedback", json=feedback).json()["status"] == "updated"  # a repeat: one ticket, one outcome
    after = client.get("/metrics", headers=analyst).text

    def grew(sample: str) -> float:
        return round(_value(after, sample) - _value(before, sample), 4)

    assert grew('escalation_answers_by_familiarity_total{unfamiliar="true"}') == 1
    assert grew('escalation_answers_by_familiarity_total{unfamiliar="false"}') == 1
    predicted = odd.json()["escalation"]["probability"] + usual["escalation"]["probability"]
    assert grew("escalation_predicted_probability_total") == round(predicted, 4)
    assert grew('escalation_outcomes_total{accepted="true",escalated="true",target="billing"}') == 1


def test_request_id_is_returned_and_follows_the_log_lines(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        given = client.post("/v1/suggestions", json=ticket(id="R-1"), headers={"X-Request-ID": "helpdesk-4711"})
        fresh = client.post("/v1/suggestions", json=ticket(id="R-2"), headers={"X-Request-ID": "bad id\n"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert given.headers["x-request-id"] == "helpdesk-4711"
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line["request_id"] == "helpdesk-4711"]
    access = [line for line in mine if line["logger"] == "escalation.access"]
    assert access and access[0]["route"] == "/v1/suggestions" and access[0]["status"] == 200
    assert any(line.get("ticket_ids") == ["R-1"] for line in mine)
    assert "charged twice" not in stream.getvalue().lower()  # ids, never ticket text


def test_an_unexpected_error_is_a_500_with_its_request_id(trained: Trained) -> None:
    from serving.app import create_app

    app = create_app(trained.settings.model_copy(update={"auth_disabled": True, "poll_seconds": 0}))

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/boom", headers={"X-Request-ID": "bug-1"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code == 500 and response.headers["x-request-id"] == "bug-1"
    assert response.json() == {"detail": "internal error; see the service log"}
    errors = [json.loads(line) for line in stream.getvalue().splitlines() if '"exception"' in line]
    assert errors and errors[0]["request_id"] == "bug-1" and "RuntimeError: a bug" in errors[0]["exception"]


def test_each_stage_of_a_suggestion_is_timed_in_the_header_and_in_metrics(client: TestClient, trained: Trained) -> None:
    analyst = bearer(trained.settings, "analyst")
    before = client.get("/metrics", headers=analyst).text
    started = time.perf_counter()
    response = client.post("/v1/suggestions", json=ticket(id="S-1"))
    elapsed_ms = 1000 * (time.perf_counter() - started)
    assert response.status_code == 200
    stages = parse_header(response.headers["server-timing"])
    # the ONNX runtime tokenises apart from encoding; every stage a request meets, in the order it meets them
    assert list(stages) == list(STAGES) and len(STAGES) == 10
    assert all(ms >= 0 for ms in stages.values()) and stages["encode"] > 0 and stages["lexical"] > 0
    assert sum(stages.values()) <= elapsed_ms  # parts of what the client waited for, not more
    after = client.get("/metrics", headers=analyst).text
    for name in stages:
        count = f'escalation_stage_duration_seconds_count{{route="/v1/suggestions",stage="{name}"}}'
        assert _value(after, count) - _value(before, count) == 1, name
    batch = client.post("/v1/suggestions/batch", json={"tickets": [ticket(id="S-2"), ticket(id="S-3")]})
    assert batch.status_code == 200 and [a["id"] for a in batch.json()["results"]] == ["S-2", "S-3"]
    assert "encode;dur=" in batch.headers["server-timing"]


def test_the_server_timing_header_can_be_switched_off(trained: Trained) -> None:
    settings = trained.settings.model_copy(update={"server_timing": False})
    with TestClient(create_app(settings), headers=bearer(settings, "agent")) as quiet:
        response = quiet.post("/v1/suggestions", json=ticket(id="S-4"))
        assert response.status_code == 200 and "server-timing" not in response.headers
        metrics = quiet.get("/metrics", headers=bearer(settings, "analyst")).text
    assert _value(metrics, 'escalation_stage_duration_seconds_count{route="/v1/suggestions",stage="encode"}') == 1
