"""A fake Zendesk read API: a real HTTP server on loopback serving an account's history in the shapes of Zendesk's
documentation (incremental cursor export, ticket audits with Create/Change/Comment events, groups, user search),
paged, behind basic auth, with failures the test asks for.

The account is built from paths the test knows: first line only; first line -> Billing; first line -> Engineering ->
back to first line to close; first line -> Billing -> the team lead (a person); still open; deleted. Every text an
agent could not have had before the first hop carries `LEAK`, so a test can prove none reaches training.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpdesk.fake_api import FakeReadAPI

EMAIL, TOKEN = "importer@example.com", "zd-read-token"
AUTH = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
GROUPS = {"100": "Support", "200": "Billing", "300": "Engineering", "400": "Accounts"}
LEAD_ID, LEAD_EMAIL, AGENT_ID = "900", "lead@example.com", "800"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PER_KIND = {"first_line": 24, "billing": 22, "back": 20, "lead": 18, "html": 4, "open": 3, "deleted": 2}  # 93 tickets

ASKS = {
    "Support": [
        "How do I reset my password? The login page does not show the link.",
        "Where can I change the language of the dashboard to German?",
        "How do I add a colleague to our workspace?",
        "Can I export my contacts to a spreadsheet?",
        "The app asks me to verify my e-mail again, how do I do that?",
    ],
    "Billing": [
        "I was charged twice for the Team plan this month, please refund one payment.",
        "Our invoice shows the wrong VAT number and amount, we need a corrected invoice.",
        "The credit card payment failed although the card is valid, billing says overdue.",
        "Please refund the annual subscription charge, we cancelled before renewal.",
        "Why did the price on my invoice go up? I was billed more than the plan costs.",
    ],
    "Engineering": [
        "The CSV export fails with error 500 every time since yesterday's release.",
        "The API returns 502 Bad Gateway for every request to the reports endpoint.",
        "Sync crashes with a stack trace when a file name has an umlaut.",
        "Webhooks stopped firing after the upgrade, the delivery log shows timeouts.",
        "The mobile app crashes on start after the latest update on Android 15.",
    ],
    "team-lead": [
        "This is the third time I complain and nobody helps. I want to speak to a manager now.",
        "Your service cost us a week of work, we expect compensation and an explanation from a manager.",
        "I am furious about how my case was handled and I will cancel the contract unless a lead calls me.",
        "Unacceptable: promised callback never came. Escalate this to your supervisor.",
        "We are considering legal steps over the lost data unless management responds today.",
    ],
}


@dataclass
class Ticket:
    id: int
    kind: str  # the path it was built with: first_line | billing | back | lead | open | deleted | html
    target: str  # the label the rule must give ("" for open and deleted)
    path: list[str]
    subject: str
    status: str
    created: datetime
    updated: datetime
    audits: list[dict[str, Any]] = field(default_factory=list)
    group_id: str = "100"
    assignee_id: str | None = None
    requester_id: str = ""

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "description": self.audits[0]["events"][0].get("body", "") if self.audits else "",
            "status": self.status,
            "requester_id": int(self.requester_id),
            "group_id": int(self.group_id),
            "assignee_id": int(self.assignee_id) if self.assignee_id else None,
            "priority": "high" if self.id % 3 == 0 else "normal",
            "via": {"channel": "email" if self.id % 2 else "web"},
            "created_at": stamp(self.created),
            "updated_at": stamp(self.updated),
        }


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Account:
    """The tickets of one fake account; the same seed builds the same account."""

    def __init__(self, per_kind: dict[str, int] | None = None, seed: int = 3):
        counts = per_kind or PER_KIND
        self.rng = random.Random(seed)
        self.tickets: dict[int, Ticket] = {}
        self.audit_id = 1
        n = 0
        for kind, count in counts.items():
            for _ in range(count):
                n += 1
                self._build(1000 + n, kind, START + timedelta(hours=3 * n))

    def _audit(self, at: datetime, author: str, *events: dict[str, Any]) -> dict[str, Any]:
        self.audit_id += 1
        return {"id": self.audit_id, "created_at": stamp(at), "author_id": int(author), "events": list(events)}

    @staticmethod
    def _change(name: str, value: str | None, previous: str | None) -> dict[str, Any]:
        return {"type": "Change", "field_name": name, "value": value, "previous_value": previous}

    @staticmethod
    def _comment(body: str, author: str, public: bool = True, html: bool = False) -> dict[str, Any]:
        if html:
            return {"type": "Comment", "html_body": body, "public": public, "author_id": int(author)}
        return {"type": "Comment", "body": body, "plain_body": body, "public": public, "author_id": int(author)}

    def _build(self, tid: int, kind: str, at: datetime) -> None:
        customer = str(50_000 + tid)
        topic = {"first_line": "Support", "billing": "Billing", "back": "Engineering", "lead": "team-lead"}.get(
            kind, "Billing" if kind == "html" else self.rng.choice(["Support", "Billing"])
        )
        ask = self.rng.choice(ASKS[topic])
        extra = self.rng.choice(["Thanks.", "Kind regards", "Ticket ref " + str(tid), "Please hurry.", ""])
        subject = ask.split(".")[0][:60]
        description = f"{ask} {extra}".strip()
        if kind == "html":
            description_event = self._comment(
                f"<p>{ask}</p><ul><li>{extra or 'no extra'}</li></ul>", customer, html=True
            )
        else:
            description_event = self._comment(description, customer)
        created = [
            {"type": "Create", "field_name": "subject", "value": subject},
            {"type": "Create", "field_name": "group_id", "value": "100"},
            {"type": "Create", "field_name": "status", "value": "new"},
            description_event,
        ]
        audits = [self._audit(at, customer, description_event, *created[:3])]
        follow = self._comment(f"Some more detail on ticket {tid}: it still happens today.", customer)
        audits.append(self._audit(at + timedelta(minutes=10), customer, follow))
        t = Ticket(tid, kind, "", [], subject, "solved", at, at, group_id="100", requester_id=customer)
        hop = at + timedelta(minutes=30)
        if kind == "first_line":
            t.target, t.path = "Support", ["Support"]
        elif kind in ("billing", "html"):
            t.target, t.path = "Billing", ["Support", "Billing"]
            audits.append(
                self._audit(
                    hop,
                    AGENT_ID,
                    self._comment("LEAK internal: passing to billing", AGENT_ID, public=False),
                    self._change("group_id", "200", "100"),
                )
            )
            t.group_id = "200"
        elif kind == "back":
            t.target, t.path = "Engineering", ["Support", "Engineering", "Support"]
            audits.append(
                self._audit(
                    hop, AGENT_ID, self._change("group_id", "300", "100"), self._comment("LEAK eng", AGENT_ID, False)
                )
            )
            audits.append(
                self._audit(hop + timedelta(minutes=5), customer, self._comment("LEAK customer after hop", customer))
            )
            audits.append(self._audit(hop + timedelta(hours=2), AGENT_ID, self._change("group_id", "100", "300")))
        elif kind == "lead":
            t.target, t.path = "team-lead", ["Support", "Billing", "team-lead"]
            audits.append(self._audit(hop, AGENT_ID, self._change("group_id", "200", "100")))
            audits.append(
                self._audit(
                    hop + timedelta(hours=1),
                    AGENT_ID,
                    self._change("assignee_id", LEAD_ID, None),
                    self._comment("LEAK handing to the team lead", AGENT_ID, public=False),
                )
            )
            t.group_id, t.assignee_id = "200", LEAD_ID
        if kind == "open":
            t.status = "open"
        else:
            solve = at + timedelta(hours=4)
            audits.append(
                self._audit(
                    solve,
                    AGENT_ID,
                    self._comment(
                        f"LEAK resolution: all sorted for ticket {tid}, write to {customer}@example.org", AGENT_ID
                    ),
                    self._change("status", "solved", "open"),
                )
            )
            t.updated = solve
        if kind == "deleted":
            t.status = "deleted"
        t.audits = audits
        self.tickets[tid] = t

    def change(self, tid: int, at: datetime, *events: dict[str, Any], status: str | None = None) -> None:
        """A later update of one ticket (it moves to the end of the change feed)."""
        t = self.tickets[tid]
        t.audits.append(self._audit(at, AGENT_ID, *events))
        t.updated = at
        if status is not None:
            t.status = status

    def rename(self, tid: int, at: datetime, subject: str) -> None:
        """An agent renames the ticket (after its hop, the new subject may name the team)."""
        t = self.tickets[tid]
        self.change(tid, at, {"type": "Change", "field_name": "subject", "value": subject, "previous_value": t.subject})
        t.subject = subject

    def close(self, tid: int, at: datetime) -> None:
        """The automation closes a solved ticket days later, with a public notice."""
        notice = self._comment("This request was closed automatically. Reply to open a new one.", AGENT_ID)
        self.change(tid, at, notice, self._change("status", "closed", "solved"), status="closed")

    def reroute(self, tid: int, at: datetime, group: str) -> None:
        """Reopened, moved to `group` and solved again."""
        t = self.tickets[tid]
        self.change(tid, at, self._change("status", "open", "solved"), self._change("group_id", group, t.group_id))
        self.change(
            tid, at + timedelta(hours=1), self._comment("fixed now", AGENT_ID), self._change("status", "solved", "open")
        )
        t.group_id = group


@dataclass
class FakeZendesk(FakeReadAPI):
    helpdesk, email, token, auth = "zendesk", EMAIL, TOKEN, AUTH

    account: Account
    page_size: int = 40
    audit_page: int = 2

    def audits_fetched(self) -> list[int]:
        """The tickets whose audits were read (their first pages)."""
        return [int(p.split("/")[4]) for p in self.requests if p.endswith("/audits.json")]

    def answer(self, path: str, query: dict[str, str]) -> dict[str, Any] | None:
        if path == "/api/v2/incremental/tickets/cursor.json":
            return self._changed(query)
        if path == "/api/v2/groups.json":  # offset pagination, two a page
            page = int(query.get("page", "1"))
            items = list(GROUPS.items())[2 * (page - 1) : 2 * page]
            more = 2 * page < len(GROUPS)
            return {
                "groups": [{"id": int(k), "name": v} for k, v in items],
                "next_page": f"{self.url}/api/v2/groups.json?page={page + 1}" if more else None,
            }
        if path == "/api/v2/users/search.json":
            found = query.get("query", "").lower() == LEAD_EMAIL
            return {"users": [{"id": int(LEAD_ID), "email": LEAD_EMAIL, "name": "Lea Lead"}] if found else []}
        parts = path.split("/")
        if len(parts) == 5 and parts[3] == "tickets" and parts[4].endswith(".json"):
            ticket = self.account.tickets.get(int(parts[4].removesuffix(".json")))
            return {"ticket": ticket.json()} if ticket is not None else None
        if len(parts) == 6 and parts[3] == "tickets" and parts[5] == "audits.json":
            ticket = self.account.tickets.get(int(parts[4]))
            if ticket is None:
                return None
            start = int(query.get("page[after]", "0"))
            chunk = ticket.audits[start : start + self.audit_page]
            more = start + self.audit_page < len(ticket.audits)
            nxt = f"{self.url}{path}?page[after]={start + self.audit_page}" if more else None
            return {"audits": chunk, "meta": {"has_more": more}, "links": {"next": nxt}}
        return None

    def _changed(self, query: dict[str, str]) -> dict[str, Any]:
        """Tickets ordered by (updated_at, id) after the cursor's position, or from start_time; the cursor of the last
        page stays valid for the next run."""
        ordered = sorted(self.account.tickets.values(), key=lambda t: (t.updated, t.id))
        if "cursor" in query:
            position = base64.b64decode(query["cursor"]).decode()
        else:
            position = f"{datetime.fromtimestamp(int(query['start_time']), UTC).isoformat()}|0"
        when, _, tid = position.partition("|")
        after = (datetime.fromisoformat(when), int(tid))
        left = [t for t in ordered if (t.updated, t.id) > after]
        page = left[: self.page_size]
        if page:
            position = f"{page[-1].updated.isoformat()}|{page[-1].id}"
        cursor = base64.b64encode(position.encode()).decode()
        return {
            "tickets": [t.json() for t in page],
            "after_cursor": cursor,
            "after_url": f"{self.url}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
            "end_of_stream": len(left) <= self.page_size,
        }
