"""The admin and the operator together, against wallets with open positions: every power that
could change a payout or block an exit is queued and waits out the delay, during which the
owner leaves; the rest cannot move value a wallet did not sign."""

from __future__ import annotations

import boa
import pytest

from tests.contracts.conftest import (
    ADMIN_DELAY,
    USDC,
    WETH,
    Trader,
    World,
    batch,
    events,
    load,
    order_item,
)
from tests.contracts.test_options import option_trade

PRICE = 3_000 * USDC


@pytest.fixture
def short_put(world: World) -> tuple[tuple, Trader, Trader]:
    """A put writer covered partly by WETH haircut collateral, and its buyer."""
    put = world.list_option(3_000, False)
    with boa.env.prank(world.admin):
        world.settlement.set_collateral(world.weth.address, 2_000)  # new token: at once
    buyer = world.new_trader(500, usdc=10_000 * USDC)
    writer = world.new_trader(501, usdc=1_000 * USDC, weth=2 * WETH)
    world.settle(option_trade(world, buyer, writer, put, WETH, 100 * USDC))
    return put, buyer, writer


def test_feed_swap_waits_and_never_reaches_a_registered_series(world: World, short_put) -> None:
    _put, buyer, writer = short_put
    hostile = load("test/TestAggregator.vy", 8, 1 * 10**8)  # says WETH is worth $1
    with boa.env.prank(world.admin):
        with boa.reverts("timelock: not queued"):
            world.oracle.set_feed(world.weth.address, hostile.address, 3_600, 0)
        change = world.oracle.queue_feed(world.weth.address, hostile.address, 3_600, 0)
        (queued,) = events(world.oracle, "ChangeQueued")
        assert queued["id"] == change and queued["eta"] == boa.env.evm.patch.timestamp + ADMIN_DELAY
        boa.env.time_travel(seconds=ADMIN_DELAY - 1)
        with boa.reverts("timelock: delay not over"):
            world.oracle.set_feed(world.weth.address, hostile.address, 3_600, 0)
    # the exit window: the writer takes out what margin does not need (1100 USDC + 2 WETH
    # at 80% of 3000 cover 3000 with 700 to spare in quote)
    world.set_price(3_000)  # a fresh round: haircut collateral is valued at a live price
    with boa.env.prank(writer.address):
        writer.wallet.withdraw(world.usdc.address, 700 * USDC)
    boa.env.time_travel(seconds=1)
    with boa.env.prank(world.admin):
        world.oracle.set_feed(world.weth.address, hostile.address, 3_600, 0)
    assert events(world.oracle, "ChangeApplied")[0]["id"] == change
    # the registered series still settles on the feed it bound, at its round at expiry
    sid = world.settlement.series_id(world.weth.address, world.usdc.address, world.expiry)
    assert world.settlement.series(sid).feed == world.feed.address
    boa.env.time_travel(seconds=world.expiry - boa.env.evm.patch.timestamp + 1)
    hostile.set_answer(1 * 10**8)
    world.set_price(2_500)
    world.settlement.settle_expiry(sid, world.feed.latest_round())
    assert world.settlement.expiry_price(sid) == 2_500 * USDC
    # 500 owed: the writer's 400 USDC left, the rest in WETH at the expiry price
    assert world.usdc.balanceOf(buyer.wallet.address) == 10_000 * USDC - 100 * USDC + 400 * USDC
    assert world.weth.balanceOf(buyer.wallet.address) == 100 * WETH // 2_500
    # a series listed after the change binds the new feed
    later = world.expiry + 7 * 86_400
    world.list_option(3_000, True, expiry=later)
    sid2 = world.settlement.series_id(world.weth.address, world.usdc.address, later)
    assert world.settlement.series(sid2).feed == hostile.address


def test_haircut_raise_waits_past_the_exit(world: World, short_put) -> None:
    _put, _buyer, writer = short_put
    with boa.env.prank(world.admin):
        with boa.reverts("timelock: not queued"):
            world.settlement.set_collateral(world.weth.address, 10_000)  # deregister
        world.settlement.queue_collateral(world.weth.address, 10_000)
        with boa.reverts("timelock: delay not over"):
            world.settlement.set_collateral(world.weth.address, 10_000)
    # before the change applies, nothing is blocked: the writer withdraws its free USDC
    required, available, ok = writer.wallet.margin_status()
    assert ok and required == 3_000 * USDC
    free = min(available - required, world.usdc.balanceOf(writer.wallet.address))
    with boa.env.prank(writer.address):
        writer.wallet.withdraw(world.usdc.address, free)
    boa.env.time_travel(seconds=ADMIN_DELAY)
    with boa.env.prank(world.admin):
        world.settlement.set_collateral(world.weth.address, 10_000)
    assert world.settlement.haircut_bps(world.weth.address) == 10_000
    world.set_price(3_000)
    # from now on its WETH counts for nothing: margin fails and the WETH cannot leave
    assert writer.wallet.margin_status()[2] is False
    with boa.env.prank(writer.address), boa.reverts("wallet: margin"):
        writer.wallet.withdraw(world.weth.address, 1)


