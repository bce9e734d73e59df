"""A small world for the matching tests: spot WETH/USDC and a few option legs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.domain.instruments import TradingRules
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.matching import (
    Event,
    MatchingEngine,
    OrderCancelled,
    PlaceOrder,
    SelfTradePrevention,
    Trade,
)

SPOT = "WETH/USDC"
RULES = TradingRules(Decimal("0.01"), Decimal("0.001"), Decimal("0.001"))
LEGS = ("C-2800", "C-3000", "C-3200", "C-3400", "P-2800")


@pytest.fixture
def engine() -> MatchingEngine:
    return MatchingEngine({symbol: RULES for symbol in (SPOT, *LEGS)})


def limit(
    order_id: str,
    side: Side,
    price: int,
    quantity: int,
    *,
    account: str | None = None,
    instrument: str = SPOT,
    tif: TimeInForce = TimeInForce.GTC,
    post_only: bool = False,
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST,
) -> PlaceOrder:
    return PlaceOrder(
        order_id,
        account or f"acct-{order_id}",
        instrument,
        side,
        quantity,
        price,
        OrderType.LIMIT,
        tif,
        post_only,
        stp,
    )


def market(
    order_id: str,
    side: Side,
    quantity: int,
    *,
    account: str | None = None,
    tif: TimeInForce = TimeInForce.IOC,
    instrument: str = SPOT,
) -> PlaceOrder:
    return PlaceOrder(
        order_id,
        account or f"acct-{order_id}",
        instrument,
        side,
        quantity,
        None,
        OrderType.MARKET,
        tif,
    )


def trades(events: list[Event]) -> list[tuple[str, str, int, int]]:
    """(maker, taker, price, quantity) of each trade."""
    return [
        (e.maker_order_id, e.taker_order_id, e.price, e.quantity)
        for e in events
        if isinstance(e, Trade)
    ]


def cancels(events: list[Event]) -> list[tuple[str, int, str]]:
    return [
        (e.order_id, e.quantity, e.reason.value) for e in events if isinstance(e, OrderCancelled)
    ]


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]
