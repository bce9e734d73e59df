"""The simulators' matching engine: conservation, price-time priority, funds, time in force."""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devnet.exchange_sim.market_maker import MarketMaker, QuoteRule, RandomWalk
from gateway.devnet.exchange_sim.matching import (
    FEE_ACCOUNT,
    MarketKind,
    MarketSpec,
    SimError,
    SimErrorKind,
    SimExchange,
    SimOrderStatus,
    SimOrderType,
    SimSide,
    SimTimeInForce,
)

SPOT = MarketSpec(
    symbol="ETHUSDC",
    kind=MarketKind.SPOT,
    base="ETH",
    quote="USDC",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.01"),
    min_quantity=Decimal("0.01"),
    maker_bps=Decimal("-1"),  # a maker rebate
    taker_bps=Decimal("7"),
)
OPTION = MarketSpec(
    symbol="ETH-26MAR27-3000-C",
    kind=MarketKind.OPTION,
    base="ETH",
    quote="USD",
    settle="ETH",
    tick_size=Decimal("0.0005"),
    step_size=Decimal("0.1"),
    min_quantity=Decimal("0.1"),
    maker_bps=Decimal("3"),
    taker_bps=Decimal("5"),
    short_margin=Decimal(1),
)
ACCOUNTS = ["alice", "bob", "carol"]


def new_exchange() -> SimExchange:
    ticks = itertools.count(1_000)
    exchange = SimExchange(lambda: next(ticks))
    exchange.add_market(SPOT)
    exchange.add_market(OPTION)
    for account in ACCOUNTS:
        exchange.deposit(account, "ETH", Decimal(50))
        exchange.deposit(account, "USDC", Decimal(100_000))
    return exchange


def totals(exchange: SimExchange) -> dict[str, Decimal]:
    result: dict[str, Decimal] = defaultdict(Decimal)
    for account in [*ACCOUNTS, FEE_ACCOUNT]:
        for asset in ("ETH", "USDC"):
            result[asset] += exchange.total(account, asset)
    return dict(result)


order_strategy = st.tuples(
    st.sampled_from(ACCOUNTS),
    st.sampled_from([SPOT, OPTION]),
    st.sampled_from(list(SimSide)),
    st.sampled_from(list(SimOrderType)),
    st.integers(min_value=1, max_value=40),  # quantity in steps
    st.integers(min_value=-20, max_value=20),  # price offset in ticks from the reference
    st.sampled_from(list(SimTimeInForce)),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(order_strategy, min_size=1, max_size=40), st.data())
