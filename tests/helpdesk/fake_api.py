"""What the fake helpdesk read APIs share: a real HTTP server on loopback that answers GETs with JSON, refuses a
wrong Authorization header with 401, fails the requests a test asks for (per path prefix; a 429 carries
Retry-After), and logs every request. A subclass serves its helpdesk's shapes in `answer`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlparse

from tests.hooks.fake_helpdesk import Loopback, Quiet, serve


@dataclass(kw_only=True)
class FakeReadAPI(Loopback):
    """`fail("/api/x", 200, 429)` lets the next request under /api/x through, then answers one with 429."""

    helpdesk: ClassVar[str]  # the name `escalation import` takes
    email: ClassVar[str | None] = None  # the API user's e-mail, where the helpdesk's auth needs one
    token: ClassVar[str]
    auth: ClassVar[str]  # the Authorization header every request must carry
    not_found: ClassVar[Any] = None  # the body of a 404, in the helpdesk's shape (None: empty)

    failures: dict[str, list[int]] = field(default_factory=dict)  # path prefix -> statuses for the next requests
    requests: list[str] = field(default_factory=list)  # path and query of every request, in order

    def fail(self, prefix: str, *statuses: int) -> None:
        with self.lock:
            self.failures.setdefault(prefix, []).extend(statuses)

    def count(self, path: str) -> int:
        """Requests for this path, whatever their query."""
        return sum(1 for p in self.requests if p.split("?")[0] == path)

    def error(self, message: str) -> Any:
        """The body of an error answer, in the helpdesk's shape."""
        return {"error": message}

    def answer(self, path: str, query: dict[str, str]) -> Any:
        """The body for a GET of `path` (called under the lock): a dict or a list; None: 404; a string: 422 with
        that error."""
        raise NotImplementedError

    def start(self) -> Self:
        fake = self

        class Handler(Quiet):
            def do_GET(self) -> None:  # noqa: N802 - the handler's own method name
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.requests.append(self.path)
                    failure = next((s for p, s in fake.failures.items() if url.path.startswith(p) and s), None)
                    status = failure.pop(0) if failure else 200
                    if self.headers.get("Authorization") != fake.auth:
                        status = 401
                    body = fake.answer(url.path, query) if status == 200 else fake.error("fake")
                if body is None:
                    status, body = 404, fake.not_found
                elif isinstance(body, str):
                    status, body = 422, fake.error(body)
                raw = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = serve(Handler)
        return self
