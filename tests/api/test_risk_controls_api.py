"""Risk controls over HTTP: limits and kill switches, persisted, audited, enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.runtime import Runtime
from gateway.store import audit_log
from gateway.store.tables import AuditRecordRow
from tests.api.test_orders_api import A, B, assert_error, order
from tests.conftest import ManualClock
from tests.market_making import make_market
from tests.operator_access import OPERATOR_TOKEN, operator_headers


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def audit_kinds(client: TestClient) -> list[str]:
    with runtime(client).read_engine.connect() as connection:
        assert audit_log.verify(connection).ok
        rows = connection.execute(select(AuditRecordRow.kind).order_by(AuditRecordRow.seq))
        return [kind for (kind,) in rows]


def quote_book(client: TestClient, bid: str, ask: str) -> None:
    """Quotes on the internal book (a market maker's resting orders), as the hub shows them."""
    client.portal.call(make_market, runtime(client), "WETH/USDC", bid, ask, "5", f"q{bid}")  # type: ignore[union-attr]


def test_kill_switch_cancels_blocks_and_survives_a_restart(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'risk.db'}", operator_token=OPERATOR_TOKEN
    )
    with TestClient(create_app(settings), headers=operator_headers()) as client:
        assert client.post("/v1/orders", json=order(1)).status_code == 201
        assert client.post("/v1/orders", json=order(2, price="2990")).status_code == 201
        assert client.post("/v1/orders", json=order(3, account=B)).status_code == 201

        engaged = client.put(
            f"/v1/risk/kill-switches/{A.lower()}", json={"engaged": True, "reason": "runaway algo"}
        )
        assert engaged.status_code == 200, engaged.text
        assert engaged.json() == {
            "scope": A,
            "engaged": True,
            "reason": "runaway algo",
            "cancelled_orders": 2,
        }
        statuses = {
            o["client_order_id"]: o["status"]
            for o in client.get("/v1/orders", params={"account": A}).json()["items"]
        }
        assert statuses == {"c1": "cancelled", "c2": "cancelled"}
        assert_error(
            client.post("/v1/orders", json=order(4)), 403, "kill_switch_engaged", "account"
        )
        assert client.post("/v1/orders", json=order(5, account=B, price="2980")).status_code == 201
        assert "risk.kill_switch_engaged" in audit_kinds(client)

    # a restart reads the switch back
    with TestClient(create_app(settings), headers=operator_headers()) as client:
        assert_error(
            client.post("/v1/orders", json=order(6)), 403, "kill_switch_engaged", "account"
        )
        switches = client.get("/v1/risk/kill-switches").json()
        assert {"scope": A, "engaged": True, "reason": None, "cancelled_orders": 0} in switches
        released = client.put(f"/v1/risk/kill-switches/{A}", json={"engaged": False})
        assert released.json()["engaged"] is False
        assert client.post("/v1/orders", json=order(6)).status_code == 201

        glob = client.put("/v1/risk/kill-switches/global", json={"engaged": True})
        assert glob.json()["cancelled_orders"] == 3  # A's c6 and B's c3, c5
        assert_error(
            client.post("/v1/orders", json=order(7, account=B)), 403, "kill_switch_engaged"
        )
        client.put("/v1/risk/kill-switches/global", json={"engaged": False})
        assert client.post("/v1/orders", json=order(7, account=B)).status_code == 201


def test_a_retry_of_an_accepted_order_is_not_refused_by_limits(client: TestClient) -> None:
    assert client.put(f"/v1/risk/limits/{A}", json={"max_open_orders": 1}).status_code == 200
    first = client.post("/v1/orders", json=order(1))
    assert first.status_code == 201
    again = client.post("/v1/orders", json=order(1))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert_error(client.post("/v1/orders", json=order(2, price="2990")), 422, "open_orders_limit")
    client.delete(f"/v1/orders/{first.json()['id']}")
    # the cancelled order's retry still answers with that order
    assert client.post("/v1/orders", json=order(1)).json()["status"] == "cancelled"
    assert client.post("/v1/orders", json=order(2, price="2990")).status_code == 201


def test_limits_round_trip_and_are_enforced(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'limits.db'}", operator_token=OPERATOR_TOKEN
    )
    body: dict[str, Any] = {
        "max_order_notional": "10000",
        "max_open_notional": None,
        "max_position": "2",
        "max_open_orders": 10,
        "orders_per_second": "1",
        "order_burst": 2,
        "allowed_instruments": ["WETH/USDC"],
        "price_band_bps": 100,
        "option_price_band_bps": 5000,
    }
    # the order-rate bucket refills by the clock: the test owns it, so a slow machine
    # cannot hand the bucket a token between the spends below
    built = Runtime.build(settings, clock=clock)
    with TestClient(create_app(settings, runtime=built), headers=operator_headers()) as client:
        assert client.get(f"/v1/risk/limits/{A}").json()["custom"] is False
        put = client.put(f"/v1/risk/limits/{A}", json=body)
        assert put.status_code == 200 and put.json()["limits"] == body | {
            "allowed_instruments": ["WETH/USDC"]
        }
        quote_book(client, "2999", "3001")
        assert_error(
            client.post("/v1/orders", json=order(1, quantity="4")),
            422,
            "order_notional_limit",
            "quantity",
        )
        assert_error(
            client.post("/v1/orders", json=order(2, price="3031")),
            422,
            "price_outside_band",
            "price",
        )
        assert_error(
            client.post("/v1/orders", json=order(3, instrument="WETH-PERP")),
            403,
            "instrument_not_allowed",
        )
        # two tokens were spent above: the bucket (burst 2) is empty now
        assert_error(
            client.post("/v1/orders", json=order(4)), 429, "order_rate_exceeded", "account"
        )
        assert client.post("/v1/orders", json=order(5, account=B, quantity="4")).status_code == 201
        clock.advance(seconds=1)  # one order per second: one token back
        assert client.post("/v1/orders", json=order(6)).status_code == 201
        assert_error(
            client.post("/v1/orders", json=order(7)), 429, "order_rate_exceeded", "account"
        )
    with TestClient(create_app(settings), headers=operator_headers()) as client:
        got = client.get(f"/v1/risk/limits/{A}").json()
        assert got["custom"] is True and got["limits"]["max_position"] == "2"
        assert client.delete(f"/v1/risk/limits/{A}").json()["custom"] is False
        assert "risk.limits_set" in audit_kinds(client)


def test_bad_limits_get_structured_errors(client: TestClient) -> None:
    assert_error(
        client.put(f"/v1/risk/limits/{A}", json={"max_position": 2}), 422, "validation_error"
    )
    assert_error(
        client.put(f"/v1/risk/limits/{A}", json={"orders_per_second": "0"}),
        422,
        "domain_error",
        "orders_per_second",
    )
    assert_error(
        client.put("/v1/risk/kill-switches/bob", json={"engaged": True}), 422, "validation_error"
    )
    # a reason is stored as sent: a NUL (which PostgreSQL's text refuses) or any other
    # control character is refused here, not at the write
    for reason in ("halt\x00now", "halt\nnow"):
        assert_error(
            client.put(f"/v1/risk/kill-switches/{A}", json={"engaged": True, "reason": reason}),
            422,
            "validation_error",
            "body.reason",
        )
