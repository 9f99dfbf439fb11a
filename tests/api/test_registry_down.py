"""The MLflow tracking server unreachable at start-up: the service serves the last version it loaded from its local
cache, says so in /readyz, keeps retrying, and follows the registry again once a real tracking server answers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.conftest import Trained, bearer, free_port, ticket

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {seconds} s"
        time.sleep(0.2)


@pytest.fixture
def tracking_server() -> Iterator[Callable[[str, int], None]]:
    """Starts `mlflow server` on a backend store and port when asked; stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(backend: str, port: int) -> None:
        started.append(
            subprocess.Popen(
                [MLFLOW, "server", "--backend-store-uri", backend, "--host", "127.0.0.1", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    yield start
    for process in started:
        process.terminate()
        process.wait(30)


def test_registry_down_at_start_serves_the_cached_version_and_recovers(
    trained: Trained, tmp_path: Path, tracking_server: Callable[[str, int], None]
) -> None:
    cache = tmp_path / "served-model"
    up = trained.settings.model_copy(update={"poll_seconds": 0, "model_cache_dir": str(cache)})
    headers = bearer(up, "analyst")
    with TestClient(create_app(up), headers=headers) as client:
        assert client.get("/readyz").json()["model_source"] == "registry"
        _wait(lambda: (cache / "served.json").exists(), 60, "the local copy")

    port = free_port()  # nothing listens here yet: the registry is down
    down = up.model_copy(update={"tracking_uri": f"http://127.0.0.1:{port}", "registry_retry_seconds": 0.5})
    with TestClient(create_app(down), headers=headers) as client:
        ready = client.get("/readyz")
        body = ready.json()
        assert ready.status_code == 200 and body["model_source"] == "local cache"
        assert body["model"]["version"] == "1" and "unreachable" in body["detail"]
        answer = client.post("/v1/suggestions", json=ticket())
        assert answer.status_code == 200 and answer.json()["model"]["version"] == "1"
        first_check = client.get("/readyz").json()["registry"]["last_check"]
        _wait(lambda: client.get("/readyz").json()["registry"]["last_check"] != first_check, 30, "a retry")

        tracking_server(trained.settings.tracking_uri, port)  # the registry comes back
        _wait(lambda: client.get("/readyz").json()["model_source"] == "registry", 90, "the registry")
        again = client.get("/readyz").json()
        assert again["detail"] is None and again["model"]["version"] == "1"
        assert client.post("/v1/suggestions", json=ticket()).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200


def test_registry_down_and_no_cache_is_not_ready_saying_both(trained: Trained, tmp_path: Path) -> None:
    down = trained.settings.model_copy(
        update={
            "tracking_uri": f"http://mlflow:s3cretPW@127.0.0.1:{free_port()}",
            "model_cache_dir": str(tmp_path / "empty"),
            "poll_seconds": 0,
        }
    )
    with TestClient(create_app(down)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "unreachable" in ready.json()["detail"] and "no usable model in the local cache" in ready.json()["detail"]
    assert "s3cretPW" not in ready.text and "http://***@127.0.0.1" in ready.text  # /readyz is open: no credentials
