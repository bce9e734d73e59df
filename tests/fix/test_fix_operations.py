"""The operator's view of the FIX sessions: GET /v1/fix/sessions, the FIX series at /metrics and
the lines `isthmus status` prints, before any logon, while a desk is logged on and after it
logged out. The store is written after QuickFIX's callbacks return, so each wait polls the
endpoint for a condition, within a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway import cli
from gateway.access.request_signing import sign_request
from gateway.api.app import create_app
from gateway.runtime import Runtime
from tests.fix.conftest import SESSIONS, FixGateway, fix_settings
from tests.operator_access import OPERATOR_TOKEN, operator_headers
from tests.telemetry.test_metrics import scrape, value
from tests.telemetry.test_status import _Borrowed

TIMEOUT = 10.0  # seconds: a bound on waiting for the store, never a synchronization
ROUTE = "/v1/fix/sessions"
runner = CliRunner()


def sessions(client: TestClient) -> dict[str, Any]:
    response = client.get(ROUTE, headers=operator_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def session(body: dict[str, Any], counterparty: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in body["sessions"] if s["counterparty"] == counterparty]
    assert len(found) == 1, body
    return found[0]


def until(
    client: TestClient, condition: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The sessions as soon as `condition` holds of them; fails after TIMEOUT."""
    end = time.monotonic() + TIMEOUT
    while True:
        body = sessions(client)
        if condition(body):
            return body
        if time.monotonic() > end:
            raise AssertionError(f"not {what} within {TIMEOUT}s: {body}")


def signed_get(client: TestClient, key: tuple[str, str], path: str) -> Any:
    key_id, secret = key
    headers = sign_request(key_id, secret, "GET", path, b"", now_ms=int(time.time() * 1000))
    return client.get(path, headers=headers)


def test_every_provisioned_session_is_listed_logged_off_before_any_logon(
    fix_gateway: FixGateway,
) -> None:
    body = sessions(fix_gateway.client)
    assert body == {
        "enabled": True,
        "comp_id": "ISTHMUS",
        "port": fix_gateway.port,
        "sessions": [
            {
                "session": f"FIX.4.4:ISTHMUS->{counterparty}",
                "counterparty": counterparty,
                "logged_on": False,
                "key_id": None,
                "logged_on_at": None,
                "next_sender_seq": 1,
                "next_target_seq": 1,
                "updated_at": None,
            }
            for counterparty in SESSIONS
        ],
    }
    samples = scrape(fix_gateway.client)
    assert ("isthmus_fix_sessions_logged_on", frozenset()) in samples
    assert value(samples, "isthmus_fix_sessions_logged_on") == 0
    for counterparty in SESSIONS:
        labels = frozenset({("session", counterparty)})
        assert samples[("isthmus_fix_session_logged_on", labels)] == 0
        assert samples[("isthmus_fix_next_sender_seq", labels)] == 1
        assert samples[("isthmus_fix_next_target_seq", labels)] == 1


def test_a_desk_shows_logged_on_with_its_key_until_it_logs_out(
    fix_gateway: FixGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = fix_gateway.client
    key = fix_gateway.api_key()
    with fix_gateway.desk("DESK1", key) as desk:
        desk.wait_logon()
        # both Logons recorded: the acceptor's (sent) and the desk's (received)
        body = until(
            client,
            lambda b: (
                session(b, "DESK1")["logged_on"] and session(b, "DESK1")["next_target_seq"] > 1
            ),
            "DESK1 logged on",
        )
        desk1 = session(body, "DESK1")
        assert desk1["key_id"] == key[0]
        assert desk1["logged_on_at"] is not None and desk1["updated_at"] is not None
        assert desk1["next_sender_seq"] >= 2 and desk1["next_target_seq"] >= 2
        assert [s["counterparty"] for s in body["sessions"] if s["logged_on"]] == ["DESK1"]

        samples = scrape(client)
        desk1_label = {"session": "DESK1"}
        assert value(samples, "isthmus_fix_sessions_logged_on") == 1
        assert value(samples, "isthmus_fix_session_logged_on", **desk1_label) == 1
        assert ("isthmus_fix_session_logged_on", frozenset({("session", "DESK2")})) in samples
        assert value(samples, "isthmus_fix_session_logged_on", session="DESK2") == 0
        # no message between the two reads: the heartbeat interval is 30 s
        assert (
            value(samples, "isthmus_fix_next_sender_seq", **desk1_label)
            == (desk1["next_sender_seq"])
        )
        assert (
            value(samples, "isthmus_fix_next_target_seq", **desk1_label)
            == (desk1["next_target_seq"])
        )

        monkeypatch.setenv("ISTHMUS_OPERATOR_TOKEN", OPERATOR_TOKEN)
        monkeypatch.delenv("ISTHMUS_API_KEY_ID", raising=False)
        monkeypatch.setattr(cli, "_client", lambda: _Borrowed(client))
        printed = runner.invoke(cli.app, ["status"])
        assert printed.exit_code == 0, printed.output
        lines = printed.output.splitlines()
        assert f"fix: acceptor ISTHMUS on port {fix_gateway.port}" in lines
        [line] = [line for line in lines if line.startswith("fix DESK1:")]
        assert f"logged on by key {key[0]} since" in line
        assert f"next seq out {desk1['next_sender_seq']} in {desk1['next_target_seq']}" in line
        assert "fix DESK2: not logged on, next seq out 1 in 1" in lines

    body = until(client, lambda b: not session(b, "DESK1")["logged_on"], "DESK1 logged out")
    desk1 = session(body, "DESK1")
    assert desk1["key_id"] is None and desk1["logged_on_at"] is None
    assert not any(s["logged_on"] for s in body["sessions"])
    samples = scrape(client)
    assert ("isthmus_fix_sessions_logged_on", frozenset()) in samples
    assert value(samples, "isthmus_fix_sessions_logged_on") == 0
    assert ("isthmus_fix_session_logged_on", frozenset({("session", "DESK1")})) in samples
    assert value(samples, "isthmus_fix_session_logged_on", session="DESK1") == 0


def test_the_operator_and_the_auditor_read_the_sessions_an_api_key_does_not(
    fix_gateway: FixGateway,
) -> None:
    client = fix_gateway.client
    desk_key = fix_gateway.api_key()
    refused = signed_get(client, desk_key, ROUTE)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    created = client.post(
        "/v1/api-keys", json={"role": "auditor", "scopes": []}, headers=operator_headers()
    )
    assert created.status_code == 201, created.text
    auditor = (created.json()["key_id"], created.json()["secret"])
    read = signed_get(client, auditor, ROUTE)
    assert read.status_code == 200, read.text
    assert [s["counterparty"] for s in read.json()["sessions"]] == SESSIONS
    assert client.get(ROUTE).status_code == 401


def test_without_an_acceptor_no_session_is_listed_or_exported(tmp_path: Path) -> None:
    settings = fix_settings(tmp_path, fix_port=None)
    with TestClient(create_app(settings, runtime=Runtime.build(settings))) as client:
        body = sessions(client)
        assert body == {"enabled": False, "comp_id": "ISTHMUS", "port": None, "sessions": []}
        samples = scrape(client)
        assert not [name for name, _ in samples if name.startswith("isthmus_fix_")]
