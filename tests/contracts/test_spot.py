"""Spot trades through Settlement: signatures, fills, cancels, limits, atomicity."""

from __future__ import annotations

import boa
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from tests.contracts.conftest import (
    DAY,
    NO_LIMIT,
    USDC,
    WETH,
    ContractSig,
    Key,
    World,
    batch,
    events,
    high_s,
    instrument_id,
    load,
    order_digest,
    order_item,
    pair_batch,
    split_sig,
)

PRICE = 3000 * USDC
ZERO = "0x" + "00" * 20  # apply_order's pay_to: not a paired trade


@pytest.fixture
def pair(world: World):
    buyer = world.new_trader(1, usdc=100_000 * USDC)
    seller = world.new_trader(2, weth=20 * WETH)
    return buyer, seller


def spot_match(
    world, buyer, seller, amount=WETH, price=PRICE, buy_limit=None, sell_limit=None, fill=None
):
    ob = buyer.order(world.spot, True, amount, buy_limit or price)
    os_ = seller.order(world.spot, False, amount, sell_limit or price)
    fill = amount if fill is None else fill
    quote = fill * price // WETH
    return (
        ob,
        os_,
        [
            order_item(buyer, world.spot, ob, fill, quote),
            order_item(seller, world.spot, os_, fill, quote),
        ],
    )


def test_matched_spot_trade_moves_exact_amounts(world: World, pair) -> None:
    buyer, seller = pair
    ob, os_, items = spot_match(
        world,
        buyer,
        seller,
        amount=2 * WETH,
        price=3010 * USDC,
        buy_limit=3020 * USDC,
        sell_limit=3000 * USDC,
    )
    world.settle(batch(items, batch_id=77))
    assert world.weth.balanceOf(buyer.wallet.address) == 2 * WETH
    assert world.usdc.balanceOf(buyer.wallet.address) == 100_000 * USDC - 6020 * USDC
    assert world.weth.balanceOf(seller.wallet.address) == 18 * WETH
    assert world.usdc.balanceOf(seller.wallet.address) == 6020 * USDC
    assert world.usdc.balanceOf(world.settlement.address) == 0
    assert world.weth.balanceOf(world.settlement.address) == 0
    fills = events(world.settlement, "Fill")
    assert len(fills) == 2
    digests = {bytes(buyer.wallet.hash_order(ob)), bytes(seller.wallet.hash_order(os_))}
    assert {bytes(f["digest"]) for f in fills} == digests
    assert all(f["quote"] == 6020 * USDC and f["amount"] == 2 * WETH for f in fills)
    (settled,) = events(world.settlement, "BatchSettled")
    assert settled["batch_id"] == 77 and settled["orders"] == 2
    # filled completely in one go: recorded in the nonce bitmap
    assert buyer.wallet.nonce_used(ob[4]) and buyer.wallet.remaining(ob) == 0


def test_digest_matches_eth_account_typed_data(world: World, pair) -> None:
    buyer, _ = pair
    order = buyer.order(world.spot, True, WETH, PRICE)
    payload = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": [
                {"name": "instrument", "type": "bytes32"},
                {"name": "is_buy", "type": "bool"},
                {"name": "amount", "type": "uint256"},
                {"name": "limit_price", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint64"},
            ],
        },
        "primaryType": "Order",
        "domain": {
            "name": "Isthmus",
            "version": "1",
            "chainId": 1,
            "verifyingContract": buyer.wallet.address,
        },
        "message": dict(
            zip(
                ["instrument", "is_buy", "amount", "limit_price", "nonce", "deadline"],
                order,
                strict=True,
            )
        ),
    }
    signable = encode_typed_data(full_message=payload)
    expected = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert bytes(buyer.wallet.hash_order(order)) == expected
    signed = Account.sign_message(signable, buyer.key.private.to_bytes())
    assert Account.recover_message(signable, signature=signed.signature) == buyer.address
    assert bytes(signed.signature) == buyer.sign_order(order)


def test_settlement_instrument_id_matches_python(world: World) -> None:
    assert bytes(world.settlement.instrument_id(*world.spot)) == instrument_id(world.spot)
    opt = world.option(3000, True)
    assert bytes(world.settlement.instrument_id(*opt)) == instrument_id(opt)


