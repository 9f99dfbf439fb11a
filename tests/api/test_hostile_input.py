"""Hostile and broken requests: capped before parsing, cut with a note, cleaned, or refused with a clear 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.conftest import Trained, bearer, ticket

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def small_cap(trained: Trained) -> Iterator[TestClient]:
    """The app with a 50 kB body cap and 2,000 characters read per ticket."""
    settings = trained.settings.model_copy(update={"max_body_bytes": 50_000, "max_text_chars": 2000, "poll_seconds": 0})
    with TestClient(create_app(settings), headers=bearer(settings, "agent")) as client:
        yield client


def test_a_body_over_the_cap_is_413_before_it_is_parsed(small_cap: TestClient) -> None:
    big = json.dumps(ticket(body="word " * 20_000)).encode()
    response = small_cap.post("/v1/suggestions", content=big, headers=JSON)
    assert response.status_code == 413
    assert response.json()["detail"].startswith(f"request body is {len(big)} bytes; at most 50000 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts what arrives
        yield b'{"body": "'
        for _ in range(20):
            yield b"x" * 5000
        yield b'"}'

    streamed = small_cap.post("/v1/suggestions", content=chunks(), headers=JSON)
    assert streamed.status_code == 413 and "over 50000 bytes" in streamed.json()["detail"]


def test_a_long_text_is_cut_with_a_note_not_refused(small_cap: TestClient) -> None:
    response = small_cap.post("/v1/suggestions", json=ticket(body="I was charged twice. " * 400))
    assert response.status_code == 200
    cut, *rest = response.json()["notes"]
    assert cut == "text cut from 8413 to 2000 characters (setting ESCALATION_MAX_TEXT_CHARS): the rest was not read"
    # one sentence said 400 times reads like no training ticket: it may be told unfamiliar too, and nothing else
    assert all(n.startswith("This ticket is unlike the tickets the model learned from") for n in rest)
    assert small_cap.post("/v1/suggestions", json=ticket()).json()["notes"] == []


def test_a_cut_ticket_reads_like_its_beginning(small_cap: TestClient) -> None:
    head = ticket(body="I was charged twice for the Team plan and want a refund. ")
    long = ticket(body=head["body"] + "lorem ipsum " * 1000)
    a, b = (small_cap.post("/v1/suggestions", json=t).json() for t in (head, long))
    assert b["notes"] and a["routing"]["target"] == b["routing"]["target"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"subject": "Charged twice", "body": "caf\xe9 refund \xff\xfe please"}',  # Latin-1 bytes, not UTF-8
        b'{"subject": "Charged twice", "body": "refund \\ud800 please \\udc00"}',  # lone surrogates
        b'{"subject": "Charged \\u0000twice", "body": "refund\\u0007 \\u009b please \\ud83d\\ude00"}',  # controls
    ],
)
def test_invalid_unicode_and_control_characters_are_cleaned(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/suggestions", content=raw, headers=JSON)
    assert response.status_code == 200, response.text
    assert "\\u0000" not in response.text and "\\u0007" not in response.text


def test_feedback_text_is_cleaned_before_it_is_stored(client: TestClient) -> None:
    raw = b'{"ticket_id": "H-\\u0000\\ud800", "escalated": false, "accepted_suggestion": true, "note": "a\\u0001b"}'
    response = client.post("/v1/feedback", content=raw, headers=JSON)
    assert response.status_code == 200 and response.json()["ticket_id"] == "H- \ufffd"


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        (b'{"body": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests too deeply"),
        (b'{"body": "x", "metadata": {"a": ' * 2000 + b"1" + b"}" * 4001, "nests too deeply"),
        (b'{"body": "unterminated', "not valid JSON"),
    ],
)
def test_deep_or_broken_json_is_422(client: TestClient, raw: bytes, msg: str) -> None:
    response = client.post("/v1/suggestions", content=raw, headers=JSON)
    assert response.status_code == 422 and msg in response.text


def test_nested_metadata_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/v1/suggestions", json=ticket(metadata={"channel": {"a": {"b": {"c": 1}}}}))
    assert response.status_code == 422
    assert any(d["loc"][:3] == ["body", "metadata", "channel"] for d in response.json()["detail"])
