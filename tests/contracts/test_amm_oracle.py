"""AMM swaps through a real Uniswap v2 pair inside a batch, the price oracle, the factory."""

from __future__ import annotations

import boa
import pytest

from tests.contracts.conftest import (
    USDC,
    WETH,
    World,
    batch,
    deploy_uniswap,
    events,
    load,
    order_item,
)


def amount_out(pair, token_in: str, amount_in: int) -> int:
    r0, r1, _ = pair.getReserves()
    if token_in == pair.token0():
        r_in, r_out = r0, r1
    else:
        r_in, r_out = r1, r0
    return amount_in * 997 * r_out // (r_in * 1000 + amount_in * 997)


def test_buy_through_uniswap(world: World) -> None:
    t = world.new_trader(60, usdc=10_000 * USDC)
    usdc_in = 3_100 * USDC
    out = amount_out(world.pair, world.usdc.address, usdc_in)
    o = t.order(world.spot, True, out, 3_200 * USDC)
    totals = (world.token_total(world.usdc), world.token_total(world.weth))
    world.settle(
        batch(
            [order_item(t, world.spot, o, out, usdc_in)],
            swaps=[(world.pair.address, world.usdc.address, usdc_in, out)],
        )
    )
    assert world.weth.balanceOf(t.wallet.address) == out
    assert world.usdc.balanceOf(t.wallet.address) == 10_000 * USDC - usdc_in
    assert (world.token_total(world.usdc), world.token_total(world.weth)) == totals
    (swap,) = events(world.settlement, "SwapExecuted")
    assert swap["amount_in"] == usdc_in and swap["amount_out"] == out


def test_sell_through_uniswap_and_match_in_one_batch(world: World) -> None:
    seller = world.new_trader(61, weth=3 * WETH)
    buyer = world.new_trader(62, usdc=10_000 * USDC)
    out = amount_out(world.pair, world.weth.address, WETH)
    o_amm = seller.order(world.spot, False, WETH, 2_900 * USDC)
    o_s = seller.order(world.spot, False, WETH, 3_000 * USDC)
    o_b = buyer.order(world.spot, True, WETH, 3_000 * USDC)
    items = [
        order_item(seller, world.spot, o_amm, WETH, out),
        order_item(seller, world.spot, o_s, WETH, 3_000 * USDC),
        order_item(buyer, world.spot, o_b, WETH, 3_000 * USDC),
    ]
    world.settle(batch(items, swaps=[(world.pair.address, world.weth.address, WETH, out)]))
    assert world.usdc.balanceOf(seller.wallet.address) == out + 3_000 * USDC
    assert world.weth.balanceOf(seller.wallet.address) == WETH


def test_amm_price_beyond_limit_reverts(world: World) -> None:
    t = world.new_trader(63, usdc=10_000 * USDC)
    usdc_in = 3_100 * USDC
    out = amount_out(world.pair, world.usdc.address, usdc_in)  # about 3040 per WETH with the fee
    o = t.order(world.spot, True, out, 3_000 * USDC)
    with boa.reverts("wallet: limit price"):
        world.settle(
            batch(
                [order_item(t, world.spot, o, out, usdc_in)],
                swaps=[(world.pair.address, world.usdc.address, usdc_in, out)],
            )
        )


def test_amm_output_above_curve_reverts_everything(world: World) -> None:
    t = world.new_trader(64, usdc=10_000 * USDC)
    usdc_in = 3_100 * USDC
    out = amount_out(world.pair, world.usdc.address, usdc_in) + 1
    o = t.order(world.spot, True, out, 3_200 * USDC)
    with boa.reverts():
        world.settle(
            batch(
                [order_item(t, world.spot, o, out, usdc_in)],
                swaps=[(world.pair.address, world.usdc.address, usdc_in, out)],
            )
        )
    assert world.usdc.balanceOf(t.wallet.address) == 10_000 * USDC


