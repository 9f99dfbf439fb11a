"""Tickets full of personal data, in training and in requests: none of it in any response or log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from escalation.cli import app
from features.settings import Settings
from serving.app import create_app
from tests.conftest import bearer, store_settings, ticket
from training.register import load_router
from training.train import train

PERSONAL = {
    "e-mail": "anna.schmidt@example.com",
    "phone": "+49 30 1234567",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "name": "Anna Schmidt",
    "other name": "Jörg Weber",
    "password": "Winter2031x",
    "token": "ghp_8fK2mQ9xLr4TzW1vB7nY3cJ6hD0sA5eP2uGk",
}
CONTACT = (
    f"Contact {PERSONAL['name']} at {PERSONAL['e-mail']} or {PERSONAL['phone']}; "
    f"paid with {PERSONAL['card']}, IBAN {PERSONAL['iban']}. "
    f"Please reset my password to {PERSONAL['password']}, our CI token is {PERSONAL['token']} "
)
NAMES = {"ESCALATION_MASK_NAMES": json.dumps([PERSONAL["name"], PERSONAL["other name"]])}


def leaks(text: str) -> list[str]:
    """Which personal data `text` carries, also with the spaces or case changed."""
    squeezed = text.replace(" ", "").lower()
    return [kind for kind, value in PERSONAL.items() if value in text or value.replace(" ", "").lower() in squeezed]


@dataclass
class Pii:
    settings: Settings
    data: Path
    config: Path


@pytest.fixture(scope="module")
def pii(sample: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Pii:
    """A model trained on tickets that all start with someone's contact, payment data and credentials."""
    folder = tmp_path_factory.mktemp("pii")
    data, config = sample
    frame = pd.read_csv(data)
    frame["body"] = CONTACT + frame["body"].astype(str)
    frame["resolution"] = "Called " + PERSONAL["other name"] + " back. " + frame["resolution"].astype(str)
    frame.to_csv(folder / "tickets.csv", index=False)
    settings = store_settings(folder).model_copy(
        update={"mask_names": [PERSONAL["name"], PERSONAL["other name"]], "poll_seconds": 0, "n_similar": 5}
    )
    train(folder / "tickets.csv", config, settings, progress=False)
    return Pii(settings, folder / "tickets.csv", config)


@pytest.fixture(scope="module")
def pii_client(pii: Pii) -> Iterator[TestClient]:
    with TestClient(create_app(pii.settings), headers=bearer(pii.settings)) as client:
        yield client


def test_no_personal_data_in_responses_or_logs(pii_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    body = ticket(
        id="P-1",
        subject=f"Refund for {PERSONAL['name']}",
        body=CONTACT + "I was charged twice this month and want a refund.",
        messages=[
            {"author": "customer", "text": CONTACT + "I already tried the refund form, error E4012."},
            {"author": "customer", "text": "Reply to JohnSmith@gmail.com or JANE_DOE@corp.com please."},
            {
                "author": "agent",
                "text": f"Thanks {PERSONAL['other name']}, I checked the invoice; please call {PERSONAL['phone']}.",
            },
        ],
    )
    with caplog.at_level(logging.INFO):
        answers = [
            pii_client.post("/v1/suggestions", json=body),
            pii_client.post("/v1/suggestions/batch", json={"tickets": [body, {**body, "id": "P-2"}]}),
            pii_client.post(
                "/v1/feedback",
                json={
                    "ticket_id": "P-1",
                    "escalated": True,
                    "target": "billing",
                    "accepted_suggestion": True,
                    "note": CONTACT,
                },
            ),
            pii_client.get("/v1/metrics/summary"),
            pii_client.post("/v1/suggestions", json={**body, "body": ""}),  # a 422 must not echo it either
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 200]
    for answer in answers:
        assert leaks(answer.text) == [], answer.text[:500]
    assert leaks(caplog.text) == []
    for piece in ("JohnSmith", "JANE_DOE", "gmail"):  # not even as an identifier cut out of an address
        assert all(piece not in a.text for a in answers)
    one = answers[0].json()
    # the test can fail: the data was there, and placeholders stand where it was
    shown = " ".join(s["snippet"] + " " + (s["resolution"] or "") for s in one["explanation"]["similar_tickets"])
    assert {"[email]", "[phone]", "[card]", "[iban]", "[name]", "[credential]"} <= set(shown.replace("]", "] ").split())
    assert "[name]" in one["handoff"]["note"]
    assert one["id"] == "P-1"


def test_the_model_stores_no_credential(pii: Pii) -> None:
    router = load_router(pii.settings, "1")
    vocabulary = " ".join(term for _, term in router.lexical.names_)
    # names stay features (masked wherever a key term is shown); credentials never become one
    assert {"password", "token"}.isdisjoint(leaks(vocabulary)) and "ghp_" not in vocabulary
    assert "winter2031x" not in vocabulary and "credential" in vocabulary.split()
    assert leaks(" ".join(map(str, router.index.snippets))) == []
    assert leaks(" ".join(map(str, router.index.resolutions))) == []


def test_every_consumer_masks_alike(pii: Pii, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`escalation predict` and the MLflow pyfunc show what the API shows: masked snippets, terms and reasons."""
    backlog = tmp_path / "backlog.csv"
    pd.read_csv(pii.data).head(30).to_csv(backlog, index=False)
    out = tmp_path / "scored.jsonl"
    args = ["predict", "--data", str(backlog), "--config", str(pii.config), "--output", str(out), "--no-progress"]
    env = {"MLFLOW_TRACKING_URI": pii.settings.tracking_uri, **NAMES}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    scored = out.read_text(encoding="utf-8")
    assert len(scored.splitlines()) == 30 and "[credential]" in scored and "[name]" in scored
    assert leaks(scored) == []

    for name, value in {**env}.items():
        monkeypatch.setenv(name, value)
    model = mlflow.pyfunc.load_model(f"models:/{pii.settings.model_name}/1")
    answer = model.predict(pd.DataFrame({"text": [CONTACT + "I was charged twice and want a refund."]}))
    shown = answer.loc[0, "result_json"]
    assert "[credential]" in shown and "[name]" in shown and leaks(shown) == []


def test_unmasked_text_would_have_been_caught() -> None:
    assert leaks(CONTACT) == ["e-mail", "phone", "card", "iban", "name", "password", "token"]
    assert leaks("4111111111111111 and anna schmidt") == ["card", "name"]
