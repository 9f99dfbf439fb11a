"""The server follows the registry alias: swaps under concurrent load without a failed request, keeps the old
version when the new one cannot serve, and follows a rollback by polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from features.settings import Settings
from serving.app import create_app
from tests.conftest import point_mlflow_at, running, store_settings, ticket
from training.register import PromotionRefused, promote
from training.sample_data import write_sample
from training.tracking import experiment_id
from training.train import train


class NotARouter(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


@dataclass
class Registry:
    settings: Settings
    client: MlflowClient


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A store with v1 (trained), v2 (the same model registered again) and v3 (not a router)."""
    folder = tmp_path_factory.mktemp("reload")
    data, config = write_sample(folder, rows=600, seed=5)
    settings = store_settings(folder)
    train(data, config, settings, progress=False)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.copy_model_version("models:/escalation-router/1", "escalation-router")
    with pytest.MonkeyPatch.context() as patch:  # MLflow's fluent API, pointed at this store for these lines only
        point_mlflow_at(settings, patch)
        with mlflow.start_run(experiment_id=experiment_id(client, "not-a-router")):  # artefacts kept in `folder`
            mlflow.pyfunc.log_model(name="model", python_model=NotARouter(), registered_model_name="escalation-router")
    client.set_registered_model_alias("escalation-router", "champion", "1")
    return Registry(settings, client)


@pytest.fixture
def server(registry: Registry) -> Iterator[str]:
    """The real app under uvicorn on loopback, polling the registry every 0.3 s."""
    settings = registry.settings.model_copy(update={"poll_seconds": 0.3, "auth_disabled": True})
    with running(create_app(settings), ready="/readyz") as url:
        yield url
    registry.client.set_registered_model_alias("escalation-router", "champion", "1")


def _wait_for_version(url: str, version: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/v1/model").json()["version"] == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"server did not switch to v{version} within {seconds} s")


def test_swap_under_concurrent_requests_fails_none(server: str, registry: Registry) -> None:
    stop = threading.Event()

    def hammer(i: int) -> list[tuple[int, str]]:
        seen = []
        with httpx.Client(base_url=server, timeout=30) as http:
            while not stop.is_set():
                r = http.post("/v1/suggestions", json=ticket(id=f"C-{i}"))
                seen.append((r.status_code, r.json()["model"]["version"] if r.status_code == 200 else r.text))
        return seen

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(hammer, i) for i in range(6)]
        time.sleep(1.0)
        assert promote(registry.settings, 2) == "1"
        reload = httpx.post(f"{server}/v1/admin/reload", timeout=60).json()
        assert reload in (
            {"status": "changed", "version": "2", "previous_version": "1", "detail": None},
            {"status": "unchanged", "version": "2", "previous_version": "2", "detail": None},  # the poller was first
        )
        time.sleep(1.0)
        stop.set()
        results = [r for f in futures for r in f.result()]
    assert len(results) > 20
    assert {code for code, _ in results} == {200}, [r for r in results if r[0] != 200][:3]
    assert {v for _, v in results} == {"1", "2"}
    assert httpx.get(f"{server}/readyz").json()["model"]["version"] == "2"


def test_rollback_is_followed_by_polling(server: str, registry: Registry) -> None:
    promote(registry.settings, 2)
    _wait_for_version(server, "2")
    assert promote(registry.settings, 1, "rollback") == "2"
    _wait_for_version(server, "1")
    tag = registry.client.get_model_version("escalation-router", "1").tags["promotion"]
    assert tag == "promoted: rollback"


def test_a_version_that_cannot_serve_is_never_swapped_in(server: str, registry: Registry) -> None:
    with pytest.raises(PromotionRefused, match="cannot serve"):
        promote(registry.settings, 3)
    # someone moves the alias by hand anyway: the server keeps v1 and says why
    registry.client.set_registered_model_alias("escalation-router", "champion", "3")
    reload = httpx.post(f"{server}/v1/admin/reload", timeout=60).json()
    assert reload["status"] == "failed" and reload["version"] == "1" and "not an escalation router" in reload["detail"]
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200 and ready.json()["model"]["version"] == "1"
    assert "not an escalation router" in ready.json()["registry"]["last_error"]
    assert httpx.post(f"{server}/v1/suggestions", json=ticket()).status_code == 200


def test_promote_unknown_version_is_a_clear_error(registry: Registry) -> None:
    with pytest.raises(PromotionRefused, match="has no version 99"):
        promote(registry.settings, 99)
