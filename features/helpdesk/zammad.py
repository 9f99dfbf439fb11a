"""Reading a Zammad instance's history (REST API v1, as documented at docs.zammad.org, "API"), with the connector's
token (`Authorization: Token token=...`):

- tickets changed since a time: the ticket search, `GET /api/v1/tickets/search` with
  `query=updated_at:[FROM TO UNTIL]`, `sort_by=updated_at`, `order_by=asc`, `expand=true` (state, group, priority and
  the first article's type by name). Each page starts at the last ticket read (a time cursor), so a ticket changed
  while a run pages leaves no gap; `UNTIL` is five minutes ago, as the search index lags behind the database;
- a ticket's path: `GET /api/v1/ticket_history/{id}` (the ticket's own history records: `attribute` `group`, `owner`
  and `state`, `id_from`/`id_to`, `value_from`/`value_to`, `created_at`); its conversation: its articles,
  `GET /api/v1/ticket_articles/by_ticket/{id}` (`internal`, `sender` Customer/Agent/System, HTML bodies to text);
- group names, `GET /api/v1/groups` (paged), and a person's user id by e-mail, `GET /api/v1/users/search`.

Zammad deletes a ticket outright: its search never lists it again. A ticket deleted between the search and reading
its history (404) is a deleted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from features.helpdesk.client import Reader, configured
from features.helpdesk.errors import HelpdeskNotFound, HelpdeskRefused
from features.helpdesk.paths import FINAL, History, Message, Step
from features.helpdesk.source import Page
from features.helpdesk.text import html_to_text
from features.settings import Settings

SOLVED = {"closed", "merged"}  # the connector's final states (serving/hooks/connectors.py, Zammad.FINAL)
PER_PAGE = 100  # Zammad caps a search page at 200 and a list page at 100
SETTLE = timedelta(minutes=5)  # how far behind the database the search index may be
NOBODY = {"", "0", "1"}  # owner 1 is Zammad's "-": nobody


def reader(settings: Settings, **kwargs: Any) -> Reader:
    """A reader with the connector's own settings (ESCALATION_ZAMMAD_URL, _TOKEN)."""
    headers = {"Authorization": f"Token token={settings.zammad_token}"}
    return configured(settings, "zammad", ("zammad_token",), **({"headers": headers} | kwargs))


def source(settings: Settings, **kwargs: Any) -> ZammadHistory:
    return ZammadHistory(reader(settings, **kwargs))


