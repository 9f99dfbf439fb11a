"""Reading a helpdesk's REST API: JSON GETs with its authentication, paced to a rate, waiting out 429 (its
`Retry-After`) and 5xx or dropped connections (doubling pauses) before giving up with one clear error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from features.helpdesk.errors import HelpdeskBusy, HelpdeskRefused, check
from features.settings import Settings

log = logging.getLogger(__name__)


class HelpdeskUnavailable(RuntimeError):
    """The helpdesk kept failing a request: the run stops here, and the next one resumes where this one stopped.
    `retry_after`: what the helpdesk last asked to wait (a 429's Retry-After), if it said."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Traffic:
    """What a client did, for the progress bar and the run's summary."""

    requests: int = 0
    waits: int = 0  # pauses for a rate limit or a failure
    waited_seconds: float = 0.0


@dataclass
class Reader:
    """GETs JSON from `base` with `auth` (httpx basic auth) or `headers`. `per_minute` paces the paths that start with
    a given prefix (`{"/api/v2/incremental/": 10}`); `sleep` is how it waits (the tests' fake clock, or time.sleep)."""

    name: str
    base: str
    auth: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    per_minute: dict[str, float] = field(default_factory=dict)
    retry_seconds: float = 2.0
    max_attempts: int = 6
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60.0))
    sleep: Callable[[float], None] = time.sleep
    on_wait: Callable[[str, float], None] | None = None  # why and how long, as it starts waiting
    credentials: str = ""  # the settings to check when the helpdesk refuses them (401, 403)
    traffic: Traffic = field(default_factory=Traffic)
    _last: dict[str, float] = field(default_factory=dict)

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON object of one GET (a path under `base`, or a full URL the helpdesk gave for its next page)."""
        body = self.get_json(path_or_url, params)
        if not isinstance(body, dict):
            raise HelpdeskRefused(f"{self.name} GET {path_or_url}: expected a JSON object")
        return body

    def get_list(self, path_or_url: str, params: dict[str, Any] | None = None) -> list[Any]:
        """The JSON array of one GET, for the APIs that answer a list with one (Zammad's)."""
        body = self.get_json(path_or_url, params)
        if not isinstance(body, list):
            raise HelpdeskRefused(f"{self.name} GET {path_or_url}: expected a JSON array")
        return body

    def get_json(self, path_or_url: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON body of one GET, whatever its shape, with the pacing and retries."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else f"{self.base}{path_or_url}"
        path = url.removeprefix(self.base)
        for attempt in range(1, self.max_attempts + 1):
            self._pace(path)
            self.traffic.requests += 1
            try:
                response = self.http.get(url, params=params, auth=self.auth, headers=self.headers)
                check(response, f"{self.name} GET {path.split('?')[0]}")
                return response.json()
            except HelpdeskRefused as err:
                if "HTTP 401" in str(err) or "HTTP 403" in str(err):
                    raise HelpdeskRefused(f"{err} (check {self.credentials or 'the credentials'})") from None
                raise
            except ValueError:
                raise HelpdeskRefused(f"{self.name} GET {path}: the answer is not JSON") from None
            except (HelpdeskBusy, httpx.TransportError) as err:
                wait = getattr(err, "retry_after", None) or self.retry_seconds * 2 ** (attempt - 1)
                what = (
                    str(err) if isinstance(err, HelpdeskBusy) else f"{self.name} GET {path}: {err.__class__.__name__}"
                )
                if attempt == self.max_attempts:
                    raise HelpdeskUnavailable(
                        f"{what} after {attempt} tries; run the import again to resume where it stopped",
                        getattr(err, "retry_after", None),
                    ) from None
                self._wait(what, wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _pace(self, path: str) -> None:
        for prefix, rate in self.per_minute.items():
            if path.startswith(prefix):
                gap = 60.0 / rate - (time.monotonic() - self._last.get(prefix, float("-inf")))
                if gap > 0:
                    self._wait(f"rate limit of {rate:g} requests a minute", gap)
                self._last[prefix] = time.monotonic()

    def _wait(self, why: str, seconds: float) -> None:
        self.traffic.waits += 1
        self.traffic.waited_seconds += seconds
        if self.on_wait is not None:
            self.on_wait(why, seconds)
        log.debug("%s: %s; waiting %.1f s", self.name, why, seconds)
        self.sleep(seconds)

    def close(self) -> None:
        self.http.close()


def configured(settings: Settings, name: str, needs: tuple[str, ...], **options: Any) -> Reader:
    """A reader of helpdesk `name` at its connector's URL setting, with the import's retry settings; HelpdeskRefused
    naming each setting (`<name>_url` and `needs`) that is not set."""
    missing = [f"ESCALATION_{n.upper()}" for n in (f"{name}_url", *needs) if not getattr(settings, n)]
    if missing:
        raise HelpdeskRefused(f"{name}: set {', '.join(missing)} (the connector's settings, docs/helpdesks.md)")
    url = str(getattr(settings, f"{name}_url"))
    if not url.startswith(("https://", "http://")):
        raise HelpdeskRefused(f"ESCALATION_{name.upper()}_URL {url!r}: give the address with https://")
    defaults = {
        "retry_seconds": settings.import_retry_seconds,
        "max_attempts": settings.import_max_attempts,
        "credentials": " and ".join(f"ESCALATION_{n.upper()}" for n in needs),
    }
    return Reader(name, url.rstrip("/"), **(defaults | options))
