"""`/v1/orders/cancel-all-after`: each caller arms, reads and disarms its own countdown, for its
own accounts; the countdown running out cancels those accounts' resting orders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.oms.dead_man_switch import COUNTDOWN_EXPIRED
from gateway.runtime import Runtime
from tests.api.access_clients import (
    api_key,
    error_code,
    gateway,
    operator,
    order_body,
    trader_headers,
    wallet,
)
from tests.conftest import ManualClock

ALICE, BOB = wallet(0), wallet(1)
PATH = "/v1/orders/cancel-all-after"


@pytest.fixture
def client(tmp_path: Path, clock: ManualClock) -> Iterator[TestClient]:
    with gateway(tmp_path, clock) as test_client:
        yield test_client


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def deadline(response_body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(response_body["deadline"])


def test_the_operator_arms_reads_and_disarms_its_countdown(
    client: TestClient, clock: ManualClock
) -> None:
    nothing = operator(client, "GET", PATH)
    assert nothing.status_code == 200, nothing.text
    assert nothing.json() == {
        "armed": False,
        "timeout_seconds": None,
        "deadline": None,
        "accounts": [],
    }
    # the operator is bound to no accounts: it names them
    unnamed = operator(client, "POST", PATH, json={"timeout_seconds": 60})
    assert unnamed.status_code == 422 and error_code(unnamed) == "accounts_required"

    armed = operator(
        client, "POST", PATH, json={"timeout_seconds": 60, "accounts": [ALICE.address.lower()]}
    )
    assert armed.status_code == 200, armed.text
    body = armed.json()
    assert body["armed"] is True and body["timeout_seconds"] == 60
    assert body["accounts"] == [ALICE.address]  # checksummed
    assert deadline(body) == clock.now() + timedelta(seconds=60)
    assert operator(client, "GET", PATH).json() == body  # not taken for an order id

    clock.advance(seconds=30)
    refreshed = operator(
        client, "POST", PATH, json={"timeout_seconds": 60, "accounts": [ALICE.address]}
    )
    assert deadline(refreshed.json()) == clock.now() + timedelta(seconds=60)

    disarmed = operator(client, "POST", PATH, json={"timeout_seconds": 0})
    assert disarmed.status_code == 200, disarmed.text
    assert disarmed.json()["armed"] is False and disarmed.json()["deadline"] is None
    assert operator(client, "GET", PATH).json()["armed"] is False


@pytest.mark.parametrize(
    ("timeout", "code"),
    [
        (-1, "invalid_countdown"),
        (86_401, "invalid_countdown"),
        (10**30, "invalid_countdown"),
        (1.5, "validation_error"),
        ("soon", "validation_error"),
    ],
)
def test_a_bad_timeout_is_refused_with_a_stable_code(
    client: TestClient, timeout: Any, code: str
) -> None:
    body = {"timeout_seconds": timeout, "accounts": [ALICE.address]}
    refused = operator(client, "POST", PATH, json=body)
    assert refused.status_code == 422, refused.text
    assert error_code(refused) == code
    assert refused.json()["error"]["field"].endswith("timeout_seconds")
    assert operator(client, "GET", PATH).json()["armed"] is False


def test_a_bound_api_key_arms_for_its_own_accounts_only(
    client: TestClient, clock: ManualClock
) -> None:
    key = api_key(client, clock, accounts=(ALICE.address,))
    foreign = key.request("POST", PATH, {"timeout_seconds": 30, "accounts": [BOB.address]})
    assert foreign.status_code == 403 and error_code(foreign) == "forbidden"
    assert key.request("GET", PATH).json()["armed"] is False

    own = key.request("POST", PATH, {"timeout_seconds": 30})
    assert own.status_code == 200, own.text
    assert own.json()["accounts"] == [ALICE.address]
    assert key.request("GET", PATH).json() == own.json()
    # one countdown per caller: another key, the operator, a trader each have their own
    assert api_key(client, clock).request("GET", PATH).json()["armed"] is False
    assert operator(client, "GET", PATH).json()["armed"] is False
    alice = trader_headers(client, clock, ALICE)
    assert client.get(PATH, headers=alice).json()["armed"] is False


def test_a_traders_countdown_running_out_cancels_its_resting_orders(
    client: TestClient, clock: ManualClock
) -> None:
    alice, bob = trader_headers(client, clock, ALICE), trader_headers(client, clock, BOB)
    mine = client.post("/v1/orders", json=order_body(ALICE.address, 1), headers=alice).json()
    theirs = client.post("/v1/orders", json=order_body(BOB.address, 2), headers=bob).json()
    armed = client.post(PATH, json={"timeout_seconds": 5}, headers=alice)
    assert armed.status_code == 200, armed.text
    assert armed.json()["accounts"] == [ALICE.address]

    clock.advance(seconds=5)
    switch = runtime(client).dead_man_switch
    client.portal.call(switch.fire_due)  # type: ignore[union-attr]
    cancelled = client.get(f"/v1/orders/{mine['id']}", headers=alice).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["status_reason"] == COUNTDOWN_EXPIRED
    assert client.get(f"/v1/orders/{theirs['id']}", headers=bob).json()["status"] == "accepted"
    assert client.get(PATH, headers=alice).json()["armed"] is False


def test_the_operation_is_documented_with_its_errors(client: TestClient) -> None:
    operations = client.app.openapi()["paths"][PATH]  # type: ignore[attr-defined]
    post = operations["post"]
    assert {"200", "400", "403", "422"} <= set(post["responses"])
    error = {"$ref": "#/components/schemas/ErrorOut"}
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == error
    assert "invalid_countdown" in post["responses"]["422"]["description"]
    assert "get" in operations
