"""Options: premium + positions, the margin rule, strategies all-or-nothing, expiry."""

from __future__ import annotations

import boa
import pytest

from tests.contracts.conftest import (
    DAY,
    EXPIRY_GRACE,
    USDC,
    WETH,
    Trader,
    World,
    batch,
    events,
    instrument_id,
    order_item,
    strategy_item,
)


def option_trade(
    world: World, long: Trader, short: Trader, ins: tuple, amount: int, premium: int
) -> tuple:
    """A matched option order pair at `premium` USDC units per whole option."""
    quote = amount * premium // WETH
    ob = long.order(ins, True, amount, premium)
    os_ = short.order(ins, False, amount, premium)
    return batch(
        [order_item(long, ins, ob, amount, quote), order_item(short, ins, os_, amount, quote)]
    )


@pytest.fixture
def buyer(world: World) -> Trader:
    return world.new_trader(10, usdc=100_000 * USDC)


def test_premium_and_positions(world: World, buyer: Trader) -> None:
    call = world.list_option(3000, True)
    writer = world.new_trader(11, weth=2 * WETH)
    world.settle(option_trade(world, buyer, writer, call, WETH, 150 * USDC))
    cid = instrument_id(call)
    assert buyer.wallet.position(cid) == WETH
    assert writer.wallet.position(cid) == -WETH
    assert world.usdc.balanceOf(writer.wallet.address) == 150 * USDC
    assert list(writer.wallet.open_positions()) == [cid]
    assert writer.wallet.margin_status() == (0, 150 * USDC, True)
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    assert set(world.settlement.series_wallets(sid)) == {
        buyer.wallet.address,
        writer.wallet.address,
    }


def test_naked_short_call_refused(world: World, buyer: Trader) -> None:
    call = world.list_option(3000, True)
    writer = world.new_trader(12, usdc=1_000_000 * USDC)  # any amount of quote: unbounded loss
    with boa.reverts("wallet: margin"):
        world.settle(option_trade(world, buyer, writer, call, WETH, 150 * USDC))


def test_covered_call_locks_the_underlying(world: World, buyer: Trader) -> None:
    call = world.list_option(3000, True)
    writer = world.new_trader(13, weth=WETH)
    world.settle(option_trade(world, buyer, writer, call, WETH, 150 * USDC))
    with boa.env.prank(writer.address):
        with boa.reverts("wallet: margin"):
            writer.wallet.withdraw(world.weth.address, 1)
        writer.wallet.withdraw(world.usdc.address, 150 * USDC)  # the premium is free


def test_short_put_needs_strike_minus_premium(world: World, buyer: Trader) -> None:
    put = world.list_option(3000, False)
    writer = world.new_trader(14, usdc=2_899 * USDC)
    with boa.reverts("wallet: margin"):
        world.settle(option_trade(world, buyer, writer, put, WETH, 100 * USDC))
    world.fund(writer, usdc=1 * USDC)
    world.settle(option_trade(world, buyer, writer, put, WETH, 100 * USDC))
    assert writer.wallet.margin_status() == (3000 * USDC, 3000 * USDC, True)
    with boa.env.prank(writer.address), boa.reverts("wallet: margin"):
        writer.wallet.withdraw(world.usdc.address, 1)


def test_haircut_collateral_counts(world: World, buyer: Trader) -> None:
    put = world.list_option(3000, False)
    with boa.env.prank(world.admin):
        world.settlement.set_collateral(world.weth.address, 2_000)  # 20% haircut
    writer = world.new_trader(15, weth=WETH)  # 3000 * 0.8 + 100 premium = 2500 < 3000
    with boa.reverts("wallet: margin"):
        world.settle(option_trade(world, buyer, writer, put, WETH, 100 * USDC))
    world.fund(writer, weth=WETH)  # 2 WETH: 4800 + 100 >= 3000
    world.settle(option_trade(world, buyer, writer, put, WETH, 100 * USDC))
    required, available, ok = writer.wallet.margin_status()
    assert (required, available, ok) == (3000 * USDC, 100 * USDC + 4800 * USDC, True)


def straddle_legs(world: World, strike: int) -> tuple[tuple, tuple]:
    return world.list_option(strike, True), world.list_option(strike, False)


