"""Combo books: normalisation, combo against combo, implied matching against the legs."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from gateway.domain.instruments import TradingRules
from gateway.domain.orders import Leg, Side, TimeInForce
from gateway.matching import (
    AmendOrder,
    ComboFill,
    Event,
    LegFill,
    Liquidity,
    MatchingEngine,
    OrderAccepted,
    OrderRejected,
    PlaceCombo,
    RejectReason,
    Trade,
    normalise,
)
from tests.matching.conftest import cancels, limit, trades

BUY, SELL = Side.BUY, Side.SELL
CONDOR = (
    Leg("C-2800", BUY, 1),
    Leg("C-3000", SELL, 1),
    Leg("C-3200", SELL, 1),
    Leg("C-3400", BUY, 1),
)
FLIPPED_CONDOR = tuple(Leg(leg.instrument, leg.side.opposite, leg.ratio) for leg in CONDOR)
RATIO = (Leg("C-3000", BUY, 1), Leg("C-3200", SELL, 2))  # a 1x2 call ratio spread


def combo(
    order_id: str,
    legs: tuple[Leg, ...],
    side: Side,
    price: int,
    quantity: int,
    *,
    account: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
) -> PlaceCombo:
    return PlaceCombo(order_id, account or f"acct-{order_id}", legs, side, quantity, price, tif)


def fills(events: list[Event]) -> list[ComboFill]:
    return [e for e in events if isinstance(e, ComboFill)]


def test_normalisation_ignores_leg_order_and_flips_to_a_first_buy() -> None:
    strategy, flipped = normalise(CONDOR[::-1])
    assert not flipped
    assert strategy.legs == CONDOR
    mirror, mirror_flipped = normalise(FLIPPED_CONDOR)
    assert mirror_flipped
    assert mirror == strategy
    assert strategy.key == "buy:1:C-2800|sell:1:C-3000|sell:1:C-3200|buy:1:C-3400"


def test_buy_and_sell_of_one_condor_meet(engine: MatchingEngine) -> None:
    engine.execute(combo("b", CONDOR, BUY, 50, 3))
    events = engine.execute(combo("s", CONDOR[::-1], SELL, 45, 2))
    taker, maker = fills(events)
    assert (taker.order_id, taker.side, taker.price, taker.quantity) == ("s", SELL, Fraction(50), 2)
    assert (taker.liquidity, taker.counterparty_order_id) == (Liquidity.TAKER, "b")
    assert (maker.order_id, maker.side, maker.remaining, maker.liquidity) == (
        "b",
        BUY,
        1,
        Liquidity.MAKER,
    )
    assert maker.legs == tuple(LegFill(leg.instrument, leg.side, 2, None) for leg in CONDOR)
    assert taker.legs == tuple(
        LegFill(leg.instrument, leg.side.opposite, 2, None) for leg in CONDOR
    )
    strategy = normalise(CONDOR)[0].key
    assert engine.snapshot(strategy).bids[0].orders == (("b", 1),)


def test_the_condor_written_flipped_meets_the_condor(engine: MatchingEngine) -> None:
    engine.execute(combo("b", CONDOR, BUY, 50, 2))
    # buying the mirror image at a credit of 50 is selling the condor at 50
    events = engine.execute(combo("m", FLIPPED_CONDOR, BUY, -50, 2))
    accepted = events[0]
    assert isinstance(accepted, OrderAccepted)
    assert (accepted.side, accepted.price, accepted.flipped) == (SELL, 50, True)
    taker, maker = fills(events)
    assert (taker.side, taker.price, taker.quantity) == (
        BUY,
        Fraction(-50),
        2,
    )  # in the client's terms
    assert taker.legs[0] == LegFill("C-2800", SELL, 2, None)  # what it actually trades
    assert (maker.side, maker.price) == (BUY, Fraction(50))


def test_combos_that_do_not_cross_rest(engine: MatchingEngine) -> None:
    engine.execute(combo("b", CONDOR, BUY, 40, 1))
    events = engine.execute(combo("s", CONDOR, SELL, 41, 1))
    assert fills(events) == []
    strategy = normalise(CONDOR)[0].key
    assert engine.best_bid(strategy) == 40
    assert engine.best_ask(strategy) == 41


def test_negative_net_prices_order_correctly(engine: MatchingEngine) -> None:
    engine.execute(combo("s1", CONDOR, SELL, -10, 1))
    engine.execute(combo("s2", CONDOR, SELL, -20, 1))
    events = engine.execute(combo("b", CONDOR, BUY, -5, 2))
    assert [(f.counterparty_order_id, f.price) for f in fills(events) if f.order_id == "b"] == [
        ("s2", Fraction(-20)),
        ("s1", Fraction(-10)),
    ]


def _ratio_books(engine: MatchingEngine) -> None:
    engine.execute(limit("a3000", SELL, 100, 10, instrument="C-3000"))
    engine.execute(limit("b3200", BUY, 40, 5, instrument="C-3200"))


def test_implied_fills_every_leg_in_ratio_for_whole_lots_only(engine: MatchingEngine) -> None:
    _ratio_books(engine)
    # net per lot: buy 1 x 100 - sell 2 x 40 = 20; C-3200 has 5 lots: 2 strategy lots
    events = engine.execute(combo("r", RATIO, BUY, 20, 5))
    assert trades(events) == [("a3000", "r", 100, 2), ("b3200", "r", 40, 4)]
    assert all(e.implied for e in events if isinstance(e, Trade))
    (fill,) = fills(events)
    assert (fill.quantity, fill.price, fill.remaining) == (2, Fraction(20), 3)
    assert fill.counterparty_order_id is None
    assert fill.legs == (LegFill("C-3000", BUY, 2, 100), LegFill("C-3200", SELL, 4, 40))
    assert engine.snapshot("C-3200").bids[0].orders == (("b3200", 1),)
    assert engine.snapshot("C-3000").asks[0].orders == (("a3000", 8),)
    assert engine.snapshot(normalise(RATIO)[0].key).bids[0].orders == (("r", 3),)


def test_implied_respects_the_net_limit(engine: MatchingEngine) -> None:
    _ratio_books(engine)
    events = engine.execute(combo("r", RATIO, BUY, 19, 1, tif=TimeInForce.IOC))
    assert trades(events) == []
    assert cancels(events) == [("r", 1, "ioc_remainder")]


def test_implied_sell_takes_the_other_sides(engine: MatchingEngine) -> None:
    engine.execute(limit("b3000", BUY, 90, 3, instrument="C-3000"))
    engine.execute(limit("a3200", SELL, 30, 10, instrument="C-3200"))
    events = engine.execute(combo("r", RATIO, SELL, 30, 5, tif=TimeInForce.IOC))
    assert trades(events) == [("b3000", "r", 90, 3), ("a3200", "r", 30, 6)]
    (fill,) = fills(events)
    assert (fill.side, fill.quantity, fill.price) == (SELL, 3, Fraction(30))
    assert cancels(events) == [("r", 2, "ioc_remainder")]


def test_implied_lot_may_span_levels_and_stops_at_the_limit(engine: MatchingEngine) -> None:
    engine.execute(limit("a3000", SELL, 100, 10, instrument="C-3000"))
    engine.execute(limit("b1", BUY, 41, 1, instrument="C-3200"))
    engine.execute(limit("b2", BUY, 38, 5, instrument="C-3200"))
    # lot 1: 100 - (41 + 38) = 21; lot 2: 100 - 2 x 38 = 24 > 22
    events = engine.execute(combo("r", RATIO, BUY, 22, 3, tif=TimeInForce.IOC))
    assert [(f.quantity, f.price) for f in fills(events)] == [(1, Fraction(21))]
    assert trades(events) == [("a3000", "r", 100, 1), ("b1", "r", 41, 1), ("b2", "r", 38, 1)]


def test_all_or_nothing_when_a_leg_is_missing(engine: MatchingEngine) -> None:
    engine.execute(limit("a3000", SELL, 100, 10, instrument="C-3000"))
    events = engine.execute(combo("r", RATIO, BUY, 1000, 1, tif=TimeInForce.IOC))
    assert trades(events) == []
    assert engine.snapshot("C-3000").asks[0].orders == (("a3000", 10),)


def test_best_price_first_between_resting_combos_and_implied(engine: MatchingEngine) -> None:
    _ratio_books(engine)  # implied at 20 for 2 lots
    engine.execute(combo("s", RATIO, SELL, 25, 5))
    events = engine.execute(combo("r", RATIO, BUY, 30, 4))
    mine = [
        (f.counterparty_order_id, f.quantity, f.price) for f in fills(events) if f.order_id == "r"
    ]
    assert mine == [(None, 2, Fraction(20)), ("s", 2, Fraction(25))]


def test_ties_go_to_resting_combos(engine: MatchingEngine) -> None:
    _ratio_books(engine)
    engine.execute(combo("s", RATIO, SELL, 20, 1))
    events = engine.execute(combo("r", RATIO, BUY, 20, 1))
    assert [f.counterparty_order_id for f in fills(events) if f.order_id == "r"] == ["s"]


def test_implied_never_trades_with_the_same_account(engine: MatchingEngine) -> None:
    engine.execute(limit("a3000", SELL, 100, 10, instrument="C-3000", account="x"))
    engine.execute(limit("b3200", BUY, 40, 5, instrument="C-3200"))
    events = engine.execute(combo("r", RATIO, BUY, 50, 1, account="x", tif=TimeInForce.IOC))
    assert trades(events) == []
    assert engine.snapshot("C-3000").asks[0].orders == (("a3000", 10),)


def test_combo_self_trade_prevention(engine: MatchingEngine) -> None:
    engine.execute(combo("b", CONDOR, BUY, 50, 1, account="x"))
    events = engine.execute(combo("s", CONDOR, SELL, 50, 1, account="x"))
    assert cancels(events) == [("s", 1, "self_trade")]
    assert fills(events) == []


def test_combo_amend_to_a_crossing_price_trades(engine: MatchingEngine) -> None:
    engine.execute(combo("b", CONDOR, BUY, 40, 1))
    engine.execute(combo("m", FLIPPED_CONDOR, BUY, -45, 1))  # sells the condor at 45
    events = engine.execute(AmendOrder("m", price=-40))  # the client's terms, as placed
    assert [(f.order_id, f.price) for f in fills(events)] == [
        ("m", Fraction(-40)),
        ("b", Fraction(40)),
    ]


def test_combo_rejections(engine: MatchingEngine) -> None:
    def reason(command: PlaceCombo) -> RejectReason:
        (event,) = engine.execute(command)
        assert isinstance(event, OrderRejected)
        return event.reason

    assert reason(combo("x", CONDOR[:1], BUY, 1, 1)) is RejectReason.INVALID_LEGS
    assert reason(combo("x", (CONDOR[0], CONDOR[0]), BUY, 1, 1)) is RejectReason.INVALID_LEGS
    assert reason(combo("x", (CONDOR[0], Leg("C-3000", BUY, 0)), BUY, 1, 1)) is (
        RejectReason.INVALID_LEGS
    )
    assert reason(combo("x", (CONDOR[0], Leg("NOPE", BUY, 1)), BUY, 1, 1)) is (
        RejectReason.UNKNOWN_INSTRUMENT
    )
    assert reason(combo("x", CONDOR, BUY, 1, 0)) is RejectReason.INVALID_QUANTITY


def test_fok_combo_counts_resting_combos_and_implied_together(engine: MatchingEngine) -> None:
    _ratio_books(engine)  # implied: 2 lots at 20
    engine.execute(combo("s", RATIO, SELL, 25, 2))
    killed = engine.execute(combo("f1", RATIO, BUY, 25, 5, tif=TimeInForce.FOK))
    assert cancels(killed) == [("f1", 5, "fok_unfilled")]
    assert trades(killed) == [] and fills(killed) == []
    filled = engine.execute(combo("f2", RATIO, BUY, 25, 4, tif=TimeInForce.FOK))
    assert sum(f.quantity for f in fills(filled) if f.order_id == "f2") == 4
    assert cancels(filled) == []


def test_fok_combo_respects_the_limit_lot_by_lot(engine: MatchingEngine) -> None:
    engine.execute(limit("a3000", SELL, 100, 10, instrument="C-3000"))
    engine.execute(limit("b1", BUY, 41, 1, instrument="C-3200"))
    engine.execute(limit("b2", BUY, 38, 5, instrument="C-3200"))
    # lot 1 at 21, lot 2 at 24
    killed = engine.execute(combo("f", RATIO, BUY, 22, 2, tif=TimeInForce.FOK))
    assert cancels(killed) == [("f", 2, "fok_unfilled")]
    filled = engine.execute(combo("g", RATIO, BUY, 24, 2, tif=TimeInForce.FOK))
    assert [(f.quantity, f.price) for f in fills(filled)] == [(1, Fraction(21)), (1, Fraction(24))]


def test_fok_combo_is_killed_by_an_own_resting_combo(engine: MatchingEngine) -> None:
    _ratio_books(engine)
    engine.execute(combo("own", RATIO, SELL, 10, 1, account="x"))
    events = engine.execute(combo("f", RATIO, BUY, 20, 1, account="x", tif=TimeInForce.FOK))
    assert cancels(events) == [("f", 1, "fok_unfilled")]


def test_implied_net_price_is_exact_when_a_lot_spans_levels() -> None:
    fine = TradingRules(Decimal("0.01"), Decimal("0.001"), Decimal("0.001"))
    coarse = TradingRules(Decimal("0.01"), Decimal("0.002"), Decimal("0.002"))
    engine = MatchingEngine({"A": fine, "B": coarse})
    legs = (Leg("A", BUY, 1), Leg("B", SELL, 1))
    units = engine.strategy_units(legs)
    assert units.from_lots(1) == Decimal("0.002")
    assert units.lots_per_unit == (2, 1)
    engine.execute(limit("a1", SELL, 100, 1, instrument="A"))
    engine.execute(limit("a2", SELL, 101, 1, instrument="A"))
    engine.execute(limit("b", BUY, 50, 1, instrument="B"))
    events = engine.execute(combo("r", legs, BUY, 51, 1))
    (fill,) = fills(events)
    assert fill.price == Fraction(101, 2)  # (100 + 101) / 2 - 50
    assert units.from_ticks(fill.price) == Decimal("0.505")


def test_gtd_rests_like_gtc_and_unknown_commands_are_refused(engine: MatchingEngine) -> None:
    engine.execute(limit("g", BUY, 100, 1, tif=TimeInForce.GTD))
    assert engine.best_bid("WETH/USDC") == 100
    with pytest.raises(TypeError):
        engine.execute("cancel everything")  # type: ignore[arg-type]
