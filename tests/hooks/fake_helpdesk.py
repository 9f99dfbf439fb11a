"""A small fake helpdesk: a real HTTP server on loopback that checks the auth header of every write-back, records
what it got, and can be told to answer 500 or 429 (with Retry-After) for a while."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A real HTTP server on a free loopback port, answering in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shut(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


class Quiet(BaseHTTPRequestHandler):
    """A handler that logs nothing."""

    def log_message(self, *args: Any) -> None:
        pass


@dataclass(kw_only=True)
class Loopback:
    """What every fake server here shares: the server once started, its URL, a lock for what it records, stop."""

    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        shut(self.server)


@dataclass
class Write:
    method: str
    path: str
    auth: str
    body: dict[str, Any]


@dataclass
class FakeHelpdesk(Loopback):
    """Expects `auth` as the Authorization header; `fail(500, 500)` answers the next two writes with 500."""

    auth: str
    writes: list[Write] = field(default_factory=list)
    refused: list[Write] = field(default_factory=list)  # wrong or missing auth
    failures: list[int] = field(default_factory=list)
    on_write: Callable[[Write], None] | None = None  # called with each accepted write before it is answered

    def fail(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def start(self) -> FakeHelpdesk:
        fake = self

        class Handler(Quiet):
            def _answer(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size) if size else b""
                write = Write(self.command, self.path, self.headers.get("Authorization", ""), json.loads(raw or b"{}"))
                with fake.lock:
                    if write.auth != fake.auth:
                        fake.refused.append(write)
                        status = 401
                    elif fake.failures:
                        status = fake.failures.pop(0)
                    else:
                        fake.writes.append(write)
                        status = 200
                if status == 200 and fake.on_write is not None:
                    fake.on_write(write)
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_PUT = do_POST = _answer  # noqa: N815 - the handler's own method names

        self.server = serve(Handler)
        return self

    def wait_for(self, count: int, seconds: float = 30) -> list[Write]:
        """The writes, once at least `count` arrived (AssertionError after `seconds`)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.writes) >= count:
                    return list(self.writes)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.writes)} writes arrived, {count} expected; refused {len(self.refused)}")
