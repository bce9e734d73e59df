"""Self-trade prevention: the incoming order's mode decides; no account trades with itself."""

from __future__ import annotations

from gateway.domain.orders import Side, TimeInForce
from gateway.matching import AmendOrder, MatchingEngine, OrderReduced, SelfTradePrevention
from tests.matching.conftest import SPOT, cancels, kinds, limit, trades

BUY, SELL = Side.BUY, Side.SELL
STP = SelfTradePrevention


def _book(engine: MatchingEngine) -> None:
    engine.execute(limit("own", SELL, 100, 5, account="x"))
    engine.execute(limit("other", SELL, 100, 5, account="y"))


def _asks(engine: MatchingEngine) -> list[tuple[str, int]]:
    return [order for level in engine.snapshot(SPOT).asks for order in level.orders]


def test_cancel_newest_is_the_default(engine: MatchingEngine) -> None:
    _book(engine)
    events = engine.execute(limit("t", BUY, 100, 8, account="x"))
    assert trades(events) == []
    assert cancels(events) == [("t", 8, "self_trade")]
    assert _asks(engine) == [("own", 5), ("other", 5)]


def test_cancel_newest_keeps_earlier_fills(engine: MatchingEngine) -> None:
    engine.execute(limit("other", SELL, 99, 2, account="y"))
    engine.execute(limit("own", SELL, 100, 5, account="x"))
    events = engine.execute(limit("t", BUY, 100, 8, account="x"))
    assert trades(events) == [("other", "t", 99, 2)]
    assert cancels(events) == [("t", 6, "self_trade")]


def test_cancel_oldest_removes_the_resting_order_and_goes_on(engine: MatchingEngine) -> None:
    _book(engine)
    events = engine.execute(limit("t", BUY, 100, 8, account="x", stp=STP.CANCEL_OLDEST))
    assert cancels(events) == [("own", 5, "self_trade")]
    assert trades(events) == [("other", "t", 100, 5)]
    assert engine.snapshot(SPOT).bids[0].orders == (("t", 3),)
    assert _asks(engine) == []


def test_cancel_both(engine: MatchingEngine) -> None:
    _book(engine)
    events = engine.execute(limit("t", BUY, 100, 8, account="x", stp=STP.CANCEL_BOTH))
    assert cancels(events) == [("own", 5, "self_trade"), ("t", 8, "self_trade")]
    assert trades(events) == []
    assert _asks(engine) == [("other", 5)]


def test_decrement_and_cancel_smaller_incoming(engine: MatchingEngine) -> None:
    _book(engine)
    events = engine.execute(limit("t", BUY, 100, 3, account="x", stp=STP.DECREMENT_AND_CANCEL))
    assert kinds(events) == ["OrderAccepted", "OrderReduced", "OrderCancelled"]
    reduced = events[1]
    assert isinstance(reduced, OrderReduced)
    assert (reduced.order_id, reduced.quantity, reduced.remaining) == ("own", 3, 2)
    assert cancels(events) == [("t", 3, "self_trade")]
    assert _asks(engine) == [("own", 2), ("other", 5)]  # the resting order keeps its place
    view = engine.order("own")
    assert view is not None and view.quantity == 2


def test_decrement_and_cancel_larger_incoming_goes_on(engine: MatchingEngine) -> None:
    _book(engine)
    events = engine.execute(limit("t", BUY, 100, 8, account="x", stp=STP.DECREMENT_AND_CANCEL))
    assert cancels(events) == [("own", 5, "self_trade")]
    assert [e.remaining for e in events if isinstance(e, OrderReduced)] == [3]
    assert trades(events) == [("other", "t", 100, 3)]
    assert engine.order("t") is None
    assert _asks(engine) == [("other", 2)]


def test_decrement_and_cancel_equal_sizes_cancels_both(engine: MatchingEngine) -> None:
    _book(engine)
    events = engine.execute(limit("t", BUY, 100, 5, account="x", stp=STP.DECREMENT_AND_CANCEL))
    assert cancels(events) == [("own", 5, "self_trade"), ("t", 5, "self_trade")]
    assert _asks(engine) == [("other", 5)]


def test_fok_with_cancel_oldest_can_fill_past_own_orders(engine: MatchingEngine) -> None:
    _book(engine)
    events = engine.execute(
        limit("f", BUY, 100, 5, account="x", tif=TimeInForce.FOK, stp=STP.CANCEL_OLDEST)
    )
    assert cancels(events) == [("own", 5, "self_trade")]
    assert trades(events) == [("other", "f", 100, 5)]


def test_reprice_amend_applies_the_order_mode(engine: MatchingEngine) -> None:
    engine.execute(limit("own", SELL, 101, 5, account="x"))
    engine.execute(limit("b", BUY, 99, 5, account="x"))
    events = engine.execute(AmendOrder("b", price=101))
    assert cancels(events) == [("b", 5, "self_trade")]
    assert _asks(engine) == [("own", 5)]