def test_no_quantity_or_money_is_created_or_lost(orders: list[tuple], data: st.DataObject) -> None:  # type: ignore[type-arg]
    exchange = new_exchange()
    before = totals(exchange)
    placed = []
    for account, market, side, kind, steps, offset, tif, post_only in orders:
        reference = Decimal(3000) if market is SPOT else Decimal("0.08")
        price = reference + offset * market.tick_size
        quantity = steps * market.step_size
        try:
            order = exchange.submit(
                account,
                market.symbol,
                side,
                kind,
                quantity,
                price,
                time_in_force=tif,
                post_only=post_only and kind is SimOrderType.LIMIT,
            )
        except SimError:
            continue
        placed.append(order)
        if data.draw(st.booleans()) and order.status.is_open:
            exchange.cancel(account, order.order_id)
        assert totals(exchange) == before
        for account_name in ACCOUNTS:
            for asset in ("ETH", "USDC"):
                assert exchange.free(account_name, asset) >= 0
        for symbol in (SPOT.symbol, OPTION.symbol):
            bids, asks = exchange.depth(symbol, 1)
            if bids and asks:
                assert bids[0][0] < asks[0][0], "the book must never stay crossed"
    traded: dict[str, Decimal] = defaultdict(Decimal)
    for trade in exchange.all_trades():
        traded[trade.symbol] += trade.quantity
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for order in placed:
        assert Decimal(0) <= order.filled <= order.quantity
        assert order.filled == sum((t.quantity for t in order.trades), Decimal(0))
        filled[order.symbol] += order.filled
    for symbol, quantity in traded.items():
        assert filled[symbol] == 2 * quantity  # each unit traded fills one buy and one sell
    for account in ACCOUNTS:
        position = exchange.position(account, OPTION.symbol).size
        bought = sum(
            (
                t.quantity if t.side_of(account, oid) is SimSide.BUY else -t.quantity
                for t in exchange.trades(account, OPTION.symbol)
                for oid in (t.maker_order_id, t.taker_order_id)
                if (t.maker_account if oid == t.maker_order_id else t.taker_account) == account
            ),
            Decimal(0),
        )
        assert position == bought
    assert sum((exchange.position(a, OPTION.symbol).size for a in ACCOUNTS), Decimal(0)) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(ACCOUNTS), st.integers(0, 5), st.integers(1, 5)),
        min_size=1,
        max_size=15,
    ),
    st.integers(1, 60),
)
def test_price_time_priority(resting: list[tuple[str, int, int]], take_steps: int) -> None:
    """A taker meets better prices first and, at one price, earlier orders first."""
    exchange = new_exchange()
    asks = []
    for account, ticks_up, steps in resting:
        price = Decimal(3000) + ticks_up * SPOT.tick_size
        asks.append(
            exchange.submit(
                account,
                SPOT.symbol,
                SimSide.SELL,
                SimOrderType.LIMIT,
                steps * SPOT.step_size,
                price,
            )
        )
    taker = exchange.submit(
        "bob", SPOT.symbol, SimSide.BUY, SimOrderType.MARKET, take_steps * SPOT.step_size
    )
    expected_order = sorted(asks, key=lambda o: (o.price, o.sequence))
    left = taker.quantity
    expected: list[tuple[int, Decimal]] = []
    for maker in expected_order:
        if left == 0:
            break
        take = min(left, maker.quantity)
        expected.append((maker.order_id, take))
        left -= take
    assert [(t.maker_order_id, t.quantity) for t in taker.trades] == expected
    assert taker.filled == taker.quantity - left
    assert taker.status is (SimOrderStatus.FILLED if left == 0 else SimOrderStatus.EXPIRED)


def test_spot_fees_locks_and_rebates_are_exact() -> None:
    exchange = new_exchange()
    maker = exchange.submit(
        "alice", SPOT.symbol, SimSide.SELL, SimOrderType.LIMIT, Decimal(2), Decimal("3000.50")
    )
    assert exchange.locked("alice", "ETH") == Decimal(2)
    taker = exchange.submit("bob", SPOT.symbol, SimSide.BUY, SimOrderType.MARKET, Decimal("1.5"))
    assert taker.status is SimOrderStatus.FILLED
    assert taker.fee == Decimal("0.00105")  # 7 bps of 1.5 ETH, paid in the asset received
    assert taker.fee_asset == "ETH"
    assert exchange.total("bob", "ETH") == Decimal(50) + Decimal("1.5") - Decimal("0.00105")
    assert exchange.total("bob", "USDC") == Decimal(100_000) - Decimal("4500.75")
    assert maker.fee == Decimal("-0.45007500")  # a 1 bp rebate on 4500.75 USDC
    assert exchange.total("alice", "USDC") == Decimal(100_000) + Decimal("4500.75") + Decimal(
        "0.450075"
    )
    assert exchange.locked("alice", "ETH") == Decimal("0.5")
    exchange.cancel("alice", maker.order_id)
    assert exchange.locked("alice", "ETH") == 0
    with pytest.raises(SimError) as refused:
        exchange.cancel("alice", maker.order_id)
    assert refused.value.kind is SimErrorKind.ORDER_NOT_FOUND


