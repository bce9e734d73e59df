"""Trading keys: an owner authorises keys that sign orders and strategies within a scope
(expiry, instruments, max notional) and can never withdraw, change limits or the settlement,
add keys or cancel below a nonce; a revoked key's orders no longer settle."""

from __future__ import annotations

import boa
import pytest

from tests.contracts.conftest import (
    DAY,
    NO_KEY_LIMIT,
    USDC,
    WETH,
    ContractSig,
    Key,
    Trader,
    World,
    batch,
    events,
    instrument_id,
    load,
    order_item,
    strategy_item,
)

PRICE = 3_000 * USDC


@pytest.fixture
def desk(world: World) -> tuple[Trader, Trader, Key]:
    """A seller whose orders a trading key signs, a buyer, and the key."""
    seller = world.new_trader(300, weth=10 * WETH)
    buyer = world.new_trader(301, usdc=100_000 * USDC)
    return seller, buyer, Key(302)


def authorise(
    trader: Trader,
    key: Key,
    *,
    expiry: int | None = None,
    all_instruments: bool = False,
    max_notional: int = NO_KEY_LIMIT,
    instruments: list[bytes] | None = None,
) -> None:
    with boa.env.prank(trader.address):
        trader.wallet.authorise_key(
            key.address,
            expiry or boa.env.evm.patch.timestamp + DAY,
            all_instruments,
            max_notional,
            instruments or [],
        )


def key_sell(world: World, seller: Trader, buyer: Trader, key: Key, amount: int = WETH):
    """A sale of `amount` WETH by `seller`'s wallet signed by `key`, matched by `buyer`."""
    os_ = seller.order(world.spot, False, amount, PRICE)
    ob = buyer.order(world.spot, True, amount, PRICE)
    quote = amount * PRICE // WETH
    signed = key.sign(bytes(seller.wallet.hash_order(os_)))
    return [
        order_item(seller, world.spot, os_, amount, quote, signature=signed),
        order_item(buyer, world.spot, ob, amount, quote),
    ]


def test_key_in_scope_trades_for_the_wallet(world: World, desk) -> None:
    seller, buyer, key = desk
    authorise(seller, key, instruments=[instrument_id(world.spot)], max_notional=5_000 * USDC)
    (ev,) = events(seller.wallet, "KeyAuthorised")
    assert ev["key"] == key.address and ev["max_notional"] == 5_000 * USDC
    _expiry, all_instruments, max_notional, active = seller.wallet.trading_key(key.address)
    assert (all_instruments, max_notional, active) == (False, 5_000 * USDC, True)
    assert seller.wallet.key_instrument_allowed(key.address, instrument_id(world.spot))
    world.settle(batch(key_sell(world, seller, buyer, key)))
    assert world.usdc.balanceOf(seller.wallet.address) == PRICE
    assert world.weth.balanceOf(seller.wallet.address) == 9 * WETH


def test_key_outside_its_instruments_is_refused(world: World, desk) -> None:
    seller, buyer, key = desk
    authorise(seller, key, instruments=[b"\x01" * 32])
    with boa.reverts("wallet: key scope"):
        world.settle(batch(key_sell(world, seller, buyer, key)))
    with boa.env.prank(seller.address):
        seller.wallet.set_key_instrument(key.address, instrument_id(world.spot), True)
    world.settle(batch(key_sell(world, seller, buyer, key)))
    with boa.env.prank(seller.address):
        seller.wallet.set_key_instrument(key.address, instrument_id(world.spot), False)
    with boa.reverts("wallet: key scope"):
        world.settle(batch(key_sell(world, seller, buyer, key)))
    authorise(seller, key, all_instruments=True)
    world.settle(batch(key_sell(world, seller, buyer, key)))


def test_key_over_its_max_notional_is_refused(world: World, desk) -> None:
    seller, buyer, key = desk
    authorise(seller, key, all_instruments=True, max_notional=5_999 * USDC)
    with boa.reverts("wallet: key max notional"):
        world.settle(batch(key_sell(world, seller, buyer, key, amount=2 * WETH)))
    world.settle(batch(key_sell(world, seller, buyer, key, amount=WETH)))
    # the owner's own signature is not bound by the key's limit
    os_ = seller.order(world.spot, False, 3 * WETH, PRICE)
    ob = buyer.order(world.spot, True, 3 * WETH, PRICE)
    world.settle(
        batch(
            [
                order_item(seller, world.spot, os_, 3 * WETH, 3 * PRICE),
                order_item(buyer, world.spot, ob, 3 * WETH, 3 * PRICE),
            ]
        )
    )


