"""A strategy executed leg by leg on two exchanges (Binance spot and the Deribit perpetual,
both simulators over HTTP through ccxt): a cash-and-carry buy of WETH/USDC against a sale of
WETH-PERP. Time is a `SimClock` the test advances; nothing sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.market import FeeSchedule, VenueOrder, VenueOrderRequest
from gateway.domain.sim_clock import SimClock
from gateway.routing.legging import LeggingStatus
from gateway.runtime import Runtime
from gateway.store import order_repository as order_repo
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import FeedStatus
from gateway.venues.protocol import Venue, VenueRejected
from tests.market_data.test_hub import status_change
from tests.operator_access import OPERATOR_TOKEN, operator_headers
from tests.venues.conftest import Account
from tests.venues.test_algo_runner import ALICE, T0

SECOND = timedelta(seconds=1)


class RefusesOrders:
    """The real venue, refusing every order (an exchange in cancel-only mode)."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    async def place_order(self, request: VenueOrderRequest) -> VenueOrder:
        raise VenueRejected("cancel-only mode", venue=self._venue.name)


@asynccontextmanager
async def gateway(
    spot: Account, perp: Account, database: str, clock: SimClock, *, perp_refuses: bool = False
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    catalogue = devnet_catalogue()
    deribit: Any = perp.venue()
    rt = Runtime.build(
        Settings(
            database_url=database,
            risk_orders_per_second=1000,
            risk_orders_burst=1000,
            operator_token=OPERATOR_TOKEN,
        ),
        catalogue=catalogue,
        clock=clock,
        venues=[
            InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0))),
            spot.venue(),
            RefusesOrders(deribit) if perp_refuses else deribit,
        ],
    )
    await rt.start(expiry_interval=None, monitor=False, algos=False, reconcile_interval=None)
    try:
        await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
        await status_change(rt.market_data, "deribit", FeedStatus.LIVE, timeout=20)
        app = create_app(runtime=rt)
        app.state.runtime = rt
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=operator_headers()
        ) as http:
            yield rt, http
    finally:
        await rt.stop()


def carry(n: int, quantity: str, bound: str, **legging: Any) -> dict[str, Any]:
    return {
        "account": ALICE,
        "client_order_id": f"carry-{n}",
        "legs": [
            {"instrument": "WETH/USDC", "side": "buy"},
            {"instrument": "WETH-PERP", "side": "sell"},
        ],
        "quantity": quantity,
        "price": "100",  # pay at most 100 USDC of basis per unit
        "route": "legged",
        "legging": {"max_unhedged_notional": bound, "max_legging_time": "2", **legging},
    }


def positions(rt: Runtime) -> dict[str, Decimal]:
    held = rt.pre_trade.ledger.account(ALICE).positions
    return {k: v.quantity for k, v in held.items() if k != "strategy"}


def test_a_legged_carry_trade_fills_in_ratio_in_bounded_clips(
    private_binance_account: Account, private_deribit_account: Account, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = SimClock(T0)
        async with gateway(
            private_binance_account,
            private_deribit_account,
            f"sqlite:///{tmp_path / 'l.db'}",
            clock,
        ) as (rt, http):
            mid = rt.market_data.book("WETH/USDC", depth=1).mid
            assert mid is not None
            bound = (mid * Decimal("0.45")).quantize(Decimal(1))  # clips of 0.4
            created = await http.post("/v1/strategies", json=carry(1, "1", str(bound)))
            assert created.status_code == 201, created.text
            order_id = created.json()["id"]
            for _ in range(10):
                if not rt.legging.is_running(order_id):
                    break
                clock.advance(SECOND)
                await rt.legging.run_due(clock.now())
            report = (await http.get(f"/v1/strategies/{order_id}/legging")).json()
            assert report["status"] == "done", report
            assert report["completed_units"] == "1" and report["in_ratio"] is True
            assert report["clips"] == 3  # 0.4 + 0.4 + 0.2
            assert Decimal(report["max_unhedged_notional"]) <= bound * Decimal("1.01")
            assert [(leg["side"], leg["net_quantity"]) for leg in report["legs"]] == [
                ("buy", "1"),
                ("sell", "1"),
            ]
            order = (await http.get(f"/v1/orders/{order_id}")).json()
            assert order["status"] == "filled" and order["filled_quantity"] == "1"
            net = Decimal(report["net_average_price"])
            assert abs(Decimal(order["average_price"]) - net) < Decimal("1e-8")
            assert net <= 100  # within the strategy's net limit
            assert positions(rt) == {"WETH/USDC": Decimal(1), "WETH-PERP": Decimal(-1)}
            # the legs' orders carry the executions, one gateway order per child
            with rt.read_engine.connect() as connection:
                children = [
                    order_repo.get_by_client_order_id(connection, ALICE, f"{order_id}-L{n}")
                    for n in range(1, 20)
                ]
            legs = [c.order for c in children if c is not None]
            assert {o.spec.instrument for o in legs} == {"WETH/USDC", "WETH-PERP"}
            assert sum(o.filled_quantity for o in legs if o.spec.instrument == "WETH/USDC") == 1

    asyncio.run(scenario())


def test_a_leg_that_cannot_fill_is_unwound_after_the_legging_time(
    private_binance_account: Account, private_deribit_account: Account, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = SimClock(T0)
        async with gateway(
            private_binance_account,
            private_deribit_account,
            f"sqlite:///{tmp_path / 'u.db'}",
            clock,
            perp_refuses=True,
        ) as (rt, http):
            # 1 unit against 0.5 shown at the spot touch: spot is the harder leg, sent first
            created = await http.post("/v1/strategies", json=carry(2, "1", "100000"))
            assert created.status_code == 201, created.text
            order_id = created.json()["id"]
            state = await rt.legging.get(order_id)
            assert state.fills[0].opened > 0 and state.fills[1].opened == 0  # unhedged now
            for _ in range(10):
                if not rt.legging.is_running(order_id):
                    break
                clock.advance(SECOND)
                await rt.legging.run_due(clock.now())
            report = await rt.legging.report(order_id)
            assert report.status is LeggingStatus.FAILED
            assert report.reason == "legging_timeout" and report.in_ratio
            spot = report.legs[0]
            assert spot.unwound_quantity == spot.opened_quantity > 0
            assert report.completed_units == 0
            assert positions(rt).get("WETH/USDC", Decimal(0)) == 0  # back flat
            # the cost: bought at the ask, sold back at the bid (at least one spread)
            assert spot.opened_average_price is not None
            assert spot.unwound_average_price is not None
            expected = (spot.opened_average_price - spot.unwound_average_price) * (
                spot.unwound_quantity
            )
            assert report.legging_cost == expected > 0
            assert report.time_unhedged >= timedelta(seconds=2)
            order = await rt.orders.get(order_id)
            assert order.status.value == "cancelled" and order.filled_quantity == 0
            assert "legging_timeout" in (order.status_reason or "")

    asyncio.run(scenario())
