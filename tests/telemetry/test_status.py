"""GET /v1/status and `isthmus status`: the replicas with when each was last seen, who holds
each role and how often it failed over, how far settlement lags behind trading (on the
gateway's clock), and each venue's feed as GET /v1/venues shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gateway import cli
from gateway.api.app import create_app
from gateway.config import Settings
from gateway.runtime import Runtime
from tests.api.access_clients import api_key, trader_headers, wallet
from tests.conftest import ManualClock
from tests.operator_access import OPERATOR_TOKEN, operator_headers
from tests.telemetry.test_metrics import A, B, order, put_leases

runner = CliRunner()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'status.db'}", operator_token=OPERATOR_TOKEN
    )
    rt = Runtime.build(settings, clock=clock)
    with TestClient(create_app(settings, runtime=rt)) as test_client:
        yield test_client


def status(client: TestClient) -> dict[str, Any]:
    response = client.get("/v1/status", headers=operator_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_one_process_runs_every_role_and_shows_its_venues(client: TestClient) -> None:
    report = status(client)
    assert report["this_replica"] == {
        "replica": False,
        "replica_id": None,
        "runs_roles": True,
        "holds": [],
        "database": "sqlite",
    }
    assert report["replicas"] == [] and report["roles"] == []
    assert report["settlement"] == {
        "settles": False,
        "oldest_unsettled_seconds": None,
        "unsettled_fills": 0,
        "batches_pending": 0,
        "batches": {},
    }
    # the venues exactly as GET /v1/venues answers them (the same clock: a manual one)
    venues = client.get("/v1/venues", headers=operator_headers()).json()
    assert report["venues"] == venues
    assert [v["name"] for v in report["venues"]["venues"]] == ["internal"]


def test_settlement_lag_is_the_age_of_the_oldest_unsettled_fill(
    client: TestClient, clock: ManualClock
) -> None:
    headers = operator_headers()
    assert client.post("/v1/orders", json=order(1, A, "sell", "3000"), headers=headers).is_success
    taker = order(2, B, "buy", "3000", time_in_force="ioc")
    assert client.post("/v1/orders", json=taker, headers=headers).json()["status"] == "filled"
    clock.advance(seconds=7.25)
    lag = status(client)["settlement"]
    assert lag["oldest_unsettled_seconds"] == "7.250"
    assert lag["unsettled_fills"] == 2 and lag["batches_pending"] == 0


def test_replicas_and_roles_with_their_failovers(database_url: str) -> None:
    # a heartbeat counts as live for a lease's time to live: a minute here, so that a loaded
    # machine between writing the heartbeats and reading the status cannot age replica-b
    # past it (the default 3 s did, once); replica-a's five minutes stay far beyond it
    settings = Settings(
        database_url=database_url, operator_token=OPERATOR_TOKEN, lease_ttl_seconds=60
    )
    rt = Runtime.build(settings, clock=ManualClock())
    with TestClient(create_app(settings, runtime=rt)) as client:
        put_leases(rt, datetime.now(UTC))
        report = status(client)
    replicas = {r["replica_id"]: r for r in report["replicas"]}
    assert set(replicas) == {"replica-a", "replica-b"}
    assert replicas["replica-a"]["live"] is False  # last seen five minutes ago
    assert float(replicas["replica-a"]["seen_seconds_ago"]) >= 300
    assert replicas["replica-b"]["live"] is True
    assert replicas["replica-b"]["address"] == "http://gateway-2:8000"
    assert replicas["replica-b"]["pid"] == 22
    roles = {r["role"]: r for r in report["roles"]}
    primary = roles["primary"]
    assert (primary["holder"], primary["token"], primary["takeovers"]) == ("replica-b", 4, 3)
    assert primary["live"] is True and float(primary["expires_in_seconds"]) > 0
    lapsed = roles["old-role"]
    assert lapsed["live"] is False and float(lapsed["expires_in_seconds"]) < 0


def test_the_auditor_reads_the_status_a_trader_does_not(
    client: TestClient, clock: ManualClock
) -> None:
    auditor = api_key(client, clock, role="auditor", scopes=())
    assert auditor.request("GET", "/v1/status").status_code == 200
    trader = trader_headers(client, clock, wallet(0))
    refused = client.get("/v1/status", headers=trader)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/status").status_code == 401


class _Borrowed:
    """The app's test client in place of the command's own HTTP client (left open)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def __enter__(self) -> TestClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


def test_isthmus_status_prints_replicas_roles_lag_and_venues(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISTHMUS_OPERATOR_TOKEN", OPERATOR_TOKEN)
    monkeypatch.delenv("ISTHMUS_API_KEY_ID", raising=False)
    monkeypatch.setattr(cli, "_client", lambda: _Borrowed(client))
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    put_leases(rt, datetime.now(UTC))

    printed = runner.invoke(cli.app, ["status"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert "this gateway: one process (runs every role), database sqlite" in lines
    assert "settlement: this gateway does not settle on a chain" in lines

    def row(*values: str) -> str:
        [line] = [line for line in lines if all(v in line for v in values)]
        return line

    row("replica-b", "http://gateway-2:8000", "22", "yes")
    row("replica-a", "http://gateway-1:8000", "11", "no")
    row("primary", "replica-b", "4", "3")
    row("old-role", "none", "1", "0")
    row("internal", "internal", "live")

    as_json = runner.invoke(cli.app, ["status", "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert [r["role"] for r in report["roles"]] == ["old-role", "primary"]
    assert [v["name"] for v in report["venues"]["venues"]] == ["internal"]
