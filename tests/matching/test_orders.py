"""Single-instrument books: order types, priority, amend and cancel rules, units."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.domain.errors import InvalidOrder
from gateway.domain.orders import Leg, OrderType, Side, TimeInForce
from gateway.matching import (
    AmendOrder,
    CancelOrder,
    CancelReason,
    InstrumentUnits,
    MatchingEngine,
    OrderAccepted,
    OrderAmended,
    OrderRejected,
    PlaceOrder,
    RejectReason,
    StrategyUnits,
    Trade,
)
from tests.matching.conftest import RULES, SPOT, cancels, kinds, limit, market, trades

BUY, SELL = Side.BUY, Side.SELL


def test_limit_order_rests_and_events_are_numbered(engine: MatchingEngine) -> None:
    events = engine.execute(limit("a", BUY, 100, 5))
    assert kinds(events) == ["OrderAccepted"]
    accepted = events[0]
    assert isinstance(accepted, OrderAccepted)
    assert (accepted.seq, accepted.book, accepted.price, accepted.quantity) == (1, SPOT, 100, 5)
    assert engine.best_bid(SPOT) == 100
    assert engine.execute(limit("b", SELL, 101, 5))[0].seq == 2


def test_price_then_time_priority_and_maker_price(engine: MatchingEngine) -> None:
    engine.execute(limit("s1", SELL, 102, 5))
    engine.execute(limit("s2", SELL, 101, 5))
    engine.execute(limit("s3", SELL, 101, 5))
    events = engine.execute(limit("b", BUY, 103, 12))
    assert trades(events) == [("s2", "b", 101, 5), ("s3", "b", 101, 5), ("s1", "b", 102, 2)]
    trade = next(e for e in events if isinstance(e, Trade))
    assert trade.aggressor_side is BUY
    assert (trade.maker_account, trade.taker_account) == ("acct-s2", "acct-b")
    assert (trade.maker_remaining, trade.taker_remaining) == (0, 7)
    assert engine.snapshot(SPOT).asks[0].orders == (("s1", 3),)
    assert engine.best_bid(SPOT) is None  # fully filled, nothing rests


def test_limit_remainder_rests_at_its_price(engine: MatchingEngine) -> None:
    engine.execute(limit("s", SELL, 100, 3))
    events = engine.execute(limit("b", BUY, 101, 5))
    assert trades(events) == [("s", "b", 100, 3)]
    assert engine.snapshot(SPOT).bids[0].price == 101
    assert engine.snapshot(SPOT).bids[0].orders == (("b", 2),)


def test_market_order_walks_the_book_and_cancels_the_rest(engine: MatchingEngine) -> None:
    engine.execute(limit("s1", SELL, 100, 2))
    engine.execute(limit("s2", SELL, 150, 2))
    events = engine.execute(market("m", BUY, 5))
    assert trades(events) == [("s1", "m", 100, 2), ("s2", "m", 150, 2)]
    assert cancels(events) == [("m", 1, "ioc_remainder")]
    assert engine.order("m") is None


def test_ioc_fills_what_it_can_within_its_limit(engine: MatchingEngine) -> None:
    engine.execute(limit("s1", SELL, 100, 2))
    engine.execute(limit("s2", SELL, 102, 2))
    events = engine.execute(limit("i", BUY, 101, 5, tif=TimeInForce.IOC))
    assert trades(events) == [("s1", "i", 100, 2)]
    assert cancels(events) == [("i", 3, "ioc_remainder")]
    assert engine.best_ask(SPOT) == 102


def test_fok_kills_without_trading_when_it_cannot_fill(engine: MatchingEngine) -> None:
    engine.execute(limit("s1", SELL, 100, 2))
    engine.execute(limit("s2", SELL, 102, 2))
    events = engine.execute(limit("f", BUY, 101, 3, tif=TimeInForce.FOK))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert cancels(events) == [("f", 3, "fok_unfilled")]
    assert engine.snapshot(SPOT).asks[0].orders == (("s1", 2),)


def test_fok_fills_completely_across_levels(engine: MatchingEngine) -> None:
    engine.execute(limit("s1", SELL, 100, 2))
    engine.execute(limit("s2", SELL, 102, 2))
    events = engine.execute(limit("f", BUY, 102, 4, tif=TimeInForce.FOK))
    assert trades(events) == [("s1", "f", 100, 2), ("s2", "f", 102, 2)]
    assert cancels(events) == []
    market_fok = engine.execute(market("m", SELL, 1, tif=TimeInForce.FOK))
    assert cancels(market_fok) == [("m", 1, "fok_unfilled")]


def test_fok_does_not_count_own_orders(engine: MatchingEngine) -> None:
    engine.execute(limit("own", SELL, 100, 5, account="x"))
    engine.execute(limit("other", SELL, 100, 5, account="y"))
    events = engine.execute(limit("f", BUY, 100, 5, account="x", tif=TimeInForce.FOK))
    assert cancels(events) == [("f", 5, "fok_unfilled")]


def test_post_only_is_cancelled_when_it_would_take(engine: MatchingEngine) -> None:
    engine.execute(limit("s", SELL, 100, 2))
    events = engine.execute(limit("p", BUY, 100, 2, post_only=True))
    assert cancels(events) == [("p", 2, "post_only_would_cross")]
    assert trades(events) == []
    resting = engine.execute(limit("q", BUY, 99, 2, post_only=True))
    assert kinds(resting) == ["OrderAccepted"]
    assert engine.best_bid(SPOT) == 99


def test_post_only_amend_that_would_cross_is_cancelled(engine: MatchingEngine) -> None:
    engine.execute(limit("s", SELL, 100, 2))
    engine.execute(limit("p", BUY, 98, 2, post_only=True))
    events = engine.execute(AmendOrder("p", price=100))
    assert kinds(events) == ["OrderAmended", "OrderCancelled"]
    assert cancels(events) == [("p", 2, "post_only_would_cross")]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (limit("x", BUY, 0, 1), RejectReason.INVALID_PRICE),
        (limit("x", BUY, 100, 0), RejectReason.INVALID_QUANTITY),
        (limit("x", BUY, 100, 1, instrument="NOPE"), RejectReason.UNKNOWN_INSTRUMENT),
        (PlaceOrder("x", "a", SPOT, BUY, 1, None), RejectReason.PRICE_REQUIRED),
        (
            PlaceOrder("x", "a", SPOT, BUY, 1, 100, OrderType.MARKET, TimeInForce.IOC),
            RejectReason.PRICE_NOT_ALLOWED,
        ),
        (market("x", BUY, 1, tif=TimeInForce.GTC), RejectReason.MARKET_NEEDS_IOC_OR_FOK),
        (
            PlaceOrder("x", "a", SPOT, BUY, 1, 100, OrderType.STOP),
            RejectReason.UNSUPPORTED_ORDER_TYPE,
        ),
        (
            limit("x", BUY, 100, 1, tif=TimeInForce.IOC, post_only=True),
            RejectReason.POST_ONLY_NEEDS_RESTING_LIMIT,
        ),
    ],
)
def test_rejections_have_stable_reasons(
    engine: MatchingEngine, command: PlaceOrder, reason: RejectReason
) -> None:
    events = engine.execute(command)
    assert events == [OrderRejected(1, "x", reason)]
    assert reason.value == reason.name.lower()


def test_duplicate_open_order_id_is_rejected(engine: MatchingEngine) -> None:
    engine.execute(limit("a", BUY, 100, 1))
    events = engine.execute(limit("a", BUY, 100, 1))
    assert isinstance(events[0], OrderRejected)
    assert events[0].reason is RejectReason.DUPLICATE_ORDER_ID


def test_cancel(engine: MatchingEngine) -> None:
    engine.execute(limit("a", BUY, 100, 4))
    assert cancels(engine.execute(CancelOrder("a"))) == [("a", 4, "user")]
    assert engine.best_bid(SPOT) is None
    again = engine.execute(CancelOrder("a"))
    assert isinstance(again[0], OrderRejected)
    assert again[0].reason is RejectReason.UNKNOWN_ORDER
    engine.execute(limit("b", BUY, 100, 4))
    expired = engine.execute(CancelOrder("b", CancelReason.EXPIRED))
    assert cancels(expired) == [("b", 4, "expired")]


def _queue(engine: MatchingEngine) -> list[tuple[str, int]]:
    return [order for level in engine.snapshot(SPOT).bids for order in level.orders]


def test_amend_down_keeps_priority(engine: MatchingEngine) -> None:
    engine.execute(limit("a", BUY, 100, 5))
    engine.execute(limit("b", BUY, 100, 5))
    events = engine.execute(AmendOrder("a", quantity=3))
    assert events[0] == OrderAmended(events[0].seq, "a", 100, 3, 3, True)
    assert _queue(engine) == [("a", 3), ("b", 5)]
    assert trades(engine.execute(limit("s", SELL, 100, 3))) == [("a", "s", 100, 3)]


def test_amend_up_or_reprice_loses_priority(engine: MatchingEngine) -> None:
    engine.execute(limit("a", BUY, 100, 5))
    engine.execute(limit("b", BUY, 100, 5))
    up = engine.execute(AmendOrder("a", quantity=6))
    assert isinstance(up[0], OrderAmended) and not up[0].priority_kept
    assert _queue(engine) == [("b", 5), ("a", 6)]
    engine.execute(AmendOrder("b", price=99))
    engine.execute(AmendOrder("b", price=100))
    assert _queue(engine) == [("a", 6), ("b", 5)]


def test_amend_quantity_counts_what_was_filled(engine: MatchingEngine) -> None:
    engine.execute(limit("a", BUY, 100, 10))
    engine.execute(limit("s", SELL, 100, 4))
    below = engine.execute(AmendOrder("a", quantity=4))
    assert isinstance(below[0], OrderRejected)
    assert below[0].reason is RejectReason.AMEND_BELOW_FILLED
    events = engine.execute(AmendOrder("a", quantity=7))
    assert events[0] == OrderAmended(events[0].seq, "a", 100, 7, 3, True)
    nothing = engine.execute(AmendOrder("a", price=100, quantity=7))
    assert isinstance(nothing[0], OrderRejected)
    assert nothing[0].reason is RejectReason.NOTHING_TO_AMEND


def test_amend_to_a_crossing_price_trades_at_once(engine: MatchingEngine) -> None:
    engine.execute(limit("s", SELL, 101, 2))
    engine.execute(limit("b", BUY, 99, 5))
    events = engine.execute(AmendOrder("b", price=101))
    assert kinds(events) == ["OrderAmended", "Trade"]
    assert trades(events) == [("s", "b", 101, 2)]
    assert _queue(engine) == [("b", 3)]


def test_instrument_units_are_exact() -> None:
    units = InstrumentUnits.of(RULES)
    assert units.to_ticks(Decimal("3000.25")) == 300_025
    assert units.from_ticks(300_025) == Decimal("3000.25")
    assert units.to_lots(Decimal("1.5")) == 1500
    assert units.from_lots(1) == Decimal("0.001")
    with pytest.raises(InvalidOrder):
        units.to_ticks(Decimal("3000.255"))
    with pytest.raises(InvalidOrder):
        units.to_lots(Decimal("0.0005"))


def test_strategy_units_take_the_finest_common_tick_and_coarsest_lot() -> None:
    rules = {
        "A": RULES,
        "B": RULES.__class__(Decimal("0.05"), Decimal("0.01"), Decimal("0.01")),
    }
    units = StrategyUnits.of([Leg("A", BUY, 1), Leg("B", Side.SELL, 2)], rules)
    assert units.tick == Decimal("0.01")
    assert units.price_factors == (1, 10)  # B: 2 x 0.05 = 10 strategy ticks per B tick
    assert units.lot == Decimal("0.005")  # B needs 2 x q to be a multiple of 0.01
    assert units.lots_per_unit == (5, 1)
    assert units.to_ticks(Decimal("-1.23")) == -123
    assert units.from_ticks(-123) == Decimal("-1.23")
    assert units.from_lots(3) == Decimal("0.015")
