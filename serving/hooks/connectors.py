"""One connector per helpdesk: is this delivery genuine, what does it say, and how is a note written back.

Each follows its helpdesk's published webhook and REST documentation (docs/helpdesks.md names the pages):
Zendesk signs `timestamp + body` with HMAC-SHA256 (base64), Zammad the body with HMAC-SHA1 (`sha1=` hex), Jira the
body with HMAC-SHA256 (`sha256=` hex). A connector with no secret configured accepts nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx

from features.helpdesk.errors import check
from features.helpdesk.text import adf_to_text, html_to_text
from features.settings import Settings

Headers = Mapping[str, str]  # lower-case names


@dataclass(frozen=True)
class HookEvent:
    """What a delivery means for the router: a new ticket to suggest for, a final outcome, or nothing."""

    kind: Literal["created", "outcome", "ignored"]
    ticket_id: str = ""
    subject: str = ""
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    group: str | None = None  # the helpdesk's group at the outcome, as `helpdesk:group` for the mapping
    tags: tuple[str, ...] = ()
    why: str = ""  # for `ignored`

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tags": list(self.tags)}


def _same(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())


class Connector:
    """A helpdesk's webhook in and REST write-back out; subclasses fill in the helpdesk's own shapes."""

    name: ClassVar[str]

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def url(self) -> str:
        return str(getattr(self.settings, f"{self.name}_url")).rstrip("/")

    @property
    def secret(self) -> str:
        return str(getattr(self.settings, f"{self.name}_webhook_secret"))

    def enabled(self) -> bool:
        return bool(self.url)

    def verify(self, headers: Headers, body: bytes) -> bool:
        raise NotImplementedError

    def delivery(self, headers: Headers, payload: dict[str, Any]) -> str:
        raise NotImplementedError

    def parse(self, payload: dict[str, Any]) -> HookEvent:
        raise NotImplementedError

    def write(self, http: httpx.Client, ticket_id: str, note: str, tags: list[str]) -> None:
        raise NotImplementedError


class Zendesk(Connector):
    """Event webhooks (`zen:event-type:ticket.created`, `...ticket.status_changed`); a private comment and tags."""

    name = "zendesk"
    FINAL = {"solved", "closed"}

    def verify(self, headers: Headers, body: bytes) -> bool:
        stamp, given = headers.get("x-zendesk-webhook-signature-timestamp"), headers.get("x-zendesk-webhook-signature")
        if not self.secret or not stamp or not given:
            return False
        digest = hmac.new(self.secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        return _same(base64.b64encode(digest).decode(), given)

    def delivery(self, headers: Headers, payload: dict[str, Any]) -> str:
        return str(payload.get("id") or headers.get("x-zendesk-webhook-invocation-id") or "")

    def parse(self, payload: dict[str, Any]) -> HookEvent:
        kind, detail = str(payload.get("type", "")), payload.get("detail") or {}
        ticket_id = str(detail.get("id") or str(payload.get("subject", "")).rpartition(":")[2])
        tags = tuple(str(t) for t in detail.get("tags") or [])
        if kind == "zen:event-type:ticket.created":
            channel = (detail.get("via") or {}).get("channel")
            return HookEvent(
                "created",
                ticket_id,
                str(detail.get("subject") or ""),
                str(detail.get("description") or ""),
                {"channel": str(channel)} if channel else {},
                tags=tags,
            )
        status = str((payload.get("event") or {}).get("current") or detail.get("status") or "").lower()
        if kind == "zen:event-type:ticket.status_changed" and status in self.FINAL:
            group = detail.get("group_id")
            return HookEvent("outcome", ticket_id, group=f"zendesk:{group}" if group else None, tags=tags)
        return HookEvent("ignored", ticket_id, why=f"{kind or 'no type'} (status {status or '-'})")

    def write(self, http: httpx.Client, ticket_id: str, note: str, tags: list[str]) -> None:
        auth = (f"{self.settings.zendesk_email}/token", self.settings.zendesk_token)
        body = {"ticket": {"comment": {"body": note, "public": False}, "additional_tags": tags}}
        check(http.put(f"{self.url}/api/v2/tickets/{ticket_id}.json", json=body, auth=auth), "zendesk update")


class Zammad(Connector):
    """Trigger webhooks (`ticket`, `article`); an internal note article and tags."""

    name = "zammad"
    FINAL = {"closed", "merged"}

    def verify(self, headers: Headers, body: bytes) -> bool:
        given = headers.get("x-hub-signature")
        if not self.secret or not given:
            return False
        return _same("sha1=" + hmac.new(self.secret.encode(), body, hashlib.sha1).hexdigest(), given)

    def delivery(self, headers: Headers, payload: dict[str, Any]) -> str:
        return str(headers.get("x-zammad-delivery") or "")

    def parse(self, payload: dict[str, Any]) -> HookEvent:
        ticket, article = payload.get("ticket") or {}, payload.get("article") or {}
        ticket_id = str(ticket.get("id") or "")
        state = ticket.get("state")
        state = str(state.get("name") if isinstance(state, dict) else state or "").lower()
        group = ticket.get("group")
        group = group.get("name") if isinstance(group, dict) else group
        tags = tuple(str(t) for t in ticket.get("tags") or [])
        if state in self.FINAL:
            return HookEvent("outcome", ticket_id, group=f"zammad:{group}" if group else None, tags=tags)
        if int(ticket.get("article_count") or 1) <= 1 and article:
            body = str(article.get("body") or "")
            if "html" in str(article.get("content_type", "")):
                body = html_to_text(body)
            channel = article.get("type")
            return HookEvent(
                "created", ticket_id, str(ticket.get("title") or ""), body, {"channel": str(channel)} if channel else {}
            )
        return HookEvent("ignored", ticket_id, why=f"state {state or '-'}, {ticket.get('article_count')} articles")

    def write(self, http: httpx.Client, ticket_id: str, note: str, tags: list[str]) -> None:
        headers = {"Authorization": f"Token token={self.settings.zammad_token}"}
        article = {"ticket_id": int(ticket_id), "body": note, "content_type": "text/plain", "type": "note"}
        check(
            http.post(f"{self.url}/api/v1/ticket_articles", json={**article, "internal": True}, headers=headers),
            "zammad note",
        )
        for tag in tags:
            added = http.post(
                f"{self.url}/api/v1/tags/add",
                json={"item": tag, "object": "Ticket", "o_id": int(ticket_id)},
                headers=headers,
            )
            check(added, "zammad tag")


class Jira(Connector):
    """Jira Service Management webhooks (`jira:issue_created`, `jira:issue_updated`); an internal comment."""

    name = "jira"
    FINAL = {"done"}

    def verify(self, headers: Headers, body: bytes) -> bool:
        given = headers.get("x-hub-signature")
        if not self.secret or not given:
            return False
        return _same("sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest(), given)

    def delivery(self, headers: Headers, payload: dict[str, Any]) -> str:
        issue = payload.get("issue") or {}
        fallback = f"{payload.get('webhookEvent')}:{issue.get('id')}:{payload.get('timestamp')}"
        return str(headers.get("x-atlassian-webhook-identifier") or fallback)

    def parse(self, payload: dict[str, Any]) -> HookEvent:
        kind, issue = str(payload.get("webhookEvent", "")), payload.get("issue") or {}
        fields = issue.get("fields") or {}
        key = str(issue.get("key") or "")
        labels = tuple(str(t) for t in fields.get("labels") or [])
        if kind == "jira:issue_created":
            return HookEvent(
                "created", key, str(fields.get("summary") or ""), adf_to_text(fields.get("description")).strip()
            )
        status = fields.get("status") or {}
        category = str((status.get("statusCategory") or {}).get("key") or "").lower()
        if kind == "jira:issue_updated" and category in self.FINAL:
            components = [c.get("name") for c in fields.get("components") or [] if c.get("name")]
            group = components[0] if components else None
            return HookEvent("outcome", key, group=f"jira:{group}" if group else None, tags=labels)
        return HookEvent("ignored", key, why=f"{kind or 'no event'} (status {status.get('name', '-')})")

    def write(self, http: httpx.Client, ticket_id: str, note: str, tags: list[str]) -> None:
        auth = (self.settings.jira_email, self.settings.jira_token)
        comment = {"body": note, "public": False}
        check(http.post(f"{self.url}/rest/servicedeskapi/request/{ticket_id}/comment", json=comment, auth=auth), "jira")


CONNECTORS: tuple[type[Connector], ...] = (Zendesk, Zammad, Jira)


def configured(settings: Settings) -> dict[str, Connector]:
    """The connectors whose URL is set."""
    found = {kind.name: kind(settings) for kind in CONNECTORS}
    return {name: c for name, c in found.items() if c.enabled()}
