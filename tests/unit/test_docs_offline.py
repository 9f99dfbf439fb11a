"""/docs and /redoc load everything they need from the app itself: nothing from a CDN."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from features.settings import Settings
from serving.app import create_app


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_pages_use_only_local_assets(page: str, tmp_path) -> None:  # noqa: ANN001
    settings = Settings(auth_disabled=True, keys_file=str(tmp_path / "keys.json"))
    client = TestClient(create_app(settings))  # no lifespan: the pages need no model
    html = client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html.text)  # the spec URL Swagger UI is told
    assert urls and not [u for u in urls if "://" in u or u.startswith("//")], urls
    assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text
    for url in urls:
        found = client.get(url)
        assert found.status_code == 200, url
        assert len(found.content) > 100, url
    assert client.get("/openapi.json").json()["info"]["title"] == "Escalation router"
