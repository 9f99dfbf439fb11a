"""Shared fixtures: a small seeded export, a temporary sqlite MLflow store and one real trained champion."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.settings import Settings
from serving.model_store import REGISTRY_CLIENT_ENV
from training.sample_data import write_sample
from training.train import TrainResult, train

for _name, _value in REGISTRY_CLIENT_ENV.items():  # as `escalation serve` does: a dead registry fails fast
    os.environ.setdefault(_name, _value)

SLOW_FIXTURES = {"trained", "sample"}  # a trained champion, or the sample export tests train on
SLOW_FOLDERS = {"model", "api", "browser", "hooks", "ray"}  # every test there trains a model or serves one


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` what trains, benchmarks or serves: by the fixtures it needs, or by where it lives."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or folder in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


CHECKOUT = Path(__file__).parents[1]
DEFAULT_STORES = ("mlruns", "mlflow.db")  # where MLflow writes when nothing says otherwise: the working directory


def default_stores() -> dict[str, tuple[int, int]]:
    """(size, mtime) of what the checkout and the working directory hold of MLflow's default stores: mlflow.db,
    and mlruns/ down to its runs and logged models."""
    found = {}
    for folder in {CHECKOUT, Path.cwd()}:
        for name in DEFAULT_STORES:
            path = folder / name
            paths = [path, *path.glob("*"), *path.glob("*/*")] if path.is_dir() else [path]
            found.update({str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.exists()})
    return found


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean() -> Iterator[None]:
    """Fail the run when a test wrote to MLflow's default stores: every test writes under its own temporary folder
    (a checkout that gains mlruns/ or mlflow.db holds runs that no test cleans up, and a developer's own store
    would gain test runs)."""
    before = default_stores()
    yield
    written = sorted(path for path, stat in default_stores().items() if before.get(path) != stat)
    assert not written, f"tests wrote MLflow stores outside their temporary folders: {', '.join(written[:5])}"


ROWS = 900  # enough for every team to pass min_examples, small enough to embed in seconds


@dataclass
class Trained:
    settings: Settings
    data: Path
    config: Path
    result: TrainResult
    store: Path


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tickets.csv, config.yaml) of a small seeded sample export."""
    return write_sample(tmp_path_factory.mktemp("sample"), rows=ROWS, seed=11)


def store_settings(folder: Path) -> Settings:
    return Settings(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        feedback_url=f"sqlite:///{folder / 'feedback.db'}",
        embedding_cache=str(folder / "embeddings.sqlite"),
        keys_file=str(folder / "keys.json"),
        model_cache_dir=str(folder / "served-model"),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app: FastAPI, ready: str = "/healthz") -> Iterator[str]:
    """The app under uvicorn on a loopback port (a real HTTP server in a thread); its URL until the block ends."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + ready).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


ESCALATION = str(Path(sys.executable).with_name("escalation"))


def serve_process(env: dict[str, str], log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`escalation serve` (with `args`) in its own process on a free loopback port, configured through the
    environment as an operator would, its output appended to `log`: (the process, its URL) once /readyz says 200."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [ESCALATION, "serve", "--port", str(port), *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server not ready in 180 s: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def point_mlflow_at(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `runs:/` and `models:/` URIs in a test resolve against this store, through the environment (restored
    after the test): the code under test sets no process-wide MLflow URI, and neither may a test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", settings.tracking_uri)


def bearer(settings: Settings, role: str = "admin") -> dict[str, str]:
    """The Authorization header of a new key of `role` in the settings' keys file."""
    from serving.auth import add_key

    key, _ = add_key(settings.keys_file, role, f"test {role}")  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def trained(sample: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One real training run on the real embedding model, registered in a temporary sqlite store."""
    folder = tmp_path_factory.mktemp("mlflow")
    settings = store_settings(folder)
    data, config = sample
    return Trained(settings, data, config, train(data, config, settings, progress=False), folder / "mlflow.db")


@pytest.fixture(scope="session")
def client(trained: Trained) -> Iterator[TestClient]:
    from serving.app import create_app

    with TestClient(create_app(trained.settings), headers=bearer(trained.settings)) as test_client:
        yield test_client


def predict_in_fresh_process(folder: Path) -> tuple[str, bool]:
    """Load the router saved in `folder` in a new Python process and suggest for a billing ticket:
    (the top target, whether PyTorch got imported)."""
    code = (
        "import sys; from features.model.router import EscalationRouter; import pandas as pd\n"
        f"r = EscalationRouter.load({str(folder)!r})\n"
        "out = r.predict(pd.DataFrame({'id': ['1'], 'text': ['I was charged twice, please refund'], "
        "'channel': [''], 'customer_tier': ['']}))\n"
        "print(out[0].targets[0].target, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1], check=True
    )
    target, torch_loaded = done.stdout.split()[-2:]
    return target, torch_loaded == "True"


def ticket(**overrides: object) -> dict[str, object]:
    """A valid API ticket; override any field."""
    body: dict[str, object] = {
        "id": "T-test-1",
        "subject": "Charged twice",
        "body": "I was charged twice for the Team plan this month, $49.00 each time. Please refund one.",
        "metadata": {"channel": "email", "customer_tier": "standard"},
    }
    body.update(overrides)
    return body
