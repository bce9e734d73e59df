"""Directly routed orders trade on the gateway's own book (the matching engine behind the
API): price-time priority at the maker's price, both sides' fills under one trade id, IOC,
FOK, post-only, amend priority, and books rebuilt from the store after a restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.store import order_repository as order_repo
from tests.api.test_orders_api import runtime
from tests.market_making import make_market
from tests.operator_access import OPERATOR_TOKEN, operator_headers

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
C = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def app_client(path: Path) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{path / 'book.db'}", operator_token=OPERATOR_TOKEN)
    return TestClient(create_app(settings), headers=operator_headers())


def place(
    client: TestClient, account: str, cid: str, side: str, qty: str, price: str | None, **extra: Any
) -> dict[str, Any]:
    body = {
        "account": account,
        "client_order_id": cid,
        "instrument": "WETH/USDC",
        "side": side,
        "quantity": qty,
        **extra,
    }
    if price is not None:
        body["price"] = price
    response = client.post("/v1/orders", json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def fills_of(client: TestClient, order_id: str) -> list[Any]:
    with runtime(client).read_engine.connect() as connection:
        return order_repo.fills_for_order(connection, order_id)


def test_a_taker_fills_at_the_makers_price_and_both_sides_share_the_trade(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        ask = place(client, A, "a1", "sell", "1", "3000")
        assert ask["status"] == "accepted"
        bid = place(client, B, "b1", "buy", "0.4", "3001", time_in_force="ioc")
        assert bid["status"] == "filled" and bid["average_price"] == "3000"
        maker = client.get(f"/v1/orders/{ask['id']}").json()
        assert maker["status"] == "partially_filled" and maker["remaining_quantity"] == "0.6"
        [taker_fill], [maker_fill] = fills_of(client, bid["id"]), fills_of(client, ask["id"])
        assert taker_fill.trade_id == maker_fill.trade_id is not None
        assert (taker_fill.venue, taker_fill.price, taker_fill.quantity) == (
            "internal",
            maker_fill.price,
            maker_fill.quantity,
        )
        assert (taker_fill.side.value, maker_fill.side.value) == ("buy", "sell")

        # nothing left at or below 3001 for a second IOC beyond the rest: its rest cancelled
        more = place(client, B, "b2", "buy", "1", "3001", time_in_force="ioc")
        assert more["status"] == "cancelled" and more["filled_quantity"] == "0.6"
        assert "no liquidity on the book" in more["status_reason"]


def test_price_time_priority_and_amend_rules(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        first = place(client, A, "p1", "sell", "1", "3000")
        second = place(client, B, "p2", "sell", "1", "3000")
        # reducing the first keeps its place at the front
        reduced = client.patch(f"/v1/orders/{first['id']}", json={"quantity": "0.5"})
        assert reduced.status_code == 200, reduced.text
        taker = place(client, C, "t1", "buy", "0.5", "3000", time_in_force="ioc")
        assert taker["status"] == "filled"
        assert client.get(f"/v1/orders/{first['id']}").json()["status"] == "filled"
        assert client.get(f"/v1/orders/{second['id']}").json()["filled_quantity"] == "0"

        # a new price sends an order to the back: the third now waits behind the second
        third = place(client, A, "p3", "sell", "1", "3001")
        moved = client.patch(f"/v1/orders/{third['id']}", json={"price": "3000"})
        assert moved.status_code == 200, moved.text
        taker = place(client, C, "t2", "buy", "1", "3000", time_in_force="ioc")
        assert taker["status"] == "filled"
        assert client.get(f"/v1/orders/{second['id']}").json()["status"] == "filled"
        assert client.get(f"/v1/orders/{third['id']}").json()["filled_quantity"] == "0"

        # FOK that cannot fill whole, post-only that would cross, IOC into an empty side
        fok = place(client, C, "t3", "buy", "5", "3000", time_in_force="fok")
        assert fok["status"] == "cancelled" and fok["filled_quantity"] == "0"
        assert "fill or kill" in fok["status_reason"]
        post = place(client, C, "t4", "buy", "0.1", "3000", post_only=True)
        assert post["status"] == "cancelled" and "post-only" in post["status_reason"]
        nobody = place(client, C, "t5", "sell", "0.1", "2990", time_in_force="ioc")
        assert nobody["status"] == "cancelled" and nobody["filled_quantity"] == "0"

        # cancelling takes it off the book: a taker then finds nothing
        assert client.delete(f"/v1/orders/{third['id']}").json()["status"] == "cancelled"
        late = place(client, C, "t6", "buy", "1", "3000", time_in_force="ioc")
        assert late["filled_quantity"] == "0"


def test_the_books_come_back_from_the_store_after_a_restart(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        older = place(client, A, "r1", "sell", "1", "3000")
        newer = place(client, B, "r2", "sell", "1", "3000")
        place(client, A, "r3", "sell", "2", "3002")
        partial = place(client, C, "r4", "buy", "0.25", "3000", time_in_force="ioc")
        assert partial["status"] == "filled"
        retry = place(client, A, "r1", "sell", "1", "3000")  # a retry: same order, not placed
        assert retry["id"] == older["id"]
    with app_client(tmp_path) as client:  # a new process on the same store
        book = runtime(client).book
        assert book.best("WETH/USDC") == (None, Decimal(3000))
        # its idempotency filter was loaded from the store: a retry is the stored order,
        # not a second placement, and a different order under a used id is refused
        again = client.post(
            "/v1/orders",
            json={
                "account": A,
                "client_order_id": "r3",
                "instrument": "WETH/USDC",
                "side": "sell",
                "quantity": "2",
                "price": "3002",
            },
        )
        assert again.status_code == 200 and again.json()["status"] == "accepted"
        reused = client.post(
            "/v1/orders",
            json={
                "account": A,
                "client_order_id": "r3",
                "instrument": "WETH/USDC",
                "side": "sell",
                "quantity": "1",
                "price": "3002",
            },
        )
        assert reused.status_code == 409, reused.text
        assert book.best("WETH/USDC") == (None, Decimal(3000))
        taker = place(client, C, "r5", "buy", "1", "3000", time_in_force="ioc")
        assert taker["status"] == "filled"
        # the older order (0.75 left) first, then the newer one: queue positions survived
        assert client.get(f"/v1/orders/{older['id']}").json()["status"] == "filled"
        assert client.get(f"/v1/orders/{newer['id']}").json()["remaining_quantity"] == "0.75"
        sweep = place(client, C, "r6", "buy", "5", "3002", time_in_force="ioc")
        assert sweep["filled_quantity"] == "2.75"
        prices = sorted(f.price for f in fills_of(client, sweep["id"]))
        assert str(prices[0]) == "3000" and str(prices[-1]) == "3002"


def test_a_refused_write_rebuilds_the_book_from_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same request sent twice at once: both reach the engine before either is stored;
    the store keeps one (unique client order id), the book is rebuilt to match it."""
    from gateway.domain.orders import OrderSpec, OrderType, Side, TimeInForce

    spec = OrderSpec(
        A,
        "race",
        Side.SELL,
        OrderType.LIMIT,
        Decimal(1),
        TimeInForce.GTC,
        instrument="WETH/USDC",
        price=Decimal(3000),
    )
    with app_client(tmp_path) as client:
        rt = runtime(client)

        async def race() -> list[Any]:
            import asyncio

            return list(await asyncio.gather(rt.orders.submit(spec), rt.orders.submit(spec)))

        first, second = client.portal.call(race)  # type: ignore[union-attr]
        assert first.order.id == second.order.id
        assert sorted([first.created, second.created]) == [False, True]

        async def resting() -> int:
            await rt.book.place(  # any command rebuilds a stale book first
                OrderSpec(
                    B,
                    "probe",
                    Side.BUY,
                    OrderType.LIMIT,
                    Decimal("0.1"),
                    TimeInForce.IOC,
                    instrument="WETH/USDC",
                    price=Decimal(2000),
                ),
                "probe",
            )
            return len(rt.book._engine.open_orders())

        assert client.portal.call(resting) == 1  # type: ignore[union-attr]
        assert "rebuilt from the store after a failed write" in caplog.text
        taker = place(client, C, "x1", "buy", "2", "3000", time_in_force="ioc")
        assert taker["filled_quantity"] == "1"  # one order on the book, not two


