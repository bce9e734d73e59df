"""Smart-routed orders against a real exchange (the Binance simulator through ccxt).

The parent order is stored and risk-checked, routed on the live book within its limit, sent
as an IOC child, its fill recorded; the rest is cancelled. A limit below the market fills
nothing. A routed order left open by a stop is cancelled at the next start.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.market import FeeSchedule
from gateway.domain.orders import OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.service import SystemClock
from gateway.runtime import Runtime
from gateway.store import order_repository as order_repo
from gateway.venues.internal import InternalVenue
from gateway.venues.market_data import FeedStatus
from tests.market_data.test_hub import status_change
from tests.venues.conftest import Account

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def ioc(n: int, quantity: str, price: str | None, side: Side = Side.BUY) -> OrderSpec:
    return OrderSpec(
        ALICE,
        f"smart-{n}",
        side,
        OrderType.LIMIT if price else OrderType.MARKET,
        Decimal(quantity),
        TimeInForce.IOC,
        instrument="WETH/USDC",
        price=None if price is None else Decimal(price),
    )


def test_smart_orders_fill_on_the_exchange_within_the_limit(
    private_binance_account: Account, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'smart.db'}"

    async def scenario() -> None:
        catalogue, clock = devnet_catalogue(), SystemClock()
        venue = private_binance_account.venue()
        rt = Runtime.build(
            Settings(database_url=database),
            catalogue=catalogue,
            clock=clock,
            venues=[InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0))), venue],
        )
        await rt.start(expiry_interval=None, monitor=False)
        try:
            await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
            book = rt.market_data.venue_books("WETH/USDC")["binance"]
            ask = book.asks[0].price

            limit = (ask * Decimal("1.01")).quantize(Decimal("0.01"))
            submitted = await rt.orders.submit(ioc(1, "0.5", str(limit)), routed=True)
            done = await rt.smart.execute(submitted.order)
            assert [c.venue for c in done.children] == ["binance"]
            assert done.order.status.value == "filled"
            assert done.order.filled_quantity == Decimal("0.5")
            average = done.order.average_price
            assert average is not None and average <= limit
            fills = rt.pre_trade.ledger.account(ALICE).positions["WETH/USDC"]
            assert fills.quantity == Decimal("0.5")

            # a limit below every ask: nothing routed, the order ends cancelled with a reason
            low = (ask * Decimal("0.95")).quantize(Decimal("0.01"))
            submitted = await rt.orders.submit(ioc(2, "0.5", str(low)), routed=True)
            done = await rt.smart.execute(submitted.order)
            assert done.children == () and done.order.filled_quantity == 0
            assert done.order.status.value == "cancelled"
            assert "no liquidity within the limit" in (done.order.status_reason or "")

            # a routed order the gateway stopped before executing
            stranded = await rt.orders.submit(ioc(3, "0.5", str(limit)), routed=True)
            assert stranded.order.status.value == "accepted"
        finally:
            await rt.stop()

        again = Runtime.build(Settings(database_url=database), catalogue=catalogue, clock=clock)
        await again.start(expiry_interval=None, monitor=False)
        try:
            order = await again.orders.get(stranded.order.id)
            assert order.status.value == "cancelled"
            assert order.status_reason == "gateway stopped while routing it"
        finally:
            await again.stop()

    asyncio.run(scenario())


def test_a_smart_order_takes_the_internal_book_first(
    private_binance_account: Account, tmp_path: Path
) -> None:
    """A resting internal ask below the exchange's ask: the router's split starts there, the
    parent takes it on the matching engine (both sides' fills share a trade id), and the rest
    goes to the exchange."""
    database = f"sqlite:///{tmp_path / 'internal.db'}"
    seller = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"

    async def scenario() -> None:
        catalogue, clock = devnet_catalogue(), SystemClock()
        rt = Runtime.build(
            Settings(database_url=database),
            catalogue=catalogue,
            clock=clock,
            venues=[
                InternalVenue(catalogue, clock, FeeSchedule(Decimal(0), Decimal(0))),
                private_binance_account.venue(),
            ],
        )
        await rt.start(expiry_interval=None, monitor=False)
        try:
            await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
            ask = rt.market_data.venue_books("WETH/USDC")["binance"].asks[0].price
            cheaper = ask - Decimal("0.5")
            subscription = rt.market_data.subscribe(frozenset({"WETH/USDC"}))
            resting = await rt.orders.submit(
                OrderSpec(
                    seller,
                    "inside",
                    Side.SELL,
                    OrderType.LIMIT,
                    Decimal("0.2"),
                    TimeInForce.GTC,
                    instrument="WETH/USDC",
                    price=cheaper,
                )
            )
            while not rt.market_data.venue_books("WETH/USDC").get("internal", None) or not (
                rt.market_data.venue_books("WETH/USDC")["internal"].asks
            ):
                await asyncio.wait_for(subscription.next(), 10)  # each book change
            limit = (ask * Decimal("1.01")).quantize(Decimal("0.01"))
            submitted = await rt.orders.submit(ioc(9, "0.5", str(limit)), routed=True)
            done = await rt.smart.execute(submitted.order)
            assert done.children[0].venue == "internal"
            assert done.children[0].filled == Decimal("0.2")
            assert done.order.status.value == "filled"
            maker = await rt.orders.get(resting.order.id)
            assert maker.status.value == "filled" and maker.average_price == cheaper
            with rt.read_engine.connect() as connection:
                taker_fills = order_repo.fills_for_order(connection, done.order.id)
                [maker_fill] = order_repo.fills_for_order(connection, maker.id)
            internal = [f for f in taker_fills if f.venue == "internal"]
            assert [f.trade_id for f in internal] == [maker_fill.trade_id]
            assert sum(f.quantity for f in taker_fills) == Decimal("0.5")
        finally:
            await rt.stop()

    asyncio.run(scenario())
