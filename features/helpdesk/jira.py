"""Reading a Jira Service Management site's history (the Jira Cloud platform REST API v3, as documented at
developer.atlassian.com):

- issues changed since a time: the enhanced JQL search, `GET /rest/api/3/search/jql` with
  `jql=updated >= "yyyy-MM-dd HH:mm" ORDER BY updated ASC, key ASC`, `fields`, `expand=changelog` and
  `nextPageToken` until `isLast`. JQL dates are minutes in the API user's time zone (`GET /rest/api/3/myself`), so
  the cursor is the last issue's exact `updated` and key: the next search starts at that minute and what was read up
  to the cursor is skipped;
- an issue's path: its changelog (`Component`, `assignee` and `status` items). The search result holds only the most
  recent histories (`changelog.total` says how many there are): when it is cut, all of them are read from
  `GET /rest/api/3/issue/{key}/changelog` (oldest first, `startAt` until `isLast`). Changes record the value before
  and after, so the issue's values at creation are its current ones with every change undone;
- its conversation: the description and `GET /rest/api/3/issue/{key}/comment` (`jsdPublic` false is an internal
  note; the reporter's comments are the customer's), Atlassian Document Format read as text. Deleted issues never
  show in a search: one deleted since the search listed it answers 404, and is a tombstone;
- component names, `GET /rest/api/3/component`, and a person's account id by e-mail, `GET /rest/api/3/user/search`.

A ticket's group is its first component, the one the Jira connector names in outcomes (`jira:<component>`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from features.helpdesk.client import Reader, configured
from features.helpdesk.errors import HelpdeskNotFound, HelpdeskRefused
from features.helpdesk.paths import FINAL, History, Message, Step
from features.helpdesk.source import Page
from features.helpdesk.text import adf_to_text
from features.settings import Settings

SEARCH = "/rest/api/3/search/jql"
FIELDS = "summary,description,status,created,updated,resolutiondate,assignee,reporter,priority,components,labels"
PAGE = 100  # issues a search page asks for; Jira may answer fewer
DONE = "done"  # the status category of a resolved issue
SETTLE = timedelta(minutes=5)  # how far behind the issues the search index may be (Atlassian: seconds to minutes)


def reader(settings: Settings, **kwargs: Any) -> Reader:
    """A reader with the connector's own settings (ESCALATION_JIRA_URL, _EMAIL, _TOKEN): basic auth EMAIL:TOKEN."""
    auth = (settings.jira_email, settings.jira_token)
    return configured(settings, "jira", ("jira_email", "jira_token"), **({"auth": auth} | kwargs))


def source(settings: Settings, **kwargs: Any) -> JiraHistory:
    return JiraHistory(reader(settings, **kwargs))


def moment(value: Any) -> datetime:
    """A Jira time (`2026-03-01T10:00:00.000+0100`) as an aware datetime."""
    text = str(value).replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():  # +0100 -> +01:00
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


