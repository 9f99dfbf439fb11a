"""A body over the cap gets its 413 over a real socket, also from a client that sends all of it before reading
(Python's urllib), instead of a connection reset."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from features.settings import Settings
from serving.app import create_app
from serving.model_store import LoadedModel, ModelUnavailable


def _no_model(settings: Settings) -> LoadedModel:
    raise ModelUnavailable("no model in this test: the body cap answers before any route")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("cap")
    settings = Settings(
        auth_disabled=True,
        keys_file=str(folder / "keys.json"),
        feedback_url=f"sqlite:///{folder / 'feedback.db'}",
        model_cache_dir="",
        poll_seconds=0,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, loader=_no_model), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/v1/suggestions", data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_urllib_sending_5_mb_reads_the_413(url: str) -> None:
    body = json.dumps({"body": "x" * 5_000_000}).encode()
    status, answer = _post(url, body)
    assert status == 413
    assert answer["detail"].startswith(f"request body is {len(body)} bytes; at most 4000000 bytes")


def test_the_connection_still_serves_after_a_refused_body(url: str) -> None:
    assert _post(url, json.dumps({"body": "y" * 4_500_000}).encode())[0] == 413
    status, answer = _post(url, json.dumps({"body": "I was charged twice"}).encode())
    assert status == 503 and answer == {"detail": "no model loaded"}  # parsed and answered: the cap let it through
