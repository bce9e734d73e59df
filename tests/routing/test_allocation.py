"""The SOR allocation core: optimality against references, KKT conditions, lots, caps, gas."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.domain import amm
from gateway.domain.amounts import from_units, to_units
from gateway.domain.market import BookLevel
from gateway.domain.orders import Side
from gateway.routing.allocation import (
    AmmPool,
    BookVenue,
    Route,
    RoutingError,
    Venue,
    best_single_venue,
    evaluate,
    gas_in_quote,
    grid_search,
    marginal_price,
    relaxed_allocation,
    route,
)

D = Decimal
LOT = D("0.01")
WEI = 10**18
USDC = 10**6


def signed_cost(result: Route) -> Decimal:
    """What the trader gives up: quote paid on a buy, minus quote received on a sell."""
    return result.quote_amount * result.side.sign


def ladder(
    side: Side, touch: Decimal, steps: list[Decimal], sizes: list[Decimal]
) -> tuple[BookLevel, ...]:
    """Levels moving away from the touch: up for asks (buy), down for bids (sell)."""
    sign = 1 if side is Side.BUY else -1
    levels = []
    price = touch
    for step, size in zip(steps, sizes, strict=True):
        price += sign * step
        levels.append(BookLevel(price, size))
    return tuple(levels)


def pool(
    name: str,
    base: Decimal,
    price: Decimal,
    *,
    gas: Decimal = D(0),
    fee_bps: int = 30,
    cap: Decimal | None = None,
    min_quantity: Decimal = D(0),
) -> AmmPool:
    return AmmPool(
        name,
        reserve_base=to_units(base, 18),
        reserve_quote=to_units((base * price).quantize(D("0.000001")), 6),
        base_decimals=18,
        quote_decimals=6,
        lot_size=LOT,
        fee_bps=fee_bps,
        gas_quote=gas,
        min_quantity=min_quantity,
        balance_cap=cap,
    )


# -- random instances ---------------------------------------------------------------------------


@st.composite
def book_venue(draw: st.DrawFn, side: Side, name: str, *, caps: bool) -> BookVenue:
    touch = D(draw(st.integers(199_000, 201_000))) / 100
    count = draw(st.integers(1, 8))
    steps = [D(draw(st.integers(0 if i else 1, 60))) / 100 for i in range(count)]
    sizes = [D(draw(st.integers(1, 80))) * LOT for _ in range(count)]
    cap = None
    if caps and draw(st.booleans()):
        cap = (
            D(draw(st.integers(0, 400))) * LOT
            if side is Side.SELL
            else D(draw(st.integers(0, 2000)))
        )
    return BookVenue(
        name,
        ladder(side, touch, steps, sizes),
        taker_fee_bps=D(draw(st.integers(0, 30))),
        lot_size=LOT,
        min_quantity=draw(st.sampled_from([D(0), D("0.05"), D("0.2")])),
        balance_cap=cap,
        internal=name == "internal",
    )


@st.composite
def amm_pool(draw: st.DrawFn, side: Side, name: str, *, caps: bool) -> AmmPool:
    cap = None
    if caps and draw(st.booleans()):
        cap = (
            D(draw(st.integers(0, 400))) * LOT
            if side is Side.SELL
            else D(draw(st.integers(0, 2000)))
        )
    return pool(
        name,
        D(draw(st.integers(3, 60))),
        D(draw(st.integers(198_000, 202_000))) / 100,
        gas=D(draw(st.integers(0, 10))),
        fee_bps=draw(st.sampled_from([5, 30, 100])),
        cap=cap,
        min_quantity=draw(st.sampled_from([D(0), D("0.1")])),
    )


@st.composite
def instance(
    draw: st.DrawFn, *, max_books: int = 3, max_pools: int = 2, caps: bool = True
) -> tuple[Side, list[Venue]]:
    side = draw(st.sampled_from(Side))
    books = draw(st.integers(0, max_books))
    pools = draw(st.integers(0 if books else 1, max_pools))
    names = ["internal", "cex_a", "cex_b", "cex_c"][:books]
    venues: list[Venue] = [draw(book_venue(side, n, caps=caps)) for n in names]
    venues += [draw(amm_pool(side, f"pool_{i}", caps=caps)) for i in range(pools)]
    return side, venues


quantities = st.integers(1, 600).map(lambda n: n * LOT)


# -- optimality ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance(), quantities)
def test_never_worse_than_the_best_single_venue(
    case: tuple[Side, list[Venue]], quantity: Decimal
) -> None:
    side, venues = case
    smart = route(side, quantity, venues)
    single = best_single_venue(side, quantity, venues)
    assert smart.filled + smart.unfilled == quantity
    if single is None:
        return
    assert smart.filled >= single.filled
    if smart.filled == single.filled:
        assert signed_cost(smart) <= signed_cost(single)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance(max_books=2, max_pools=1, caps=False), st.integers(20, 150))
def test_within_one_bp_of_the_grid_optimum(case: tuple[Side, list[Venue]], lots: int) -> None:
    """The grid steps by one lot, so it is the exact optimum over lot-feasible full fills."""
    side, venues = case
    assume(len(venues) >= 2)
    quantity = lots * LOT
    grid = grid_search(side, quantity, venues, steps=lots)
    assume(grid is not None)
    assert grid is not None
    smart = route(side, quantity, venues)
    assert smart.filled == quantity
    gap = (signed_cost(smart) - signed_cost(grid)) / abs(grid.quote_amount)
    assert gap <= D("0.0001"), (gap, smart.legs, grid.legs)


@settings(max_examples=150, deadline=None)
@given(instance(caps=False), quantities)
def test_marginal_prices_are_equal_at_the_relaxed_optimum(
    case: tuple[Side, list[Venue]], quantity: Decimal
) -> None:
    """KKT: used divisible venues sit at one marginal price; unused ones start no better."""
    side, venues = case
    relaxed = relaxed_allocation(side, quantity, venues)
    lam = relaxed.marginal_price
    assert lam is not None

    def no_better(price: Decimal) -> bool:  # price is not better than lambda for us
        slack = lam * D("1e-20")
        return price >= lam - slack if side is Side.BUY else price <= lam + slack

    def no_worse(price: Decimal) -> bool:
        slack = lam * D("1e-20")
        return price <= lam + slack if side is Side.BUY else price >= lam - slack

    total = sum(relaxed.quantities.values(), D(0))
    capacity_left = False
    for venue in venues:
        q = relaxed.quantities[venue.name]
        assert q >= 0
        if isinstance(venue, AmmPool):
            price = marginal_price(venue, side, q)
            # a buy can take all but the pool's last unit, rounded down to the lot
            full = side is Side.BUY and q >= from_units(venue.reserve_base, 18) - LOT
            if full:
                assert no_worse(price)
            elif q > 0:
                assert abs(price - lam) <= lam * D("1e-20"), (venue.name, price, lam)
            else:
                assert no_better(price)
            capacity_left = capacity_left or not full
        else:
            depth = sum((level.quantity for level in venue.levels), D(0))
            if q > 0:
                assert no_worse(marginal_price(venue, side, q - D("1e-30")))
            if q < depth:
                assert no_better(marginal_price(venue, side, q))
                capacity_left = True
    if capacity_left:
        assert abs(total - quantity) <= D("1e-30")


# -- lots, minimums, caps -----------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(instance(), quantities)
def test_lots_minimums_and_balance_caps_hold(
    case: tuple[Side, list[Venue]], quantity: Decimal
) -> None:
    side, venues = case
    result = route(side, quantity, venues)
    by_name = {venue.name: venue for venue in venues}
    for leg in result.legs:
        venue = by_name[leg.venue]
        assert leg.quantity > 0
        assert leg.quantity % venue.lot_size == 0
        assert leg.quantity >= venue.min_quantity
        if venue.balance_cap is None:
            continue
        if side is Side.SELL:
            assert leg.quantity <= venue.balance_cap
        elif isinstance(venue, BookVenue):
            assert leg.quote_amount <= venue.balance_cap  # fees included
        else:
            assert leg.notional + leg.fee <= venue.balance_cap  # the swap's input; gas is native
    assert sum((leg.quantity for leg in result.legs), D(0)) == result.filled
    assert result.filled + result.unfilled == quantity


def test_minimum_quantity_moves_a_small_remainder_elsewhere() -> None:
    cheap = BookVenue(
        "cheap", (BookLevel(D(100), D(1)),), D(0), LOT, min_quantity=D(5)
    )  # too little depth to ever reach its minimum
    other = BookVenue("other", (BookLevel(D(101), D(10)),), D(0), LOT)
    result = route(Side.BUY, D(2), [cheap, other])
    assert [(leg.venue, leg.quantity) for leg in result.legs] == [("other", D(2))]


def test_a_balance_cap_limits_a_buy_including_fees() -> None:
    capped = BookVenue("capped", (BookLevel(D(100), D(10)),), D(10), LOT, balance_cap=D(505))
    other = BookVenue("other", (BookLevel(D(102), D(10)),), D(10), LOT)
    result = route(Side.BUY, D(8), [capped, other])
    leg = result.leg("capped")
    assert leg is not None
    assert leg.quantity == D("5.04")  # 5.05 would cost 505.505 with the 10 bps fee
    assert leg.quote_amount <= D(505)
    assert result.filled == D(8)


# -- tie rule, AMM math, splitting, gas ---------------------------------------------------------


def test_internal_liquidity_first_when_all_in_prices_tie() -> None:
    cex = BookVenue("cex", (BookLevel(D(100), D(5)),), D(10), LOT)  # all-in 100.1
    internal = BookVenue("internal", (BookLevel(D("100.1"), D(3)),), D(0), LOT, internal=True)
    small = route(Side.BUY, D(2), [cex, internal])
    assert [(leg.venue, leg.quantity) for leg in small.legs] == [("internal", D(2))]
    large = route(Side.BUY, D(4), [cex, internal])
    assert {leg.venue: leg.quantity for leg in large.legs} == {"internal": D(3), "cex": D(1)}
    relaxed = relaxed_allocation(Side.BUY, D(4), [cex, internal])
    assert relaxed.quantities == {"internal": D(3), "cex": D(1)}


def test_internal_is_not_used_when_strictly_worse() -> None:
    cex = BookVenue("cex", (BookLevel(D(100), D(5)),), D(10), LOT)
    internal = BookVenue("internal", (BookLevel(D("100.2"), D(3)),), D(0), LOT, internal=True)
    result = route(Side.BUY, D(2), [cex, internal])
    assert [leg.venue for leg in result.legs] == ["cex"]


@pytest.mark.parametrize("side", list(Side))
def test_amm_leg_is_the_pool_integer_math(side: Side) -> None:
    uni = pool("uni", D(100), D(2000), gas=D(1))
    book = BookVenue(
        "cex",
        ladder(side, D(2000), [D(1)] * 5, [D("0.5")] * 5),
        D(10),
        LOT,
    )
    result = route(side, D(5), [uni, book])
    leg = result.leg("uni")
    assert leg is not None and leg.kind == "amm"
    units = to_units(leg.quantity, 18)
    if side is Side.BUY:
        moved = amm.amount_in(units, uni.reserve_quote, uni.reserve_base, 30)
        assert leg.notional + leg.fee == from_units(moved, 6)
        assert leg.quote_amount == from_units(moved, 6) + D(1)
    else:
        moved = amm.amount_out(units, uni.reserve_base, uni.reserve_quote, 30)
        assert leg.notional - leg.fee == from_units(moved, 6)
        assert leg.quote_amount == from_units(moved, 6) - D(1)
    assert leg.fee > 0
    assert leg.gas == D(1)
    assert leg.all_in_price == leg.quote_amount / leg.quantity


def test_a_large_order_beats_the_best_single_venue() -> None:
    """Two books and a pool, each deep but steep: spreading the order lowers the average."""
    a = BookVenue("a", ladder(Side.BUY, D(2000), [D(1)] * 40, [D(1)] * 40), D(10), LOT)
    b = BookVenue("b", ladder(Side.BUY, D(2000), [D(1)] * 40, [D(1)] * 40), D(5), LOT)
    uni = pool("uni", D(500), D(2000), gas=D(3))
    smart = route(Side.BUY, D(40), [a, b, uni])
    single = best_single_venue(Side.BUY, D(40), [a, b, uni])
    assert single is not None and smart.filled == single.filled == D(40)
    assert smart.quote_amount < single.quote_amount
    assert smart.average_price is not None and single.average_price is not None
    assert smart.average_price < single.average_price
    assert {leg.venue for leg in smart.legs} == {"a", "b", "uni"}
    assert smart.slippage_bps is not None and smart.slippage_bps > 0


def test_gas_makes_a_tiny_order_skip_the_pool() -> None:
    uni = pool("uni", D(1000), D(2000), gas=D(5), fee_bps=5)  # all-in ~2001 before gas
    cex = BookVenue("cex", ladder(Side.BUY, D(2000), [D(2)] * 20, [D(1)] * 20), D(10), LOT)
    tiny = route(Side.BUY, D("0.1"), [uni, cex])
    assert [leg.venue for leg in tiny.legs] == ["cex"]
    assert tiny.gas == 0
    large = route(Side.BUY, D(10), [uni, cex])
    leg = large.leg("uni")
    assert leg is not None and leg.gas == D(5)
    # and without gas, the pool's better price wins even for the tiny order
    free = route(Side.BUY, D("0.1"), [pool("uni", D(1000), D(2000), fee_bps=5), cex])
    assert [leg.venue for leg in free.legs] == ["uni"]


def test_two_pools_with_gas_use_one_when_the_split_does_not_pay_for_the_second_swap() -> None:
    one = pool("one", D(1000), D(2000), gas=D(20))
    two = pool("two", D(1000), D(2000), gas=D(20))
    small = route(Side.BUY, D(1), [one, two])
    assert len(small.legs) == 1
    big = route(Side.BUY, D(100), [one, two])
    assert len(big.legs) == 2  # price impact of 100 on one pool >> 20 of gas
    grid = grid_search(Side.BUY, D(100), [one, two], steps=200)
    assert grid is not None
    assert big.quote_amount <= grid.quote_amount


def test_sells_mirror_buys_on_mirrored_books_without_fees() -> None:
    steps = [D(1), D(2), D(1), D(3)]
    sizes = [D(1), D(2), D(3), D(4)]
    mid = D(2000)

    def venues(side: Side) -> list[Venue]:
        return [
            BookVenue("a", ladder(side, mid, steps, sizes), D(0), LOT),
            BookVenue("b", ladder(side, mid, [s * 2 for s in steps], sizes), D(0), LOT),
        ]

    buy = route(Side.BUY, D(7), venues(Side.BUY), mid=mid)
    sell = route(Side.SELL, D(7), venues(Side.SELL), mid=mid)
    assert {leg.venue: leg.quantity for leg in buy.legs} == {
        leg.venue: leg.quantity for leg in sell.legs
    }
    assert buy.slippage_bps == sell.slippage_bps
    assert buy.slippage_bps is not None and buy.slippage_bps > 0
    assert buy.average_price is not None and sell.average_price is not None
    assert buy.average_price - mid == mid - sell.average_price


def test_partial_fill_when_liquidity_runs_out() -> None:
    cex = BookVenue("cex", (BookLevel(D(101), D(2)), BookLevel(D(100), D(1))), D(0), LOT)
    capped = pool("uni", D(100), D(100), cap=D("1.5"))
    result = route(Side.SELL, D(10), [cex, capped])
    assert result.filled == D("4.5")
    assert result.unfilled == D("5.5")
    assert not result.complete


def test_quantity_finer_than_every_lot_is_reported_unfilled() -> None:
    cex = BookVenue("cex", (BookLevel(D(100), D(5)),), D(0), D("0.1"))
    result = route(Side.BUY, D("1.05"), [cex])
    assert result.filled == D("1.0") and result.unfilled == D("0.05")


def test_outputs_are_decimals() -> None:
    result = route(Side.BUY, D(3), [pool("uni", D(100), D(2000), gas=D(1))])
    for value in (result.quote_amount, result.fees, result.gas, result.average_price):
        assert isinstance(value, Decimal)
    for leg in result.legs:
        assert all(
            isinstance(v, Decimal)
            for v in (leg.quantity, leg.notional, leg.fee, leg.gas, leg.quote_amount)
        )


def test_gas_in_quote() -> None:
    assert gas_in_quote(110_000, 20 * 10**9, D(2000)) == D("4.4")


# -- validation ---------------------------------------------------------------------------------


def test_invalid_requests_are_refused() -> None:
    cex = BookVenue("cex", (BookLevel(D(100), D(5)),), D(0), LOT)
    with pytest.raises(RoutingError):
        route(Side.BUY, D(0), [cex])
    with pytest.raises(RoutingError):
        route(Side.BUY, D("NaN"), [cex])
    with pytest.raises(RoutingError):
        route(Side.BUY, D(1), [])
    with pytest.raises(RoutingError):
        route(Side.BUY, D(1), [cex, cex])
    with pytest.raises(RoutingError):  # asks given for a sell: not best first
        route(
            Side.SELL,
            D(1),
            [BookVenue("x", ladder(Side.BUY, D(100), [D(1)] * 2, [D(1)] * 2), D(0), LOT)],
        )
    with pytest.raises(RoutingError):
        route(Side.BUY, D(1), [cex], mid=D(-1))
    with pytest.raises(RoutingError):
        BookVenue("bad", (), D(10_000), LOT)
    with pytest.raises(RoutingError):
        BookVenue("bad", (BookLevel(D(0), D(1)),), D(0), LOT)
    with pytest.raises(RoutingError):
        BookVenue("bad", (), D(0), D(0))
    with pytest.raises(RoutingError):
        BookVenue("bad", (), D(0), LOT, balance_cap=D(-1))
    with pytest.raises(RoutingError):
        AmmPool("bad", 0, 1, 18, 6, LOT)
    with pytest.raises(RoutingError):
        AmmPool("bad", 1, 1, 2, 6, D("0.001"))  # lot finer than the token
    with pytest.raises(RoutingError):
        AmmPool("bad", 1, 1, 18, 6, LOT, gas_quote=D(-1))
    with pytest.raises(RoutingError):
        grid_search(Side.BUY, D(1), [cex], steps=0)


def test_no_liquidity_gives_an_empty_route() -> None:
    broke = BookVenue("cex", (BookLevel(D(100), D(5)),), D(0), LOT, balance_cap=D(0))
    result = route(Side.BUY, D(1), [broke])
    assert result.legs == () and result.filled == 0 and result.unfilled == D(1)
    assert result.average_price is None and result.marginal_price is None


@pytest.mark.parametrize("side", list(Side))
def test_many_pools_local_search_matches_exhaustive_subsets(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above MAX_EXHAUSTIVE_POOLS pools a drop-one search picks the pools; compare it."""
    pools: list[Venue] = [
        pool(f"p{k}", D(base), D(2000) + k, gas=D(gas))
        for k, (base, gas) in enumerate([(400, 3), (150, 8), (900, 12), (60, 1), (250, 25)])
    ]
    cex = BookVenue("cex", ladder(side, D(2000), [D(1)] * 30, [D(1)] * 30), D(10), LOT)
    for quantity in (D("0.5"), D(5), D(30), D(120)):
        local = route(side, quantity, [*pools, cex])
        monkeypatch.setattr("gateway.routing.allocation.MAX_EXHAUSTIVE_POOLS", 5)
        exhaustive = route(side, quantity, [*pools, cex])
        monkeypatch.undo()
        assert local.filled == exhaustive.filled == quantity
        gap = (signed_cost(local) - signed_cost(exhaustive)) / abs(exhaustive.quote_amount)
        assert gap <= D("0.0001")


def test_evaluate_prices_an_allocation_like_the_router() -> None:
    uni = pool("uni", D(200), D(2000), gas=D(2))
    cex = BookVenue("cex", ladder(Side.BUY, D(2000), [D(1)] * 10, [D(1)] * 10), D(10), LOT)
    result = route(Side.BUY, D(6), [uni, cex])
    again = evaluate(Side.BUY, D(6), [uni, cex], {leg.venue: leg.quantity for leg in result.legs})
    assert again.legs == result.legs and again.quote_amount == result.quote_amount
    with pytest.raises(RoutingError):
        evaluate(Side.BUY, D(20), [uni, cex], {"cex": D(11)})  # beyond its depth
    with pytest.raises(RoutingError):
        evaluate(Side.BUY, D(6), [uni, cex], {"cex": D("0.005")})  # off the lot