def iso(value: Any) -> str:
    """A Jira time as the importer's one comparable form: `YYYY-MM-DDTHH:MM:SSZ`, UTC."""
    return moment(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is(item: dict[str, Any], field: str) -> bool:
    """A changelog item about this field (by its id, else its name: `components` is named `Component`)."""
    name = str(item.get("fieldId") or item.get("field") or "").lower()
    return name == field or (field == "components" and name == "component")


class JiraHistory:
    """Pages of changed issues, and one issue's history from its changelog and comments."""

    helpdesk = "jira"

    def __init__(self, reader: Reader):
        self.reader = reader
        self._groups: dict[str, str] | None = None

    def groups(self) -> dict[str, str]:
        """Component name -> name: the connector names a ticket's group by its first component."""
        if self._groups is None:
            found: dict[str, str] = {}
            for component in self._paged("/rest/api/3/component", "values"):
                if component.get("name"):
                    found[str(component["name"])] = str(component["name"])
            self._groups = found
        return self._groups

    def user_id(self, email: str) -> str | None:
        """The account id of the person with this e-mail (None: no such person). Jira finds people by a prefix of
        their name or e-mail and shows the e-mail only where their profile lets it be seen."""
        found = self.reader.get_json("/rest/api/3/user/search", params={"query": email})
        users = [u for u in found if isinstance(u, dict)] if isinstance(found, list) else []
        matches = [u for u in users if str(u.get("emailAddress") or "").lower() == email.lower()]
        if matches:
            return str(matches[0]["accountId"])
        if any(not u.get("emailAddress") for u in users):
            raise HelpdeskRefused(
                "jira: the people that --hierarchical e-mail finds hide their e-mail address (Atlassian profile "
                "visibility), so none can be taken for that person: let the importer's account see it, or name "
                "their group instead"
            )
        return None

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """One issue as the search lists it (`GET /rest/api/3/issue/{key}`, the same fields and its changelog)."""
        return self.reader.get(f"/rest/api/3/issue/{ticket_id}", params={"fields": FIELDS, "expand": "changelog"})

    def changed(self, cursor: str | None, since: datetime | None) -> Iterator[Page]:
        """Issues updated since `since` (the first run) or since `cursor` (the last issue read: `updated|key`),
        page by page, oldest change first."""
        if cursor is not None:
            stamp, _, last_key = cursor.rpartition("|")
            start = moment(stamp)
        elif since is not None:
            start, last_key = since if since.tzinfo else since.replace(tzinfo=UTC), ""
            cursor = f"{start.isoformat()}|"
        else:
            raise ValueError("give --since for the first import")
        zone = self._zone()
        settled = _minute(datetime.now(UTC) - SETTLE, zone)  # the search index lags: later changes wait a run
        jql = f'updated >= "{_minute(start, zone)}" AND updated <= "{settled}" ORDER BY updated ASC, key ASC'
        params: dict[str, Any] = {"jql": jql, "fields": FIELDS, "expand": "changelog", "maxResults": PAGE}
        while True:
            body = self.reader.get(SEARCH, params=params)
            issues = [i for i in body.get("issues") or [] if isinstance(i, dict)]
            fresh = [i for i in issues if _after(i, start, last_key)]
            if issues:
                cursor = f"{_updated(issues[-1])}|{issues[-1]['key']}"
            token = body.get("nextPageToken")
            end = bool(body.get("isLast", not token)) or not token
            yield Page(fresh, cursor, end)
            if end:
                return
            params = {**params, "nextPageToken": token}

    def _zone(self) -> ZoneInfo | None:
        """The API user's time zone, in which JQL reads dates (None: one this machine does not know)."""
        try:
            return ZoneInfo(str(self.reader.get("/rest/api/3/myself").get("timeZone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            return None

    def history(self, ticket: dict[str, Any]) -> History:
        """One issue: its status, from its changelog its components and assignees over time, and its messages."""
        key, fields = str(ticket["key"]), ticket.get("fields") or {}
        try:
            histories = self._changelog(key, ticket.get("changelog") or {})
            comments = list(self._paged(f"/rest/api/3/issue/{key}/comment", "comments", {"orderBy": "created"}))
        except HelpdeskNotFound:  # deleted since the search listed it
            return History(key, "deleted")
        created = iso(fields["created"])
        steps, last_status = _steps(fields, created, histories)
        status = fields.get("status") or {}
        solved = str((status.get("statusCategory") or {}).get("key") or "").lower() == DONE  # reopened: not done
        solved_at = None
        if solved:  # when it was resolved, else its last move between statuses, else its last change
            solved_at = iso(fields.get("resolutiondate") or last_status or fields.get("updated") or fields["created"])
        reporter = (fields.get("reporter") or {}).get("accountId")
        # as the issue opened: a summary or description edited later may name the team ("[BILLING] ...")
        summary, description = _original(histories, "summary"), _original(histories, "description")
        opened = description if description is not None else adf_to_text(fields.get("description"))
        messages = [Message(created, opened, True, True)]
        for comment in comments:
            author = (comment.get("author") or {}).get("accountId")
            text = adf_to_text(comment.get("body"))
            public = bool(comment.get("jsdPublic", True))
            # an edit after the hop may say where it went: the comment counts from its last edit
            written = max(iso(comment["created"]), iso(comment.get("updated") or comment["created"]))
            messages.append(Message(written, text, public, author is not None and author == reporter))
        return History(
            key,
            FINAL if solved else "open",
            subject=summary if summary is not None else str(fields.get("summary") or ""),
            created_at=created,
            solved_at=solved_at,
            steps=steps,
            messages=messages,
            metadata={"channel": "", "priority": str((fields.get("priority") or {}).get("name") or "")},
        )

    def _changelog(self, key: str, embedded: dict[str, Any]) -> list[dict[str, Any]]:
        """Every history of the issue, oldest first: the search's own when it has all of them, else read per issue."""
        histories = [h for h in embedded.get("histories") or [] if isinstance(h, dict)]
        if int(embedded.get("total") or 0) > len(histories) or int(embedded.get("startAt") or 0) > 0:
            histories = list(self._paged(f"/rest/api/3/issue/{key}/changelog", "values"))
        return sorted(histories, key=lambda h: (moment(h["created"]), int(h.get("id") or 0)))

    def _paged(self, path: str, items: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of an offset-paged list (`startAt`, `maxResults`; the end by `isLast`, else by `total`)."""
        start = 0
        while True:
            body = self.reader.get(path, params={**(params or {}), "startAt": start, "maxResults": PAGE})
            page = [i for i in body.get(items) or [] if isinstance(i, dict)]
            yield from page
            start = int(body.get("startAt") or start) + len(page)
            last = body.get("isLast")
            if not page or last is True or (last is None and start >= int(body.get("total") or 0)):
                return


def _minute(moment_: datetime, zone: ZoneInfo | None) -> str:
    """A moment as a JQL date, a minute in the API user's zone; in an unknown zone a day early for a start and a day
    late for an end would both be wrong, so UTC minus a day: what was read already is skipped by the cursor."""
    local = moment_.astimezone(zone) if zone is not None else moment_.astimezone(UTC) - timedelta(days=1)
    return local.strftime("%Y-%m-%d %H:%M")


def _original(histories: list[dict[str, Any]], field: str) -> str | None:
    """A field's value before its first change in the changelog (None: never changed)."""
    for history in histories:
        for item in history.get("items") or []:
            if _is(item, field):
                return str(item.get("fromString") or "")
    return None


def _updated(issue: dict[str, Any]) -> str:
    fields = issue.get("fields") or {}
    return str(fields.get("updated") or fields.get("created"))


def _after(issue: dict[str, Any], start: datetime, last_key: str) -> bool:
    """Not read up to the cursor yet: updated after it, or at its very time but not the cursor's own issue (the
    search starts at the cursor's minute, so what came before it in that minute is listed again)."""
    updated = moment(_updated(issue))
    return updated > start or (updated == start and str(issue.get("key")) != last_key)


def _steps(fields: dict[str, Any], created: str, histories: list[dict[str, Any]]) -> tuple[list[Step], str | None]:
    """The issue's first component and assignee over time, and when its status last moved. Changes record the
    values before and after, so the values it was created with are its current ones with every change undone."""
    components = [str(c["name"]) for c in fields.get("components") or [] if c.get("name")]
    assignee = (fields.get("assignee") or {}).get("accountId")
    for entry in reversed(histories):
        for item in reversed(entry.get("items") or []):
            assignee = _apply(item, components, assignee, undo=True)
    steps = [Step(created, components[0] if components else None, assignee)]
    last_status: str | None = None
    for entry in histories:
        at = iso(entry["created"])
        for item in entry.get("items") or []:
            assignee = _apply(item, components, assignee, undo=False)
            last_status = at if _is(item, "status") else last_status
        now = Step(at, components[0] if components else None, assignee)
        if (now.group, now.assignee) != (steps[-1].group, steps[-1].assignee):
            steps.append(now)
    return steps, last_status


def _apply(item: dict[str, Any], components: list[str], assignee: str | None, undo: bool) -> str | None:
    """One changelog item applied (or undone) to the components, in place, and to the assignee, returned."""
    before, after = ("to", "from") if undo else ("from", "to")
    if _is(item, "components"):  # one component leaves, or one joins
        if item.get(f"{before}String") in components:
            components.remove(item[f"{before}String"])
        if item.get(f"{after}String") and item[f"{after}String"] not in components:
            components.append(str(item[f"{after}String"]))
    elif _is(item, "assignee"):
        return item.get(after)
    return assignee
