"""Feedback through the API: joined to the suggestion's model version, idempotent, summarised, and safe when the
store is down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.feedback_store import FeedbackStore
from tests.conftest import Trained, bearer, ticket


def test_feedback_joins_the_suggestion_and_updates_on_repeat(client: TestClient) -> None:
    suggested = client.post("/v1/suggestions", json=ticket(id="FB-1")).json()
    assert suggested["suggestions"][0]["target"] == "billing"
    first = client.post(
        "/v1/feedback", json={"ticket_id": "FB-1", "escalated": True, "target": "billing", "accepted_suggestion": True}
    )
    assert first.status_code == 200
    assert first.json() == {"ticket_id": "FB-1", "status": "created", "model_version": "1", "flags": []}
    again = client.post(
        "/v1/feedback",
        json={"ticket_id": "FB-1", "escalated": True, "target": "legal", "accepted_suggestion": False, "note": "x"},
    )
    assert again.json()["status"] == "updated" and again.json()["flags"] == ["unknown_target"]


def test_summary_counts_acceptance_per_version(trained: Trained, tmp_path: Path) -> None:
    # its own store: the session's client also holds other tests' suggestions, so only here is every count known
    settings = trained.settings.model_copy(update={"feedback_url": f"sqlite:///{tmp_path / 'feedback.db'}"})
    with TestClient(create_app(settings), headers=bearer(settings, "analyst")) as c:
        answers = [
            c.post("/v1/suggestions", json=ticket(id=f"SUM-{i}", subject=subject, body=body)).json()
            for i, (subject, body) in enumerate(
                [
                    ("Charged twice", "I was charged twice for the Team plan. Please refund one."),
                    ("Error 500", "The dashboard shows error 500 when I open project P-123."),
                    ("Password reset", "I forgot my password and the reset email never arrived."),
                ]
            )
        ]
        for feedback in [
            {"ticket_id": "SUM-0", "escalated": True, "target": "billing", "accepted_suggestion": True},
            {"ticket_id": "SUM-1", "escalated": True, "target": "security", "accepted_suggestion": False},
            {"ticket_id": "SUM-2", "escalated": False, "accepted_suggestion": True},
        ]:
            assert c.post("/v1/feedback", json=feedback).status_code == 200
        summary = c.get("/v1/metrics/summary").json()
        window = c.get("/v1/metrics/summary", params={"since": "2000-01-01T00:00:00", "until": "2000-01-02T00:00:00"})
    top = [[s["target"] for s in a["suggestions"]] for a in answers]
    # what the expected rates rest on: billing is SUM-0's first suggestion, security is not among SUM-1's three,
    # and SUM-2 was told to resolve first
    assert top[0][0] == "billing" and "security" not in top[1][:3]
    assert answers[2]["escalation"]["decision"] == "resolve_first"
    v1 = summary["versions"]["1"]
    assert v1["suggestions"] == 3 and v1["feedback"] == 3
    assert v1["decisions"] == dict(Counter(a["escalation"]["decision"] for a in answers))
    assert v1["escalation_rate"] == v1["agent_accepted_rate"] == pytest.approx(2 / 3)
    assert v1["accepted_top1_rate"] == v1["accepted_top3_rate"] == 0.5  # of the two escalated tickets
    assert v1["escalations_avoided"] == 1 and v1["resolve_first_kept_rate"] == 1.0
    assert summary["escalations_per_target"] == {"billing": 1, "security": 1} and summary["unknown_targets"] == 0
    assert window.status_code == 200 and window.json()["versions"] == {}
    weeks = summary["weeks"]  # this week (two, when the test ran across Monday 00:00 UTC)
    assert 1 <= len(weeks) <= 2 and sum(w["suggestions"] for w in weeks) == sum(w["outcomes"] for w in weeks) == 3
    predicted = sum(w["predicted_rate"] * w["suggestions"] for w in weeks if w["suggestions"])
    assert predicted == pytest.approx(sum(a["escalation"]["probability"] for a in answers), abs=1e-3)
    observed = sum(w["observed_rate"] * w["outcomes"] for w in weeks if w["outcomes"])
    accepted = sum(w["accepted_rate"] * w["outcomes"] for w in weeks if w["outcomes"])
    assert observed == pytest.approx(2) and accepted == pytest.approx(2)
    assert summary["acceptance_per_target"] == {
        "billing": {"outcomes": 1, "accepted_rate": 1.0},
        "security": {"outcomes": 1, "accepted_rate": 0.0},
        "first line": {"outcomes": 1, "accepted_rate": 1.0},
    }
    assert window.json()["weeks"] == [] and window.json()["acceptance_per_target"] == {}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"ticket_id": "x", "escalated": True, "accepted_suggestion": True}, "target is required"),
        ({"ticket_id": "x", "escalated": False, "target": "billing", "accepted_suggestion": True}, "must be null"),
        ({"ticket_id": "", "escalated": False, "accepted_suggestion": True}, "at least 1 character"),
        ({"ticket_id": "x", "escalated": "maybe", "accepted_suggestion": True}, "valid boolean"),
    ],
)
def test_bad_feedback_is_422(client: TestClient, payload: dict, message: str) -> None:
    response = client.post("/v1/feedback", json=payload)
    assert response.status_code == 422 and message in response.text


@pytest.fixture
def store_down_client(trained: Trained) -> Iterator[TestClient]:
    settings = trained.settings.model_copy(update={"feedback_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(settings), headers=bearer(settings, "analyst")) as c:
        yield c


def test_store_down_is_503_with_retry_after_and_suggestions_still_answer(store_down_client: TestClient) -> None:
    response = store_down_client.post(
        "/v1/feedback", json={"ticket_id": "D-1", "escalated": False, "accepted_suggestion": True}
    )
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json() == {"detail": "feedback store unavailable; retry later"}
    assert store_down_client.post("/v1/suggestions", json=ticket(id="D-1")).status_code == 200
    assert store_down_client.get("/v1/metrics/summary").status_code == 503


def test_writes_resume_when_the_store_comes_back(trained: Trained, tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"  # sqlite cannot create its file in a folder that does not exist: store down
    settings = trained.settings.model_copy(
        update={"feedback_url": f"sqlite:///{folder / 'feedback.db'}", "retry_after_seconds": 1}
    )
    body = {"ticket_id": "B-1", "escalated": False, "accepted_suggestion": True}
    with TestClient(create_app(settings), headers=bearer(settings, "agent")) as c:
        down = c.post("/v1/feedback", json=body)
        assert down.status_code == 503 and down.headers["retry-after"] == "1"  # the setting
        folder.mkdir()  # the store is back
        assert c.post("/v1/feedback", json=body).status_code == 503  # not tried again before Retry-After
        time.sleep(1.1)  # as Retry-After asked
        up = c.post("/v1/feedback", json=body)
        assert up.status_code == 200 and up.json()["status"] == "created"  # nothing was half-written before
    assert FeedbackStore(settings.feedback_url).feedback_frame()["ticket_id"].tolist() == ["B-1"]
