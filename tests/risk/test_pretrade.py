"""The pre-trade validator: each rule, its stable code, and the limits as invariants."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.fills import Fill
from gateway.domain.orders import Leg, OrderSpec, OrderType, Side, TimeInForce
from gateway.risk.exposure import ExposureLedger
from gateway.risk.pretrade import (
    KillSwitchEngaged,
    OrderRateExceeded,
    PreTradeRejected,
    PreTradeValidator,
    RiskControls,
    RiskLimits,
)
from tests.conftest import ManualClock

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CALL = "WETH-20270326-3000-C"


class Mids:
    """Reference prices as plain data (the runtime reads the consolidated book)."""

    def __init__(self, **mids: str) -> None:
        self.mids = {k.replace("_", "/"): Decimal(v) for k, v in mids.items()}

    def mid(self, instrument: str) -> Decimal | None:
        return self.mids.get(instrument)


def make(
    limits: RiskLimits | None = None, mids: Mids | None = None, clock: ManualClock | None = None
) -> tuple[PreTradeValidator, ManualClock]:
    clock = clock or ManualClock()
    prices = mids or Mids(WETH_USDC="3000", **{"WETH-PERP": "3001"})
    validator = PreTradeValidator(
        devnet_catalogue(),
        RiskControls(defaults=limits or RiskLimits()),
        ExposureLedger(),
        prices,
        clock.now,
    )
    return validator, clock


_n = iter(range(10**9))


def order(**changes: Any) -> OrderSpec:
    values: dict[str, Any] = {
        "account": ALICE,
        "client_order_id": f"c{next(_n)}",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal("1"),
        "instrument": "WETH/USDC",
        "price": Decimal("3000"),
    }
    values.update(changes)
    return OrderSpec(**values)


def code_of(validator: PreTradeValidator, spec: OrderSpec) -> str | None:
    try:
        validator.admit(spec)
    except PreTradeRejected as rejected:
        return rejected.code
    return None


def test_a_plain_order_passes_and_is_reserved() -> None:
    validator, _ = make()
    spec = order()
    assert code_of(validator, spec) is None
    assert validator.ledger.is_known(spec)
    # a retry of the same client order id is not checked (nor counted) twice
    assert validator.admit(spec) is False


def test_kill_switches() -> None:
    validator, _ = make()
    validator.controls.killed_accounts.add(ALICE)
    with pytest.raises(KillSwitchEngaged):
        validator.admit(order())
    assert code_of(validator, order(account=BOB)) is None
    validator.controls.global_kill = True
    assert code_of(validator, order(account=BOB)) == "kill_switch_engaged"


def test_instrument_allow_list() -> None:
    validator, _ = make(RiskLimits(allowed_instruments=frozenset({"WETH-PERP"})))
    assert code_of(validator, order()) == "instrument_not_allowed"
    assert code_of(validator, order(instrument="WETH-PERP", price=Decimal(3001))) is None


def test_order_rate_is_a_token_bucket_on_the_clock() -> None:
    validator, clock = make(RiskLimits(orders_per_second=Decimal(2), order_burst=3))
    prices = [Decimal(2900 + i) for i in range(20)]
    for price in prices[:3]:
        assert code_of(validator, order(price=price)) is None
    with pytest.raises(OrderRateExceeded):
        validator.admit(order(price=prices[3]))
    clock.advance(seconds=0.5)  # one token back
    assert code_of(validator, order(price=prices[4])) is None
    assert code_of(validator, order(price=prices[5])) == "order_rate_exceeded"
    clock.advance(seconds=60)  # refills to the burst, not beyond
    for price in prices[6:9]:
        assert code_of(validator, order(price=price)) is None
    assert code_of(validator, order(price=prices[9])) == "order_rate_exceeded"
    # another account has its own bucket
    assert code_of(validator, order(account=BOB)) is None


def test_self_trade_prevention() -> None:
    validator, _ = make()
    assert code_of(validator, order(side=Side.SELL, price=Decimal(3010))) is None
    assert code_of(validator, order(side=Side.BUY, price=Decimal(3009))) is None  # no cross
    assert code_of(validator, order(side=Side.BUY, price=Decimal(3010))) == "self_trade"
    assert (
        code_of(
            validator,
            order(
                side=Side.BUY,
                order_type=OrderType.MARKET,
                price=None,
                time_in_force=TimeInForce.IOC,
            ),
        )
        == "self_trade"
    )
    # another account may trade against it
    assert code_of(validator, order(account=BOB, price=Decimal(3010))) is None


def test_price_band_against_the_mid() -> None:
    validator, _ = make(RiskLimits(price_band_bps=500))  # 5% of 3000 = 150
    assert code_of(validator, order(price=Decimal(3150))) is None
    assert code_of(validator, order(price=Decimal("3150.01"))) == "price_outside_band"
    # sells from another account (alice's resting buys would make them self-trades)
    assert code_of(validator, order(account=BOB, side=Side.SELL, price=Decimal(2850))) is None
    low = order(account=BOB, side=Side.SELL, price=Decimal("2849.99"))
    assert code_of(validator, low) == "price_outside_band"
    # a buy far below the mid is no fat finger: it just rests
    assert code_of(validator, order(price=Decimal(100))) is None


def test_market_orders_need_a_reference_price() -> None:
    validator, _ = make(mids=Mids())
    market = order(order_type=OrderType.MARKET, price=None, time_in_force=TimeInForce.IOC)
    assert code_of(validator, market) == "no_reference_price"
    # a limit order without a mid has nothing to be compared with and passes
    assert code_of(validator, order()) is None


def test_order_notional_uses_the_underlying_for_options() -> None:
    validator, _ = make(RiskLimits(max_order_notional=Decimal(30_000)))
    assert code_of(validator, order(quantity=Decimal(10))) is None  # 10 * 3000
    assert code_of(validator, order(quantity=Decimal("10.0001"))) == "order_notional_limit"
    # 11 calls at a premium of 10 are 33,000 of underlying exposure, not 110
    call = order(instrument=CALL, quantity=Decimal(11), price=Decimal(10), side=Side.SELL)
    assert code_of(validator, call) == "order_notional_limit"


def test_open_notional_and_open_order_count() -> None:
    validator, _ = make(RiskLimits(max_open_notional=Decimal(10_000), max_open_orders=2))
    assert code_of(validator, order(quantity=Decimal(2))) is None  # 6,000
    assert code_of(validator, order(quantity=Decimal(2))) == "open_notional_limit"  # 12,000
    assert code_of(validator, order(quantity=Decimal(1))) is None  # 9,000
    assert code_of(validator, order(quantity=Decimal("0.1"))) == "open_orders_limit"


def test_position_limit_counts_fills_and_working_orders() -> None:
    validator, clock = make(RiskLimits(max_position=Decimal(5)))
    validator.ledger.apply_fill(
        Fill(
            "f1",
            "o1",
            ALICE,
            "WETH/USDC",
            Side.BUY,
            Decimal(3),
            Decimal(3000),
            Decimal(0),
            "internal",
            clock.now(),
        )
    )
    assert code_of(validator, order(quantity=Decimal(2))) is None  # 3 + 2
    assert code_of(validator, order(quantity=Decimal("0.01"))) == "position_limit"
    # selling reduces the long side's worst case only when it fills: a sell of 10 could
    # take the position to 3 - 10 = -7
    assert (
        code_of(validator, order(side=Side.SELL, quantity=Decimal(8), price=Decimal(3100))) is None
    )
    assert code_of(validator, order(side=Side.SELL, quantity=Decimal(1), price=Decimal(3100))) == (
        "position_limit"
    )


def test_strategy_legs_count_by_ratio() -> None:
    validator, _ = make(RiskLimits(max_position=Decimal(4)))
    legs = (Leg(CALL, Side.BUY, 1), Leg("WETH-20270326-3200-C", Side.SELL, 2))
    spread = order(instrument=None, legs=legs, quantity=Decimal(2), price=Decimal(5))
    assert code_of(validator, spread) is None  # -4 of the 3200 call
    again = order(instrument=None, legs=legs, quantity=Decimal("0.01"), price=Decimal(5))
    assert code_of(validator, again) == "position_limit"


def test_release_frees_a_reservation() -> None:
    validator, _ = make(RiskLimits(max_open_orders=1))
    first = order()
    validator.admit(first)
    assert code_of(validator, order(price=Decimal(2990))) == "open_orders_limit"
    validator.ledger.release(first)
    assert code_of(validator, order(price=Decimal(2990))) is None


SIZES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(4), places=2)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([Side.BUY, Side.SELL]), SIZES, st.booleans()), max_size=40
    ),
    limit=st.decimals(min_value=Decimal(1), max_value=Decimal(10), places=1),
)
def test_worst_case_position_never_exceeds_the_limit(
    steps: list[tuple[Side, Decimal, bool]], limit: Decimal
) -> None:
    """Whatever is admitted, filling every working order keeps |position| <= limit."""
    validator, clock = make(RiskLimits(max_position=limit, order_burst=1000))
    admitted: list[OrderSpec] = []
    for side, size, fill_one in steps:
        price = Decimal(2900) if side is Side.BUY else Decimal(3100)  # never self-crossing
        spec = order(side=side, quantity=size, price=price)
        try:
            validator.admit(spec)
            admitted.append(spec)
        except PreTradeRejected as rejected:
            assert rejected.code == "position_limit"
        if fill_one and admitted:
            done = admitted.pop(0)
            validator.ledger.release(done)
            validator.ledger.apply_fill(
                Fill(
                    f"f{next(_n)}",
                    "o",
                    ALICE,
                    "WETH/USDC",
                    done.side,
                    done.quantity,
                    done.price or Decimal(0),
                    Decimal(0),
                    "internal",
                    clock.now(),
                )
            )
        longest, shortest = validator.ledger.account(ALICE).worst_case("WETH/USDC")
        assert longest <= limit and -shortest <= limit


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["reserve", "release", "commit", "close"]),
            st.integers(0, 7),
            st.sampled_from([Side.BUY, Side.SELL]),
            SIZES,
            st.sampled_from(["WETH/USDC", "WETH-PERP", "strategy"]),
        ),
        max_size=60,
    )
)
def test_running_totals_equal_a_recount(steps: list[tuple[str, int, Side, Decimal, str]]) -> None:
    """The ledger's per-instrument pending totals and open notional always equal what a
    recount of its working orders gives, whatever order reservations, commits and closes
    come in."""
    validator, _ = make()
    ledger = validator.ledger
    for action, key, side, size, symbol in steps:
        legs = (Leg(CALL, Side.BUY, 1), Leg("WETH-20270326-3200-C", Side.SELL, 2))
        spec = order(
            client_order_id=f"k{key}",
            side=side,
            quantity=size,
            instrument=None if symbol == "strategy" else symbol,
            legs=legs if symbol == "strategy" else (),
            price=Decimal(5) if symbol == "strategy" else Decimal(3000),
        )
        if action == "reserve":
            ledger.reserve(spec)
        elif action == "release":
            ledger.release(spec)
        else:
            facts = {
                "account": ALICE,
                "client_order_id": spec.client_order_id,
                "id": f"ord_{key}",
                "status": "accepted" if action == "commit" else "cancelled",
                "instrument": spec.instrument,
                "legs": [
                    {"instrument": leg.instrument, "side": leg.side.value, "ratio": leg.ratio}
                    for leg in spec.legs
                ],
                "side": side.value,
                "type": "limit",
                "remaining_quantity": str(size),
                "price": str(spec.price),
            }
            ledger.apply_events([{"type": "order.accepted", "order": facts}])
            working = ledger.account(ALICE).working.get(spec.client_order_id)
            if action == "commit":  # the committed order, under its own id
                assert working is not None and working.order_id == f"ord_{key}"
                assert (working.remaining, working.price) == (size, spec.price)
            else:
                assert working is None
        exposure = ledger.account(ALICE)
        assert exposure.open_notional == sum(
            (validator._working_notional(w) for w in exposure.working.values()), Decimal(0)
        )
        for instrument in ("WETH/USDC", "WETH-PERP", CALL, "WETH-20270326-3200-C"):
            buys = sum(
                (
                    q
                    for w in exposure.working.values()
                    for s, q in w.leg_quantities()
                    if s == instrument and q > 0
                ),
                Decimal(0),
            )
            sells = sum(
                (
                    q
                    for w in exposure.working.values()
                    for s, q in w.leg_quantities()
                    if s == instrument and q < 0
                ),
                Decimal(0),
            )
            assert exposure.worst_case(instrument) == (buys, sells)


def test_a_committed_reservation_takes_its_id_and_counts_once() -> None:
    """The commit event of an order reserved as it was checked: the working order takes its
    id and the account's totals are those of that one order, as if only the commit came."""

    def committed(ledger: ExposureLedger, spec: OrderSpec) -> None:
        facts = {
            "account": ALICE,
            "client_order_id": spec.client_order_id,
            "id": "ord_1",
            "status": "accepted",
            "instrument": spec.instrument,
            "legs": [],
            "side": spec.side.value,
            "type": "limit",
            "remaining_quantity": str(spec.quantity),
            "price": str(spec.price),
        }
        ledger.apply_events([{"type": "order.accepted", "order": facts}])

    spec = order(quantity=Decimal("1.50"), price=Decimal("2990.5"))
    validator, _ = make()
    validator.ledger.reserve(spec)
    committed(validator.ledger, spec)
    alone, _ = make()
    committed(alone.ledger, spec)
    for ledger in (validator.ledger, alone.ledger):
        exposure = ledger.account(ALICE)
        assert exposure.working[spec.client_order_id].order_id == "ord_1"
        assert exposure.open_notional == Decimal("1.50") * Decimal("2990.5")
        assert exposure.worst_case("WETH/USDC") == (Decimal("1.50"), Decimal(0))
        assert exposure.best_price("WETH/USDC", Side.BUY) == Decimal("2990.5")


