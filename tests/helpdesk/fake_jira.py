"""A fake Jira Cloud read API (REST v3): a real HTTP server on loopback serving a Jira Service Management site's
history in the shapes of Atlassian's documentation (the enhanced JQL search with `nextPageToken`/`isLast` and an
expanded changelog cut to its most recent histories, the issue changelog and comments paged by `startAt`, ADF bodies,
`jsdPublic`, components, user search, myself), behind basic auth, with failures the test asks for.

The site is built from paths the test knows: first line only; first line -> Billing; first line -> Engineering ->
back to first line to close; first line -> Billing -> the team lead (a person, by assignee); still open; deleted
between the search and its per-issue reads. Every text an agent could not have had before the first hop (internal
notes, agent replies, the customer's later comments, the resolution) carries `LEAK`, so a test can prove none
reaches training. Times are served in the API user's zone, America/New_York, as Jira does.
"""

from __future__ import annotations

import base64
import json
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

from features.helpdesk.text import adf_to_text
from tests.helpdesk.fake_api import FakeReadAPI
from tests.helpdesk.fake_zendesk import ASKS

EMAIL, TOKEN = "importer@example.com", "jira-read-token"
AUTH = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
COMPONENTS = {"10000": "Support", "10001": "Billing", "10002": "Engineering", "10003": "Accounts"}
IDS = {name: cid for cid, name in COMPONENTS.items()}
LEAD_ID, LEAD_EMAIL = "712020:5b10ac8d-lead", "lead@example.com"
HIDDEN_ID, HIDDEN_EMAIL = "712020:5b10ac8d-hidden", "hidden@example.com"  # a profile that hides its e-mail
AGENT_ID = "712020:5b10ac8d-agent"
ZONE = ZoneInfo("America/New_York")  # west of UTC: a search that took its minute for UTC would skip
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PER_KIND = {"first_line": 24, "billing": 22, "back": 20, "lead": 18, "lists": 4, "open": 3, "vanished": 2}  # 93 issues
OPEN = {"id": "3", "name": "In Progress", "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"}}
DONE = {"id": "10001", "name": "Done", "statusCategory": {"id": 3, "key": "done", "name": "Done"}}


def stamp(moment: datetime) -> str:
    """Jira's form: `2026-03-01T10:00:00.000+0100`, in the user's zone."""
    return moment.astimezone(ZONE).strftime("%Y-%m-%dT%H:%M:%S.000%z")


def adf(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(blocks)}


