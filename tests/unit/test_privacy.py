"""Masking of personal data: what must go, and what an agent needs to keep reading."""

from __future__ import annotations

import pytest

from features.privacy import Masker, iban_ok, luhn_ok

mask = Masker(["Anna Schmidt", "Jörg", "O'Brien"])


@pytest.mark.parametrize(
    ("prefix", "personal", "placeholder"),
    [
        ("write to ", "anna.schmidt+billing@example.co.uk", "[email]"),
        ("call ", "+49 30 1234567", "[phone]"),
        ("call ", "(555) 123-4567", "[phone]"),
        ("call ", "555-123-4567", "[phone]"),
        ("call ", "0171/1234567", "[phone]"),
        ("call ", "0049 89 12345678", "[phone]"),
        ("card ", "4111 1111 1111 1111", "[card]"),
        ("card ", "4111-1111-1111-1111", "[card]"),
        ("card ", "5500005555555559", "[card]"),
        ("IBAN ", "DE89 3704 0044 0532 0130 00", "[iban]"),
        ("IBAN ", "GB82WEST12345698765432", "[iban]"),
        ("signed, ", "Anna  Schmidt", "[name]"),
        ("from ", "jörg", "[name]"),
        ("from ", "o'brien", "[name]"),
    ],
)
def test_personal_data_is_masked(prefix: str, personal: str, placeholder: str) -> None:
    assert mask(f"{prefix}{personal}, thanks") == f"{prefix}{placeholder}, thanks"


@pytest.mark.parametrize(
    "text",
    [
        "order 123456789 failed",
        "on 2026-11-20 10:30 and 20.11.2026",
        "host 10.20.30.40 is down",
        "error E4012 on INC0012345, job_12345678",
        "amount $1,049.00 twice",
        "version 12.3.4.5678",
        "not a card 4111111111111112",
        "Annabel and Jörgen are not on the list",
    ],
)
def test_what_agents_need_is_kept(text: str) -> None:
    assert mask(text) == text


def test_check_digits() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")


def test_deep_keeps_ids_and_team_names() -> None:
    value = {"id": "anna@example.com", "target": "Jörg", "similar": [{"snippet": "mail anna@example.com"}]}
    assert mask.deep(value, frozenset({"id", "target"})) == {
        "id": "anna@example.com",
        "target": "Jörg",
        "similar": [{"snippet": "mail [email]"}],
    }


def test_key_terms_lose_any_part_of_a_listed_name() -> None:
    assert mask.term("schmidt") == "[name]" and mask.term("anna refund") == "[name] refund"
    assert mask("Schmidt's invoice") == "Schmidt's invoice"  # in running text only the whole name is masked
    assert mask.deep({"terms": [{"term": "anna"}]}) == {"terms": [{"term": "[name]"}]}
