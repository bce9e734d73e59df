"""Paired spot trades (`settle_pairs`): each wallet pays its counterparty directly, the
Settlement checks both were paid; the same trades netted through `settle` end in the same
balances."""

from __future__ import annotations

import boa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import (
    USDC,
    WETH,
    Trader,
    World,
    batch,
    events,
    order_item,
    pair_batch,
    split_sig,
)

PRICE = 3000 * USDC
ZERO = "0x" + "00" * 20


def paired_items(
    world: World, buyer: Trader, seller: Trader, fill: int, price: int, ins: tuple | None = None
) -> list:
    """The two sides of one trade (on the spot pair unless ``ins`` says), buyer first."""
    ins = ins or world.spot
    quote = fill * price // WETH
    ob = buyer.order(ins, True, fill, price)
    os_ = seller.order(ins, False, fill, price)
    return [order_item(buyer, ins, ob, fill, quote), order_item(seller, ins, os_, fill, quote)]


def balances(world: World, *traders: Trader) -> list[tuple[int, int]]:
    return [
        (world.weth.balanceOf(t.wallet.address), world.usdc.balanceOf(t.wallet.address))
        for t in traders
    ]


def transfers(world: World) -> list[tuple[str, str, int]]:
    """Every token Transfer of the last settle (the tokens' logs are its child logs)."""
    return [
        (e.sender, e.receiver, e.value)
        for e in world.settlement.get_logs()
        if type(e).__name__ == "Transfer"
    ]


def test_paired_trade_pays_wallet_to_wallet(world: World) -> None:
    buyer = world.new_trader(61, usdc=10_000 * USDC)
    seller = world.new_trader(62, weth=2 * WETH)
    items = paired_items(world, buyer, seller, WETH, PRICE)
    world.settle_pairs(pair_batch(items, batch_id=5))
    assert balances(world, buyer, seller) == [(WETH, 7_000 * USDC), (WETH, PRICE)]
    # straight between the wallets: nothing passes through the Settlement
    assert transfers(world) == [
        (buyer.wallet.address, seller.wallet.address, PRICE),
        (seller.wallet.address, buyer.wallet.address, WETH),
    ]
    (traded,) = events(world.settlement, "Traded")
    assert (bytes(traded["buy"]), bytes(traded["sell"])) == (
        bytes(buyer.wallet.hash_order(items[0]["order"])),
        bytes(seller.wallet.hash_order(items[1]["order"])),
    )
    assert (traded["amount"], traded["quote"]) == (WETH, PRICE)
    assert events(world.settlement, "Fill") == []
    (settled,) = events(world.settlement, "BatchSettled")
    assert (settled["batch_id"], settled["orders"]) == (5, 2)
    # both orders are spent: the same pair again is refused by the wallets
    with boa.reverts():
        world.settle_pairs(pair_batch(items, batch_id=6))


def test_a_wallet_in_several_pairs_settles_each_with_its_own_event(world: World) -> None:
    maker = world.new_trader(63, weth=3 * WETH)
    takers = [world.new_trader(64 + i, usdc=10_000 * USDC) for i in range(3)]
    # the maker's sell first in each pair: the pair still lists (and applies) the buy first
    items = [x for t in takers for x in reversed(paired_items(world, t, maker, WETH, PRICE))]
    world.settle_pairs(pair_batch(items))
    assert balances(world, maker) == [(0, 3 * PRICE)]
    digests = [
        (bytes(t.wallet.hash_order(buy["order"])), bytes(maker.wallet.hash_order(sell["order"])))
        for t, sell, buy in zip(takers, items[0::2], items[1::2], strict=True)
    ]
    traded = events(world.settlement, "Traded")
    assert [(bytes(e["buy"]), bytes(e["sell"])) for e in traded] == digests
    (settled,) = events(world.settlement, "BatchSettled")
    assert settled["orders"] == 6


def test_a_pair_is_refused_whole_when_it_is_not_a_spot_trade_between_two_wallets(
    world: World,
) -> None:
    buyer = world.new_trader(80, usdc=10_000 * USDC)
    seller = world.new_trader(81, weth=2 * WETH)
    with boa.reverts("settlement: one wallet on both sides"):
        world.settle_pairs(pair_batch(paired_items(world, buyer, buyer, WETH, PRICE)))
    call = world.list_option(3000, True)
    items = paired_items(world, buyer, seller, WETH, 100 * USDC, call)
    with boa.reverts("settlement: not spot"):
        world.settle_pairs(pair_batch(items))
    with boa.reverts("settlement: not operator"):
        world.settle_pairs(
            pair_batch(paired_items(world, buyer, seller, WETH, PRICE)), buyer.address
        )
    assert balances(world, buyer, seller) == [(0, 10_000 * USDC), (2 * WETH, 0)]


def test_sides_that_disagree_do_not_balance_when_netted(world: World) -> None:
    buyer = world.new_trader(67, usdc=10_000 * USDC)
    seller = world.new_trader(68, weth=2 * WETH)
    items = paired_items(world, buyer, seller, WETH, PRICE)
    # the seller's item says it receives one unit more than the buyer's says it pays (a pair
    # cannot say so: it has one quote), and the Settlement has nothing to pay the difference
    items[1] = dict(items[1], quote=PRICE + 1)
    with boa.reverts():
        world.settle(batch(items))
    assert balances(world, buyer, seller) == [(0, 10_000 * USDC), (2 * WETH, 0)]