def test_operator_cannot_keep_swap_surplus(world: World) -> None:
    t = world.new_trader(65, usdc=10_000 * USDC)
    usdc_in = 3_100 * USDC
    out = amount_out(world.pair, world.usdc.address, usdc_in)
    o = t.order(world.spot, True, out - 10**15, 3_200 * USDC)
    # wallet gets less than the pool gave: the surplus would stay in the settlement
    with boa.reverts("settlement: tokens not conserved"):
        world.settle(
            batch(
                [order_item(t, world.spot, o, out - 10**15, usdc_in)],
                swaps=[(world.pair.address, world.usdc.address, usdc_in, out)],
            )
        )


def test_unregistered_pool_rejected(world: World) -> None:
    _, other = deploy_uniswap(world.admin, world.weth, world.usdc)
    t = world.new_trader(66, usdc=10_000 * USDC)
    o = t.order(world.spot, True, 10**15, 3_200 * USDC)
    with boa.reverts("settlement: unknown pool"):
        world.settle(
            batch(
                [order_item(t, world.spot, o, 10**15, 3 * USDC)],
                swaps=[(other.address, world.usdc.address, 3 * USDC, 10**15)],
            )
        )


# ---------------------------------------------------------------------------- oracle


def test_oracle_scales_and_checks(world: World) -> None:
    assert world.oracle.price(world.weth.address) == 3_000 * USDC
    world.feed.set_answer(3_123_45678901)
    assert world.oracle.price(world.weth.address) == 3_123_456789
    with boa.reverts("oracle: no feed"):
        world.oracle.price(world.usdc.address)
    world.feed.set_answer(0)
    with boa.reverts("oracle: bad answer"):
        world.oracle.price(world.weth.address)
    world.feed.set_answer_at(3_000 * 10**8, boa.env.evm.patch.timestamp - 3_601)
    with boa.reverts("oracle: stale"):
        world.oracle.price(world.weth.address)
    world.feed.set_answer_at(3_000 * 10**8, boa.env.evm.patch.timestamp + 5)
    with boa.reverts("oracle: answer from the future"):
        world.oracle.price(world.weth.address)


def test_oracle_deviation_bound(world: World) -> None:
    world.replace_feed(world.weth.address, world.feed.address, 3_600, 1_000)  # 10%
    world.feed.set_answer(3_000 * 10**8)
    world.feed.set_answer(3_299 * 10**8)
    assert world.oracle.price(world.weth.address) == 3_299 * USDC
    world.feed.set_answer(3_700 * 10**8)
    with boa.reverts("oracle: deviation"):
        world.oracle.price(world.weth.address)


def test_oracle_admin_only(world: World) -> None:
    with boa.env.prank(world.operator), boa.reverts("ownable: caller is not the owner"):
        world.oracle.set_feed(world.weth.address, world.feed.address, 1, 0)


def test_oracle_feed_with_more_decimals(world: World) -> None:
    feed18 = load("test/TestAggregator.vy", 18, 2_000 * 10**18 + 123)
    with boa.env.prank(world.admin):
        world.oracle.set_feed(world.usdc.address, feed18.address, 60, 0)
    assert world.oracle.price(world.usdc.address) == 2_000 * USDC


def test_settlement_admin_only(world: World) -> None:
    with boa.env.prank(world.operator):
        with boa.reverts("ownable: caller is not the owner"):
            world.settlement.set_operator(world.operator, True)
        with boa.reverts("ownable: caller is not the owner"):
            world.settlement.register_spot(world.usdc.address, world.weth.address)
        with boa.reverts("ownable: caller is not the owner"):
            world.settlement.register_pool(world.pair.address)
        with boa.reverts("settlement: not factory"):
            world.settlement.register_wallet(world.operator)


@pytest.mark.parametrize("quote_ok", [True, False])
def test_register_option_checks(world: World, quote_ok: bool) -> None:
    with boa.env.prank(world.admin):
        if quote_ok:
            with boa.reverts("settlement: expiry in the past"):
                world.settlement.register_option(
                    world.weth.address, world.usdc.address, 1, boa.env.evm.patch.timestamp, True
                )
        else:
            with boa.reverts("settlement: options settle in the option quote"):
                world.settlement.register_option(
                    world.usdc.address, world.weth.address, 1, world.expiry, True
                )