def para(*inline: str | dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": [{"type": "text", "text": i} if isinstance(i, str) else i for i in inline]}


def user(account: str) -> dict[str, Any]:
    return {"accountId": account, "accountType": "atlassian", "active": True, "displayName": f"User {account[-6:]}"}


@dataclass
class Issue:
    number: int
    kind: str  # first_line | billing | back | lead | lists | open | vanished
    target: str  # the label the rule must give ("" for open and vanished)
    path: list[str]
    summary: str
    description: dict[str, Any]
    created: datetime
    updated: datetime
    reporter: str
    status: dict[str, Any] = field(default_factory=lambda: OPEN)
    resolved: datetime | None = None
    components: list[str] = field(default_factory=lambda: ["Support"])
    assignee: str | None = None
    histories: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    comments: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"SUP-{self.number}"

    def json(self, changelog: int | None) -> dict[str, Any]:
        """The issue as search and get issue return it; `changelog`: how many of the most recent histories the
        expanded changelog holds (None: not expanded)."""
        fields = {
            "summary": self.summary,
            "description": self.description,
            "status": self.status,
            "created": stamp(self.created),
            "updated": stamp(self.updated),
            "resolutiondate": stamp(self.resolved) if self.resolved else None,
            "assignee": user(self.assignee) if self.assignee else None,
            "reporter": user(self.reporter),
            "priority": {"id": "2", "name": "High" if self.number % 3 == 0 else "Medium"},
            "components": [
                {"id": IDS[c], "name": c, "self": f"/rest/api/3/component/{IDS[c]}"} for c in self.components
            ],
            "labels": self.labels,
        }
        body: dict[str, Any] = {"id": str(10_000 + self.number), "key": self.key, "fields": fields}
        if changelog is not None:  # the most recent first, as the documentation says
            recent = list(reversed(self.histories))[:changelog]
            body["changelog"] = {
                "startAt": 0,
                "maxResults": changelog,
                "total": len(self.histories),
                "histories": recent,
            }
        return body


class Site:
    """The issues of one fake site; the same seed builds the same site."""

    def __init__(self, per_kind: dict[str, int] | None = None, seed: int = 3):
        counts = per_kind or PER_KIND
        self.rng = random.Random(seed)
        self.issues: dict[str, Issue] = {}
        self.history_id, self.comment_id = 50_000, 70_000
        n = 0
        for kind, count in counts.items():
            for _ in range(count):
                n += 1
                issue = self._build(n, kind, START + timedelta(hours=3, minutes=7) * n)
                self.issues[issue.key] = issue

    def history(self, issue: Issue, at: datetime, author: str, *items: dict[str, Any]) -> None:
        self.history_id += 1
        entry = {"id": str(self.history_id), "author": user(author), "created": stamp(at), "items": list(items)}
        issue.histories.append(entry)
        issue.updated = max(issue.updated, at)

    def comment(self, issue: Issue, at: datetime, author: str, body: dict[str, Any], public: bool = True) -> None:
        self.comment_id += 1
        issue.comments.append(
            {
                "id": str(self.comment_id),
                "author": user(author),
                "body": body,
                "created": stamp(at),
                "updated": stamp(at),
                "jsdPublic": public,
            }
        )
        issue.updated = max(issue.updated, at)

    def move(self, issue: Issue, at: datetime, to: str) -> None:
        """Components changed from the issue's one to `to`: one item removing, one adding, as Jira records them."""
        was = issue.components[0]
        self.history(
            issue,
            at,
            AGENT_ID,
            {"field": "Component", "fieldtype": "jira", "fieldId": "components", "from": IDS[was],
             "fromString": was, "to": None, "toString": None},
            {"field": "Component", "fieldtype": "jira", "fieldId": "components", "from": None, "fromString": None,
             "to": IDS[to], "toString": to},
        )  # fmt: skip
        issue.components = [to]

    def assign(self, issue: Issue, at: datetime, to: str | None) -> None:
        self.history(
            issue,
            at,
            AGENT_ID,
            {"field": "assignee", "fieldtype": "jira", "fieldId": "assignee", "from": issue.assignee,
             "fromString": None, "to": to, "toString": f"User {to[-6:]}" if to else None},
        )  # fmt: skip
        issue.assignee = to

    def transition(self, issue: Issue, at: datetime, to: dict[str, Any]) -> None:
        was = issue.status
        items = [
            {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": was["id"], "fromString": was["name"],
             "to": to["id"], "toString": to["name"]},
            {"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
             "from": None if to is DONE else "10000", "fromString": None if to is DONE else "Done",
             "to": "10000" if to is DONE else None, "toString": "Done" if to is DONE else None},
        ]  # fmt: skip
        self.history(issue, at, AGENT_ID, *items)
        issue.status, issue.resolved = to, (at if to is DONE else None)

    def _build(self, n: int, kind: str, at: datetime) -> Issue:
        reporter = f"qm:customer-{n:04d}"
        topic = {"first_line": "Support", "billing": "Billing", "back": "Engineering", "lead": "team-lead"}.get(
            kind, "Billing" if kind == "lists" else self.rng.choice(["Support", "Billing"])
        )
        ask = self.rng.choice(ASKS[topic])
        extra = self.rng.choice(["Thanks.", "Kind regards", f"Request ref {n}", "Please hurry.", ""])
        summary = ask.split(".")[0][:60]
        if kind == "lists":  # a richer document: a list, a mention, a hard break
            mention = {"type": "mention", "attrs": {"id": AGENT_ID, "text": "@Support Desk"}}
            items = [{"type": "listItem", "content": [para(t)]} for t in (ask, extra or "no extra")]
            description = adf(
                para("Hello ", mention, {"type": "hardBreak"}, "my problem:"), {"type": "bulletList", "content": items}
            )
        else:
            description = adf(para(ask, {"type": "hardBreak"}, extra) if extra else para(ask))
        issue = Issue(n, kind, "", [], summary, description, at, at, reporter)
        follow = f"Some more detail on {issue.key}: it still happens today."
        self.comment(issue, at + timedelta(minutes=10), reporter, adf(para(follow)))
        self.comment(issue, at + timedelta(minutes=20), AGENT_ID, adf(para("LEAK agent reply: we are looking into it")))
        hop = at + timedelta(minutes=30)
        if kind == "first_line":
            issue.target, issue.path = "Support", ["Support"]
            self.assign(issue, at + timedelta(minutes=15), AGENT_ID)  # an agent, not a hierarchical person
        elif kind in ("billing", "lists", "vanished"):
            issue.target, issue.path = "Billing", ["Support", "Billing"]
            self.move(issue, hop, "Billing")
            self.comment(issue, hop, AGENT_ID, adf(para("LEAK internal: passing to billing")), public=False)
        elif kind == "back":
            issue.target, issue.path = "Engineering", ["Support", "Engineering", "Support"]
            self.move(issue, hop, "Engineering")
            self.comment(issue, hop, AGENT_ID, adf(para("LEAK eng")), public=False)
            self.comment(issue, hop + timedelta(minutes=5), reporter, adf(para("LEAK customer after hop")))
            self.move(issue, hop + timedelta(hours=2), "Support")
        elif kind == "lead":
            issue.target, issue.path = "team-lead", ["Support", "Billing", "team-lead"]
            self.move(issue, hop, "Billing")
            self.assign(issue, hop + timedelta(hours=1), LEAD_ID)
            self.comment(issue, hop + timedelta(hours=1), AGENT_ID, adf(para("LEAK handing to the lead")), public=False)
        elif kind == "open":
            self.move(issue, hop, "Billing")
        if kind != "open":
            solve = at + timedelta(hours=4)
            text = f"LEAK resolution: all sorted for {issue.key}, write to {reporter}@example.org"
            self.comment(issue, solve - timedelta(minutes=10), AGENT_ID, adf(para(text)))
            note = adf(para("LEAK internal: resolving"))
            self.comment(issue, solve - timedelta(minutes=2), AGENT_ID, note, public=False)
            self.transition(issue, solve, DONE)
        if kind == "vanished":
            issue.target, issue.path = "", []
        return issue

    def reroute(self, key: str, at: datetime, component: str) -> None:
        """Reopened, moved to `component` and resolved again."""
        issue = self.issues[key]
        self.transition(issue, at, OPEN)
        self.move(issue, at, component)
        self.comment(issue, at + timedelta(hours=1), AGENT_ID, adf(para("fixed now")))
        self.transition(issue, at + timedelta(hours=1), DONE)

    def rename(self, key: str, at: datetime, summary: str, description: str) -> None:
        """An agent edits the summary and the description (the changelog keeps the old text)."""
        issue = self.issues[key]
        old = adf_to_text(issue.description).strip() if not isinstance(issue.description, str) else issue.description
        self.history(
            issue, at, AGENT_ID,
            {"field": "summary", "fieldId": "summary", "fromString": issue.summary, "toString": summary},
            {"field": "description", "fieldId": "description", "fromString": old, "toString": description},
        )  # fmt: skip
        issue.summary, issue.description = summary, adf(para(description))

    def edit_comment(self, key: str, n: int, at: datetime, text: str) -> None:
        """Comment `n` (0: the first after the description) rewritten at `at`."""
        issue = self.issues[key]
        issue.comments[n].update(body=adf(para(text)), updated=stamp(at))
        issue.updated = max(issue.updated, at)

    def relabel(self, key: str, at: datetime) -> None:
        """A change that moves nothing: a label added."""
        issue = self.issues[key]
        self.history(
            issue, at, AGENT_ID, {"field": "labels", "fieldtype": "jira", "from": None, "fromString": "",
                                  "to": None, "toString": "vip"},
        )  # fmt: skip
        issue.labels = ["vip"]


@dataclass
class FakeJira(FakeReadAPI):
    helpdesk, email, token, auth = "jira", EMAIL, TOKEN, AUTH
    not_found = {"errorMessages": ["Issue does not exist or you do not have permission"]}

    site: Site
    page_size: int = 40  # issues a search page holds
    search_changelog: int = 2  # histories the search's expanded changelog holds
    list_page: int = 2  # changelog, comments and components a page
    lagging: set[str] = field(default_factory=set)  # issues the search index has not caught up with yet

    def error(self, message: str) -> Any:
        return {"errorMessages": [message], "errors": {}}

    def read(self, what: str) -> list[str]:
        """The issues whose `comment` or `changelog` list was read (its first pages)."""
        found = []
        for request in self.requests:
            url = urlparse(request)
            parts = url.path.split("/")
            if len(parts) == 7 and parts[6] == what and parse_qs(url.query).get("startAt", ["0"])[0] == "0":
                found.append(parts[5])
        return found

    def answer(self, path: str, query: dict[str, str]) -> Any:
        if path == "/rest/api/3/search/jql":
            return self._search(query)
        if path == "/rest/api/3/myself":
            return {"accountId": "712020:importer", "emailAddress": EMAIL, "timeZone": str(ZONE)}
        if path == "/rest/api/3/component":
            values = [{"id": cid, "name": name, "projectKey": "SUP"} for cid, name in COMPONENTS.items()]
            return self._page(values, query, "values")
        if path == "/rest/api/3/user/search":  # a prefix of the name or e-mail; the hidden one matches too
            asked = query.get("query", "").lower()
            found = [user(LEAD_ID) | {"emailAddress": LEAD_EMAIL}] if LEAD_EMAIL.startswith(asked) else []
            return found + ([user(HIDDEN_ID)] if asked and HIDDEN_EMAIL.startswith(asked) else [])
        parts = path.split("/")
        if len(parts) >= 6 and parts[4] == "issue":
            issue = self.site.issues.get(parts[5])
            if issue is None or issue.kind == "vanished":  # deleted: only the search still listed it
                return None
            if len(parts) == 6:
                return issue.json(self.search_changelog if "changelog" in query.get("expand", "") else None)
            if parts[6] == "changelog":  # oldest first
                return self._page(issue.histories, query, "values")
            if parts[6] == "comment":
                return self._page(issue.comments, query, "comments", is_last=False)
        return None

    def _page(self, items: list[Any], query: dict[str, str], name: str, is_last: bool = True) -> dict[str, Any]:
        """Offset paging as Jira's PageBean (with `isLast`) or PageOfComments (only `total`)."""
        start, size = int(query.get("startAt", "0")), min(int(query.get("maxResults", "50")), self.list_page)
        body = {"startAt": start, "maxResults": size, "total": len(items), name: items[start : start + size]}
        return body | ({"isLast": start + size >= len(items)} if is_last else {})

    def _search(self, query: dict[str, str]) -> dict[str, Any]:
        """`updated >= "yyyy-MM-dd HH:mm" AND updated <= "..." ORDER BY updated ASC, key ASC`, dates in the user's
        zone; an issue the index has not caught up with (`lagging`) is not found yet."""
        jql = query.get("jql", "")
        minute = r'"(\d{4}-\d\d-\d\d \d\d:\d\d)"'
        found = re.fullmatch(rf"updated >= {minute} AND updated <= {minute} ORDER BY updated ASC, key ASC", jql)
        assert found, f"unexpected JQL {jql!r}"
        since, until = (datetime.strptime(m, "%Y-%m-%d %H:%M").replace(tzinfo=ZONE) for m in found.groups())
        fields = set(query.get("fields", "").split(","))
        assert {"summary", "description", "status", "components", "assignee", "reporter"} <= fields, fields
        ordered = sorted(
            (
                i
                for i in self.site.issues.values()
                if since <= i.updated <= until + timedelta(seconds=59) and i.key not in self.lagging
            ),
            key=lambda i: (i.updated, i.number),
        )
        token = query.get("nextPageToken")
        start = json.loads(base64.b64decode(token))["at"] if token else 0
        size = min(int(query.get("maxResults", "50")), self.page_size)
        page, more = ordered[start : start + size], start + size < len(ordered)
        expand = "changelog" in query.get("expand", "")
        body: dict[str, Any] = {"issues": [i.json(self.search_changelog if expand else None) for i in page]}
        body["isLast"] = not more
        if more:
            body["nextPageToken"] = base64.b64encode(json.dumps({"at": start + size}).encode()).decode()
        return body