def test_resting_orders_chosen_by_a_predicate_are_cancelled_with_its_reason(
    tmp_path: Path,
) -> None:
    """`cancel_where` (what a trading key's revocation uses): only the orders it gives a
    reason for leave the book, each with that reason and an audited cancel."""
    import json

    from sqlalchemy import select

    from gateway.store.audit_log import AUDIT_LOG

    with app_client(tmp_path) as client:
        rt = runtime(client)
        doomed = [
            place(client, A, "w1", "sell", "1", "3000"),
            place(client, B, "w2", "buy", "1", "2900"),
        ]
        kept = place(client, A, "w3", "sell", "1", "3001")
        reasons = {doomed[0]["id"]: "first reason", doomed[1]["id"]: "second reason"}

        async def sweep() -> list[Any]:
            return await rt.book.cancel_where(lambda view: reasons.get(view.order_id))

        cancelled = client.portal.call(sweep)  # type: ignore[union-attr]
        assert {o.id: o.status_reason for o in cancelled} == reasons
        for order_id, reason in reasons.items():
            body = client.get(f"/v1/orders/{order_id}").json()
            assert (body["status"], body["status_reason"]) == ("cancelled", reason)
            assert not rt.book.holds(order_id)
        assert client.get(f"/v1/orders/{kept['id']}").json()["status"] == "accepted"
        assert rt.book.best("WETH/USDC") == (None, Decimal(3001))
        with rt.read_engine.connect() as connection:
            rows = connection.execute(
                select(AUDIT_LOG).where(AUDIT_LOG.c.kind == "order.cancelled")
            ).all()
        assert {r.entity_id: json.loads(r.payload)["status_reason"] for r in rows} == reasons
        # the same predicate again: the orders are gone, nothing more happens
        assert client.portal.call(sweep) == []  # type: ignore[union-attr]