CALL_3200 = "WETH-20270326-3200-C"
SPREAD = (Leg(CALL, Side.BUY, 1), Leg(CALL_3200, Side.SELL, 1))


def flipped(legs: tuple[Leg, ...]) -> tuple[Leg, ...]:
    return tuple(Leg(leg.instrument, leg.side.opposite, leg.ratio) for leg in legs)


def strategy(legs: tuple[Leg, ...], side: Side, price: str, **changes: Any) -> OrderSpec:
    return order(instrument=None, legs=legs, side=side, price=Decimal(price), **changes)


def band_code(validator: PreTradeValidator, spec: OrderSpec) -> str | None:
    """The check alone (what-if): nothing reserved, so every call sees the same account."""
    try:
        validator.check(spec, dry_run=True)
    except PreTradeRejected as rejected:
        assert rejected.code != "price_outside_band" or rejected.field == "price"
        return rejected.code
    return None


def test_strategy_net_price_band_against_the_legs_mids() -> None:
    # net of the mids 305 - 205 = 100; option legs' band 50% of 305 + 205 = 255
    mids = Mids(WETH_USDC="3000", **{CALL: "305", CALL_3200: "205"})
    validator, _ = make(mids=mids)
    assert band_code(validator, strategy(SPREAD, Side.BUY, "355")) is None
    assert band_code(validator, strategy(SPREAD, Side.BUY, "355.5")) == "price_outside_band"
    assert band_code(validator, strategy(SPREAD, Side.SELL, "-155")) is None
    assert band_code(validator, strategy(SPREAD, Side.SELL, "-155.5")) == "price_outside_band"
    # far on the side that pays too little is no fat finger: it just rests
    assert band_code(validator, strategy(SPREAD, Side.BUY, "-1000")) is None
    assert band_code(validator, strategy(SPREAD, Side.SELL, "1000")) is None
    # the same spread written with its legs flipped: selling it at -p is buying it at p
    assert band_code(validator, strategy(flipped(SPREAD), Side.SELL, "-355")) is None
    assert band_code(validator, strategy(flipped(SPREAD), Side.SELL, "-355.5")) == (
        "price_outside_band"
    )
    # each leg brings its own band: a covered call is 3000 - 305 = 2695, +/- 10% of 3000
    # (spot) + 50% of 305 (option) = 452.5
    covered = (Leg("WETH/USDC", Side.BUY, 1), Leg(CALL, Side.SELL, 1))
    assert band_code(validator, strategy(covered, Side.BUY, "3147.5")) is None
    assert band_code(validator, strategy(covered, Side.BUY, "3147.51")) == "price_outside_band"
    # ratios count: 1 x 305 - 2 x 205 = -105, band 50% of 305 + 410 = 357.5
    ratio = (Leg(CALL, Side.BUY, 1), Leg(CALL_3200, Side.SELL, 2))
    assert band_code(validator, strategy(ratio, Side.BUY, "252.5")) is None
    assert band_code(validator, strategy(ratio, Side.BUY, "253")) == "price_outside_band"
    # the operator's per-account band applies as to single orders
    tight, _ = make(RiskLimits(option_price_band_bps=100), mids=mids)  # 1%: 5.1
    assert band_code(tight, strategy(SPREAD, Side.BUY, "105.1")) is None
    assert band_code(tight, strategy(SPREAD, Side.BUY, "105.5")) == "price_outside_band"


