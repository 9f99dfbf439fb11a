"""Behavioural tests on the trained model: minimum functionality, invariance and direction."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features.model.present import present
from features.model.router import EscalationRouter
from features.text.privacy import Masker
from tests.conftest import Trained
from training.register import load_router


@pytest.fixture(scope="module")
def router(trained: Trained) -> EscalationRouter:
    return load_router(trained.settings, trained.result.version)


def _one(router: EscalationRouter, text: str, tier: str = "standard", channel: str = "email") -> dict:
    frame = pd.DataFrame({"id": ["t"], "text": [text], "channel": [channel], "customer_tier": [tier]})
    return present(router.predict(frame, top_k=3, n_similar=3)[0], Masker())


def _prob(result: dict, target: str) -> float:
    return next((s["probability"] for s in result["suggestions"] if s["target"] == target), 0.0)


@pytest.mark.parametrize(
    ("text", "team"),
    [
        ("I was charged twice for the Business plan this month. Please refund one payment.", "billing"),
        ("The dashboard shows error 500 and the app crashes when I open a project.", "engineering"),
        ("Someone logged into my account from another country, please secure it.", "security"),
        ("Our Salesforce integration fails with INVALID_SESSION_ID since Monday.", "integrations"),
    ],
)
def test_obvious_tickets_go_to_the_obvious_team(router: EscalationRouter, text: str, team: str) -> None:
    result = _one(router, text)
    assert result["suggestions"][0]["target"] == team
    assert result["escalation"]["decision"] == "escalate"


def test_password_reset_stays_with_the_first_line(router: EscalationRouter) -> None:
    result = _one(router, "I forgot my password and the reset email never arrived.")
    assert result["escalation"]["decision"] == "resolve_first"
    assert result["explanation"]["similar_tickets"][0]["target"] == "service-desk"
    assert result["explanation"]["similar_tickets"][0]["resolution"]


def test_customer_name_does_not_change_the_team(router: EscalationRouter) -> None:
    base = "I was charged twice for the Team plan. Please refund one. Regards from {name} at Acme"
    teams = {
        _one(router, base.format(name=n))["suggestions"][0]["target"]
        for n in ("Anna Schmidt", "Kenji Sato", "Omar Haddad")
    }
    assert teams == {"billing"}


@pytest.mark.parametrize("rules", [True, False], ids=["with-rules", "model-alone"])
def test_legal_threat_raises_hierarchical_escalation(router: EscalationRouter, rules: bool) -> None:
    """With the rules the `legal-threat` rule answers; without them, what the model learned from the tickets."""
    model = router if rules else replace(router, rules=[])
    text = "I was charged twice for the Team plan this month. Please refund one."
    before = _one(model, text)
    after = _one(model, text + " If this is not fixed I will take legal action, my lawyer will be in touch.")
    assert [r["name"] for r in after["explanation"]["rules"]] == (["legal-threat"] if rules else [])
    assert _prob(after, "support-manager") > _prob(before, "support-manager") + 0.2
    assert after["suggestions"][0]["kind"] == "hierarchical"


def test_key_terms_name_the_words_that_pushed(router: EscalationRouter) -> None:
    result = _one(router, "Our webhook endpoint stopped receiving events, the delivery log shows 429 errors.")
    terms = {(k["term"], k["towards"]) for k in result["explanation"]["key_terms"]}
    assert any("webhook" in t for t, towards in terms if towards == "integrations"), terms


def test_key_terms_do_not_repeat_words(router: EscalationRouter) -> None:
    result = _one(router, "This is the third time I am contacting you about the double charge. Still no answer.")
    for towards in {k["towards"] for k in result["explanation"]["key_terms"]}:
        words = [w for k in result["explanation"]["key_terms"] if k["towards"] == towards for w in k["term"].split()]
        content = [w for w in words if w not in {"i", "am", "the", "you", "is", "no"}]
        assert len(content) == len(set(content)), (towards, words)


@pytest.mark.parametrize(
    "variant",
    [
        "Hello team, I was charged twice for the Team plan, invoice INV-55555. Please refund one.",
        "Dear support, I was charged twice for the Team plan, invoice INV-10101. Please refund one.",
        "Hi, I was charged twice for the Team plan, invoice INV-98765. Please refund one.",
    ],
)
def test_greeting_and_ticket_number_do_not_change_the_team(router: EscalationRouter, variant: str) -> None:
    assert _one(router, variant)["suggestions"][0]["target"] == "billing"


def test_repeated_contact_and_manager_request_raise_hierarchical(router: EscalationRouter) -> None:
    text = "The dashboard shows error 500 when I open project P-123."
    before = _one(router, text)
    after = _one(router, text + " This is the third time I am contacting you. I want to speak to your manager.")
    assert _prob(after, "support-manager") > _prob(before, "support-manager") + 0.2


@pytest.mark.parametrize(
    "text",
    [
        "The dashboard shows error 500 when I open project P-123.",
        "Our Salesforce integration fails with INVALID_SESSION_ID since Monday.",
    ],
)
def test_asking_for_the_manager_alone_raises_hierarchical(router: EscalationRouter, text: str) -> None:
    before = _one(router, text)
    after = _one(router, text + " I want to speak to your manager.")
    # direction, with a margin: ~2% of the 900 training tickets carry a request for a manager
    assert _prob(after, "support-manager") > _prob(before, "support-manager") + 0.1
    assert after["escalation"]["probability"] >= before["escalation"]["probability"] - 0.01


def test_legal_threat_rule_ranks_the_manager_first_and_says_why(router: EscalationRouter) -> None:
    result = _one(router, "Please update the company name on our profile. Otherwise my lawyer will be in touch.")
    assert result["suggestions"][0]["target"] == "support-manager"
    assert result["suggestions"][0]["rule"] == "legal-threat"
    assert result["escalation"]["decision"] == "escalate" and result["escalation"]["rule"] == "legal-threat"
    assert result["routing"]["threshold_scope"] == "rule" and result["routing"]["target"] == "support-manager"
    assert result["explanation"]["rules"] == [
        {
            "name": "legal-threat",
            "target": "support-manager",
            "kind": "hierarchical",
            "action": "first",
            "reason": "text matched 'lawyer'",
        }
    ]


def test_outage_rule_adds_engineering(router: EscalationRouter) -> None:
    result = _one(router, "I was charged twice for the Team plan. Also, is there an outage? Please refund one.")
    assert "engineering" in [s["target"] for s in result["suggestions"]]
    assert [r["name"] for r in result["explanation"]["rules"]] == ["outage"]
    plain = _one(router, "I was charged twice for the Team plan. Please refund one.")
    assert plain["explanation"]["rules"] == []


@pytest.fixture(scope="module")
def answers(router: EscalationRouter, trained: Trained) -> list[dict]:
    """The router's answers to every ticket of the sample export, as agents would see them."""
    from features.config import load_config
    from features.data import read_export, to_tickets

    tickets = to_tickets(read_export(trained.data), load_config(trained.config))
    return [present(r, Masker()) for r in router.predict(tickets, top_k=3, n_similar=3)]


