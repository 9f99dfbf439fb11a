"""The handoff note: what the next person needs so the customer never repeats themselves.

Extractive and rule-based on purpose: every line of the note is a sentence or a value the customer or agent
actually wrote, so nothing is invented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Every repeat is bounded: a hostile message ("1." ten thousand times) must not make a regex quadratic.
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
PROBLEM = re.compile(
    r"\b(error|fail\w*|crash\w*|broken|bug|not (?:work\w*|load\w*|receiv\w*|arriv\w*)|doesn'?t|don'?t|can'?t|cannot|"
    r"unable|wrong|missing|lost|stuck|slow|timeout|timed out|down|outage|charged|refund\w*|invoice|locked|"
    r"blocked|denied|declined|hacked|suspicious|urgent|asap)\b",
    re.IGNORECASE,
)
# Why a ticket goes up the hierarchy: always worth carrying into the note.
ESCALATION_CUE = re.compile(
    r"\b(lawyer|legal|court|sue|complain\w*|dispute\w*|(?:second|third|fourth|fifth) time|\w+ times already|"
    r"manager|supervisor|someone (?:senior|in charge)|unacceptable|cancel\w*|not renew\w*)\b",
    re.IGNORECASE,
)
TRIED = re.compile(
    r"\b(tried|try(?:ing)?|already|restart\w*|reboot\w*|reinstall\w*|clear\w* (?:the |my )?(?:cache|cookies)|"
    r"reset\w*|logged out|updated|upgraded|followed|re-?ran|workaround|did that)\b",
    re.IGNORECASE,
)
SMALL_TALK = re.compile(
    r"^(hi|hello|dear|good (?:morning|afternoon|evening)|thanks?|thank you|best|kind regards|regards|cheers|"
    r"mit freundlichen|hallo)\b[\s,!.]*",
    re.IGNORECASE,
)
IDENTIFIERS: dict[str, re.Pattern[str]] = {
    "reference": re.compile(
        r"\b(?:INV|ORD|PO|T|TKT|CASE|REQ|INC)-?\d{3,20}\b|\b(?:order|invoice|ticket|case)\s{0,3}(?:no\.?|number|#)?\s{0,3}:?\s{0,3}#?\d{3,20}\b",
        re.IGNORECASE,
    ),
    "error_code": re.compile(
        r"\b(?:error|code|status|http)\s{0,3}:?\s{0,3}[A-Z]?\d{3,5}\b|\b[A-Z]\d{3,5}\b|\b[A-Z][A-Z0-9]{1,40}(?:_[A-Z0-9]{1,40}){1,8}\b",
        re.IGNORECASE,
    ),
    "amount": re.compile(
        r"(?:[$€£]\s?\d[\d,.]{0,20}\d|\b\d[\d,.]{0,20}\s?(?:USD|EUR|GBP|CHF|dollars|euros?)\b)", re.IGNORECASE
    ),
    "date": re.compile(
        r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}[./]\d{1,2}[./](?:\d{2,4})?(?=\W|$)|"
        r"\b(?:\d{1,2}\s{1,3})?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}\.?(?:\s{1,3}\d{1,2})?(?:,?\s{1,3}\d{4})?\b",
    ),
    "product": re.compile(
        r"\b[A-Z][\w-]{0,40}\s(?:plan|app|integration|API|portal|dashboard)\b|\bversion\s\d{1,6}(?:\.\d{1,6}){1,4}\b|"
        r"\b[A-Z][a-z]{1,30}[A-Z]\w{1,30}\b"
    ),
}


@dataclass
class Message:
    author: str
    text: str
    time: datetime | None = None


@dataclass
class Handoff:
    summary: list[str]
    identifiers: dict[str, list[str]]
    tried: list[str]
    customer_messages: int
    waiting_since: datetime | None
    waited_hours: float | None
    note: str = field(default="")


def _sentences(text: str) -> list[str]:
    out = []
    for part in _SENTENCE.split(text):
        part = SMALL_TALK.sub("", part.strip()).strip()
        if len(part) >= 8 and re.search(r"[^\W\d_]{3,}", part):
            out.append(part)
    return out


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    return [v for v in values if not (v.lower() in seen or seen.add(v.lower()))]  # type: ignore[func-returns-value]


def _weight(sentence: str) -> float:
    return (
        len(PROBLEM.findall(sentence))
        + 2 * len(ESCALATION_CUE.findall(sentence))
        + 0.5 * bool(IDENTIFIERS["error_code"].search(sentence))
    )


def _asked(subject: str, body: str, messages: list[Message], limit: int = 300) -> list[str]:
    """What was asked, as written, when no sentence is long enough to count as one ('VPN', 'Refund?')."""
    written = [" ".join(t.split()) for t in (subject, body, *(m.text for m in messages))]
    first = next((t for t in written if t), "")
    return [first[:limit]] if first else []


def identifiers(text: str) -> dict[str, list[str]]:
    """Order/invoice numbers, error codes, amounts, dates and product names found in the text."""
    found = {}
    for kind, pattern in IDENTIFIERS.items():
        values = _unique([m.group(0).strip(" ,.") for m in pattern.finditer(text)])
        if values:
            found[kind] = values[:10]
    return found


def is_customer(author: str) -> bool:
    return author.strip().lower() not in {"agent", "support", "staff", "operator", "bot"}


def build_handoff(
    subject: str, body: str, messages: list[Message], now: datetime | None = None, max_summary: int = 4
) -> Handoff:
    """Summary sentences (problem first, in the order written), identifiers, what was tried and the wait."""
    now = now or datetime.now(UTC)
    customer = [m for m in messages if is_customer(m.author)]
    opening = _sentences(f"{subject}.\n{body}")
    said = [(m, s) for m in messages for s in _sentences(m.text)]
    candidates = opening + [s for m, s in said if is_customer(m.author)]
    scored = [(_weight(s), i, s) for i, s in enumerate(candidates)]
    best = sorted((x for x in scored if x[0] > 0), key=lambda x: (-x[0], x[1]))[:max_summary]
    summary = [s for _, _, s in sorted(best, key=lambda x: x[1])] or candidates[:1] or _asked(subject, body, messages)
    tried = _unique(
        [f"{'customer' if is_customer(m.author) else m.author or 'agent'}: {s}" for m, s in said if TRIED.search(s)]
    )[:5]
    times = [m.time if m.time.tzinfo else m.time.replace(tzinfo=UTC) for m in customer if m.time is not None]
    since = min(times) if times else None
    waited = round((now - since).total_seconds() / 3600, 1) if since else None
    found = identifiers("\n".join([subject, body, *(m.text for m in messages)]))
    handoff = Handoff(summary, found, tried, len(customer), since, waited)
    handoff.note = render(handoff)
    return handoff


def render(h: Handoff) -> str:
    """The note as plain text, ready to paste into the escalation."""
    lines = ["Problem: " + " ".join(h.summary)]
    if h.identifiers:
        lines.append("Details: " + "; ".join(f"{k.replace('_', ' ')} {', '.join(v)}" for k, v in h.identifiers.items()))
    if h.tried:
        lines.append("Already tried: " + " | ".join(h.tried))
    if h.waited_hours is not None:
        lines.append(
            f"Customer waiting {h.waited_hours:g} h since {h.waiting_since:%Y-%m-%d %H:%M} UTC, "
            f"{h.customer_messages} message(s)."
        )
    elif h.customer_messages:
        lines.append(f"Customer has written {h.customer_messages} message(s).")
    return "\n".join(lines)
