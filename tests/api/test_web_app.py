"""The gateway serves the built web app at /app, without credentials; a checkout whose app
was never built answers a structured error naming the build step."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.config import Settings


def _client(web_dir: Path) -> TestClient:
    return TestClient(create_app(Settings(database_url="sqlite:///:memory:", web_dir=web_dir)))


def test_the_built_app_is_served_at_app_without_credentials(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<div id="app"></div>')
    (tmp_path / "assets" / "app.js").write_text("export {};")
    client = _client(tmp_path)
    root = client.get("/app", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/app/"
    page = client.get("/app/")
    assert page.status_code == 200 and '<div id="app">' in page.text
    script = client.get("/app/assets/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    missing = client.get("/app/assets/nope.js")
    assert missing.status_code == 404


def test_an_app_never_built_answers_a_structured_error(tmp_path: Path) -> None:
    answer = _client(tmp_path / "absent").get("/app/")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "web_app_not_built"
    assert "make" in error["message"]
