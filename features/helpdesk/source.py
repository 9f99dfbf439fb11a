"""What the importer and the connectors' live outcomes need from a helpdesk's history, whichever helpdesk it is: the
tickets changed since a position in its change feed, page by page, and one ticket's path and conversation."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from features.helpdesk.client import Reader
from features.helpdesk.paths import History
from features.settings import Settings

MODULES = {  # each has `source(settings, **reader_options)`
    "zendesk": "features.helpdesk.zendesk",
    "zammad": "features.helpdesk.zammad",
    "jira": "features.helpdesk.jira",
}


@dataclass(frozen=True)
class Page:
    tickets: list[dict[str, Any]]
    cursor: str | None  # where the next request starts: also the next run's start
    end: bool


class HistorySource(Protocol):
    helpdesk: str
    reader: Reader

    def changed(self, cursor: str | None, since: datetime | None) -> Iterator[Page]:
        """Tickets changed since `since` (the first run) or since `cursor` (the last run's end), page by page."""
        ...

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """One ticket as `changed` lists it."""
        ...

    def history(self, ticket: dict[str, Any]) -> History:
        """One listed ticket's status, path (groups and assignees over time) and messages."""
        ...

    def groups(self) -> dict[str, str]:
        """Group key as the connectors' outcomes name it (`ESCALATION_HOOK_GROUPS`) -> group name."""
        ...

    def user_id(self, email: str) -> str | None:
        """The helpdesk's id of the person with this e-mail (None: no such person)."""
        ...


def helpdesks() -> tuple[str, ...]:
    return tuple(MODULES)


def history_source(helpdesk: str, settings: Settings, **reader_options: Any) -> HistorySource:
    """The helpdesk's history through its connector's settings; ValueError for a helpdesk with no reader."""
    if helpdesk not in MODULES:
        raise ValueError(f"helpdesk {helpdesk!r}: this version reads {', '.join(MODULES)}")
    module = importlib.import_module(MODULES[helpdesk])
    return module.source(settings, **reader_options)  # type: ignore[no-any-return]
