from datetime import UTC, datetime

import pytest

from serving.handoff import Message, build_handoff, identifiers

CONVERSATION = [
    Message(
        "customer",
        "This is the third time I am contacting you. I already tried the refund form on 2026-11-18 and it says "
        "error E4012.",
        datetime(2026, 11, 20, 9, tzinfo=UTC),
    ),
    Message("agent", "Could you clear your browser cache and try again?", datetime(2026, 11, 20, 10, tzinfo=UTC)),
    Message("customer", "Did that, still broken. My lawyer will be in touch.", datetime(2026, 11, 21, 8, tzinfo=UTC)),
]


def test_handoff_carries_problem_identifiers_attempts_and_wait() -> None:
    h = build_handoff(
        "Charged twice",
        "Hi, I was charged twice for the Team plan this month, $49.00 each time (invoice INV-55555). Please refund.",
        CONVERSATION,
        now=datetime(2026, 11, 22, 9, tzinfo=UTC),
    )
    assert any("charged twice for the Team plan" in s for s in h.summary)
    assert any("lawyer" in s for s in h.summary)
    assert not any(s.lower().startswith("hi") for s in h.summary)
    assert h.identifiers["reference"] == ["INV-55555"] and h.identifiers["amount"] == ["$49.00"]
    assert "2026-11-18" in h.identifiers["date"] and any("E4012" in e for e in h.identifiers["error_code"])
    assert "Team plan" in h.identifiers["product"]
    assert any(t.startswith("agent: Could you clear your browser cache") for t in h.tried)
    assert any(t.startswith("customer: Did that, still broken") for t in h.tried)
    assert h.customer_messages == 2 and h.waited_hours == 48.0
    assert h.note.startswith("Problem: ") and "Already tried:" in h.note and "waiting 48 h" in h.note


def test_no_times_no_wait() -> None:
    h = build_handoff("", "", [Message("customer", "The app crashes on start, version 4.2.1.")])
    assert h.waited_hours is None and h.customer_messages == 1
    assert h.summary == ["The app crashes on start, version 4.2.1."]
    assert "version 4.2.1" in h.identifiers["product"]


def test_subject_and_body_alone_give_a_note() -> None:
    h = build_handoff("Charged twice", "Invoice INV-55555 shows $49.00 twice. Can you refund one?", [])
    assert h.note == (
        "Problem: Charged twice. Invoice INV-55555 shows $49.00 twice. Can you refund one?\n"
        "Details: reference INV-55555; amount $49.00"
    )
    assert (h.tried, h.customer_messages, h.waiting_since) == ([], 0, None)
    assert build_handoff("VPN", "", []).note == "Problem: VPN"  # no sentence long enough: what was asked, as written


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("Our Salesforce sync fails with INVALID_SESSION_ID", "error_code", "INVALID_SESSION_ID"),
        ("order #123456 never arrived", "reference", "order #123456"),
        ("ticket T-104233 was closed", "reference", "T-104233"),
        ("we paid 1,200.00 EUR", "amount", "1,200.00 EUR"),
        ("since March 3, 2026", "date", "March 3, 2026"),
    ],
)
def test_identifiers(text: str, kind: str, value: str) -> None:
    assert value in identifiers(text).get(kind, [])


def test_hostile_messages_cost_linear_time() -> None:
    import time

    for hostile in ("error " + "1." * 9995 + "x", "1," * 10_000, "A_" * 10_000, "Jan " * 5000):
        started = time.perf_counter()
        build_handoff("subject", hostile, [Message("customer", hostile)])
        assert time.perf_counter() - started < 2.0  # a DoS guard, not a speed goal: this took 9.4 s before