C3000, C3200 = "WETH-20270326-3000-C", "WETH-20270326-3200-C"


def spread(account: str, cid: str, side: str, price: str, **extra: Any) -> dict[str, Any]:
    return {
        "account": account,
        "client_order_id": cid,
        "legs": [
            {"instrument": C3000, "side": "buy", "ratio": 1},
            {"instrument": C3200, "side": "sell", "ratio": 1},
        ],
        "side": side,
        "quantity": "1",
        "price": price,
        **extra,
    }


def test_strategies_meet_on_the_combo_book_or_take_the_legs_books(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        rt = runtime(client)
        for instrument, bid, ask in ((C3000, "300", "310"), (C3200, "200", "210")):
            client.portal.call(make_market, rt, instrument, bid, ask, "5")  # type: ignore[union-attr]
        # B offers the call spread for 100; the legs' books would charge 310 - 200 = 110
        offer = client.post("/v1/strategies", json=spread(B, "s1", "sell", "100"))
        assert offer.status_code == 201 and offer.json()["status"] == "accepted", offer.text
        bought = client.post("/v1/strategies", json=spread(A, "s2", "buy", "105"))
        assert bought.json()["status"] == "filled" and bought.json()["average_price"] == "100"
        legs = {f.instrument: f for f in fills_of(client, bought.json()["id"])}
        # the net is split on the legs' mids, one leg taking the rest: 305 - 205 = 100
        assert (legs[C3000].price, legs[C3200].price) == (Decimal(305), Decimal(205))
        assert (legs[C3000].side.value, legs[C3200].side.value) == ("buy", "sell")
        theirs = {f.instrument: f for f in fills_of(client, offer.json()["id"])}
        assert {f.price for f in theirs.values()} == {Decimal(305), Decimal(205)}
        assert (theirs[C3000].side.value, theirs[C3200].side.value) == ("sell", "buy")
        trade_ids = {f.trade_id for f in [*legs.values(), *theirs.values()]}
        assert len(trade_ids) == 1  # the four leg fills settle as one trade

        # no combo left: C's spread takes the legs' books, all legs or nothing
        implied = client.post("/v1/strategies", json=spread(C, "s3", "buy", "111"))
        assert implied.json()["status"] == "filled" and implied.json()["average_price"] == "110"
        legs = {f.instrument: f for f in fills_of(client, implied.json()["id"])}
        assert (legs[C3000].price, legs[C3200].price) == (Decimal(310), Decimal(200))
        trade_id = legs[C3000].trade_id
        with rt.read_engine.connect() as connection:
            from sqlalchemy import text

            rows = connection.execute(
                text("SELECT COUNT(*) FROM fills WHERE trade_id = :t"), {"t": trade_id}
            ).scalar()
        assert rows == 4  # C's two legs and the two resting orders it took

        # a limit the legs cannot meet: nothing fills, the strategy rests
        too_low = client.post("/v1/strategies", json=spread(C, "s4", "buy", "50"))
        assert too_low.json()["status"] == "accepted"
