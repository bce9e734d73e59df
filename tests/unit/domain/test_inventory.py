"""The inventory's pricing rules and book, and a venue child's fill after its parent ended."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.errors import IllegalTransition
from gateway.domain.inventory import (
    HedgeExecution,
    InventoryTrade,
    LegExecution,
    inventory_book,
    inventory_price,
    strategy_leg_prices,
)
from gateway.domain.orders import Order, OrderSpec, OrderType, Side, TimeInForce

TICK = Decimal("0.01")
NOW = datetime(2026, 12, 6, tzinfo=UTC)
prices = st.decimals(min_value=Decimal("100"), max_value=Decimal("5000"), places=2)
bps = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=1)


@given(prices, st.decimals(min_value=0, max_value=10, places=4), bps, prices, st.booleans())
def test_the_inventory_price_covers_the_hedge_and_never_crosses_the_limit(
    average: Decimal, fee: Decimal, spread: Decimal, limit: Decimal, buy: bool
) -> None:
    side = Side.BUY if buy else Side.SELL
    price = inventory_price(
        side, average=average, fee_per_unit=fee, spread_bps=spread, limit=limit, tick=TICK
    )
    assert price % TICK == 0
    cost = average + fee if buy else average - fee
    if buy:  # the trader never pays beyond the limit; else at least what the hedge cost
        assert price <= limit
        assert price == limit or price >= cost + average * spread / 10_000
    else:
        assert price >= limit
        assert price == limit or price <= cost - average * spread / 10_000


def test_a_sell_gets_the_exchange_average_less_fee_and_spread_on_the_tick() -> None:
    # 5 sold at 2,999.50 average, 14.9975 of fee: 2.9995 a unit; 5 bps is 1.49975
    price = inventory_price(
        Side.SELL,
        average=Decimal("2999.50"),
        fee_per_unit=Decimal("2.9995"),
        spread_bps=Decimal(5),
        limit=Decimal(2750),
        tick=TICK,
    )
    assert price == Decimal("2995.00")


@given(
    st.lists(st.tuples(prices, st.booleans(), st.integers(1, 3)), min_size=2, max_size=4),
    bps,
    st.decimals(min_value=Decimal(-3000), max_value=Decimal(8000), places=2),
)
def test_strategy_legs_stay_within_the_signed_net_limit(
    legs: list[tuple[Decimal, bool, int]], spread: Decimal, bound: Decimal
) -> None:
    executions = tuple(
        LegExecution(Side.BUY if buy else Side.SELL, ratio, average, Decimal("0.5"), TICK)
        for average, buy, ratio in legs
    )
    found = strategy_leg_prices(executions, spread_bps=spread, bound=bound)
    if found is None:
        return
    net = sum(
        (
            p * e.ratio if e.side is Side.BUY else -p * e.ratio
            for p, e in zip(found, executions, strict=True)
        ),
        Decimal(0),
    )
    assert net <= bound
    assert all(p > 0 and p % TICK == 0 for p in found)


def test_strategy_legs_at_cost_when_within_the_limit_and_one_leg_gives_back_otherwise() -> None:
    legs = (
        LegExecution(Side.BUY, 1, Decimal(3000), Decimal(0), TICK),
        LegExecution(Side.SELL, 1, Decimal(150), Decimal(0), TICK),
    )
    wide = strategy_leg_prices(legs, spread_bps=Decimal(10), bound=Decimal(2900))
    assert wide == (Decimal("3003.00"), Decimal("149.85"))
    tight = strategy_leg_prices(legs, spread_bps=Decimal(10), bound=Decimal(2852))
    assert tight is not None and tight[0] - tight[1] == Decimal(2852)
    assert tight[1] == Decimal("149.85")  # the larger leg gave back


def test_the_inventory_book_nets_the_wallet_against_its_hedges() -> None:
    trades = [
        InventoryTrade("WETH/USDC", Side.BUY, Decimal(5), Decimal("2995.00"), True),
        InventoryTrade("WETH/USDC", Side.BUY, Decimal(1), Decimal("2996.00"), False),
    ]
    hedges = [
        HedgeExecution("WETH/USDC", "binance", Side.SELL, Decimal(6), Decimal(3000), Decimal(18))
    ]
    [line] = inventory_book(trades, hedges, {"WETH/USDC": Decimal(3001)})
    assert (line.wallet_position, line.pending_position, line.hedge_position) == (6, 1, -6)
    assert line.net_position == 0
    # bought 14,975 + 2,996 on chain, sold 18,000 less 18 of fees
    assert line.pnl == Decimal(18_000) - 18 - Decimal("14975.00") - Decimal("2996.00")


def _order() -> Order:
    spec = OrderSpec(
        "0x" + "11" * 20,
        "c1",
        Side.SELL,
        OrderType.LIMIT,
        Decimal(8),
        TimeInForce.IOC,
        instrument="WETH/USDC",
        price=Decimal(2750),
    )
    return Order.new("ord_1", spec, NOW).accept(NOW)


def test_a_child_in_flight_fills_its_cancelled_parent_which_stays_cancelled() -> None:
    order = _order().fill(Decimal(3), Decimal(3000), NOW).cancel(NOW, "rest found nothing")
    with pytest.raises(IllegalTransition):
        order.fill(Decimal(5), Decimal(2996), NOW)
    late = order.fill(Decimal(5), Decimal(2996), NOW, in_flight=True)
    assert late.status.value == "cancelled"
    assert late.filled_quantity == 8 and late.filled_notional == 3 * 3000 + 5 * 2996
    with pytest.raises(IllegalTransition):  # never beyond the order
        late.fill(Decimal(1), Decimal(2996), NOW, in_flight=True)


def test_a_rejected_order_takes_no_late_fill() -> None:
    spec = _order().spec
    rejected = Order.new("ord_2", spec, NOW).reject("no", NOW)
    with pytest.raises(IllegalTransition):
        rejected.fill(Decimal(1), Decimal(3000), NOW, in_flight=True)
