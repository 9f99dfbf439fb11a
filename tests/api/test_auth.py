"""API keys with roles on the real app: 401 without a valid key, 403 with the wrong role, keys stored as hashes."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from escalation.cli import app as cli
from serving.app import create_app
from tests.conftest import Trained, ticket


@pytest.fixture(scope="module")
def keyed(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """The app with its own keys file (empty at first), and that file."""
    keys_file = tmp_path_factory.mktemp("keys") / "keys.json"
    settings = trained.settings.model_copy(update={"keys_file": str(keys_file), "poll_seconds": 0})
    with TestClient(create_app(settings)) as client:
        yield client, keys_file


def add(keys_file: Path, role: str) -> str:
    """`escalation keys add` as a user runs it: the key alone on stdout."""
    result = CliRunner().invoke(cli, ["keys", "add", "--role", role, "--keys-file", str(keys_file)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_without_any_key_configured_every_route_but_health_is_401(keyed: tuple[TestClient, Path]) -> None:
    client, _ = keyed
    response = client.post("/v1/suggestions", json=ticket())
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "no API keys are configured" in response.json()["detail"]
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_keys_are_shown_once_and_stored_as_hashes(keyed: tuple[TestClient, Path]) -> None:
    _, keys_file = keyed
    key = add(keys_file, "agent")
    assert key.startswith("esk_") and len(key) > 40
    text = keys_file.read_text()
    assert key not in text and key[4:] not in text
    stored = json.loads(text)["keys"][-1]
    assert stored["role"] == "agent" and len(stored["sha256"]) == 64
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    listed = CliRunner().invoke(cli, ["keys", "list", "--keys-file", str(keys_file)]).stdout
    assert stored["id"] in listed and key not in listed


def test_roles_open_their_routes_and_no_others(keyed: tuple[TestClient, Path]) -> None:
    client, keys_file = keyed
    agent, analyst, admin = (add(keys_file, role) for role in ("agent", "analyst", "admin"))
    assert client.post("/v1/suggestions", json=ticket(), headers=auth(agent)).status_code == 200
    feedback = {"ticket_id": "T-test-1", "escalated": False, "accepted_suggestion": True}
    assert client.post("/v1/feedback", json=feedback, headers=auth(agent)).status_code == 200
    assert client.get("/v1/ticket-form", headers=auth(agent)).status_code == 200
    assert client.get("/v1/ticket-form").status_code == 401
    denied = client.get("/v1/model", headers=auth(agent))
    assert denied.status_code == 403 and denied.json() == {
        "detail": "this key has role 'agent'; this route needs 'analyst'"
    }
    assert client.get("/v1/metrics/summary", headers=auth(agent)).status_code == 403
    assert client.post("/v1/admin/reload", headers=auth(agent)).status_code == 403

    assert client.get("/v1/model", headers=auth(analyst)).status_code == 200
    assert client.get("/v1/metrics/summary", headers=auth(analyst)).status_code == 200
    assert client.post("/v1/admin/reload", headers=auth(analyst)).status_code == 403

    assert client.post("/v1/admin/reload", headers=auth(admin)).status_code == 200
    assert client.post("/v1/suggestions", json=ticket(), headers=auth(admin)).status_code == 200


@pytest.mark.parametrize(
    "header",
    [{}, {"Authorization": "Bearer esk_not-a-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": ""}],
)
def test_missing_or_wrong_keys_are_401(keyed: tuple[TestClient, Path], header: dict[str, str]) -> None:
    client, keys_file = keyed
    add(keys_file, "admin")  # keys exist: the answer is about this request's key
    response = client.post("/v1/suggestions", json=ticket(), headers=header)
    assert response.status_code == 401
    assert response.json()["detail"] in (
        "invalid API key",
        "missing API key: send the header 'Authorization: Bearer KEY'",
    )


def test_a_revoked_key_is_refused_at_once(keyed: tuple[TestClient, Path]) -> None:
    client, keys_file = keyed
    key = add(keys_file, "agent")
    assert client.post("/v1/suggestions", json=ticket(), headers=auth(key)).status_code == 200
    key_id = json.loads(keys_file.read_text())["keys"][-1]["id"]
    others = len(json.loads(keys_file.read_text())["keys"]) - 1
    result = CliRunner().invoke(cli, ["keys", "revoke", key_id, "--keys-file", str(keys_file)])
    assert result.exit_code == 0 and f"revoked {key_id}" in result.stdout
    assert client.post("/v1/suggestions", json=ticket(), headers=auth(key)).status_code == 401
    assert len(json.loads(keys_file.read_text())["keys"]) == others  # nothing else lost


def test_bad_role_and_damaged_keys_file_are_clear_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "add", "--role", "root", "--keys-file", str(tmp_path / "k.json")])
    assert result.exit_code != 0 and "'root' is not a role" in result.output
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    result = CliRunner().invoke(cli, ["keys", "add", "--role", "agent", "--keys-file", str(damaged)])
    assert result.exit_code == 1 and "cannot be read" in result.output and "Traceback" not in result.output
    assert damaged.read_text() == "{not json"  # left as it was


def test_auth_disabled_is_explicit_and_loud(trained: Trained, caplog: pytest.LogCaptureFixture) -> None:
    settings = trained.settings.model_copy(update={"auth_disabled": True, "poll_seconds": 0})
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        assert client.get("/v1/model").status_code == 200
    assert "AUTHENTICATION IS DISABLED" in caplog.text


def test_cors_is_closed_by_default_and_opens_to_configured_origins(
    keyed: tuple[TestClient, Path], trained: Trained
) -> None:
    client, _ = keyed
    preflight = {"Origin": "https://desk.example", "Access-Control-Request-Method": "POST"}
    closed = client.options("/v1/suggestions", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    settings = trained.settings.model_copy(
        update={"cors_origins": ["https://desk.example"], "auth_disabled": True, "poll_seconds": 0}
    )
    with TestClient(create_app(settings)) as open_client:
        allowed = open_client.options("/v1/suggestions", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://desk.example"
        other = open_client.options("/v1/suggestions", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_concurrent_adds_and_revokes_lose_nothing(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from serving.auth import add_key, read_keys, revoke_key

    path = tmp_path / "keys.json"
    doomed = [add_key(path, "agent")[1].id for _ in range(10)]
    with ThreadPoolExecutor(8) as pool:  # adds and revokes interleaved
        adds = [pool.submit(lambda i=i: add_key(path, "agent", f"k{i}")[1].id) for i in range(20)]
        revokes = [pool.submit(revoke_key, path, key_id) for key_id in doomed]
        added = [f.result() for f in adds]
        assert [f.result().id for f in revokes] == doomed
    assert sorted(k.id for k in read_keys(path)) == sorted(added)