def test_a_strategy_with_a_leg_without_a_mid_is_not_banded() -> None:
    # as a single limit order without a mid: nothing to compare with, it passes
    validator, _ = make(mids=Mids(WETH_USDC="3000", **{CALL: "305"}))
    assert band_code(validator, strategy(SPREAD, Side.BUY, "5000")) is None
    assert band_code(validator, order(instrument=CALL_3200, price=Decimal(5000))) is None


LEG_SYMBOLS = [
    "WETH/USDC",
    "WETH-PERP",
    "WETH-20270326-2800-P",
    CALL,
    CALL_3200,
    "WETH-20270326-3500-C",
]
MIDS = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(5000), places=2)


@settings(max_examples=300, deadline=None)
@given(
    legs=st.lists(
        st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 3), MIDS),
        min_size=2,
        max_size=4,
    ).flatmap(
        lambda drawn: st.permutations(LEG_SYMBOLS).map(
            lambda symbols: [(symbols[i], *leg) for i, leg in enumerate(drawn)]
        )
    ),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    price_bps=st.integers(1, 20_000),
    option_bps=st.integers(1, 20_000),
    beyond=st.booleans(),
)
def test_the_strategy_band_bound_is_exact_and_the_same_for_the_mirror_strategy(
    legs: list[tuple[str, Side, int, Decimal]],
    side: Side,
    price_bps: int,
    option_bps: int,
    beyond: bool,
) -> None:
    """At the bound a strategy passes, a cent beyond it is refused; writing it with every leg
    flipped (the other side, the net negated) or its legs in another order changes nothing."""
    validator, _ = make(
        RiskLimits(
            max_order_notional=None,
            max_open_notional=None,
            max_open_orders=None,
            price_band_bps=price_bps,
            option_price_band_bps=option_bps,
        ),
        mids=Mids(**{symbol: str(mid) for symbol, _, _, mid in legs}),
    )
    reference = sum(
        (ratio * mid if leg_side is Side.BUY else -ratio * mid for _, leg_side, ratio, mid in legs),
        Decimal(0),
    )
    width = sum(
        (
            ratio * mid * (option_bps if symbol.endswith(("-C", "-P")) else price_bps) / 10_000
            for symbol, _, ratio, mid in legs
        ),
        Decimal(0),
    )
    bound = reference + width if side is Side.BUY else reference - width
    step = Decimal("0.01") if side is Side.BUY else Decimal("-0.01")
    price = bound + step if beyond else bound
    spec_legs = tuple(Leg(symbol, leg_side, ratio) for symbol, leg_side, ratio, _ in legs)
    expected = "price_outside_band" if beyond else None
    assert band_code(validator, strategy(spec_legs, side, str(price))) == expected
    mirror = strategy(flipped(spec_legs), side.opposite, str(-price))
    assert band_code(validator, mirror) == expected
    shuffled = strategy(tuple(reversed(spec_legs)), side, str(price))
    assert band_code(validator, shuffled) == expected
