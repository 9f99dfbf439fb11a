"""Masking of personal data in what the service shows: e-mail addresses, phone, card and IBAN numbers, listed names.

Cards and IBANs are masked only when their check digits hold (Luhn, mod 97), and phone numbers only when they are
written like phone numbers (a leading + or 0, or digits in groups), so order numbers, dates, amounts and error
codes stay readable for the agent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from features.settings import Settings

# Every repeat is bounded, so a hostile text ("1." ten thousand times) costs linear time, not quadratic.
EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}", re.UNICODE)
# 13-19 digits, optionally in groups separated by one space or dash
CARD = re.compile(r"(?<![\w-])\d(?:[ .-]?\d){12,18}(?![\w-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.IGNORECASE)
PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ()./-]{6,24}\d(?![\w])")
DATE = re.compile(r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}(?!\d)")
WORD = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)
_DIGIT, _ALNUM = re.compile(r"\d"), re.compile(r"[A-Za-z0-9]")


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
    if not 15 <= len(code) <= 34 or not code[:2].isalpha() or not code[2:4].isdigit():
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _longest_prefix(
    text: str, accept: re.Pattern[str], ok: Callable[[str], bool], shortest: int, placeholder: str
) -> str:
    """`placeholder` for the longest start of `text` whose accepted characters pass `ok` (a card number followed
    by its expiry, an IBAN followed by its currency), the rest kept; `text` as it was when none does."""
    positions = [i for i, ch in enumerate(text) if accept.fullmatch(ch)]
    chars = "".join(text[i] for i in positions)
    for n in range(len(chars), shortest - 1, -1):
        if ok(chars[:n]):
            return placeholder + text[positions[n - 1] + 1 :]
    return text


def _card(match: re.Match[str]) -> str:
    return _longest_prefix(match.group(), _DIGIT, luhn_ok, 13, "[card]")


def _iban(match: re.Match[str]) -> str:
    return _longest_prefix(match.group(), _ALNUM, iban_ok, 15, "[iban]")


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    digits = re.sub(r"\D", "", text)
    groups = re.findall(r"\d+", text)
    # a date (and an hour after it) is not a phone number; five groups of two digits are (06.12.34.56.78)
    dated = DATE.match(text) and (len(groups) <= 3 or (len(groups) == 4 and len(groups[3]) <= 2))
    dotted = set(re.findall(r"\D", text)) == {"."} and len(groups) <= 4  # a version or an address, not a phone
    if not 8 <= len(digits) <= 15 or dated or dotted:  # dotted covers IPv4 addresses too
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
            text = WORD.sub(self._single, text)
        return text

    def _single(self, match: re.Match[str]) -> str:
        word = match.group()
        if word.lower() in self.single:
            return "[name]"
        head, _, tail = word.partition("'")  # Schmidt's
        return f"[name]'{tail}" if tail and head.lower() in self.single else word

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


def masker_for(settings: Settings) -> Masker:
    """The masker for the names the settings list (`mask_names` and `mask_names_file`); a bad file is an OSError."""
    return Masker([*settings.mask_names, *read_names(settings.mask_names_file)])
