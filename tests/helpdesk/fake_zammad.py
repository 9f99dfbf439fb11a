"""A fake Zammad read API: a real HTTP server on loopback serving an instance's history in the shapes of Zammad's API
documentation (ticket search with `expand=true`, ticket history records, articles by ticket, groups, user search),
paged, behind a token, with failures the test asks for.

The instance is built from paths the test knows: first line only; first line -> Billing; first line -> Engineering ->
back to first line to close; first line -> Billing -> the team lead (an owner); HTML articles; still open; deleted
(the search index still lists it, its history is gone). Every text an agent could not have had before the first hop
carries `LEAK`, so a test can prove none reaches training.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpdesk.fake_api import FakeReadAPI
from tests.helpdesk.fake_zendesk import ASKS, PER_KIND

TOKEN = "zm-read-token"
GROUPS = {"1": "Support", "2": "Billing", "3": "Engineering", "4": "Accounts"}
STATES = {"new": 1, "open": 2, "closed": 4, "merged": 5}
LEAD_ID, LEAD_EMAIL, AGENT_ID = "900", "lead@example.com", "800"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RANGE = re.compile(r"^updated_at:\[(\S+) TO (\S+)\]$")


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Ticket:
    id: int
    kind: str  # the path it was built with: first_line | billing | back | lead | html | open | deleted
    target: str  # the label the rule must give ("" for open and deleted)
    path: list[str]
    title: str
    state: str
    created: datetime
    updated: datetime
    group_id: str = "1"
    owner_id: str = "1"  # Zammad's "-": nobody
    customer_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    articles: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        """The ticket as `GET /api/v1/tickets/{id}?expand=true` and the expanded search show it."""
        return {
            "id": self.id,
            "group_id": int(self.group_id),
            "priority_id": 3 if self.id % 3 == 0 else 2,
            "state_id": STATES[self.state],
            "organization_id": None,
            "number": str(31000 + self.id),
            "title": self.title,
            "owner_id": int(self.owner_id),
            "customer_id": int(self.customer_id),
            "note": None,
            "article_count": len(self.articles),
            "create_article_type_id": 1 if self.id % 2 else 11,
            "create_article_sender_id": 2,
            "updated_by_id": int(AGENT_ID),
            "created_by_id": int(self.customer_id),
            "created_at": stamp(self.created),
            "updated_at": stamp(self.updated),
            "article_ids": [a["id"] for a in self.articles],
            "group": GROUPS[self.group_id],
            "state": self.state,
            "priority": "3 high" if self.id % 3 == 0 else "2 normal",
            "owner": "lead@example.com" if self.owner_id == LEAD_ID else "-",
            "customer": f"customer{self.customer_id}@example.org",
            "create_article_type": "email" if self.id % 2 else "web",
            "create_article_sender": "Customer",
        }


class Instance:
    """The tickets of one fake Zammad; the same seed builds the same instance."""

    def __init__(self, per_kind: dict[str, int] | None = None, seed: int = 3):
        counts = per_kind or PER_KIND
        self.rng = random.Random(seed)
        self.tickets: dict[int, Ticket] = {}
        self.record_id = self.article_id = 0
        n = 0
        for kind, count in counts.items():
            for _ in range(count):
                n += 1
                self._build(1000 + n, kind, START + timedelta(hours=3 * n))

    def record(self, t: Ticket, at: datetime, attribute: str, old: Any, new: Any, by: str = AGENT_ID) -> None:
        """A history record as `GET /api/v1/ticket_history/{id}` lists it: the ids and the names at the time."""
        names: dict[str, Any] = {
            "group": GROUPS,
            "owner": {"1": "-", LEAD_ID: "Lea Lead"},
            "state": {str(v): k for k, v in STATES.items()},
        }[attribute]
        self.record_id += 1
        t.history.append(
            {
                "id": self.record_id,
                "o_id": t.id,
                "type": "updated",
                "object": "Ticket",
                "attribute": attribute,
                "id_from": int(old),
                "id_to": int(new),
                "value_from": names[str(old)],
                "value_to": names[str(new)],
                "created_by_id": int(by),
                "created_at": stamp(at),
            }
        )
        t.updated = max(t.updated, at)

    def article(
        self, t: Ticket, at: datetime, body: str, sender: str, internal: bool = False, html: bool = False
    ) -> None:
        """An article as `GET /api/v1/ticket_articles/by_ticket/{id}` lists it, and its history record."""
        self.article_id += 1
        author = t.customer_id if sender == "Customer" else ("1" if sender == "System" else AGENT_ID)
        t.articles.append(
            {
                "id": self.article_id,
                "ticket_id": t.id,
                "type_id": 10 if internal else 1,
                "sender_id": {"Agent": 1, "Customer": 2, "System": 3}[sender],
                "from": f"customer{t.customer_id}@example.org"
                if sender == "Customer"
                else "Support <help@example.com>",
                "to": None,
                "subject": None,
                "content_type": "text/html" if html else "text/plain",
                "body": body,
                "internal": internal,
                "preferences": {},
                "created_by_id": int(author),
                "updated_by_id": int(author),
                "created_at": stamp(at),
                "updated_at": stamp(at),
                "attachments": [],
                "type": "note" if internal else "email",
                "sender": sender,
                "created_by": f"customer{t.customer_id}@example.org" if sender == "Customer" else "agent@example.com",
            }
        )
        self.record_id += 1
        t.history.append(
            {
                "id": self.record_id,
                "o_id": self.article_id,
                "type": "created",
                "object": "Ticket::Article",
                "related_o_id": t.id,
                "related_object": "Ticket",
                "created_by_id": int(author),
                "created_at": stamp(at),
            }
        )
        t.updated = max(t.updated, at)

    def _build(self, tid: int, kind: str, at: datetime) -> None:
        customer = str(50_000 + tid)
        topic = {"first_line": "Support", "billing": "Billing", "back": "Engineering", "lead": "team-lead"}.get(
            kind, "Billing" if kind == "html" else self.rng.choice(["Support", "Billing"])
        )
        ask = self.rng.choice(ASKS[topic])
        extra = self.rng.choice(["Thanks.", "Kind regards", "Ticket ref " + str(tid), "Please hurry.", ""])
        t = Ticket(tid, kind, "", [], ask.split(".")[0][:60], "new", at, at, customer_id=customer)
        self.record_id += 1
        t.history.append(
            {"id": self.record_id, "o_id": tid, "type": "created", "object": "Ticket", "created_by_id": int(customer)}
            | {"created_at": stamp(at)}
        )
        if kind == "html":
            self.article(t, at, f"<p>{ask}</p><ul><li>{extra or 'no extra'}</li></ul>", "Customer", html=True)
        else:
            self.article(t, at, f"{ask} {extra}".strip(), "Customer")
        self.article(t, at + timedelta(minutes=1), "LEAK auto-reply: we received your request", "System")
        self.article(
            t, at + timedelta(minutes=10), f"Some more detail on ticket {tid}: it still happens today.", "Customer"
        )
        self.record(t, at + timedelta(minutes=20), "state", STATES["new"], STATES["open"])
        t.state = "open"
        hop = at + timedelta(minutes=30)
        if kind == "first_line":
            t.target, t.path = "Support", ["Support"]
        elif kind in ("billing", "html"):
            t.target, t.path = "Billing", ["Support", "Billing"]
            self.article(t, hop, "LEAK internal: passing to billing", "Agent", internal=True)
            self.record(t, hop, "group", "1", "2")
            t.group_id = "2"
        elif kind == "back":
            t.target, t.path = "Engineering", ["Support", "Engineering", "Support"]
            self.record(t, hop, "group", "1", "3")
            self.article(t, hop, "LEAK eng", "Agent", internal=True)
            self.article(t, hop + timedelta(minutes=5), "LEAK customer after hop", "Customer")
            self.record(t, hop + timedelta(hours=2), "group", "3", "1")
        elif kind == "lead":
            t.target, t.path = "team-lead", ["Support", "Billing", "team-lead"]
            self.record(t, hop, "group", "1", "2")
            self.article(t, hop + timedelta(hours=1), "LEAK handing to the team lead", "Agent", internal=True)
            self.record(t, hop + timedelta(hours=1), "owner", "1", LEAD_ID)
            t.group_id, t.owner_id = "2", LEAD_ID
        if kind != "open":
            solve = at + timedelta(hours=4)
            self.article(
                t, solve, f"LEAK resolution: all sorted for ticket {tid}, write to {customer}@example.org", "Agent"
            )
            self.record(t, solve, "state", STATES["open"], STATES["closed"])
            t.state = "closed"
        self.tickets[tid] = t

    def rename(self, tid: int, at: datetime, title: str) -> None:
        """An agent renames the ticket: a history record of its title."""
        t = self.tickets[tid]
        self.record_id += 1
        t.history.append(
            {"id": self.record_id, "o_id": t.id, "type": "updated", "object": "Ticket", "attribute": "title",
             "id_from": None, "id_to": None, "value_from": t.title, "value_to": title,
             "created_by_id": int(AGENT_ID), "created_at": stamp(at)}
        )  # fmt: skip
        t.title, t.updated = title, max(t.updated, at)

    def reroute(self, tid: int, at: datetime, group: str) -> None:
        """Reopened, moved to `group` and closed again."""
        t = self.tickets[tid]
        self.record(t, at, "state", STATES["closed"], STATES["open"])
        self.record(t, at, "group", t.group_id, group)
        self.article(t, at + timedelta(hours=1), "fixed now", "Agent")
        self.record(t, at + timedelta(hours=1), "state", STATES["open"], STATES["closed"])
        t.group_id = group

    def reopen(self, tid: int, at: datetime) -> None:
        """The customer writes again after the close: the ticket is open again."""
        t = self.tickets[tid]
        self.article(t, at, "It broke again.", "Customer")
        self.record(t, at, "state", STATES["closed"], STATES["open"], by=t.customer_id)
        t.state = "open"


@dataclass
class FakeZammad(FakeReadAPI):
    helpdesk, token, auth = "zammad", TOKEN, f"Token token={TOKEN}"
    not_found = {"error": "Couldn't find Ticket"}

    instance: Instance
    search_cap: int = 40  # Zammad caps a search page (at 200); here lower, so the history takes pages
    list_cap: int = 2

    def histories_fetched(self) -> list[int]:
        return [int(p.split("/")[4].split("?")[0]) for p in self.requests if p.startswith("/api/v1/ticket_history/")]

    def answer(self, path: str, query: dict[str, str]) -> Any:
        """The body for a GET (None: 404; a string: 422 with that error)."""
        page, per_page = int(query.get("page", "1")), int(query.get("per_page", "50"))
        if path == "/api/v1/tickets/search":
            return self._search(query, page, min(per_page, self.search_cap))
        if path == "/api/v1/groups":
            size = min(per_page, self.list_cap)
            items = list(GROUPS.items())[size * (page - 1) : size * page]
            return [{"id": int(k), "name": v, "active": True, "note": None} for k, v in items]
        if path == "/api/v1/users/search":
            found = query.get("query", "").lower() == LEAD_EMAIL
            user = {"id": int(LEAD_ID), "login": LEAD_EMAIL, "email": LEAD_EMAIL, "firstname": "Lea"}
            return [user | {"lastname": "Lead"}] if found else []
        parts = path.split("/")
        ticket = self.instance.tickets.get(int(parts[-1])) if parts[-1].isdigit() else None
        if ticket is None or (ticket.kind == "deleted" and path.startswith("/api/v1/ticket")):
            return None  # deleted: gone from the database, though the search index may still list it
        if path.startswith("/api/v1/tickets/"):
            return ticket.json() if query.get("expand") == "true" else "the fake serves tickets with expand=true"
        if path.startswith("/api/v1/ticket_history/"):
            return {"history": ticket.history, "assets": {}}
        if path.startswith("/api/v1/ticket_articles/by_ticket/"):
            return ticket.articles
        return None

    def _search(self, query: dict[str, str], page: int, size: int) -> Any:
        """Tickets whose `updated_at` is in the query's range, sorted as asked: the index only answers the form the
        reader sends (`updated_at:[FROM TO UNTIL]`, `sort_by=updated_at`, `order_by=asc`, `expand=true`)."""
        found = RANGE.match(query.get("query", ""))
        asked = (query.get("sort_by"), query.get("order_by"), query.get("expand"))
        if found is None or asked != ("updated_at", "asc", "true"):
            return f"the fake answers only an updated_at range, sorted by it ascending, expanded: {query}"
        low, high = found.groups()
        hits = sorted(
            (
                t
                for t in self.instance.tickets.values()
                if low <= stamp(t.updated) and (high == "*" or stamp(t.updated) <= high)
            ),
            key=lambda t: (t.updated, t.id),
        )
        return [t.json() for t in hits[size * (page - 1) : size * page]]
