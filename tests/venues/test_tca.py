"""`GET /v1/orders/{id}/tca` for a smart order and an algo that traded on the Binance
simulator (ccxt over HTTP); every figure is recomputed here from the recorded fills."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from gateway.api.app import create_app
from gateway.domain.sim_clock import SimClock
from gateway.routing.algos import AlgoKind
from gateway.runtime import Runtime
from gateway.store import order_repository as order_repo
from tests.operator_access import operator_headers
from tests.venues.conftest import Account
from tests.venues.test_algo_runner import ALICE, CENT, MINUTE, T0, best_ask, gateway, request


def client_for(rt: Runtime) -> httpx.AsyncClient:
    app = create_app(runtime=rt)
    app.state.runtime = rt  # started by the test, not by the app's lifespan
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=operator_headers()
    )


async def fills_of(rt: Runtime, order_ids: list[str]) -> list[Any]:
    with rt.read_engine.connect() as connection:
        return [f for i in order_ids for f in order_repo.fills_for_order(connection, i)]


def check_costs(tca: dict[str, Any], fills: list[Any], side_sign: int) -> None:
    filled = sum((f.quantity for f in fills), Decimal(0))
    notional = sum((f.quantity * f.price for f in fills), Decimal(0))
    fees = sum((f.fee for f in fills), Decimal(0))
    arrival = tca["arrival"]
    mid = Decimal(arrival["mid"])
    assert mid == (Decimal(arrival["bid"]) + Decimal(arrival["ask"])) / 2
    assert Decimal(tca["filled"]) == filled > 0
    assert Decimal(tca["average_price"]) == (notional / filled).quantize(Decimal("1e-8"))
    shortfall = tca["implementation_shortfall"]
    execution = side_sign * (notional - mid * filled)
    assert Decimal(shortfall["execution_cost"]) == execution.quantize(Decimal("1e-8"))
    assert Decimal(shortfall["fees"]) == fees.quantize(Decimal("1e-8")) > 0
    paper = mid * Decimal(tca["quantity"])
    total = Decimal(shortfall["total"])
    assert Decimal(shortfall["total_bps"]) == (total / paper * 10_000).quantize(CENT)
    # a taker buys at the ask or above: it pays at least half the spread
    assert execution >= (Decimal(arrival["ask"]) - mid) * filled


def test_tca_of_a_smart_order_and_of_a_twap(
    private_binance_account: Account, tmp_path: Path
) -> None:
    async def scenario() -> None:
        database = f"sqlite:///{tmp_path / 'tca.db'}"
        async with gateway(private_binance_account, database) as rt, client_for(rt) as http:
            limit = (best_ask(rt) * Decimal("1.02")).quantize(CENT)
            placed = await http.post(
                "/v1/orders",
                json={
                    "account": ALICE,
                    "client_order_id": "tca-smart",
                    "instrument": "WETH/USDC",
                    "side": "buy",
                    "type": "limit",
                    "quantity": "0.3",
                    "price": str(limit),
                    "time_in_force": "ioc",
                    "route": "smart",
                },
            )
            assert placed.status_code == 201, placed.text
            order_id = placed.json()["id"]
            tca = (await http.get(f"/v1/orders/{order_id}/tca")).json()
            assert tca["parent_kind"] == "order" and tca["finished"] is True
            check_costs(tca, await fills_of(rt, [order_id]), +1)
            assert [v["venue"] for v in tca["venues"]] == ["binance"]
            assert tca["unfilled"] == "0" and tca["children"] == 0
            # the public tape over the order's interval holds its own trade (at least)
            assert Decimal(tca["market_volume"]) >= Decimal("0.3")
            assert tca["vs_vwap_bps"] is not None and tca["market_vwap"] is not None

            # an algo: its children's fills, its own arrival price
            clock = SimClock(T0)
            algo = await rt.algos.create(request(AlgoKind.TWAP, "0.3", "0.2", limit_price=limit))
            for k in range(5):
                clock.advance_to(T0 + k * MINUTE)
                await rt.algos.run_due(clock.now())
            state = (await rt.algos.get(algo.spec.algo_id)).state
            assert state.filled == Decimal("0.3")
            tca = (await http.get(f"/v1/orders/{algo.spec.algo_id}/tca")).json()
            assert tca["parent_kind"] == "algo" and tca["children"] == state.child_seq
            with rt.read_engine.connect() as connection:
                children = [
                    order_repo.get_by_client_order_id(connection, ALICE, f"{algo.spec.algo_id}-{n}")
                    for n in range(1, state.child_seq + 1)
                ]
            check_costs(tca, await fills_of(rt, [c.order.id for c in children if c]), +1)

            # an order without an arrival price, and an unknown id: structured errors
            plain = await http.post(
                "/v1/orders",
                json={
                    "account": ALICE,
                    "client_order_id": "tca-plain",
                    "instrument": "WETH/USDC",
                    "side": "buy",
                    "type": "limit",
                    "quantity": "0.1",
                    "price": "100",
                },
            )
            assert plain.status_code == 201, plain.text
            refused = await http.get(f"/v1/orders/{plain.json()['id']}/tca")
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "tca_unavailable"
            missing = await http.get("/v1/orders/ord_nothing/tca")
            assert missing.status_code == 404

    asyncio.run(scenario())
