"""Text cleaning for helpdesk exports: CR artefacts, mojibake, mail headers, quoted replies and signatures."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import ftfy

# Which cleaning made a text: a model records it with the hashes of the texts it trained on, so a later run knows
# whether its own cleaned texts can be matched against them. Change it whenever what clean_texts returns changes
# (tests/unit/test_clean.py fails until it is changed).
CLEANING_VERSION = "1"

_CR_ARTEFACT = re.compile(r"_x000D_|\r\n?")
_HEADER_LINE = re.compile(
    r"^\s*(received from|from|sent|to|cc|bcc|subject|date|von|gesendet|an|betreff)\s*:.*$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTE_START = re.compile(
    r"^\s*(-{2,}\s*original message\s*-{2,}|on .{3,80} wrote:|am .{3,80} schrieb .{0,80}:)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_SIGNOFF = re.compile(
    r"^\s*(--\s*|best regards,?|kind regards,?|regards,?|best,?|thanks,?|thank you,?|cheers,?|"
    r"sincerely,?|mit freundlichen gr(ü|ue)(ß|ss)en,?|viele gr(ü|ue)(ß|ss)e,?|sent from my \w+.*)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_BLANKS = re.compile(r"[ \t\u00a0]+")
_NEWLINES = re.compile(r"\n{2,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """Control characters (but tab and newlines) as spaces and lone surrogates as U+FFFD: safe to store and show."""
    return _UNPRINTABLE.sub(lambda m: "\ufffd" if m.group() >= "\ud800" else " ", text)


def clean_text(text: str | None) -> str:
    """One ticket's text without export noise; keeps the words that carry meaning."""
    if not text:
        return ""
    text = ftfy.fix_text(_CONTROL.sub(" ", _CR_ARTEFACT.sub("\n", str(text))))
    quote = _QUOTE_START.search(text)
    if quote:
        text = text[: quote.start()]
    text = _QUOTED_LINE.sub("", text)
    text = _HEADER_LINE.sub("", text)
    signoff = _SIGNOFF.search(text)
    # A sign-off only ends the message when it stands in the latter part; early "thanks," opens some.
    if signoff and signoff.start() > len(text) * 0.4:
        text = text[: signoff.start()]
    text = _BLANKS.sub(" ", text)
    text = _NEWLINES.sub("\n", "\n".join(line.strip() for line in text.split("\n")))
    return text.strip()


def join_parts(parts: Iterable[object]) -> str:
    """Join a ticket's text fields (subject, body, messages) into one cleaned text."""
    cleaned = (clean_text(p if isinstance(p, str) else None) for p in parts)
    return "\n".join(c for c in cleaned if c)


def clean_texts(columns: Sequence[Sequence[object]]) -> list[str]:
    """Row-wise join of several text columns (each a sequence of the same length)."""
    return [join_parts(row) for row in zip(*columns, strict=True)]


def snippet(text: str, limit: int = 200) -> str:
    """A one-line preview of a cleaned text, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0]
    return cut + " …"