def test_refusals() -> None:
    exchange = new_exchange()
    with pytest.raises(SimError) as error:
        exchange.submit(
            "alice", SPOT.symbol, SimSide.BUY, SimOrderType.LIMIT, Decimal(40), Decimal(3000)
        )
    assert error.value.kind is SimErrorKind.INSUFFICIENT_FUNDS
    with pytest.raises(SimError) as error:
        exchange.submit(
            "alice", SPOT.symbol, SimSide.BUY, SimOrderType.LIMIT, Decimal(1), Decimal("3000.005")
        )
    assert error.value.kind is SimErrorKind.PRICE_FILTER
    with pytest.raises(SimError) as error:
        exchange.submit(
            "alice", SPOT.symbol, SimSide.BUY, SimOrderType.LIMIT, Decimal("0.015"), Decimal(3000)
        )
    assert error.value.kind is SimErrorKind.LOT_SIZE
    exchange.submit("bob", SPOT.symbol, SimSide.SELL, SimOrderType.LIMIT, Decimal(1), Decimal(3001))
    with pytest.raises(SimError) as error:
        exchange.submit(
            "alice",
            SPOT.symbol,
            SimSide.BUY,
            SimOrderType.LIMIT,
            Decimal(1),
            Decimal(3001),
            post_only=True,
        )
    assert error.value.kind is SimErrorKind.POST_ONLY_WOULD_TAKE
    fok = exchange.submit(
        "alice",
        SPOT.symbol,
        SimSide.BUY,
        SimOrderType.LIMIT,
        Decimal(2),
        Decimal(3001),
        time_in_force=SimTimeInForce.FOK,
    )
    assert fok.status is SimOrderStatus.EXPIRED and fok.filled == 0
    ioc = exchange.submit(
        "alice",
        SPOT.symbol,
        SimSide.BUY,
        SimOrderType.LIMIT,
        Decimal(2),
        Decimal(3001),
        time_in_force=SimTimeInForce.IOC,
    )
    assert ioc.status is SimOrderStatus.EXPIRED and ioc.filled == Decimal(1)
    assert exchange.open_orders("alice") == []


def test_short_option_locks_margin_and_premium_moves() -> None:
    exchange = new_exchange()
    exchange.submit(
        "alice", OPTION.symbol, SimSide.SELL, SimOrderType.LIMIT, Decimal(2), Decimal("0.08")
    )
    assert exchange.locked("alice", "ETH") == Decimal(2)  # one ETH per option sold
    exchange.submit("bob", OPTION.symbol, SimSide.BUY, SimOrderType.MARKET, Decimal(2))
    assert exchange.position("alice", OPTION.symbol).size == Decimal(-2)
    assert exchange.position("bob", OPTION.symbol).size == Decimal(2)
    assert exchange.locked("alice", "ETH") == Decimal(2)  # now the short position's margin
    premium = Decimal("0.16")
    assert exchange.total("bob", "ETH") == Decimal(50) - premium - Decimal("0.00008")
    assert exchange.total("alice", "ETH") == Decimal(50) + premium - Decimal("0.000048")


def test_random_walk_is_deterministic_in_its_seed() -> None:
    def path(seed: int, steps: int) -> list[Decimal]:
        walk = RandomWalk(seed, Decimal("3000.00"), Decimal("0.01"))
        return [walk.step() for _ in range(steps)]

    assert path(42, 200) == path(42, 200)
    assert path(42, 200) != path(43, 200)
    assert all(isinstance(p, Decimal) and p % Decimal("0.01") == 0 for p in path(7, 100))


def test_market_maker_books_are_a_function_of_seed_and_steps() -> None:
    Levels = list[tuple[Decimal, Decimal]]

    def books(seed: int, steps: int) -> list[tuple[Levels, Levels]]:
        exchange = SimExchange(lambda: 0)
        exchange.add_market(SPOT)
        maker = MarketMaker(
            exchange,
            RandomWalk(seed, Decimal(3000), SPOT.tick_size),
            [QuoteRule(SPOT.symbol, fair_price=lambda mid: mid, levels=3)],
        )
        maker.fund({"ETH": Decimal(1000), "USDC": Decimal(10_000_000)})
        snapshots: list[tuple[Levels, Levels]] = []
        for _ in range(steps):
            maker.step()
            snapshots.append(exchange.depth(SPOT.symbol, 10))
        return snapshots

    first = books(9, 30)
    assert first == books(9, 30)
    assert first != books(10, 30)
    bids, asks = first[-1]
    assert len(bids) == 3 and len(asks) == 3
    assert bids[0][0] < asks[0][0]
