"""Reading a Zendesk account's history (Support API v2, as documented at developer.zendesk.com):

- tickets changed since a time: the cursor-based incremental ticket export,
  `GET /api/v2/incremental/tickets/cursor.json`
  with `start_time`, then `cursor=after_cursor` until `end_of_stream` (10 requests a minute; deleted tickets come as
  status `deleted`);
- a ticket's path and conversation: its audits, `GET /api/v2/tickets/{id}/audits.json` (Create and Change events of
  `group_id`, `assignee_id` and `status`; Comment events with `public` and `author_id`), followed page by page;
- group names, `GET /api/v2/groups.json`, and a person's user id by e-mail, `GET /api/v2/users/search.json`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from features.helpdesk.client import Reader, configured
from features.helpdesk.errors import HelpdeskNotFound
from features.helpdesk.paths import FINAL, History, Message, Step
from features.helpdesk.source import Page
from features.helpdesk.text import html_to_text
from features.settings import Settings

INCREMENTAL = "/api/v2/incremental/"
SOLVED = {"solved", "closed"}


def reader(settings: Settings, **kwargs: Any) -> Reader:
    """A reader with the connector's own settings (ESCALATION_ZENDESK_URL, _EMAIL, _TOKEN)."""
    auth = (f"{settings.zendesk_email}/token", settings.zendesk_token)
    paced = {INCREMENTAL: settings.zendesk_export_per_minute}
    return configured(
        settings, "zendesk", ("zendesk_email", "zendesk_token"), **({"auth": auth, "per_minute": paced} | kwargs)
    )


def source(settings: Settings, **kwargs: Any) -> ZendeskHistory:
    return ZendeskHistory(reader(settings, **kwargs))


def iso(value: Any) -> str:
    """Zendesk's times (ISO 8601 or epoch seconds) as one comparable form: `YYYY-MM-DDTHH:MM:SSZ`, UTC."""
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ZendeskHistory:
    """Pages of changed tickets, and one ticket's history from its audits."""

    helpdesk = "zendesk"

    def __init__(self, reader: Reader):
        self.reader = reader
        self._groups: dict[str, str] | None = None

    def groups(self) -> dict[str, str]:
        """Group id -> name, every page."""
        if self._groups is None:
            found: dict[str, str] = {}
            url: str | None = "/api/v2/groups.json"
            while url:
                body = self.reader.get(url)
                found.update({str(g["id"]): str(g["name"]) for g in body.get("groups") or []})
                url = _next(body)
            self._groups = found
        return self._groups

    def user_id(self, email: str) -> str | None:
        """The id of the user with this e-mail (None: no such user)."""
        body = self.reader.get("/api/v2/users/search.json", params={"query": email})
        matches = [u for u in body.get("users") or [] if str(u.get("email", "")).lower() == email.lower()]
        return str(matches[0]["id"]) if matches else None

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """One ticket as the incremental export shows it (`GET /api/v2/tickets/{id}.json`)."""
        return dict(self.reader.get(f"/api/v2/tickets/{ticket_id}.json").get("ticket") or {})

    def changed(self, cursor: str | None, since: datetime | None) -> Iterator[Page]:
        """Tickets changed since `since` (the first run) or since `cursor` (the last run's end), page by page."""
        if cursor is not None:
            params: dict[str, Any] = {"cursor": cursor}
        elif since is not None:
            params = {"start_time": int(since.timestamp())}
        else:
            raise ValueError("give --since for the first import")
        while True:
            body = self.reader.get(f"{INCREMENTAL}tickets/cursor.json", params=params)
            cursor = body.get("after_cursor") or cursor
            end = bool(body.get("end_of_stream"))
            yield Page(list(body.get("tickets") or []), cursor, end)
            if end or not body.get("after_cursor"):
                return
            params = {"cursor": cursor}

    def history(self, ticket: dict[str, Any]) -> History:
        """One ticket: its status, and from its audits its groups and assignees over time and its messages."""
        ticket_id, status = str(ticket["id"]), str(ticket.get("status") or "").lower()
        if status == "deleted":
            return History(ticket_id, "deleted")
        groups, requester = self.groups(), str(ticket.get("requester_id"))
        steps: list[Step] = []
        messages: list[Message] = []
        group: str | None = None
        assignee: str | None = None
        solved_at: str | None = None
        solved = False  # whether the status is solved or closed now (a solved -> closed change is no new solve)
        subject: str | None = None  # as the ticket opened: a later rename ("[BILLING] ...") names the team
        try:
            audits = list(self._audits(ticket_id))
        except HelpdeskNotFound:  # deleted since the feed listed it
            return History(ticket_id, "deleted")
        for audit in audits:
            at, changed = iso(audit["created_at"]), False
            for event in audit.get("events") or []:
                kind, name = event.get("type"), event.get("field_name")
                if kind in ("Create", "Change") and name == "group_id":
                    value = event.get("value")
                    group, changed = (groups.get(str(value), str(value)) if value else None), True
                elif kind in ("Create", "Change") and name == "assignee_id":
                    value = event.get("value")
                    assignee, changed = (str(value) if value else None), True
                elif kind in ("Create", "Change") and name == "status":
                    now_solved = str(event.get("value")).lower() in SOLVED
                    if now_solved and not solved:
                        solved_at = at
                    elif not now_solved:
                        solved_at = None  # reopened: not solved
                    solved = now_solved
                elif kind == "Create" and name == "subject" and subject is None:
                    subject = str(event.get("value") or "")
                elif kind == "Change" and name == "subject" and subject is None:
                    subject = str(event.get("previous_value") or "")
                elif kind == "Comment":
                    text = event.get("plain_body") or event.get("body") or html_to_text(event.get("html_body") or "")
                    author = str(event.get("author_id", audit.get("author_id")))
                    messages.append(Message(at, str(text), bool(event.get("public", True)), author == requester))
            if changed:
                steps.append(Step(at, group, assignee))
        if status not in SOLVED:
            solved_at = None
        elif solved_at is None:  # solved before the audits kept (archived): its last change is the solve
            solved_at = iso(ticket.get("updated_at") or ticket["created_at"])
        via = (ticket.get("via") or {}).get("channel")
        metadata = {"channel": str(via or ""), "priority": str(ticket.get("priority") or "")}
        return History(
            ticket_id,
            FINAL if status in SOLVED else "open",
            subject=subject if subject is not None else str(ticket.get("subject") or ""),
            created_at=iso(ticket["created_at"]),
            solved_at=solved_at,
            steps=steps,
            messages=messages,
            metadata=metadata,
        )

    def _audits(self, ticket_id: str) -> Iterator[dict[str, Any]]:
        url: str | None = f"/api/v2/tickets/{ticket_id}/audits.json"
        while url:
            body = self.reader.get(url)
            yield from sorted(body.get("audits") or [], key=lambda a: iso(a["created_at"]))
            url = _next(body)


def _next(body: dict[str, Any]) -> str | None:
    """The next page of a list: cursor pagination (`meta.has_more`, `links.next`) or offset (`next_page`)."""
    meta, links = body.get("meta") or {}, body.get("links") or {}
    if meta.get("has_more") and links.get("next"):
        return str(links["next"])
    return str(body["next_page"]) if body.get("next_page") else None
