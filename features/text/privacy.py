"""Masking of personal data in what the service shows: e-mail addresses, phone, card and IBAN numbers, listed names,
and credentials (a password, PIN, token, secret or API key where the text says what it is, and tokens of
well-known shapes).

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
# Tokens whose shape says what they are, wherever they stand: GitHub, GitLab, Slack, Stripe, Google and AWS keys,
# JSON web tokens, bearer credentials and private key blocks.
TOKEN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{30,255}|glpat-[A-Za-z0-9_-]{20,64}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,255}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,255}|AIza[A-Za-z0-9_-]{35}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}|eyJ[A-Za-z0-9_-]{8,2048}\.[A-Za-z0-9_-]{8,2048}\.[A-Za-z0-9_-]{8,2048})"
    r"|(?<=\bBearer )[A-Za-z0-9._~+/-]{16,2048}=*"
    r"|-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----.{0,10000}?-----END [A-Z ]{0,40}PRIVATE KEY-----",
    re.DOTALL,
)
# "password: X", "reset my pw to X", "Passwort ist X", "API key = X", "PIN 1234": the word that names a credential,
# a separator, then the value (up to white space; a full stop or comma after it is kept).
_NAMED = r"pass(?:word|wort|code|phrase)?|pwd?|kennwort|pin(?:[ -]?code)?|token|secret|api[ _-]?key|access[ _-]?key"
CREDENTIAL = re.compile(
    rf"\b(?P<name>{_NAMED})(?P<sep>\s{{0,3}}(?:[:=]|\bis\b|\bto\b|\bist\b|\blautet\b|\bwas\b|\bauf\b)\s{{0,3}}"
    r"(?:[:=]\s{0,3})?|\s{1,3}(?=\d{4,8}\b))(?P<value>[^\s,;]{1,256}?)(?=[.,;:!?)]?(?:\s|$))",
    re.IGNORECASE,
)
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


def _secret_like(value: str, name: str) -> bool:
    """Whether a value after a credential's name looks like one: a PIN is digits; anything else holds a digit or a
    sign, or is long, so 'password is expired' or 'token to the team' stay readable."""
    if name.lower().startswith("pin"):
        return value.isdigit() and 4 <= len(value) <= 8
    if value.startswith("[") and value.endswith("]"):  # already a placeholder
        return False
    has_digit_or_sign = any(ch.isdigit() or not ch.isalnum() for ch in value)
    return has_digit_or_sign or len(value) >= 12 or (value[1:] != value[1:].lower() and len(value) >= 6)


def _credential(match: re.Match[str]) -> str:
    if not _secret_like(match.group("value"), match.group("name")):
        return match.group()
    return f"{match.group('name')}{match.group('sep')}[credential]"


def mask_credentials(text: str) -> str:
    """Credentials replaced by '[credential]' (what training feeds its vocabulary, and part of every `Masker`)."""
    if not text:
        return text
    return CREDENTIAL.sub(_credential, TOKEN.sub("[credential]", text))


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
        text = mask_credentials(text)
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
