"""The request body before FastAPI parses it: capped in bytes (413), invalid UTF-8 and lone surrogates replaced."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# An escaped backslash (skipped, so `\\ud800` stays text), a valid surrogate pair (kept), or a lone surrogate escape.
_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def _lone_surrogate(match: re.Match[bytes]) -> bytes:
    text = match.group()
    return text if len(text) in (2, 12) else rb"\ufffd"


def clean_body(body: bytes) -> bytes:
    """The body as valid UTF-8 JSON text: undecodable bytes and lone surrogate escapes become U+FFFD."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        body = body.decode("utf-8", "replace").encode("utf-8")
    if b"\\u" in body:
        body = _ESCAPES.sub(_lone_surrogate, body)
    return body


class BodyGuard:
    """ASGI middleware: refuses bodies over `max_bytes` with 413, never keeping more than the cap in memory, and
    cleans the rest. The refused body is read and dropped first (up to `drain_factor` times the cap), so a client
    that sends all of it before reading, as Python's urllib does, gets the 413 instead of a connection reset."""

    def __init__(self, app: ASGIApp, max_bytes: int, drain_factor: int = 8):
        self.app, self.max_bytes = app, max_bytes
        self.drain_bytes = max_bytes * drain_factor  # read and dropped at most, so the client can read its 413

    async def _drain(self, receive: Receive, size: int) -> bool:
        """Read and drop the rest of the body (never kept) until its end or `drain_bytes`; False on disconnect."""
        while size <= self.drain_bytes:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
        return True  # past the bound: answer now, whatever the client makes of it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            # A client that waits for `100 Continue` sends nothing more; one that sends anyway (Python's urllib,
            # most scripts) reads no answer until its body is out: drop that body first, up to a bound.
            waits = headers.get(b"expect", b"").lower() == b"100-continue"
            if not waits and int(declared) <= self.drain_bytes and not await self._drain(receive, 0):
                return
            await self._too_large(send, int(declared))
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False) and not await self._drain(receive, size):
                    return
                await self._too_large(send, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = clean_body(b"".join(chunks))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"] + [
            (b"content-length", str(len(body)).encode())
        ]
        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else f"over {self.max_bytes} bytes"
        detail: dict[str, Any] = {
            "detail": f"request body is {size}; at most {self.max_bytes} bytes are accepted "
            "(setting ESCALATION_MAX_BODY_BYTES); send fewer or shorter tickets"
        }
        payload = json.dumps(detail).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
