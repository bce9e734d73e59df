"""Sessions and API keys are read once per `credential_cache_seconds`, not on every request:
a sign-out or revocation here ends them at once, one made elsewhere (another replica) within
that time, and a session's own end is kept whether it was read or remembered."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from gateway.store.access_repository import API_KEYS, SESSIONS
from tests.api.access_clients import (
    api_key,
    error_code,
    gateway,
    operator,
    order_body,
    sign_in,
    siwe_message,
    wallet,
)
from tests.conftest import ManualClock

ALICE = wallet(0)


def behind_the_gateways_back(client: TestClient, statement: object) -> None:
    """A change another replica made: straight to the database, this gateway not told."""
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with rt.writer.engine.begin() as connection:
        connection.execute(statement)


def test_a_session_is_remembered_for_the_cache_time_and_a_sign_out_here_ends_it_at_once(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with gateway(tmp_path, clock, credential_cache_seconds=5) as client:
        token = sign_in(client, siwe_message(client, clock, ALICE), ALICE).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        placed = client.post("/v1/orders", json=order_body(ALICE.address, 1), headers=headers)
        assert placed.status_code == 201, placed.text
        # ended elsewhere: this gateway trusts what it read for at most the cache time
        behind_the_gateways_back(client, SESSIONS.delete())
        assert client.get("/v1/orders", headers=headers).status_code == 200
        clock.advance(seconds=5)
        ended = client.get("/v1/orders", headers=headers)
        assert ended.status_code == 401 and error_code(ended) == "unauthenticated"
        # signed out here: refused on the next request, remembered or not
        token = sign_in(client, siwe_message(client, clock, ALICE), ALICE).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/orders", headers=headers).status_code == 200
        assert client.delete("/v1/auth/session", headers=headers).status_code == 204
        assert client.get("/v1/orders", headers=headers).status_code == 401


def test_a_remembered_session_still_ends_at_its_own_time(tmp_path: Path) -> None:
    clock = ManualClock()
    with gateway(tmp_path, clock, credential_cache_seconds=60, session_ttl_seconds=3600) as client:
        token = sign_in(client, siwe_message(client, clock, ALICE), ALICE).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        clock.advance(seconds=3590)
        assert client.get("/v1/orders", headers=headers).status_code == 200  # read, kept
        clock.advance(seconds=11)  # past the session's end, within the cache time
        ended = client.get("/v1/orders", headers=headers)
        assert ended.status_code == 401 and error_code(ended) == "unauthenticated"


def test_with_no_cache_time_every_request_reads_the_session(tmp_path: Path) -> None:
    clock = ManualClock()
    with gateway(tmp_path, clock, credential_cache_seconds=0) as client:
        token = sign_in(client, siwe_message(client, clock, ALICE), ALICE).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/orders", headers=headers).status_code == 200
        behind_the_gateways_back(client, SESSIONS.delete())
        assert client.get("/v1/orders", headers=headers).status_code == 401


def test_an_api_key_is_remembered_for_the_cache_time_and_a_revocation_here_is_at_once(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with gateway(tmp_path, clock, credential_cache_seconds=5) as client:
        key = api_key(client, clock)
        assert key.request("GET", "/v1/orders").status_code == 200
        behind_the_gateways_back(client, update(API_KEYS).values(revoked_at=clock.now()))
        assert key.request("GET", "/v1/orders").status_code == 200  # within the cache time
        clock.advance(seconds=5)
        assert key.request("GET", "/v1/orders").status_code == 401
        other = api_key(client, clock)
        assert other.request("GET", "/v1/orders").status_code == 200
        operator(client, "DELETE", f"/v1/api-keys/{other.key_id}")
        revoked = other.request("GET", "/v1/orders")
        assert revoked.status_code == 401 and error_code(revoked) == "unauthenticated"
