"""The wallet protects itself from a hostile settlement; margin math vs its Python mirror;
strategies mixing spot and option legs; owner limits on strategies; EIP-1271 approvals."""

from __future__ import annotations

import boa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import (
    USDC,
    WETH,
    ContractSig,
    Key,
    Trader,
    World,
    batch,
    load,
    order_item,
    split_sig,
    strategy_item,
)
from tests.contracts.fuzz_machines import mirror_margin

PRICE = 3_000 * USDC


def test_hostile_settlement_cannot_skip_payment(world: World) -> None:
    buyer = world.new_trader(70, usdc=10_000 * USDC)
    rogue = load("test/TestRogueSettlement.vy")
    with boa.env.prank(buyer.address):
        buyer.wallet.set_settlement(rogue.address)
    o = buyer.order(world.spot, True, WETH, PRICE)
    fill = (o, split_sig(buyer.sign_order(o)), WETH, PRICE)
    # the wallet pays its USDC to the rogue, but never receives its WETH: all reverts
    with boa.reverts("wallet: not paid"):
        rogue.apply_then_finish(buyer.wallet.address, fill, world.spot)
    assert world.usdc.balanceOf(buyer.wallet.address) == 10_000 * USDC
    with boa.reverts("wallet: already collected"):
        rogue.apply_twice(buyer.wallet.address, fill, world.spot)


def test_hostile_settlement_cannot_overfill_or_forge(world: World) -> None:
    seller = world.new_trader(71, weth=5 * WETH)
    rogue = load("test/TestRogueSettlement.vy")
    with boa.env.prank(seller.address):
        seller.wallet.set_settlement(rogue.address)
    o = seller.order(world.spot, False, WETH, PRICE)
    with boa.reverts("wallet: overfill"):
        rogue.apply_then_finish(
            seller.wallet.address,
            (o, split_sig(seller.sign_order(o)), 2 * WETH, 2 * PRICE),
            world.spot,
        )
    forged = Key(5).sign(bytes(seller.wallet.hash_order(o)))
    with boa.reverts("wallet: bad signature"):
        rogue.apply_then_finish(
            seller.wallet.address, (o, split_sig(forged), WETH, PRICE), world.spot
        )
    # the instrument preimage must hash to the signed instrument
    other = (0, world.usdc.address, world.weth.address, 0, 0, False)
    with boa.reverts("wallet: instrument mismatch"):
        rogue.apply_then_finish(
            seller.wallet.address, (o, split_sig(seller.sign_order(o)), WETH, PRICE), other
        )