def test_routing_never_contradicts_the_escalation_answer(answers: list[dict]) -> None:
    told = [a["routing"] for a in answers if a["escalation"]["decision"] == "resolve_first"]
    assert len(told) > 100  # the first line keeps about half the sample
    assert all(r["decision"] == "uncertain" for r in told)
    assert any(r["threshold_scope"] == "escalation" for r in told)  # some would have been routed on P(target) alone
    routed = [a["routing"] for a in answers if a["routing"]["decision"] == "route"]
    assert routed and all(r["probability"] >= 0.5 for r in routed if r["threshold_scope"] != "rule")


def test_similar_tickets_never_read_the_same(answers: list[dict]) -> None:
    for answer in answers:
        shown = [" ".join(s["snippet"].lower().split()) for s in answer["explanation"]["similar_tickets"]]
        assert len(shown) == len(set(shown)), shown
    assert sum(len(a["explanation"]["similar_tickets"]) == 3 for a in answers) > 0.9 * len(answers)


def test_key_terms_leave_out_words_that_mean_nothing_alone(answers: list[dict]) -> None:
    from features.model.router import UNINFORMATIVE

    for answer in answers:
        for term in answer["explanation"]["key_terms"]:
            if term["field"] == "text":
                assert not set(term["term"].split()) <= UNINFORMATIVE, term


@pytest.mark.parametrize(
    "text",
    [
        "Cannot log in to VPN: the client says certificate expired",
        "The new laptop does not connect to the office wifi",
        "My printer shows a paper jam error",
    ],
)
def test_a_ticket_outside_the_templates_is_not_sent_up_the_hierarchy(router: EscalationRouter, text: str) -> None:
    result = _one(router, text)
    assert not (result["routing"]["decision"] == "route" and result["routing"]["target"] == "support-manager")
