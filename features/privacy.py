"""Masking of personal data in what the service shows: e-mail addresses, phone, card and IBAN numbers, listed names.

Cards and IBANs are masked only when their check digits hold (Luhn, mod 97), and phone numbers only when they are
written like phone numbers (a leading + or 0, or digits in groups), so order numbers, dates, amounts and error
codes stay readable for the agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# 13-19 digits, optionally in groups separated by one space or dash
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ()./-]{6,}\d(?![\w])")
DATE = re.compile(r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}(?!\d)")
IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
WORD = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    code = candidate.replace(" ", "").upper()
    if not 15 <= len(code) <= 34:
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if luhn_ok(digits) else match.group()


def _iban(match: re.Match[str]) -> str:
    return "[iban]" if iban_ok(match.group()) else match.group()


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    digits = re.sub(r"\D", "", text)
    if not 8 <= len(digits) <= 15 or DATE.match(text) or IP.fullmatch(text):
        return text
    grouped = bool(re.search(r"\d[ ()./-]+\d", text))
    if text.startswith(("+", "00", "(", "0")) or grouped:
        return "[phone]"
    return text


class Masker:
    """Replaces personal data with placeholders; `names` are masked as whole words, case-insensitively."""

    def __init__(self, names: Iterable[str] = ()):
        cleaned = {" ".join(n.split()).lower() for n in names if n and n.strip()}
        self.single = {n for n in cleaned if len(WORD.findall(n)) == 1}
        self.parts = {w for n in cleaned for w in WORD.findall(n)}  # a key term 'schmidt' is still the person
        multi = sorted(cleaned - self.single, key=len, reverse=True)
        spaced = "|".join(r"\s+".join(map(re.escape, n.split())) for n in multi)
        self.multi = re.compile(rf"(?<!\w)(?:{spaced})(?!\w)", re.I) if multi else None

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = EMAIL.sub("[email]", text)
        text = IBAN.sub(_iban, text)
        text = CARD.sub(_card, text)
        text = PHONE.sub(_phone, text)
        if self.multi is not None:
            text = self.multi.sub("[name]", text)
        if self.single:
            text = WORD.sub(lambda m: "[name]" if m.group().lower() in self.single else m.group(), text)
        return text

    def term(self, text: str) -> str:
        """A key term (a word or two out of context): any part of a listed name is masked too."""
        text = self(text)
        if not self.parts:
            return text
        return WORD.sub(lambda m: "[name]" if m.group().lower() in self.parts else m.group(), text)

    def deep(self, value: Any, keep: frozenset[str] = frozenset()) -> Any:
        """Every string inside dicts and lists masked, except the values of keys in `keep` (ids, team names);
        values under the key 'term' are masked as key terms."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {
                k: v if k in keep else self.term(v) if k == "term" and isinstance(v, str) else self.deep(v, keep)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.deep(v, keep) for v in value]
        return value


def read_names(path: str) -> list[str]:
    """Names to mask, one per line ('#' starts a comment); an empty path is no names."""
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as lines:
            return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise OSError(f"names to mask (mask_names_file) cannot be read from {path}: {err}") from err