def test_queued_change_can_be_cancelled(world: World) -> None:
    with boa.env.prank(world.admin):
        world.settlement.set_collateral(world.weth.address, 2_000)
        change = world.settlement.queue_collateral(world.weth.address, 5_000)
        with boa.reverts("timelock: already queued"):
            world.settlement.queue_collateral(world.weth.address, 5_000)
    with boa.env.prank(world.operator), boa.reverts("ownable: caller is not the owner"):
        world.settlement.cancel_change(change)
    with boa.env.prank(world.admin):
        world.settlement.cancel_change(change)
        assert events(world.settlement, "ChangeCancelled")[0]["id"] == change
        assert world.settlement.change_eta(change) == 0
        boa.env.time_travel(seconds=ADMIN_DELAY)
        with boa.reverts("timelock: not queued"):
            world.settlement.set_collateral(world.weth.address, 5_000)
    assert world.settlement.haircut_bps(world.weth.address) == 2_000


def test_only_the_owner_queues(world: World) -> None:
    with boa.env.prank(world.operator):
        with boa.reverts("ownable: caller is not the owner"):
            world.settlement.queue_collateral(world.weth.address, 1)
        with boa.reverts("ownable: caller is not the owner"):
            world.oracle.queue_feed(world.weth.address, world.feed.address, 1, 0)


def test_hostile_factory_cannot_be_set(world: World) -> None:
    with boa.env.prank(world.admin), boa.reverts("settlement: factory set"):
        world.settlement.set_factory(world.admin)


def test_hostile_pool_cannot_take_value(world: World) -> None:
    pool = load("test/TestHostilePool.vy", world.weth.address, world.usdc.address)
    with boa.env.prank(world.admin):
        world.settlement.register_pool(pool.address)  # immediate: see contracts/README.md
    seller = world.new_trader(510, weth=2 * WETH)
    o = seller.order(world.spot, False, WETH, 2_900 * USDC)
    items = [order_item(seller, world.spot, o, WETH, 2_950 * USDC)]
    swap = (pool.address, world.weth.address, WETH, 2_950 * USDC)
    # keeps the WETH and pays nothing back
    with boa.reverts():
        world.settle(batch(items, swaps=[swap]))
    # pays back less than the wallet is credited: the settlement would end short
    with boa.env.prank(world.admin):
        world.usdc.mint(pool.address, 10_000 * USDC)
    pool.set_behaviour(2_000 * USDC, "0x" + "00" * 20)
    with boa.reverts():
        world.settle(batch(items, swaps=[swap]))
    # credits the wallet below its signed limit: the wallet refuses
    pool.set_behaviour(2_800 * USDC, "0x" + "00" * 20)
    with boa.reverts("wallet: limit price"):
        world.settle(
            batch(
                [order_item(seller, world.spot, o, WETH, 2_800 * USDC)],
                swaps=[(pool.address, world.weth.address, WETH, 2_800 * USDC)],
            )
        )
    # re-enters the settlement mid-batch
    pool.set_behaviour(2_950 * USDC, world.settlement.address)
    with boa.reverts():
        world.settle(batch(items, swaps=[swap]))
    assert world.weth.balanceOf(seller.wallet.address) == 2 * WETH
    assert world.usdc.balanceOf(seller.wallet.address) == 0


def test_operator_changes_cannot_move_unsigned_value(world: World) -> None:
    """Adding an operator is immediate: an operator (even the admin itself) still only
    submits batches that every wallet verifies."""
    victim = world.new_trader(520, usdc=10_000 * USDC)
    thief = world.new_trader(521, weth=WETH)
    with boa.env.prank(world.admin):
        world.settlement.set_operator(world.admin, True)
    o = thief.order(world.spot, False, WETH, PRICE)
    forged_buy = thief.order(world.spot, True, WETH, PRICE)  # signed by the thief, not victim
    items = [
        order_item(thief, world.spot, o, WETH, PRICE),
        {**order_item(thief, world.spot, forged_buy, WETH, PRICE), "wallet": victim.wallet.address},
    ]
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(items), sender=world.admin)
    assert world.usdc.balanceOf(victim.wallet.address) == 10_000 * USDC


def test_deployment_delay_is_fixed(world: World) -> None:
    assert world.settlement.DELAY() == ADMIN_DELAY
    assert world.oracle.DELAY() == ADMIN_DELAY
