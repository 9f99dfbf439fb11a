"""Knowing when a ticket is unlike what the model learned from: tickets of another domain are flagged, fresh tickets
of the sample's own kind are not, and an unfamiliar answer says so in words (API notes, helpdesk note)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.config import load_config
from features.data import to_tickets
from serving.hooks.note import note_for
from serving.schemas import SuggestionOut
from tests.conftest import Trained, ticket
from training.register import load_router
from training.sample_data import generate

IT = Path(__file__).parents[3] / "shared" / "data" / "it_tickets" / "tickets.csv"
OFFICE_IT = [  # nothing like the sample's SaaS support history
    "Laptop does not connect to wifi",
    "The printer on the third floor is jammed again",
    "My monitor flickers when I connect the docking station",
    "Outlook keeps asking for my password on the new desktop",
    "Need a new keyboard, the space bar is broken",
    "The projector in meeting room B shows no signal",
    "VPN client crashes on Windows after the update",
    "Please install AutoCAD on my workstation",
    "The badge reader at the side entrance does not open the door",
    "Phone headset has no sound in Teams calls",
    "Request admin rights to install drivers for the scanner",
    "The shared drive S: is not mapped after login",
    "Toner empty in the printer next to accounting",
    "Mouse cursor freezes every few minutes on my laptop",
    "New starter needs a laptop and an account by Monday",
    "The coffee machine display shows error E42",
    "Blue screen when the laptop wakes from sleep",
    "Cannot print double-sided from Excel",
    "Second monitor is not detected over HDMI",
    "Wi-Fi in the warehouse drops every hour",
]


def unfamiliar_share(trained: Trained, texts: list[str]) -> float:
    router = load_router(trained.settings, trained.result.version)
    frame = pd.DataFrame({"id": [f"U-{i}" for i in range(len(texts))], "text": texts})
    answers = router.predict(frame, top_k=1, n_similar=0)
    assert all(a.familiarity is not None for a in answers)
    return float(np.mean([a.familiarity.unfamiliar for a in answers if a.familiarity is not None]))


def test_tickets_of_another_domain_are_flagged(trained: Trained) -> None:
    assert unfamiliar_share(trained, OFFICE_IT) >= 0.8


@pytest.mark.skipif(not IT.exists(), reason=f"no shared IT tickets at {IT}")
def test_the_real_it_tickets_are_flagged_against_the_samples_model(trained: Trained) -> None:
    it = pd.read_csv(IT, dtype=str, keep_default_na=False).sample(300, random_state=3)
    texts = (it["Short description"] + "\n" + it["Description"]).tolist()
    assert unfamiliar_share(trained, texts) >= 0.8


def test_fresh_tickets_of_the_samples_own_kind_are_not(trained: Trained) -> None:
    fresh = generate(300, seed=99)  # another seed than the model's training export
    tickets = to_tickets(fresh, load_config(trained.config))
    assert unfamiliar_share(trained, tickets["text"].tolist()) <= 0.1


def test_an_unfamiliar_answer_says_so_in_words(client: TestClient, trained: Trained) -> None:
    body = client.post("/v1/suggestions", json=ticket(subject="Laptop", body="Laptop does not connect to wifi")).json()
    known = body["familiarity"]
    # an escalate at 0.8 for a ticket like nothing the model learned from would be a confident guess
    assert (body["escalation"]["decision"], body["routing"]["decision"]) == ("uncertain", "uncertain")
    assert body["routing"]["threshold_scope"] == "unfamiliar"
    router = load_router(trained.settings, trained.result.version)
    assert known["unfamiliar"] and known["usual"] == router.usual_similarity > known["nearest_similarity"]
    assert body["notes"] == [
        f"This ticket is unlike the tickets the model learned from (nearest {known['nearest_similarity']:.2f} similar; "
        f"usually at least {known['usual']:.2f}): the suggestion may be a guess, check it yourself."
    ]
    assert f"Note: {body['notes'][0]}" in note_for(SuggestionOut(**body), "T-test-1", "escalation-").splitlines()
    familiar = client.post("/v1/suggestions", json=ticket()).json()
    assert not familiar["familiarity"]["unfamiliar"] and familiar["notes"] == []
    assert familiar["escalation"]["decision"] == "escalate"  # the model's own answer where it knows the kind