def test_short_straddle_needs_underlying_and_strike(world: World) -> None:
    call, put = straddle_legs(world, 3000)
    seller = world.new_trader(20, usdc=2_800 * USDC, weth=WETH)
    buyer = world.new_trader(21, usdc=10_000 * USDC)
    legs_short = [(call, False, 1), (put, False, 1)]
    legs_long = [(call, True, 1), (put, True, 1)]
    s_short = seller.strategy(legs_short, WETH, -200 * USDC)  # wants a 200 credit
    s_long = buyer.strategy(legs_long, WETH, 250 * USDC)  # pays at most 250
    quotes = [120 * USDC, 80 * USDC]
    b = batch(
        strategies=[
            strategy_item(seller, [call, put], s_short, WETH, quotes),
            strategy_item(buyer, [call, put], s_long, WETH, quotes),
        ]
    )
    world.settle(b)
    # requirement: 1 WETH cover + 3000 USDC; available 2800 + 200 credit
    assert seller.wallet.margin_status() == (3000 * USDC, 3000 * USDC, True)
    net = events(world.settlement, "StrategyFilled")
    assert sorted(e["net_quote"] for e in net) == [-200 * USDC, 200 * USDC]
    # without the underlying it is refused
    seller2 = world.new_trader(22, usdc=100_000 * USDC)
    s2 = seller2.strategy(legs_short, WETH, -200 * USDC)
    s_long2 = buyer.strategy(legs_long, WETH, 250 * USDC)
    b = batch(
        strategies=[
            strategy_item(seller2, [call, put], s2, WETH, quotes),
            strategy_item(buyer, [call, put], s_long2, WETH, quotes),
        ]
    )
    with boa.reverts("wallet: margin"):
        world.settle(b)


def condor(world: World) -> list[tuple]:
    return [
        world.list_option(2800, False),
        world.list_option(2900, False),
        world.list_option(3100, True),
        world.list_option(3200, True),
    ]


def test_iron_condor_needs_width_minus_credit_and_mm_margin_is_portfolio(world: World) -> None:
    p28, p29, c31, c32 = condor(world)
    # short iron condor: long 2800 put, short 2900 put, short 3100 call, long 3200 call
    legs = [(p28, True, 1), (p29, False, 1), (c31, False, 1), (c32, True, 1)]
    prices = [10 * USDC, 30 * USDC, 30 * USDC, 10 * USDC]  # credit 40 per condor
    seller = world.new_trader(30, usdc=59 * USDC)  # needs 100 - 40 = 60
    mm = world.new_trader(31, usdc=1_000 * USDC)

    def build(s_trader: Trader) -> tuple:
        st = s_trader.strategy(legs, WETH, -40 * USDC)
        mm_orders = []
        for ins, is_buy, _ in legs:
            price = prices[legs.index((ins, is_buy, 1))]
            o = mm.order(ins, not is_buy, WETH, price)
            mm_orders.append(order_item(mm, ins, o, WETH, price))
        return batch(mm_orders, [strategy_item(s_trader, [p28, p29, c31, c32], st, WETH, prices)])

    with boa.reverts("wallet: margin"):
        world.settle(build(seller))
    world.fund(seller, usdc=1 * USDC)
    world.settle(build(seller))
    assert seller.wallet.margin_status() == (100 * USDC, 100 * USDC, True)
    # the market maker's four single orders form a long condor: no margin needed
    assert mm.wallet.margin_status()[0] == 0
    assert world.usdc.balanceOf(mm.wallet.address) == 960 * USDC


def test_leg_of_a_strategy_alone_is_refused(world: World) -> None:
    p28, p29, c31, c32 = condor(world)
    seller = world.new_trader(32, usdc=10_000 * USDC)
    mm = world.new_trader(33, usdc=10_000 * USDC)
    # only the short 3100 call of the condor: a naked short call
    o = seller.order(c31, False, WETH, 30 * USDC)
    m = mm.order(c31, True, WETH, 30 * USDC)
    with boa.reverts("wallet: margin"):
        world.settle(
            batch(
                [
                    order_item(seller, c31, o, WETH, 30 * USDC),
                    order_item(mm, c31, m, WETH, 30 * USDC),
                ]
            )
        )
    # a strategy whose counterparty takes only some legs leaves options unmatched
    legs = [(p28, True, 1), (p29, False, 1), (c31, False, 1), (c32, True, 1)]
    st = seller.strategy(legs, WETH, -40 * USDC)
    prices = [10 * USDC, 30 * USDC, 30 * USDC, 10 * USDC]
    m1 = mm.order(p28, False, WETH, 10 * USDC)
    m2 = mm.order(p29, True, WETH, 30 * USDC)
    b = batch(
        [order_item(mm, p28, m1, WETH, 10 * USDC), order_item(mm, p29, m2, WETH, 30 * USDC)],
        [strategy_item(seller, [p28, p29, c31, c32], st, WETH, prices)],
    )
    with boa.reverts():
        world.settle(b)
    assert seller.wallet.open_positions() == []


