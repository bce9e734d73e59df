"""The risk monitor end to end: a short option position on a running gateway, a real
exchange (the Binance simulator through ccxt over HTTP) quoting the underlying.

One tick re-prices the account, raises a margin alert on the event stream and to a real
webhook receiver, and delta-hedges through the venue: the hedge is a gateway order, sent
IOC to Binance, its fill recorded, after which the account's delta is back in its band.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.market import FeeSchedule
from gateway.domain.orders import Side
from gateway.oms.service import SystemClock
from gateway.oms.webhook import signature
from gateway.risk.hedging import DeltaHedgePolicy
from gateway.runtime import Runtime
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import FeedStatus
from tests.market_data.test_hub import status_change
from tests.market_making import make_market, sold_and_filled
from tests.venues.conftest import Account

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CALL = "WETH-20270326-3000-C"
SECRET = "hook-secret"


async def receiver() -> tuple[
    web.AppRunner, str, list[tuple[dict[str, str], bytes]], asyncio.Event
]:
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alerts", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/alerts", received, arrived


def test_a_tick_alerts_and_hedges_through_the_exchange(
    private_binance_account: Account, tmp_path: Path
) -> None:
    async def scenario() -> None:
        runner, url, received, arrived = await receiver()
        venue = private_binance_account.venue()
        catalogue = devnet_catalogue()
        clock = SystemClock()
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
            risk_webhook_url=url,
            risk_webhook_secret=SECRET,
        )
        rt = Runtime.build(
            settings,
            catalogue=catalogue,
            clock=clock,
            venues=[InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0))), venue],
        )
        await rt.start(expiry_interval=None, monitor=False)  # ticks driven by the test
        try:
            await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
            spot = rt.market_data.book("WETH/USDC").mid
            assert spot is not None
            # an option quote for the implied vol (the internal venue's book)
            await make_market(rt, CALL, "300", "310", "10")
            await sold_and_filled(rt, ALICE, CALL, "2", "305", "short-calls")
            await rt.risk_controls.set_hedge_policy(
                ALICE, DeltaHedgePolicy("WETH/USDC", band=Decimal("0.1"))
            )
            events = rt.events.subscribe(frozenset({ALICE}))

            alerts = await rt.monitor.tick()

            # 1. the alert: no collateral but the premium, so far past maintenance
            assert [a.level.name for a in alerts] == ["LIQUIDATION"]
            streamed = [events.queue.get_nowait() for _ in range(events.queue.qsize())]
            kinds = [e["type"] for e in streamed]
            assert "risk.margin_alert" in kinds and "risk.hedge" in kinds
            await asyncio.wait_for(arrived.wait(), 10)
            headers, body = received[0]
            assert headers["x-isthmus-signature"] == signature(SECRET, body)
            payload: dict[str, Any] = json.loads(body)
            assert payload["type"] == "risk.margin_alert" and payload["account"] == ALICE
            assert payload["alert"]["level"] == "liquidation"

            # 2. the hedge: bought on Binance, recorded, delta back inside the band
            [hedge] = rt.monitor.hedges
            assert hedge.error is None and hedge.venue == "binance"
            assert hedge.order.side is Side.BUY and hedge.filled == hedge.order.quantity
            delta_before = hedge.order.delta_before
            assert Decimal(-2) < delta_before < Decimal("-0.1")
            order = await rt.orders.get(hedge.gateway_order_id or "")
            assert order.status.value == "filled" and order.filled_quantity == hedge.filled
            exposure = rt.pre_trade.ledger.account(ALICE)
            assert exposure.position("WETH/USDC") == hedge.filled
            reading = await rt.monitor.reading(ALICE)
            assert reading is not None and abs(reading.delta["WETH"]) <= Decimal("0.1")
            await rt.monitor.tick()
            assert len(rt.monitor.hedges) == 1  # inside the band: no second hedge
        finally:
            await rt.stop()
            await runner.cleanup()

    asyncio.run(scenario())
