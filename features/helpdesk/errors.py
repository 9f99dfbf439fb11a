"""How a helpdesk's API answered when it did not answer well: busy (try again later) or refused (it will not)."""

from __future__ import annotations

import httpx


class HelpdeskBusy(Exception):
    """The helpdesk could not answer now (down, 5xx, 429): try again, after `retry_after` when it said."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class HelpdeskRefused(Exception):
    """The helpdesk refused the request for good (4xx other than 429): retrying would not help."""


class HelpdeskNotFound(HelpdeskRefused):
    """404: the thing asked for is not there (a ticket deleted since it was listed)."""


def check(response: httpx.Response, what: str) -> None:
    if response.status_code < 300:
        return
    if response.status_code == 429 or response.status_code >= 500:
        wait = response.headers.get("retry-after")
        seconds = float(wait) if wait and wait.replace(".", "", 1).isdigit() else None
        raise HelpdeskBusy(f"{what}: HTTP {response.status_code}", seconds)
    kind = HelpdeskNotFound if response.status_code == 404 else HelpdeskRefused
    raise kind(f"{what}: HTTP {response.status_code} {response.text[:200]}")
