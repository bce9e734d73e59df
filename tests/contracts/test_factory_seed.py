"""WalletFactory's seed reserve: each new wallet receives 1 base unit of each listed token the
factory still holds, so that its first trade writes non-zero balance slots instead of fresh
ones. The unit is the owner's; an empty reserve or a failing token never blocks creation."""

from __future__ import annotations

import boa
from eth_utils import keccak

from tests.contracts.conftest import USDC, WETH, World, batch, events, order_item

PRICE = 3000 * USDC


def seed(world: World, units: int = 10**6, tokens: list[str] | None = None) -> None:
    """Fund the factory's reserve and list the tokens (as the deployer, its owner)."""
    with boa.env.prank(world.admin):
        world.weth.mint(world.factory.address, units)
        world.usdc.mint(world.factory.address, units)
        listed = tokens if tokens is not None else [world.weth.address, world.usdc.address]
        world.factory.set_seed_tokens(listed)


def balance_slot(token: object, holder: str) -> int:
    """The raw storage word of `holder`'s balance in a snekmate ERC-20 (``erc20.balanceOf``,
    a Vyper HashMap: keccak(slot . key))."""
    layout = token.compiler_data.storage_layout  # type: ignore[attr-defined]
    base = layout["storage_layout"]["erc20"]["balanceOf"]["slot"]
    key = base.to_bytes(32, "big") + bytes(12) + bytes.fromhex(str(holder)[2:])
    address = token.address  # type: ignore[attr-defined]
    word = int(boa.env.get_storage(address, int.from_bytes(keccak(key), "big")))
    assert word == token.balanceOf(holder)  # type: ignore[attr-defined]
    return word


def test_new_wallet_holds_one_unit_of_each_seed_token(world: World) -> None:
    seed(world)
    assert world.factory.OWNER() == world.admin
    assert world.factory.seed_tokens(0) == world.weth.address
    assert world.factory.seed_tokens(1) == world.usdc.address
    trader = world.new_trader(1)
    assert world.weth.balanceOf(trader.wallet.address) == 1
    assert world.usdc.balanceOf(trader.wallet.address) == 1
    assert world.weth.balanceOf(world.factory.address) == 10**6 - 1
    assert world.usdc.balanceOf(world.factory.address) == 10**6 - 1


def test_first_trade_of_a_seeded_wallet_writes_no_fresh_balance_slot(world: World) -> None:
    seed(world)
    buyer = world.new_trader(1, usdc=100_000 * USDC)
    seller = world.new_trader(2, weth=20 * WETH)
    # the slots each wallet is credited on its first trade already hold the seeded unit
    assert world.weth.balanceOf(buyer.wallet.address) == 1
    assert world.usdc.balanceOf(seller.wallet.address) == 1
    ob = buyer.order(world.spot, True, WETH, PRICE)
    os_ = seller.order(world.spot, False, WETH, PRICE)
    world.settle(
        batch(
            orders=[
                order_item(buyer, world.spot, ob, WETH, PRICE),
                order_item(seller, world.spot, os_, WETH, PRICE),
            ]
        )
    )
    assert world.weth.balanceOf(buyer.wallet.address) == WETH + 1
    assert world.usdc.balanceOf(seller.wallet.address) == PRICE + 1
    assert world.usdc.balanceOf(buyer.wallet.address) == 100_000 * USDC + 1 - PRICE
    assert world.weth.balanceOf(seller.wallet.address) == 20 * WETH + 1 - WETH


def test_seeded_unit_is_the_owners_to_withdraw(world: World) -> None:
    seed(world)
    trader = world.new_trader(1)
    with boa.env.prank(trader.address):
        trader.wallet.withdraw(world.weth.address, 1)
        trader.wallet.withdraw(world.usdc.address, 1)
    assert world.weth.balanceOf(trader.address) == 1
    assert world.usdc.balanceOf(trader.wallet.address) == 0


def test_creation_works_with_an_empty_or_exhausted_reserve(world: World) -> None:
    # listed but never funded: nothing to give, the wallet is still created
    with boa.env.prank(world.admin):
        world.factory.set_seed_tokens([world.weth.address, world.usdc.address])
    first = world.new_trader(1)
    assert world.weth.balanceOf(first.wallet.address) == 0
    assert world.factory.wallet_of(first.address) == first.wallet.address
    # a reserve of one unit: the next wallet gets it, the one after gets none
    with boa.env.prank(world.admin):
        world.weth.mint(world.factory.address, 1)
    second = world.new_trader(2)
    third = world.new_trader(3)
    assert world.weth.balanceOf(second.wallet.address) == 1
    assert world.weth.balanceOf(third.wallet.address) == 0
    assert world.factory.wallet_count() == 3
    assert world.settlement.is_wallet(third.wallet.address)


def test_a_failing_token_is_skipped(world: World) -> None:
    # the oracle has no transfer(): the call reverts, the unit is skipped, creation succeeds
    seed(world, tokens=[world.oracle.address, world.usdc.address])
    trader = world.new_trader(1)
    assert world.usdc.balanceOf(trader.wallet.address) == 1
    assert world.factory.is_wallet(trader.wallet.address)


def test_no_gas_limit_that_creates_the_wallet_skips_the_seed(world: World) -> None:
    """A seed never fails for want of the caller's gas, else eth_estimateGas (the lowest limit
    that does not revert) could settle on a limit that silently skips it: at the lowest gas
    limit at which creation succeeds, the new wallet holds both units. (With these tokens the
    work left after the last seed call already needs more than 1/64 of what the call gets;
    the factory's gas check keeps it so for any token within the 100,000-gas seed budget.)"""
    seed(world)
    owner = "0x" + keccak(text="seed-gas")[:20].hex()

    def creates(gas: int) -> bool:
        with boa.env.anchor():
            try:
                world.factory.create_wallet_for(owner, gas=gas)
            except boa.BoaError:
                return False
            return True

    low, high = 21_000, 10_000_000  # fails at low, succeeds at high
    assert creates(high) and not creates(low)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if creates(mid) else (mid, high)
    world.factory.create_wallet_for(owner, gas=high)
    wallet = world.factory.wallet_of(owner)
    assert world.weth.balanceOf(wallet) == 1
    assert world.usdc.balanceOf(wallet) == 1


def test_only_the_owner_sets_the_seed_tokens(world: World) -> None:
    stranger = boa.env.generate_address("stranger")
    with boa.env.prank(stranger), boa.reverts("factory: not owner"):
        world.factory.set_seed_tokens([world.weth.address])
    with boa.env.prank(world.operator), boa.reverts("factory: not owner"):
        world.factory.set_seed_tokens([world.weth.address])
    with boa.env.prank(world.admin):
        world.factory.set_seed_tokens([world.weth.address])
    [logged] = events(world.factory, "SeedTokensSet")
    assert list(logged["tokens"]) == [world.weth.address]
    with boa.env.prank(world.admin):
        world.factory.set_seed_tokens([])
    trader = world.new_trader(1)
    assert world.weth.balanceOf(trader.wallet.address) == 0


def test_storage_word_is_non_zero_before_the_first_credit(world: World) -> None:
    """The slot a first trade credits is already non-zero (a dirty write, not a fresh one);
    without the seeding it is zero."""
    seed(world)
    seeded = world.new_trader(1, usdc=10 * USDC)
    assert balance_slot(world.weth, seeded.wallet.address) == 1
    with boa.env.prank(world.admin):
        world.factory.set_seed_tokens([])
    unseeded = world.new_trader(2, usdc=10 * USDC)
    assert balance_slot(world.weth, unseeded.wallet.address) == 0