@given(
    fills=st.lists(st.integers(1, 2 * WETH), min_size=2, max_size=4),
    price=st.integers(1, 5_000 * USDC),
)
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_paired_and_netted_end_in_the_same_balances(
    world: World, fills: list[int], price: int
) -> None:
    traders = list(world.traders)
    with boa.env.anchor():  # each example from the same chain state
        buyer = world.new_trader(70, usdc=10**12 * USDC)
        seller = world.new_trader(71, weth=10 * WETH)
        items = [x for fill in fills for x in paired_items(world, buyer, seller, fill, price)]
        with boa.env.anchor():
            world.settle_pairs(pair_batch(items))
            assert all(world.settlement.address not in move[:2] for move in transfers(world))
            paired = balances(world, buyer, seller)
        # the same items through `settle`: netted through the Settlement
        world.settle(batch(items))
        assert any(world.settlement.address in move[:2] for move in transfers(world))
        assert world.usdc.balanceOf(world.settlement.address) == 0
        assert world.weth.balanceOf(world.settlement.address) == 0
        assert balances(world, buyer, seller) == paired
    world.traders[:] = traders


def collateral_writer(world: World, seed: int, *, weth: int = 0, usdc: int = 0) -> Trader:
    """A short put writer (it needs 3,000 USDC) whose margin counts WETH at a 20 % haircut
    (2,400 USDC a WETH), with the given funding plus the 100 USDC premium."""
    put = world.list_option(3000, False)
    with boa.env.prank(world.admin):
        world.settlement.set_collateral(world.weth.address, 2_000)
    writer = world.new_trader(seed, weth=weth, usdc=usdc)
    long = world.new_trader(seed + 1, usdc=10_000 * USDC)
    ol = long.order(put, True, WETH, 100 * USDC)
    ow = writer.order(put, False, WETH, 100 * USDC)
    world.settle(
        batch(
            [
                order_item(long, put, ol, WETH, 100 * USDC),
                order_item(writer, put, ow, WETH, 100 * USDC),
            ]
        )
    )
    return writer


def test_option_writer_selling_collateral_is_checked_after_being_paid(world: World) -> None:
    """Selling 1.5 WETH at 3,000 fails the margin rule before the USDC arrives and meets it
    after. The seller's side is applied once the buyer paid it: its apply sees the whole
    trade. The netted path (its check at the end) agrees."""
    writer = collateral_writer(world, 72, weth=2 * WETH)
    assert writer.wallet.margin_status() == (3000 * USDC, 4900 * USDC, True)
    buyer = world.new_trader(74, usdc=100_000 * USDC)
    amount = 3 * WETH // 2
    # the state between the two payments: 1.5 WETH gone, nothing received
    with boa.env.prank(writer.address), boa.reverts("wallet: margin"):
        writer.wallet.withdraw(world.weth.address, amount)
    after = []
    for settle_pairs in (True, False):
        with boa.env.anchor():
            items = paired_items(world, buyer, writer, amount, PRICE)
            if settle_pairs:
                world.settle_pairs(pair_batch(items))
            else:
                world.settle(batch(items))
            after.append(writer.wallet.margin_status())
            assert after[-1][2]
    assert after[0] == after[1]


def test_option_writer_buying_collateral_is_checked_after_being_paid(world: World) -> None:
    """Buying 1 WETH for 1,000 USDC leaves 2,100 USDC against 3,000 required until the WETH
    arrives (+2,400). The buyer pays first, so the Settlement asks it to `finish` once the
    seller paid; a batch right after sees an idle wallet."""
    writer = collateral_writer(world, 82, usdc=3_000 * USDC)
    assert writer.wallet.margin_status() == (3000 * USDC, 3100 * USDC, True)
    seller = world.new_trader(84, weth=2 * WETH)
    with boa.env.prank(writer.address), boa.reverts("wallet: margin"):
        writer.wallet.withdraw(world.usdc.address, 1_000 * USDC)
    world.settle_pairs(pair_batch(paired_items(world, writer, seller, WETH, 1_000 * USDC)))
    assert writer.wallet.margin_status() == (3000 * USDC, 4500 * USDC, True)
    world.settle_pairs(pair_batch(paired_items(world, writer, seller, WETH // 4, 1_000 * USDC)))
    assert world.weth.balanceOf(writer.wallet.address) == 5 * WETH // 4


def test_option_writer_selling_collateral_too_cheap_is_refused(world: World) -> None:
    writer = collateral_writer(world, 75, weth=2 * WETH)
    buyer = world.new_trader(77, usdc=100_000 * USDC)
    with boa.reverts("wallet: margin"):  # checked in the seller's apply
        world.settle_pairs(pair_batch(paired_items(world, buyer, writer, 2 * WETH, USDC)))


def test_option_writer_buying_collateral_too_dear_is_refused(world: World) -> None:
    writer = collateral_writer(world, 85, usdc=3_000 * USDC)
    seller = world.new_trader(87, weth=2 * WETH)
    with boa.reverts("wallet: margin"):  # checked in the buyer's `finish`
        world.settle_pairs(
            pair_batch(paired_items(world, writer, seller, WETH // 10, 20_000 * USDC))
        )
    assert world.usdc.balanceOf(writer.wallet.address) == 3_100 * USDC


def test_the_wallet_pays_a_counterparty_only_for_spot(world: World) -> None:
    call = world.list_option(3000, True)
    buyer = world.new_trader(78, usdc=10_000 * USDC)
    seller = world.new_trader(79, weth=WETH)
    order = buyer.order(call, True, WETH, 100 * USDC)
    fill = (order, split_sig(buyer.sign_order(order)), WETH, 100 * USDC)
    with boa.env.prank(world.settlement.address), boa.reverts("wallet: not spot"):
        buyer.wallet.apply_order(fill, call, True, seller.wallet.address)