def test_non_operator_cannot_settle(world: World, pair) -> None:
    buyer, seller = pair
    _, _, items = spot_match(world, buyer, seller)
    with boa.reverts("settlement: not operator"):
        world.settle(batch(items), sender=buyer.address)


def test_unsigned_leg_reverts(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    items[1] = order_item(seller, world.spot, os_, WETH, PRICE, signature=b"\x00" * 65)
    # v = 0 marks a contract signature, and the batch carries none
    with boa.reverts("settlement: no contract signature"):
        world.settle(batch(items))
    assert world.weth.balanceOf(seller.wallet.address) == 20 * WETH


def test_signature_by_someone_else_reverts(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    forged = Key(999).sign(bytes(seller.wallet.hash_order(os_)))
    items[1] = order_item(seller, world.spot, os_, WETH, PRICE, signature=forged)
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(items))


def test_altered_order_reverts(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    sig = seller.sign_order(os_)
    altered = (os_[0], os_[1], os_[2] * 2, os_[3] // 2, os_[4], os_[5])
    items[1] = order_item(seller, world.spot, altered, WETH, PRICE, signature=sig)
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(items))


def test_high_s_signature_rejected(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    items[1] = order_item(
        seller, world.spot, os_, WETH, PRICE, signature=high_s(seller.sign_order(os_))
    )
    with boa.reverts("ecdsa: invalid signature `s` value"):
        world.settle(batch(items))


def test_bad_v_rejected(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    sig = seller.sign_order(os_)
    items[1] = order_item(
        seller, world.spot, os_, WETH, PRICE, signature=sig[:64] + bytes([sig[64] + 2])
    )
    with boa.reverts("wallet: bad signature v"):
        world.settle(batch(items))
    # the other valid v recovers some other address
    items[1] = order_item(
        seller, world.spot, os_, WETH, PRICE, signature=sig[:64] + bytes([55 - sig[64]])
    )
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(items))


def test_wrong_chain_signature_rejected(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    # the same order hashed for chain id 5
    assert order_digest(os_, 1, seller.wallet.address) == bytes(seller.wallet.hash_order(os_))
    sig = seller.key.sign(order_digest(os_, 5, seller.wallet.address))
    items[1] = order_item(seller, world.spot, os_, WETH, PRICE, signature=sig)
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(items))


def test_signature_for_another_wallet_rejected(world: World, pair) -> None:
    buyer, seller = pair
    # the seller owns a second identity's wallet? No: sign for the buyer's wallet domain
    _ob, os_, items = spot_match(world, buyer, seller)
    sig = seller.key.sign(bytes(buyer.wallet.hash_order(os_)))
    items[1] = order_item(seller, world.spot, os_, WETH, PRICE, signature=sig)
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(items))


def test_replay_reverts(world: World, pair) -> None:
    buyer, seller = pair
    _, _, items = spot_match(world, buyer, seller)
    world.settle(batch(items))
    with boa.reverts("wallet: nonce used"):
        world.settle(batch(items, batch_id=2))


@pytest.mark.parametrize(
    "nonces",
    [
        [5, 6, 70, 200],  # current window, then later windows (their bits move to storage)
        [300, 5],  # an older window than the current one: the storage bitmap
        [2**25 + 3, 7, 2**200],  # beyond the config slot's windows: the storage bitmap
    ],
)
def test_nonce_window_every_used_nonce_stays_used(world: World, pair, nonces) -> None:
    """The config slot tracks one window of 64 nonces; a nonce filled in any window, moved
    out of the slot or never in it, can never fill again (nor can its other side)."""
    buyer, seller = pair
    filled = []
    for i, n in enumerate(nonces):
        ob = buyer.order(world.spot, True, WETH, PRICE, nonce=n)
        os_ = seller.order(world.spot, False, WETH, PRICE, nonce=n)
        items = [
            order_item(buyer, world.spot, ob, WETH, PRICE),
            order_item(seller, world.spot, os_, WETH, PRICE),
        ]
        world.settle(batch(items, batch_id=10 + i))
        filled.append((ob, items))
        for old_ob, old_items in filled:
            assert buyer.wallet.nonce_used(old_ob[4]) and buyer.wallet.remaining(old_ob) == 0
            with boa.reverts("wallet: nonce used"):
                world.settle(batch(old_items, batch_id=100 + i))
    for n in (4, 8, 71, 2**25 + 4):
        if n not in nonces:
            assert not buyer.wallet.nonce_used(n)


def test_partial_fills_tracked_and_overfill_rejected(world: World, pair) -> None:
    buyer, seller = pair
    ob = buyer.order(world.spot, True, 3 * WETH, PRICE)
    for fill in (WETH, WETH):
        os_ = seller.order(world.spot, False, fill, PRICE)
        world.settle(
            batch(
                [
                    order_item(buyer, world.spot, ob, fill, PRICE),
                    order_item(seller, world.spot, os_, fill, PRICE),
                ]
            )
        )
    digest = bytes(buyer.wallet.hash_order(ob))
    assert buyer.wallet.filled(digest) == 2 * WETH
    assert buyer.wallet.remaining(ob) == WETH
    os_ = seller.order(world.spot, False, 2 * WETH, PRICE)
    with boa.reverts("wallet: overfill"):
        world.settle(
            batch(
                [
                    order_item(buyer, world.spot, ob, 2 * WETH, 2 * PRICE),
                    order_item(seller, world.spot, os_, 2 * WETH, 2 * PRICE),
                ]
            )
        )
    os_ = seller.order(world.spot, False, WETH, PRICE)
    world.settle(
        batch(
            [
                order_item(buyer, world.spot, ob, WETH, PRICE),
                order_item(seller, world.spot, os_, WETH, PRICE),
            ]
        )
    )
    assert buyer.wallet.filled(digest) == 3 * WETH and buyer.wallet.remaining(ob) == 0


def test_same_order_twice_in_one_batch_cannot_overfill(world: World, pair) -> None:
    buyer, seller = pair
    ob = buyer.order(world.spot, True, WETH, PRICE)
    os_ = seller.order(world.spot, False, 2 * WETH, PRICE)
    items = [
        order_item(buyer, world.spot, ob, WETH, PRICE),
        order_item(buyer, world.spot, ob, WETH, PRICE),
        order_item(seller, world.spot, os_, 2 * WETH, 2 * PRICE),
    ]
    with boa.reverts("wallet: nonce used"):
        world.settle(batch(items))


def test_cancel_digest(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    with boa.env.prank(seller.address):
        seller.wallet.cancel(bytes(seller.wallet.hash_order(os_)))
    assert seller.wallet.is_cancelled(bytes(seller.wallet.hash_order(os_)))
    with boa.reverts("wallet: cancelled"):
        world.settle(batch(items))


def test_cancel_after_partial_fill_keeps_fill(world: World, pair) -> None:
    buyer, seller = pair
    ob = buyer.order(world.spot, True, 2 * WETH, PRICE)
    os_ = seller.order(world.spot, False, WETH, PRICE)
    world.settle(
        batch(
            [
                order_item(buyer, world.spot, ob, WETH, PRICE),
                order_item(seller, world.spot, os_, WETH, PRICE),
            ]
        )
    )
    digest = bytes(buyer.wallet.hash_order(ob))
    with boa.env.prank(buyer.address):
        buyer.wallet.cancel(digest)
    assert buyer.wallet.filled(digest) == WETH and buyer.wallet.remaining(ob) == 0
    os2 = seller.order(world.spot, False, WETH, PRICE)
    with boa.reverts("wallet: cancelled"):
        world.settle(
            batch(
                [
                    order_item(buyer, world.spot, ob, WETH, PRICE),
                    order_item(seller, world.spot, os2, WETH, PRICE),
                ]
            )
        )


def test_cancel_below_nonce(world: World, pair) -> None:
    buyer, seller = pair
    _ob, os_, items = spot_match(world, buyer, seller)
    with boa.env.prank(seller.address):
        seller.wallet.cancel_below(os_[4] + 1)
        with boa.reverts("wallet: nonce decreases"):
            seller.wallet.cancel_below(0)
    assert seller.wallet.remaining(os_) == 0
    with boa.reverts("wallet: nonce cancelled"):
        world.settle(batch(items))


def test_only_owner_cancels(world: World, pair) -> None:
    buyer, seller = pair
    with boa.env.prank(buyer.address), boa.reverts("wallet: not owner or key"):
        seller.wallet.cancel(b"\x01" * 32)
    with boa.env.prank(world.operator), boa.reverts("wallet: not owner"):
        seller.wallet.cancel_below(5)


def test_expired_deadline_reverts(world: World, pair) -> None:
    buyer, seller = pair
    ob = buyer.order(world.spot, True, WETH, PRICE)
    os_ = seller.order(world.spot, False, WETH, PRICE, deadline=boa.env.evm.patch.timestamp + 10)
    boa.env.time_travel(seconds=11)
    with boa.reverts("wallet: expired"):
        world.settle(
            batch(
                [
                    order_item(buyer, world.spot, ob, WETH, PRICE),
                    order_item(seller, world.spot, os_, WETH, PRICE),
                ]
            )
        )


def test_limit_price_enforced_both_sides(world: World, pair) -> None:
    buyer, seller = pair
    ob = buyer.order(world.spot, True, WETH, PRICE)
    os_ = seller.order(world.spot, False, WETH, PRICE)
    over = PRICE + 1
    with boa.reverts("wallet: limit price"):
        world.settle(
            batch(
                [
                    order_item(buyer, world.spot, ob, WETH, over),
                    order_item(seller, world.spot, os_, WETH, over),
                ]
            )
        )
    under = PRICE - 1
    with boa.reverts("wallet: limit price"):
        world.settle(
            batch(
                [
                    order_item(buyer, world.spot, ob, WETH, under),
                    order_item(seller, world.spot, os_, WETH, under),
                ]
            )
        )


def test_operator_cannot_skim_unbalanced_batch(world: World, pair) -> None:
    buyer, seller = pair
    ob = buyer.order(world.spot, True, WETH, 3100 * USDC)
    os_ = seller.order(world.spot, False, WETH, 2900 * USDC)
    # both within limits, but the buyer pays more than the seller receives
    with boa.reverts("settlement: tokens not conserved"):
        world.settle(
            batch(
                [
                    order_item(buyer, world.spot, ob, WETH, 3100 * USDC),
                    order_item(seller, world.spot, os_, WETH, 2900 * USDC),
                ]
            )
        )
    # a lone leg (no counterparty) cannot be paid
    with boa.reverts():
        world.settle(batch([order_item(buyer, world.spot, ob, WETH, 3000 * USDC)]))


def test_max_notional_and_allowed_instruments(world: World, pair) -> None:
    buyer, seller = pair
    with boa.env.prank(buyer.address):
        buyer.wallet.set_max_notional(2999 * USDC)
    _, _, items = spot_match(world, buyer, seller)
    with boa.reverts("wallet: over max notional"):
        world.settle(batch(items))
    with boa.env.prank(buyer.address):
        buyer.wallet.set_max_notional(NO_LIMIT)
        buyer.wallet.set_restrict_instruments(True)
    _, _, items = spot_match(world, buyer, seller)
    with boa.reverts("wallet: instrument not allowed"):
        world.settle(batch(items))
    with boa.env.prank(buyer.address):
        buyer.wallet.set_instrument_allowed(instrument_id(world.spot), True)
    world.settle(batch(items))
    assert world.weth.balanceOf(buyer.wallet.address) == WETH


def test_paused_wallet_cannot_trade_but_can_withdraw(world: World, pair) -> None:
    buyer, seller = pair
    with boa.env.prank(seller.address):
        seller.wallet.pause()
    assert seller.wallet.paused()
    _, _, items = spot_match(world, buyer, seller)
    with boa.reverts("wallet: paused"):
        world.settle(batch(items))
    with boa.env.prank(seller.address):
        seller.wallet.withdraw(world.weth.address, WETH)
        seller.wallet.unpause()
    assert world.weth.balanceOf(seller.address) == WETH
    world.settle(batch(items))


def test_only_allowed_settlement_applies(world: World, pair) -> None:
    buyer, _seller = pair
    ob = buyer.order(world.spot, True, WETH, PRICE)
    fill = (ob, split_sig(buyer.sign_order(ob)), WETH, PRICE)
    with boa.env.prank(world.operator), boa.reverts("wallet: not settlement"):
        buyer.wallet.apply_order(fill, world.spot, True, ZERO)
    with boa.env.prank(world.operator), boa.reverts("wallet: not settlement"):
        buyer.wallet.finish()
    # a second settlement contract deployed by anyone is not the wallet's settlement
    rogue = load("Settlement.vy", world.oracle.address, world.usdc.address, 0, 0)
    with boa.env.prank(rogue.address), boa.reverts("wallet: not settlement"):
        buyer.wallet.apply_order(fill, world.spot, True, ZERO)
    # even the real settlement cannot call finish() outside a batch
    with boa.env.prank(world.settlement.address), boa.reverts("wallet: not collected"):
        buyer.wallet.finish()


def test_wallet_outside_factory_trades_spot_not_options(world: World, pair) -> None:
    buyer, seller = pair
    # a genuine MarginWallet deployed outside the factory: it verifies its own legs, so spot
    # is fine, but it may not take option positions (the CCP needs registered wallets)
    key = Key(888)
    outsider = world.wallet_deployer.deploy(key.address, world.settlement.address)
    from tests.contracts.conftest import Trader

    o_trader = Trader(key, outsider)
    world.fund(o_trader, usdc=10_000 * USDC)
    world.traders.append(o_trader)
    ob = o_trader.order(world.spot, True, WETH, PRICE)
    os_ = seller.order(world.spot, False, WETH, PRICE)
    items = [
        order_item(o_trader, world.spot, ob, WETH, PRICE),
        order_item(seller, world.spot, os_, WETH, PRICE),
    ]
    world.settle(batch(items))
    assert world.weth.balanceOf(outsider.address) == WETH
    put = world.list_option(3000, False)
    ob = o_trader.order(put, True, WETH, 10 * USDC)
    os_ = buyer.order(put, False, WETH, 10 * USDC)
    items = [
        order_item(o_trader, put, ob, WETH, 10 * USDC),
        order_item(buyer, put, os_, WETH, 10 * USDC),
    ]
    with boa.reverts("settlement: unknown wallet"):
        world.settle(batch(items))


def test_fake_wallet_cannot_take_value(world: World, pair) -> None:
    _buyer, seller = pair
    fake = load("test/TestFakeWallet.vy")
    os_ = seller.order(world.spot, False, WETH, PRICE)
    fake_order = (instrument_id(world.spot), True, WETH, PRICE, 1, 2**40)
    items = [
        {
            "wallet": fake.address,
            "ins": world.spot,
            "order": fake_order,
            "sig": b"\x11" * 64 + b"\x1b",
            "fill": WETH,
            "quote": PRICE,
        },
        order_item(seller, world.spot, os_, WETH, PRICE),
    ]
    # paired (the two sides of one trade): the fake never pays the seller directly
    with boa.reverts("settlement: not paid"):
        world.settle_pairs(pair_batch(items))
    # netted (the seller's side in two halves): the seller's USDC never arrives
    halves = [items[0]] + [order_item(seller, world.spot, os_, WETH // 2, PRICE // 2)] * 2
    with boa.reverts():
        world.settle(batch(halves))
    # even with tokens sitting in the settlement (e.g. expiry dust), neither path pays from them
    with boa.env.prank(world.admin):
        world.usdc.mint(world.settlement.address, 10_000 * USDC)
    with boa.reverts("settlement: not paid"):
        world.settle_pairs(pair_batch(items))
    with boa.reverts("settlement: tokens not conserved"):
        world.settle(batch(halves))
    assert world.weth.balanceOf(seller.wallet.address) == 20 * WETH
    assert world.weth.balanceOf(fake.address) == 0


def test_instrument_preimage_must_match(world: World, pair) -> None:
    buyer, seller = pair
    _, _, items = spot_match(world, buyer, seller)
    fake = (0, world.usdc.address, world.weth.address, 0, 0, False)
    items[0] = {**items[0], "ins": fake}
    with boa.reverts("settlement: unknown instrument"):
        world.settle(batch(items))
    # a registered instrument other than the signed one changes the digest
    other = world.list_option(3000, True)
    items[0] = {**items[0], "ins": other}
    with boa.reverts():
        world.settle(batch(items))


def test_withdraw_only_owner(world: World, pair) -> None:
    buyer, _ = pair
    with boa.env.prank(world.operator), boa.reverts("wallet: not owner"):
        buyer.wallet.withdraw(world.usdc.address, 1)
    with boa.env.prank(buyer.address):
        buyer.wallet.withdraw(world.usdc.address, 1000 * USDC)
    assert world.usdc.balanceOf(buyer.address) == 1000 * USDC


def test_a_plain_transfer_is_a_deposit(world: World, pair) -> None:
    buyer, _ = pair
    with boa.env.prank(world.admin):
        world.usdc.mint(buyer.address, 500 * USDC)
    with boa.env.prank(buyer.address):
        world.usdc.transfer(buyer.wallet.address, 500 * USDC)
        buyer.wallet.withdraw(world.usdc.address, 100_500 * USDC)
    assert world.usdc.balanceOf(buyer.address) == 100_500 * USDC


def test_netting_many_fills_one_transfer_each_way(world: World, pair) -> None:
    buyer, seller = pair
    items = []
    for _ in range(4):
        _, _, two = spot_match(world, buyer, seller, amount=WETH // 2)
        items += two
    world.settle(batch(items))
    assert world.weth.balanceOf(buyer.wallet.address) == 2 * WETH
    assert world.usdc.balanceOf(seller.wallet.address) == 6000 * USDC


def test_erc1271_owner(world: World, pair) -> None:
    buyer, _ = pair
    signer_key = Key(4242)
    account = load("test/TestERC1271Signer.vy", signer_key.address)
    wallet = world.wallet_deployer.at(world.factory.create_wallet_for(account.address))
    world.fund_address = None
    with boa.env.prank(world.admin):
        world.weth.mint(wallet.address, 2 * WETH)
    from tests.contracts.conftest import Trader

    contract_trader = Trader(signer_key, wallet)
    world.traders.append(contract_trader)
    ob = buyer.order(world.spot, True, WETH, PRICE)
    os_ = contract_trader.order(world.spot, False, WETH, PRICE)
    items = [
        order_item(buyer, world.spot, ob, WETH, PRICE),
        order_item(
            contract_trader,
            world.spot,
            os_,
            WETH,
            PRICE,
            signature=ContractSig(contract_trader.sign_order(os_)),
        ),
    ]
    world.settle(batch(items))
    assert world.usdc.balanceOf(wallet.address) == PRICE
    # a signature by another key is refused by the contract owner
    os2 = contract_trader.order(world.spot, False, WETH, PRICE)
    ob2 = buyer.order(world.spot, True, WETH, PRICE)
    bad = Key(1).sign(bytes(wallet.hash_order(os2)))
    items = [
        order_item(buyer, world.spot, ob2, WETH, PRICE),
        order_item(contract_trader, world.spot, os2, WETH, PRICE, signature=ContractSig(bad)),
    ]
    with boa.reverts("wallet: bad signature"):
        world.settle(batch(items))


def test_factory_one_wallet_per_owner(world: World) -> None:
    key = Key(77)
    world.factory.create_wallet_for(key.address)
    with boa.reverts("factory: owner has a wallet"):
        world.factory.create_wallet_for(key.address)
    assert world.settlement.is_wallet(world.factory.wallet_of(key.address))


def test_deadline_in_past_view(world: World, pair) -> None:
    buyer, _ = pair
    ob = buyer.order(world.spot, True, WETH, PRICE, deadline=boa.env.evm.patch.timestamp + DAY)
    assert buyer.wallet.remaining(ob) == WETH
    boa.env.time_travel(seconds=DAY + 1)
    assert buyer.wallet.remaining(ob) == 0