def test_expired_key_is_refused(world: World, desk) -> None:
    seller, buyer, key = desk
    authorise(seller, key, all_instruments=True, expiry=boa.env.evm.patch.timestamp + 3_600)
    items = key_sell(world, seller, buyer, key)
    boa.env.time_travel(seconds=3_601)
    assert seller.wallet.trading_key(key.address)[3] is False
    with boa.reverts("wallet: key expired"):
        world.settle(batch(items))


def test_revoked_key_orders_no_longer_settle(world: World, desk) -> None:
    seller, buyer, key = desk
    authorise(seller, key, all_instruments=True)
    signed_before = key_sell(world, seller, buyer, key)
    with boa.env.prank(seller.address):
        seller.wallet.revoke_key(key.address)
    (ev,) = events(seller.wallet, "KeyRevoked")
    assert ev["key"] == key.address
    assert seller.wallet.trading_key(key.address) == (0, False, 0, False)
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(signed_before))
    assert world.weth.balanceOf(seller.wallet.address) == 10 * WETH


def test_key_can_never_act_as_the_owner(world: World, desk) -> None:
    seller, _buyer, key = desk
    authorise(seller, key, all_instruments=True)
    w = seller.wallet
    with boa.env.prank(key.address):
        for call in (
            lambda: w.withdraw(world.weth.address, 1),
            lambda: w.set_settlement(key.address),
            lambda: w.set_max_notional(1),
            lambda: w.set_restrict_instruments(False),
            lambda: w.set_instrument_allowed(b"\x01" * 32, True),
            lambda: w.pause(),
            lambda: w.cancel_below(10),
            lambda: w.authorise_key(Key(303).address, 2**40, True, NO_KEY_LIMIT, []),
            lambda: w.revoke_key(key.address),
            lambda: w.set_key_instrument(key.address, b"\x01" * 32, True),
        ):
            with boa.reverts("wallet: not owner"):
                call()
    assert world.weth.balanceOf(w.address) == 10 * WETH


def test_key_may_cancel_a_single_digest_until_revoked(world: World, desk) -> None:
    seller, buyer, key = desk
    authorise(seller, key, all_instruments=True)
    items = key_sell(world, seller, buyer, key)
    os_digest = bytes(seller.wallet.hash_order(items[0]["order"]))
    with boa.env.prank(key.address):
        seller.wallet.cancel(os_digest)
    (ev,) = events(seller.wallet, "Cancelled")
    assert ev["digest"] == os_digest and ev["by"] == key.address
    with boa.reverts("wallet: cancelled"):
        world.settle(batch(items))
    with boa.env.prank(seller.address):
        seller.wallet.revoke_key(key.address)
    with boa.env.prank(key.address), boa.reverts("wallet: not owner or key"):
        seller.wallet.cancel(b"\x02" * 32)


def test_authorise_key_checks_its_arguments(world: World, desk) -> None:
    seller, _buyer, key = desk
    now = boa.env.evm.patch.timestamp
    with boa.env.prank(seller.address):
        with boa.reverts("wallet: bad key"):
            seller.wallet.authorise_key(seller.address, now + DAY, True, NO_KEY_LIMIT, [])
        with boa.reverts("wallet: bad key"):
            seller.wallet.authorise_key(
                "0x0000000000000000000000000000000000000000", now + DAY, True, NO_KEY_LIMIT, []
            )
        with boa.reverts("wallet: key expiry in the past"):
            seller.wallet.authorise_key(key.address, now, True, NO_KEY_LIMIT, [])
        with boa.reverts("wallet: key limit too large"):
            seller.wallet.authorise_key(key.address, now + DAY, True, NO_KEY_LIMIT + 1, [])


