"""kill -9 the gateway while a market maker's dead man's switch is armed: after the restart,
the countdown that ran out while it was down has cancelled the maker's orders before the
first new order could trade with them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from gateway.oms.dead_man_switch import COUNTDOWN_EXPIRED
from gateway.store import audit_log
from gateway.store import dead_man_switch_repository as store
from gateway.store import order_repository as repo
from gateway.store.database import create_database_engine
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import operator_headers

MAKER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TAKER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
PATH = "/v1/orders/cancel-all-after"


def order(account: str, cid: str, side: str, price: str, **extra: str) -> dict[str, str]:
    return {
        "account": account,
        "client_order_id": cid,
        "instrument": "WETH/USDC",
        "side": side,
        "quantity": "1",
        "price": price,
        **extra,
    }


def submit(client: httpx.Client, body: dict[str, str]) -> dict[str, str]:
    response = client.post("/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored_state(database_url: str, order_id: str) -> tuple[str, list[str]]:
    """The order's status and the armed countdowns' scopes, read from the store itself."""
    engine = create_database_engine(database_url, for_writes=False)
    try:
        with engine.connect() as connection:
            stored = repo.get_order(connection, order_id)
            assert stored is not None
            return stored.order.status.value, [c.scope for c in store.countdowns(connection)]
    finally:
        engine.dispose()


def audit_kinds(database_url: str) -> list[tuple[str, str]]:
    engine = create_database_engine(database_url, for_writes=False)
    table = audit_log.AUDIT_LOG
    try:
        with engine.connect() as connection:
            assert audit_log.verify(connection).ok
            rows = connection.execute(
                select(table.c.kind, table.c.entity_id).order_by(table.c.seq)
            ).all()
    finally:
        engine.dispose()
    return [(row.kind, row.entity_id) for row in rows]


def test_a_countdown_that_ran_out_during_a_crash_cancels_before_anything_trades(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'dead_man.db'}"
    gateway = GatewayProcess(database_url)
    gateway.start()
    try:
        with httpx.Client(base_url=gateway.url, headers=operator_headers(), timeout=30) as client:
            ask = submit(client, order(MAKER, "mm-ask", "sell", "3000"))
            other = submit(client, order(OTHER, "other-ask", "sell", "3010"))
            armed = client.post(PATH, json={"timeout_seconds": 2, "accounts": [MAKER]})
            assert armed.status_code == 200, armed.text
            deadline = datetime.fromisoformat(armed.json()["deadline"])
        gateway.kill()
    finally:
        gateway.stop()
    # it died before its timer could fire: the countdown and the order are as they were
    assert stored_state(database_url, ask["id"]) == ("accepted", ["operator:operator"])

    # The scenario needs the deadline behind us while the gateway is down: wait out what is
    # left of the 2 s (the wall clock is what the restarted process reads; nothing else runs).
    left = (deadline - datetime.now(UTC)).total_seconds()
    if left > 0:
        time.sleep(left)

    restarted = GatewayProcess(database_url, port=gateway.port)
    restarted.start()
    try:
        with httpx.Client(base_url=restarted.url, headers=operator_headers(), timeout=30) as client:
            taker = submit(client, order(TAKER, "taker", "buy", "3010", time_in_force="ioc"))
            # it crosses both asks; the maker's is gone, so it trades with the other one only
            assert taker["status"] == "filled" and taker["average_price"] == "3010"
            maker = client.get(f"/v1/orders/{ask['id']}").json()
            assert maker["status"] == "cancelled" and maker["filled_quantity"] == "0"
            assert maker["status_reason"] == COUNTDOWN_EXPIRED
            assert client.get(f"/v1/orders/{other['id']}").json()["status"] == "filled"
            assert client.get(PATH).json()["armed"] is False
    finally:
        restarted.stop()

    kinds = audit_kinds(database_url)
    fired = kinds.index(("dead_man_switch.fired", "operator:operator"))
    assert kinds.index(("order.cancelled", ask["id"])) < fired
    assert fired < kinds.index(("order.accepted", taker["id"]))
