"""Quotes for tests, made the way a market maker makes them: resting orders on the gateway's
own book, which the market data hub then shows (no book is injected behind its back)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from gateway.domain.orders import OrderSpec, OrderType, Side, TimeInForce
from gateway.runtime import Runtime

MARKET_MAKER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"


async def make_market(
    rt: Runtime,
    instrument: str,
    bid: str,
    ask: str,
    size: str = "50",
    tag: str = "mm",
    deeper_asks: tuple[tuple[str, str], ...] = (),
) -> None:
    """Rest `size` at `bid` and at `ask` (and any `deeper_asks` (price, size)) from the
    market maker's account; return once the consolidated book shows them all."""
    subscription = rt.market_data.subscribe(frozenset({instrument}))
    quotes = [(Side.BUY, bid, size), (Side.SELL, ask, size)]
    quotes += [(Side.SELL, price, quantity) for price, quantity in deeper_asks]
    try:
        for side, price, quantity in quotes:
            await rt.orders.submit(
                OrderSpec(
                    MARKET_MAKER,
                    f"{tag}-{instrument}-{side.value}-{price}",
                    side,
                    OrderType.LIMIT,
                    Decimal(quantity),
                    TimeInForce.GTC,
                    instrument=instrument,
                    price=Decimal(price),
                )
            )
        while True:
            book = rt.market_data.book(instrument, depth=1 + len(deeper_asks))
            if (
                book.bids
                and len(book.asks) == 1 + len(deeper_asks)
                and book.bids[0].price == Decimal(bid)
                and book.asks[0].price == Decimal(ask)
            ):
                return
            await asyncio.wait_for(subscription.next(), 10)  # the next book change
    finally:
        rt.market_data.unsubscribe(subscription)


async def venue_fill(rt: Runtime, spec: OrderSpec, price: Decimal) -> None:
    """An order executed in full elsewhere (as a venue execution is recorded): routed, so it
    never rests on the internal book, then filled."""
    immediate = OrderSpec(
        spec.account,
        spec.client_order_id,
        spec.side,
        OrderType.LIMIT,
        spec.quantity,
        TimeInForce.IOC,
        instrument=spec.instrument,
        price=spec.price,
    )
    submitted = await rt.orders.submit(immediate, routed=True)
    await rt.orders.record_fill(
        submitted.order.id, quantity=spec.quantity, price=price, fee=Decimal(0), venue="binance"
    )


async def sold_and_filled(
    rt: Runtime, account: str, instrument: str, quantity: str, price: str, tag: str
) -> None:
    """`account` sells `quantity` of `instrument` at `price` and is filled on the internal
    venue (a short position the risk monitor then prices)."""
    sold = await rt.orders.submit(
        OrderSpec(
            account,
            tag,
            Side.SELL,
            OrderType.LIMIT,
            Decimal(quantity),
            instrument=instrument,
            price=Decimal(price),
        )
    )
    await rt.orders.record_fill(
        sold.order.id,
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(0),
        venue="internal",
    )
