"""Helpers for the batch, cancel, mass-quote and WebSocket order-entry tests: an app on its
own database, request bodies, and reads of the book, the orders and the audit log."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.runtime import Runtime
from gateway.store import audit_log
from tests.operator_access import OPERATOR_TOKEN, operator_headers

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
C = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
SPOT = "WETH/USDC"
PERP = "WETH-PERP"


def settings_for(path: Path, name: str = "entry", **overrides: Any) -> Settings:
    """One caller sends many orders in these tests: rate limits would only get in the way."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{path / f'{name}.db'}",
        "operator_token": OPERATOR_TOKEN,
        "rate_limit_per_second": Decimal(1_000_000),
        "rate_limit_burst": 1_000_000,
        "risk_orders_per_second": Decimal(1_000_000),
        "risk_order_burst": 1_000_000,
    }
    values.update(overrides)
    return Settings(**values)


def app_client(path: Path, name: str = "entry", **overrides: Any) -> TestClient:
    return TestClient(create_app(settings_for(path, name, **overrides)), headers=operator_headers())


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def order(
    account: str,
    cid: str,
    side: str,
    quantity: str,
    price: str | None,
    instrument: str = SPOT,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account": account,
        "client_order_id": cid,
        "instrument": instrument,
        "side": side,
        "quantity": quantity,
        **extra,
    }
    if price is not None:
        body["price"] = price
    return body


def post_order(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/orders", json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def all_orders(client: TestClient, **params: str) -> list[dict[str, Any]]:
    """Every order (oldest first) the operator sees, through GET /v1/orders' pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"limit": 500, **params}
        if cursor:
            query["cursor"] = cursor
        page = client.get("/v1/orders", params=query)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def get_order(client: TestClient, order_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/orders/{order_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


Queue = list[tuple[str, list[tuple[str, str]]]]


def resting(client: TestClient, instrument: str = SPOT) -> tuple[Queue, Queue]:
    """The internal book's (bids, asks): per level, best first, its price and its orders'
    (client order id, open quantity) in queue order."""
    rt = runtime(client)
    snapshot = rt.book._engine.snapshot(instrument)
    units = rt.book._units[instrument]
    client_ids: dict[str, str] = {}

    def client_id(order_id: str) -> str:
        if order_id not in client_ids:
            client_ids[order_id] = get_order(client, order_id)["client_order_id"]
        return client_ids[order_id]

    def side(levels: Any) -> Queue:
        return [
            (
                str(units.from_ticks(level.price)),
                [
                    (client_id(order_id), str(units.from_lots(remaining)))
                    for order_id, remaining in level.orders
                ],
            )
            for level in levels
        ]

    return side(snapshot.bids), side(snapshot.asks)


def depth(client: TestClient, instrument: str = SPOT) -> tuple[list[Any], list[Any]]:
    bids, asks = runtime(client).book.depth(instrument, 50)
    return (
        [(str(level.price), str(level.quantity)) for level in bids],
        [(str(level.price), str(level.quantity)) for level in asks],
    )


def audit_rows(client: TestClient, after: int = 0) -> list[dict[str, Any]]:
    """The audit log's records after seq `after`, in seq order (the whole chain verified
    first)."""
    log = audit_log.AUDIT_LOG
    with runtime(client).read_engine.connect() as connection:
        assert audit_log.verify(connection).ok
        query = select(log).where(log.c.seq > after).order_by(log.c.seq)
        rows = connection.execute(query).mappings().all()
    return [dict(row) | {"payload": json.loads(row["payload"])} for row in rows]


def audit_head(client: TestClient) -> int:
    """The newest audit record's seq (0: none)."""
    log = audit_log.AUDIT_LOG
    with runtime(client).read_engine.connect() as connection:
        return int(connection.execute(select(func.max(log.c.seq))).scalar() or 0)


def maker_sequence(client: TestClient, taker_order_id: str) -> list[str]:
    """The order ids the taker traded with, in the order the trades happened (the audit
    log records both sides of each trade in sequence; fills carry a random id)."""
    rows = [r for r in audit_rows(client) if r["kind"] == "fill.recorded"]
    taker_trades = [
        r["payload"]["trade_id"] for r in rows if r["payload"]["order_id"] == taker_order_id
    ]
    makers: list[str] = []
    for trade_id in taker_trades:
        [maker] = [
            r["payload"]["order_id"]
            for r in rows
            if r["payload"]["trade_id"] == trade_id and r["payload"]["order_id"] != taker_order_id
        ]
        makers.append(maker)
    return makers