def iso(value: Any) -> str:
    """Zammad's times as one comparable form: `YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC (its own, to the millisecond)."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ZammadHistory:
    """Pages of changed tickets, and one ticket's history from its history records and articles."""

    helpdesk = "zammad"

    def __init__(self, reader: Reader):
        self.reader = reader
        self._groups: dict[str, str] | None = None
        self._seen_groups: dict[str, str] = {}  # id -> name, from the tickets read (no permission to list groups)

    def groups(self) -> dict[str, str]:
        """Group key as the connector names outcomes (`zammad:<group name>`): name -> name, every page. Listing groups
        needs `admin.group` on older Zammad versions; without it, the groups of the tickets read."""
        names = self._group_names()
        return {name: name for name in sorted({*names.values(), *self._seen_groups.values()})}

    def _group_names(self) -> dict[str, str]:
        """Group id -> name (empty when the token may not list groups)."""
        if self._groups is None:
            found: dict[str, str] = {}
            page = 1
            try:  # to an empty page: Zammad may cap a page below what was asked
                while items := self.reader.get_list("/api/v1/groups", params={"page": page, "per_page": PER_PAGE}):
                    found.update({str(g["id"]): str(g["name"]) for g in items})
                    page += 1
            except HelpdeskRefused as err:
                if "HTTP 403" not in str(err):
                    raise
            self._groups = found
        return self._groups

    def user_id(self, email: str) -> str | None:
        """The id of the user with this e-mail (None: no such user)."""
        users = self.reader.get_list("/api/v1/users/search", params={"query": email})
        matches = [u for u in users if str(u.get("email", "")).lower() == email.lower()]
        return str(matches[0]["id"]) if matches else None

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """One ticket as the search lists it (`GET /api/v1/tickets/{id}?expand=true`)."""
        return self.reader.get(f"/api/v1/tickets/{ticket_id}", params={"expand": "true"})

    def changed(self, cursor: str | None, since: datetime | None) -> Iterator[Page]:
        """Tickets changed since `since` (the first run) or since `cursor` (the last run's end), page by page, oldest
        change first. The cursor is the last change's time and the ids already read at that time."""
        if cursor is not None:
            start, _, ids = cursor.partition("|")
            read = set(filter(None, ids.split(",")))
        elif since is not None:
            start, read = iso(since), set()
        else:
            raise ValueError("give --since for the first import")
        until = iso(datetime.now(UTC) - SETTLE)
        page = 1
        while True:
            params = {
                "query": f"updated_at:[{start} TO {until}]",
                "sort_by": "updated_at",
                "order_by": "asc",
                "expand": "true",
                "page": page,
                "per_page": PER_PAGE,
            }
            found = self.reader.get_list("/api/v1/tickets/search", params=params)
            if not found:
                yield Page([], _cursor(start, read), True)
                return
            fresh = [t for t in found if not (iso(t["updated_at"]) == start and str(t["id"]) in read)]
            last = iso(found[-1]["updated_at"])
            at_last = {str(t["id"]) for t in found if iso(t["updated_at"]) == last}
            if last > start:  # the next page starts at the last change read
                start, read, page = last, at_last, 1
            else:  # a whole page changed at one moment: the next page of the same search
                read, page = read | at_last, page + 1
            yield Page(fresh, _cursor(start, read), False)

    def history(self, ticket: dict[str, Any]) -> History:
        """One ticket: its state, and from its history records its groups and owners over time, and its articles."""
        ticket_id, state = str(ticket["id"]), _name(ticket.get("state")).lower()
        names = self._group_names()
        try:
            records = self.reader.get(f"/api/v1/ticket_history/{ticket_id}").get("history") or []
            articles = self.reader.get_list(f"/api/v1/ticket_articles/by_ticket/{ticket_id}")
        except HelpdeskNotFound:  # deleted since the search listed it
            return History(ticket_id, "deleted")
        changes = sorted(
            (r for r in records if r.get("object") == "Ticket" and r.get("attribute") in ("group", "owner", "state")),
            key=lambda r: (iso(r["created_at"]), int(r.get("id") or 0)),
        )

        def group_name(group_id: Any, name: Any) -> str | None:
            if group_id in (None, ""):
                return None
            found = names.get(str(group_id)) or str(name or group_id)
            self._seen_groups[str(group_id)] = found
            return found

        first_group = next((r for r in changes if r["attribute"] == "group"), None)
        first_owner = next((r for r in changes if r["attribute"] == "owner"), None)
        group = (
            group_name(first_group.get("id_from"), first_group.get("value_from"))
            if first_group
            else group_name(ticket.get("group_id"), _name(ticket.get("group")))
        )
        owner = _owner(first_owner.get("id_from") if first_owner else ticket.get("owner_id"))
        steps = [Step(iso(ticket["created_at"]), group, owner)]
        solved_at: str | None = None
        for record in changes:
            at, attribute = iso(record["created_at"]), record["attribute"]
            if attribute == "group":
                group = group_name(record.get("id_to"), record.get("value_to"))
            elif attribute == "owner":
                owner = _owner(record.get("id_to"))
            else:
                solved_at = at if str(record.get("value_to") or "").lower() in SOLVED else None  # reopened: not
                continue
            step = Step(at, group, owner)
            steps[-1:] = [steps[-1], step] if steps[-1].at != at else [step]  # one change of both: one step
        if state not in SOLVED:
            solved_at = None
        elif solved_at is None:  # closed before the history kept (imported): its last close is the solve
            solved_at = iso(ticket.get("last_close_at") or ticket.get("close_at") or ticket["updated_at"])
        return History(
            ticket_id,
            FINAL if state in SOLVED else "open",
            subject=_original_title(records, ticket),
            created_at=iso(ticket["created_at"]),
            solved_at=solved_at,
            steps=steps,
            messages=_messages(articles),
            metadata={"channel": _name(ticket.get("create_article_type")), "priority": _name(ticket.get("priority"))},
        )


def _original_title(records: list[dict[str, Any]], ticket: dict[str, Any]) -> str:
    """The title the ticket opened with: a later rename ("[BILLING] ...") may name the team it went to."""
    renames = sorted(
        (r for r in records if r.get("object") == "Ticket" and r.get("attribute") == "title"),
        key=lambda r: (iso(r["created_at"]), int(r.get("id") or 0)),
    )
    return str(renames[0].get("value_from") or "") if renames else str(ticket.get("title") or "")


def _messages(articles: list[dict[str, Any]]) -> list[Message]:
    """The articles as messages; the first is the description. System articles after it (auto-replies, trigger
    notices) are neither the customer's nor an agent's reply: left out."""
    ordered = sorted(articles, key=lambda a: (iso(a["created_at"]), int(a.get("id") or 0)))
    messages = []
    for n, article in enumerate(ordered):
        sender = str(article.get("sender") or "")
        if sender == "System" and n > 0:
            continue
        body = str(article.get("body") or "")
        if "html" in str(article.get("content_type") or ""):
            body = html_to_text(body)
        at = iso(article["created_at"])
        messages.append(Message(at, body, not article.get("internal", False), sender == "Customer"))
    return messages


def _name(value: Any) -> str:
    """An expanded relation's name (`"state": "closed"`, or an object with a name, as webhooks send it)."""
    if isinstance(value, dict):
        return str(value.get("name") or "")
    return str(value or "")


def _owner(value: Any) -> str | None:
    return None if value is None or str(value) in NOBODY else str(value)


def _cursor(start: str, read: set[str]) -> str:
    return f"{start}|{','.join(sorted(read, key=lambda i: (len(i), i)))}"