POSITIONS = st.lists(
    st.tuples(
        st.sampled_from([2_500, 2_800, 3_000, 3_200, 3_500]),
        st.booleans(),
        st.integers(-5 * WETH, 5 * WETH),
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture(scope="module")
def math_contract():
    return load("test/TestMarginMath.vy")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(positions=POSITIONS, usdc=st.integers(0, 30_000), weth=st.integers(0, 6))
def test_margin_math_matches_python_mirror(math_contract, positions, usdc: int, weth: int) -> None:
    legs = [(k * USDC, is_call, size) for k, is_call, size in positions]
    required, cover = math_contract.series_requirement(legs, WETH)
    book: dict[tuple, int] = {}
    for k, is_call, size in legs:
        key = (1, "u", "q", k, 0, is_call)
        book[key] = book.get(key, 0) + size
    # the same portfolio with duplicate positions merged gives the same answer
    merged = [(key[3], key[5], size) for key, size in book.items()]
    assert math_contract.series_requirement(merged, WETH) == (required, cover)
    # the contract and the Python mirror accept exactly the same balances
    usdc_units, weth_units = usdc * USDC, weth * WETH
    assert (weth_units >= cover and usdc_units >= required) == mirror_margin(
        book, usdc_units, weth_units
    )
    # the minimum over the kinks is the minimum over every price (checked on a grid)
    kinks = [0] + [k for k, _, _ in legs]
    worst = min(math_contract.payoff_at(legs, cover, p) for p in kinks)
    assert required == -(-max(0, -worst) // WETH)
    for p in range(0, 8_001, 125):
        assert math_contract.payoff_at(legs, cover, p * USDC) >= worst
    # slope beyond the last strike is non-negative
    far = math_contract.payoff_at(legs, cover, 10**6 * USDC)
    assert far >= math_contract.payoff_at(legs, cover, 10**5 * USDC)


def test_covered_call_strategy_spot_and_option_legs(world: World) -> None:
    call = world.list_option(3_200, True)
    buyer = world.new_trader(72, usdc=10_000 * USDC)  # buys WETH and writes a call on it
    mm = world.new_trader(73, usdc=10_000 * USDC, weth=5 * WETH)
    legs = [(world.spot, True, 1), (call, False, 1)]
    strat = buyer.strategy(legs, WETH, 2_950 * USDC)  # net debit at most 2950
    quotes = [3_000 * USDC, 60 * USDC]
    m1 = mm.order(world.spot, False, WETH, 3_000 * USDC)
    m2 = mm.order(call, True, WETH, 60 * USDC)
    b = batch(
        [
            order_item(mm, world.spot, m1, WETH, 3_000 * USDC),
            order_item(mm, call, m2, WETH, 60 * USDC),
        ],
        [strategy_item(buyer, [world.spot, call], strat, WETH, quotes)],
    )
    world.settle(b)
    assert world.weth.balanceOf(buyer.wallet.address) == WETH
    assert world.usdc.balanceOf(buyer.wallet.address) == 10_000 * USDC - 2_940 * USDC
    assert buyer.wallet.margin_status() == (0, 7_060 * USDC, True)
    with boa.env.prank(buyer.address), boa.reverts("wallet: margin"):
        buyer.wallet.withdraw(world.weth.address, 1)


def test_strategy_owner_limits(world: World) -> None:
    call = world.list_option(3_000, True)
    put = world.list_option(3_000, False)
    buyer = world.new_trader(74, usdc=10_000 * USDC)
    seller = world.new_trader(75, usdc=10_000 * USDC, weth=2 * WETH)
    with boa.env.prank(buyer.address):
        buyer.wallet.set_max_notional(199 * USDC)
    s_long = buyer.strategy([(call, True, 1), (put, True, 1)], WETH, 200 * USDC)
    s_short = seller.strategy([(call, False, 1), (put, False, 1)], WETH, -200 * USDC)
    quotes = [120 * USDC, 80 * USDC]
    b = batch(
        strategies=[
            strategy_item(buyer, [call, put], s_long, WETH, quotes),
            strategy_item(seller, [call, put], s_short, WETH, quotes),
        ]
    )
    with boa.reverts("wallet: over max notional"):
        world.settle(b)
    with boa.env.prank(buyer.address):
        buyer.wallet.set_max_notional(200 * USDC)
        buyer.wallet.set_restrict_instruments(True)
        buyer.wallet.set_instrument_allowed(world.settlement.instrument_id(*call), True)
    with boa.reverts("wallet: instrument not allowed"):
        world.settle(b)
    with boa.env.prank(buyer.address):
        buyer.wallet.set_instrument_allowed(world.settlement.instrument_id(*put), True)
    world.settle(b)
    assert world.usdc.balanceOf(seller.wallet.address) == 10_200 * USDC


def test_strategy_single_leg_refused(world: World) -> None:
    call = world.list_option(3_000, True)
    t = world.new_trader(76, usdc=10_000 * USDC, weth=WETH)
    mm = world.new_trader(77, usdc=10_000 * USDC)
    s = t.strategy([(call, False, 1)], WETH, -100 * USDC)
    o = mm.order(call, True, WETH, 100 * USDC)
    with boa.reverts("wallet: strategy needs two legs"):
        world.settle(
            batch(
                [order_item(mm, call, o, WETH, 100 * USDC)],
                [strategy_item(t, [call], s, WETH, [100 * USDC])],
            )
        )


def test_cancel_below_bounds_and_views(world: World) -> None:
    t = world.new_trader(78)
    with boa.env.prank(t.address):
        t.wallet.cancel_below(10)
        assert t.wallet.min_nonce() == 10
        # min_nonce has its own slot (any uint256), read only once it is set
        t.wallet.cancel_below(2**200)
        assert t.wallet.min_nonce() == 2**200
        with boa.reverts("wallet: nonce decreases"):
            t.wallet.cancel_below(2**84)
        t.wallet.set_max_notional(5)
        assert t.wallet.max_notional() == 5
        t.wallet.set_max_notional(2**256 - 1)
        assert t.wallet.max_notional() == 2**256 - 1
    assert t.wallet.owner() == t.address and t.wallet.settlement() == world.settlement.address
    assert t.wallet.factory() == world.factory.address


def test_erc1271_pre_approved_digest(world: World) -> None:
    signer = Key(4343)
    account = load("test/TestERC1271Signer.vy", signer.address)
    wallet = world.wallet_deployer.at(world.factory.create_wallet_for(account.address))
    trader = Trader(signer, wallet)
    world.traders.append(trader)
    with boa.env.prank(world.admin):
        world.weth.mint(wallet.address, WETH)
    buyer = world.new_trader(79, usdc=10_000 * USDC)
    o = trader.order(world.spot, False, WETH, PRICE)
    digest = bytes(wallet.hash_order(o))
    with boa.env.prank(signer.address):
        account.approve_digest(digest)
    junk = b"\x11" * 64 + bytes([27])
    ob = buyer.order(world.spot, True, WETH, PRICE)
    world.settle(
        batch(
            [
                order_item(trader, world.spot, o, WETH, PRICE, signature=ContractSig(junk)),
                order_item(buyer, world.spot, ob, WETH, PRICE),
            ]
        )
    )
    assert world.usdc.balanceOf(wallet.address) == PRICE


def test_wallet_in_orders_and_strategies_of_one_batch(world: World) -> None:
    call = world.list_option(3_000, True)
    put = world.list_option(3_000, False)
    t = world.new_trader(80, usdc=10_000 * USDC)
    mm = world.new_trader(81, usdc=10_000 * USDC, weth=5 * WETH)
    o_t = t.order(world.spot, True, WETH, PRICE)
    s_t = t.strategy([(call, True, 1), (put, True, 1)], WETH, 200 * USDC)
    o_mm = mm.order(world.spot, False, WETH, PRICE)
    s_mm = mm.strategy([(call, False, 1), (put, False, 1)], WETH, -200 * USDC)
    quotes = [110 * USDC, 90 * USDC]
    b = batch(
        [
            order_item(t, world.spot, o_t, WETH, PRICE),
            order_item(mm, world.spot, o_mm, WETH, PRICE),
        ],
        [
            strategy_item(t, [call, put], s_t, WETH, quotes),
            strategy_item(mm, [call, put], s_mm, WETH, quotes),
        ],
    )
    world.settle(b)
    assert world.weth.balanceOf(t.wallet.address) == WETH
    assert world.usdc.balanceOf(t.wallet.address) == 10_000 * USDC - PRICE - 200 * USDC
    assert world.usdc.balanceOf(mm.wallet.address) == 10_000 * USDC + PRICE + 200 * USDC
    assert world.weth.balanceOf(mm.wallet.address) == 4 * WETH
    # the mm's short straddle: 1 WETH cover + 3000 USDC
    assert mm.wallet.margin_status() == (3_000 * USDC, 13_200 * USDC, True)
    assert world.usdc.balanceOf(world.settlement.address) == 0