def test_key_signed_strategy_needs_every_leg_in_scope(world: World) -> None:
    call = world.list_option(3_000, True)
    put = world.list_option(3_000, False)
    trader = world.new_trader(310, usdc=10_000 * USDC)
    mm = world.new_trader(311, usdc=10_000 * USDC, weth=5 * WETH)
    key = Key(312)
    authorise(trader, key, instruments=[instrument_id(call)], max_notional=1_000 * USDC)
    s_t = trader.strategy([(call, True, 1), (put, True, 1)], WETH, 200 * USDC)
    s_mm = mm.strategy([(call, False, 1), (put, False, 1)], WETH, -200 * USDC)
    quotes = [110 * USDC, 90 * USDC]

    def straddle() -> tuple:
        signed = key.sign(bytes(trader.wallet.hash_strategy(s_t)))
        return batch(
            strategies=[
                strategy_item(trader, [call, put], s_t, WETH, quotes, signature=signed),
                strategy_item(mm, [call, put], s_mm, WETH, quotes),
            ]
        )

    with boa.reverts("wallet: key scope"):
        world.settle(straddle())
    with boa.env.prank(trader.address):
        trader.wallet.set_key_instrument(key.address, instrument_id(put), True)
    world.settle(straddle())
    assert trader.wallet.position(instrument_id(call)) == WETH
    assert trader.wallet.position(instrument_id(put)) == WETH


def test_key_signed_strategy_over_notional(world: World) -> None:
    call = world.list_option(3_000, True)
    put = world.list_option(3_000, False)
    trader = world.new_trader(313, usdc=10_000 * USDC)
    mm = world.new_trader(314, usdc=10_000 * USDC, weth=5 * WETH)
    key = Key(315)
    authorise(trader, key, all_instruments=True, max_notional=399 * USDC)
    s_t = trader.strategy([(call, True, 1), (put, True, 1)], 2 * WETH, 200 * USDC)
    s_mm = mm.strategy([(call, False, 1), (put, False, 1)], 2 * WETH, -200 * USDC)
    signed = key.sign(bytes(trader.wallet.hash_strategy(s_t)))
    quotes = [110 * USDC, 90 * USDC]
    with boa.reverts("wallet: key max notional"):
        world.settle(
            batch(
                strategies=[
                    strategy_item(trader, [call, put], s_t, WETH, quotes, signature=signed),
                    strategy_item(mm, [call, put], s_mm, WETH, quotes),
                ]
            )
        )


def test_contract_owner_with_a_warm_trading_key(world: World) -> None:
    """Cold contract owner (EIP-1271), warm key: the key's ECDSA signature trades for the
    wallet, the contract's own signature still works, and the key cannot withdraw."""
    cold = Key(320)
    account = load("test/TestERC1271Signer.vy", cold.address)
    wallet = world.wallet_deployer.at(world.factory.create_wallet_for(account.address))
    owner = Trader(cold, wallet)
    world.traders.append(owner)
    world.fund(owner, weth=4 * WETH)
    buyer = world.new_trader(321, usdc=20_000 * USDC)
    key = Key(322)
    now = boa.env.evm.patch.timestamp
    data = wallet.authorise_key.prepare_calldata(key.address, now + DAY, True, NO_KEY_LIMIT, [])
    with boa.env.prank(cold.address):
        account.call(wallet.address, data)
    assert wallet.trading_key(key.address)[3]
    world.settle(batch(key_sell(world, owner, buyer, key)))
    os_ = owner.order(world.spot, False, WETH, PRICE)
    ob = buyer.order(world.spot, True, WETH, PRICE)
    world.settle(
        batch(
            [
                order_item(
                    owner,
                    world.spot,
                    os_,
                    WETH,
                    PRICE,
                    signature=ContractSig(owner.sign_order(os_)),
                ),
                order_item(buyer, world.spot, ob, WETH, PRICE),
            ]
        )
    )
    assert world.usdc.balanceOf(wallet.address) == 2 * PRICE
    with boa.env.prank(key.address), boa.reverts("wallet: not owner"):
        wallet.withdraw(world.usdc.address, PRICE)
    # an EOA owner's wallet refuses contract signatures
    seller = world.new_trader(323, weth=WETH)
    os2 = seller.order(world.spot, False, WETH, PRICE)
    ob2 = buyer.order(world.spot, True, WETH, PRICE)
    with boa.reverts("wallet: bad signature"):
        world.settle(
            batch(
                [
                    order_item(
                        seller, world.spot, os2, WETH, PRICE, signature=ContractSig(b"\x01" * 65)
                    ),
                    order_item(buyer, world.spot, ob2, WETH, PRICE),
                ]
            )
        )