def test_strategy_net_limit_and_overfill(world: World) -> None:
    call, put = straddle_legs(world, 3000)
    buyer = world.new_trader(40, usdc=10_000 * USDC)
    seller = world.new_trader(41, usdc=10_000 * USDC, weth=5 * WETH)
    legs_long = [(call, True, 1), (put, True, 1)]
    legs_short = [(call, False, 1), (put, False, 1)]
    s_long = buyer.strategy(legs_long, 2 * WETH, 199 * USDC)
    s_short = seller.strategy(legs_short, 4 * WETH, -150 * USDC)
    quotes = [120 * USDC, 80 * USDC]  # 200 per unit: above the buyer's 199
    with boa.reverts("wallet: limit price"):
        world.settle(
            batch(
                strategies=[
                    strategy_item(buyer, [call, put], s_long, WETH, quotes),
                    strategy_item(seller, [call, put], s_short, WETH, quotes),
                ]
            )
        )
    quotes = [110 * USDC, 80 * USDC]
    half = [55 * USDC, 40 * USDC]
    world.settle(
        batch(
            strategies=[
                strategy_item(buyer, [call, put], s_long, WETH // 2, half),
                strategy_item(seller, [call, put], s_short, WETH // 2, half),
            ]
        )
    )
    assert buyer.wallet.filled(bytes(buyer.wallet.hash_strategy(s_long))) == WETH // 2
    with boa.reverts("wallet: overfill"):
        world.settle(
            batch(
                strategies=[
                    strategy_item(buyer, [call, put], s_long, 2 * WETH, [2 * q for q in quotes]),
                    strategy_item(seller, [call, put], s_short, 2 * WETH, [2 * q for q in quotes]),
                ]
            )
        )


def test_strategy_signature_checked(world: World) -> None:
    call, put = straddle_legs(world, 3000)
    buyer = world.new_trader(42, usdc=10_000 * USDC)
    seller = world.new_trader(43, usdc=10_000 * USDC, weth=5 * WETH)
    s_long = buyer.strategy([(call, True, 1), (put, True, 1)], WETH, 300 * USDC)
    s_short = seller.strategy([(call, False, 1), (put, False, 1)], WETH, -100 * USDC)
    sig = seller.sign_strategy(s_short)
    # the operator flips a leg's ratio
    altered = ([s_short[0][0], (s_short[0][1][0], False, 2)], *s_short[1:])
    quotes = [120 * USDC, 80 * USDC]
    with boa.reverts("wallet: bad signature"):
        world.settle(
            batch(
                strategies=[
                    strategy_item(buyer, [call, put], s_long, WETH, quotes),
                    strategy_item(seller, [call, put], altered, WETH, quotes, signature=sig),
                ]
            )
        )


def test_lone_option_leg_unmatched(world: World, buyer: Trader) -> None:
    call = world.list_option(3000, True)
    o = buyer.order(call, True, WETH, 0)
    with boa.reverts("settlement: option legs unmatched"):
        world.settle(batch([order_item(buyer, call, o, WETH, 0)]))


def test_expired_option_cannot_trade(world: World, buyer: Trader) -> None:
    put = world.list_option(3000, False)
    writer = world.new_trader(44, usdc=10_000 * USDC)
    boa.env.time_travel(seconds=world.expiry - boa.env.evm.patch.timestamp)
    world.set_price(3000)
    with boa.reverts("wallet: option expired"):
        world.settle(option_trade(world, buyer, writer, put, WETH, 10 * USDC))


# ---------------------------------------------------------------------------- expiry


def go_to_expiry(world: World, price: float) -> None:
    boa.env.time_travel(seconds=world.expiry - boa.env.evm.patch.timestamp + 60)
    world.set_price(price)


def test_settle_expiry_pays_longs_from_shorts(world: World, buyer: Trader) -> None:
    call = world.list_option(3000, True)
    put = world.list_option(3000, False)
    cw = world.new_trader(50, weth=WETH, usdc=1_000 * USDC)
    pw = world.new_trader(51, usdc=3_000 * USDC)
    world.settle(option_trade(world, buyer, cw, call, WETH, 100 * USDC))
    world.settle(option_trade(world, buyer, pw, put, 2 * WETH // 3, 100 * USDC))
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    with boa.reverts("settlement: not expired"):
        world.settlement.settle_expiry(sid, world.feed.latest_round())
    totals = (world.token_total(world.usdc), world.token_total(world.weth))
    go_to_expiry(world, 3450.5)
    before = world.usdc.balanceOf(buyer.wallet.address)
    with boa.env.prank(cw.address):  # anyone: here the call writer, no operator
        world.settlement.settle_expiry(sid, world.feed.latest_round())
    # call: 450.5 per WETH owed by the call writer, paid from its 1100 USDC
    assert world.usdc.balanceOf(buyer.wallet.address) - before == 450_500_000
    assert world.usdc.balanceOf(cw.wallet.address) == 1_100 * USDC - 450_500_000
    assert world.weth.balanceOf(cw.wallet.address) == WETH
    assert buyer.wallet.open_positions() == [] and cw.wallet.open_positions() == []
    assert (world.token_total(world.usdc), world.token_total(world.weth)) == totals
    with boa.reverts("settlement: already settled"):
        world.settlement.settle_expiry(sid, world.feed.latest_round())
    # the writers withdraw everything without the operator
    with boa.env.prank(pw.address):
        pw.wallet.withdraw(world.usdc.address, world.usdc.balanceOf(pw.wallet.address))
    with boa.env.prank(cw.address):
        cw.wallet.withdraw(world.weth.address, WETH)


def test_expiry_short_pays_in_underlying_when_out_of_quote(world: World, buyer: Trader) -> None:
    call = world.list_option(3000, True)
    cw = world.new_trader(52, weth=WETH)
    world.settle(option_trade(world, buyer, cw, call, WETH, 100 * USDC))
    with boa.env.prank(cw.address):
        cw.wallet.withdraw(world.usdc.address, 100 * USDC)
    totals = (world.token_total(world.usdc), world.token_total(world.weth))
    go_to_expiry(world, 3500)
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    world.settlement.settle_expiry(sid, world.feed.latest_round())
    owed_weth = -(-500 * USDC * WETH // (3500 * USDC))  # ceil
    assert world.weth.balanceOf(cw.wallet.address) == WETH - owed_weth
    paid = world.weth.balanceOf(buyer.wallet.address)
    assert paid == 500 * USDC * WETH // (3500 * USDC)
    assert paid * 3500 * USDC // WETH <= 500 * USDC
    assert (
        world.token_total(world.usdc),
        world.token_total(world.weth) + world.weth.balanceOf(world.admin) * 0,
    ) == totals


def test_expiry_price_is_the_round_at_expiry(world: World, buyer: Trader) -> None:
    put = world.list_option(3000, False)
    pw = world.new_trader(53, usdc=3_000 * USDC)
    world.settle(option_trade(world, buyer, pw, put, WETH, 100 * USDC))
    boa.env.time_travel(seconds=world.expiry - boa.env.evm.patch.timestamp - 10)
    world.set_price(2500)  # updated before expiry
    before = world.feed.latest_round()
    boa.env.time_travel(seconds=20)
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    # before the grace period, a round before expiry does not settle
    with boa.reverts("settlement: grace period not over"):
        world.settlement.settle_expiry(sid, before)
    with boa.reverts("settlement: no such round"):
        world.settlement.settle_expiry(sid, before + 1)
    world.set_price(2600)  # the round at expiry
    at_expiry = world.feed.latest_round()
    boa.env.time_travel(seconds=600)
    world.set_price(2900)  # a later, more convenient answer for the put writer
    later = world.feed.latest_round()
    with boa.reverts("settlement: not the round at expiry"):
        world.settlement.settle_expiry(sid, later)
    # nor may the last round before expiry be picked once a round at expiry exists
    boa.env.time_travel(seconds=2 * DAY)
    with boa.reverts("settlement: not the last round before expiry"):
        world.settlement.settle_expiry(sid, before)
    world.settlement.settle_expiry(sid, at_expiry)
    (settled,) = events(world.settlement, "ExpirySettled")
    assert settled["round_id"] == at_expiry and settled["price"] == 2600 * USDC
    assert world.usdc.balanceOf(pw.wallet.address) == 3_100 * USDC - 400 * USDC
    assert world.settlement.expiry_price(sid) == 2600 * USDC


def test_silent_feed_settles_at_the_last_round_before_expiry_after_the_grace(
    world: World, buyer: Trader
) -> None:
    put = world.list_option(3000, False)
    pw = world.new_trader(56, usdc=3_000 * USDC)
    world.settle(option_trade(world, buyer, pw, put, WETH, 100 * USDC))
    boa.env.time_travel(seconds=world.expiry - boa.env.evm.patch.timestamp - 10)
    world.set_price(2800)
    last = world.feed.latest_round()
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    boa.env.time_travel(seconds=EXPIRY_GRACE)  # expiry passed, no round since
    with boa.reverts("settlement: grace period not over"):
        world.settlement.settle_expiry(sid, last)
    boa.env.time_travel(seconds=20)
    if last > 1:
        with boa.reverts("settlement: not the last round before expiry"):
            world.settlement.settle_expiry(sid, last - 1)
    with boa.reverts("settlement: grace period not over"):
        world.settlement.unwind_expiry(sid)
    with boa.env.anchor():
        boa.env.time_travel(seconds=EXPIRY_GRACE)
        with boa.reverts("settlement: the feed answers"):  # a live feed never unwinds
            world.settlement.unwind_expiry(sid)
    world.settlement.settle_expiry(sid, last)
    assert world.settlement.expiry_price(sid) == 2800 * USDC
    assert world.usdc.balanceOf(buyer.wallet.address) >= 200 * USDC
    assert pw.wallet.margin_status() == (0, 0, True)


def test_dead_feed_unwinds_at_no_payoff_after_two_grace_periods(
    world: World, buyer: Trader
) -> None:
    put = world.list_option(3000, False)
    pw = world.new_trader(57, usdc=3_000 * USDC)
    world.settle(option_trade(world, buyer, pw, put, WETH, 100 * USDC))
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    boa.env.time_travel(seconds=world.expiry - boa.env.evm.patch.timestamp + 1)
    world.feed.set_answer(0)  # the feed breaks: no valid answer any more
    broken = world.feed.latest_round()
    boa.env.time_travel(seconds=EXPIRY_GRACE)
    with boa.reverts("settlement: bad answer"):
        world.settlement.settle_expiry(sid, broken)
    with boa.reverts("settlement: grace period not over"):
        world.settlement.unwind_expiry(sid)
    with boa.env.anchor():
        # within the grace window the round at expiry being unusable lets the last round
        # before expiry settle the series
        world.settlement.settle_expiry(sid, broken - 1)
        assert world.settlement.expiry_price(sid) == 3000 * USDC
    boa.env.time_travel(seconds=EXPIRY_GRACE)
    held = world.usdc.balanceOf(pw.wallet.address)
    world.settlement.unwind_expiry(sid)
    assert world.settlement.series_settled(sid)
    assert pw.wallet.open_positions() == [] and buyer.wallet.open_positions() == []
    # nothing paid: the writer keeps its collateral and takes it out without the operator
    assert world.usdc.balanceOf(pw.wallet.address) == held
    with boa.env.prank(pw.address):
        pw.wallet.withdraw(world.usdc.address, held)
    with boa.reverts("settlement: already settled"):
        world.settlement.unwind_expiry(sid)


def test_out_of_the_money_expiry_releases_collateral(world: World, buyer: Trader) -> None:
    put = world.list_option(3000, False)
    pw = world.new_trader(54, usdc=3_000 * USDC)
    world.settle(option_trade(world, buyer, pw, put, WETH, 100 * USDC))
    go_to_expiry(world, 3100)
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    world.settlement.settle_expiry(sid, world.feed.latest_round())
    assert pw.wallet.margin_status() == (0, 0, True)
    with boa.env.prank(pw.address):
        pw.wallet.withdraw(world.usdc.address, 3_100 * USDC)
    assert world.usdc.balanceOf(pw.address) == 3_100 * USDC


def test_wallet_settlement_locked_while_positions_open(world: World, buyer: Trader) -> None:
    put = world.list_option(3000, False)
    pw = world.new_trader(55, usdc=3_000 * USDC)
    world.settle(option_trade(world, buyer, pw, put, WETH, 100 * USDC))
    with boa.env.prank(pw.address), boa.reverts("wallet: open positions"):
        pw.wallet.set_settlement(pw.address)
    with boa.env.prank(world.operator), boa.reverts("wallet: not settlement"):
        pw.wallet.settle_series(world.weth.address, world.usdc.address, world.expiry, 1)
