"""`read_wallet_state` on a real anvil world: real option positions opened by signed batches
through `Settlement.settle`; the mirror's `margin_status` equals the contract's, and
`apply_fills` predicted the state the batch produced."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractLogicError

from gateway.chain import settlement_abi as abi
from gateway.chain.deploy import (
    WALLET_SEED_UNIT,
    aggregator_contract,
    settlement_contract,
    wallet_contract,
)
from gateway.chain.wallet_state import WalletStateError, read_margin_status, read_wallet_state
from gateway.risk.wallet_margin import (
    MarginReverts,
    OptionFill,
    SeriesPosition,
    apply_fills,
    margin_status,
)
from gateway.settlement import eip712
from gateway.settlement.eip712 import Order
from tests.chain.option_world import DAY, USDC, WETH, World, option, trade

pytestmark = pytest.mark.chain


def assert_mirror_matches(world: World, wallet: str) -> None:
    state = read_wallet_state(world.w3, wallet, world.d.settlement)
    assert margin_status(state) == read_margin_status(world.w3, wallet)


def test_wallet_without_positions(world: World) -> None:
    state = read_wallet_state(world.w3, world.writer_wallet, world.d.settlement)
    assert state.positions == ()
    assert state.option_quote == world.d.usdc.lower()  # the settlement's: never traded options
    # the funding plus the unit of each token the factory seeded the wallet with
    assert state.balance(world.d.usdc) == WALLET_SEED_UNIT + 500 * USDC
    assert state.balance(world.d.weth) == WALLET_SEED_UNIT + 2 * WETH
    [weth] = state.collateral
    assert (weth.token, weth.unit, weth.haircut_bps) == (world.d.weth.lower(), WETH, 2_000)
    assert weth.price == 3_000 * USDC
    assert margin_status(state) == read_margin_status(world.w3, world.writer_wallet)
    assert margin_status(state) == (0, 0, True)
    with pytest.raises(WalletStateError):
        read_wallet_state(world.w3, world.writer_wallet, world.d.weth)


def test_positions_opened_by_real_batches(world: World) -> None:
    w3, d = world.w3, world.d
    settlement = settlement_contract(w3, d)
    call, put = option(world, 3_000 * USDC, True), option(world, 3_000 * USDC, False)
    later_put = option(world, 2_500 * USDC, False, world.expiry + 7 * DAY)

    # 1. a short straddle on 1 WETH: cover 1 WETH, 3,000 USDC required; the writer holds
    #    500 + 2 x 150 premium USDC, the second WETH counts at 80% x 3,000 = 2,400
    before = {
        wallet: read_wallet_state(w3, wallet, d.settlement)
        for wallet in (world.writer_wallet, world.buyer_wallet)
    }
    block_before = w3.eth.block_number
    writer_fills: list[OptionFill] = []
    buyer_fills: list[OptionFill] = []
    for batch_id, ins in ((1, call), (2, put)):
        w_fills, b_fills, batch = trade(world, ins, WETH, 150 * USDC, batch_id)
        world.operator.transact(settlement.functions.settle(batch))
        writer_fills += w_fills
        buyer_fills += b_fills
    predicted_writer = apply_fills(before[world.writer_wallet], writer_fills)
    predicted_buyer = apply_fills(before[world.buyer_wallet], buyer_fills)
    writer_state = read_wallet_state(w3, world.writer_wallet, d.settlement)
    buyer_state = read_wallet_state(w3, world.buyer_wallet)
    assert writer_state == predicted_writer
    assert buyer_state == predicted_buyer
    assert writer_state.positions == (
        SeriesPosition(d.weth, world.expiry, 3_000 * USDC, True, -WETH),
        SeriesPosition(d.weth, world.expiry, 3_000 * USDC, False, -WETH),
    )
    # + the seeded USDC unit (the seeded wei of WETH is worth less than one USDC unit)
    seeded = WALLET_SEED_UNIT
    assert margin_status(writer_state) == (3_000 * USDC, seeded + 800 * USDC + 2_400 * USDC, True)
    assert_mirror_matches(world, world.writer_wallet)
    assert_mirror_matches(world, world.buyer_wallet)
    # the reader is block-consistent: at the earlier block it sees the earlier state
    assert (
        read_wallet_state(w3, world.writer_wallet, block_identifier=block_before)
        == (before[world.writer_wallet])
    )

    # 2. a second series: the pre-trade check says a further short put of 1 WETH fails margin
    #    (5,500 required), and the batch does revert; a smaller one passes, and settles
    w_fills, _, batch = trade(world, later_put, WETH, 10 * USDC, 3)
    assert not margin_status(apply_fills(writer_state, w_fills)).ok
    with pytest.raises(ContractLogicError, match="wallet: margin"):
        world.operator.transact(settlement.functions.settle(batch))
    world.operator.reset_nonce()
    amount = WETH // 100  # 25 more required; 3,025 <= 800.1 + 2,400
    w_fills, _, batch = trade(world, later_put, amount, 10 * USDC, 4)
    predicted = apply_fills(writer_state, w_fills)
    assert margin_status(predicted).ok
    world.operator.transact(settlement.functions.settle(batch))
    writer_state = read_wallet_state(w3, world.writer_wallet)
    assert writer_state == predicted
    assert len(writer_state.positions) == 3
    assert_mirror_matches(world, world.writer_wallet)
    assert_mirror_matches(world, world.buyer_wallet)

    # 3. the buyer closes its call: the position leaves the open list the contract's way
    chain_id = w3.eth.chain_id
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    quote = abi.quote_amount(WETH, 100 * USDC, 18)
    buyer_sells = Order(call.id, False, WETH, 100 * USDC, world.next_nonce(), deadline)
    writer_buys = Order(call.id, True, WETH, 100 * USDC, world.next_nonce(), deadline)
    batch = (
        abi.BatchBuilder(6)
        .add_order(
            world.buyer_wallet,
            call,
            buyer_sells,
            eip712.sign_order(buyer_sells, world.buyer.key, chain_id, world.buyer_wallet),
            WETH,
            quote,
        )
        .add_order(
            world.writer_wallet,
            call,
            writer_buys,
            eip712.sign_order(writer_buys, world.writer.key, chain_id, world.writer_wallet),
            WETH,
            quote,
        )
        .build()
    )
    buyer_before = read_wallet_state(w3, world.buyer_wallet)
    writer_before = read_wallet_state(w3, world.writer_wallet)
    world.operator.transact(settlement.functions.settle(batch))
    buyer_after = read_wallet_state(w3, world.buyer_wallet)
    writer_after = read_wallet_state(w3, world.writer_wallet)
    assert buyer_after == buyer_before.after_fill(
        d.weth, world.expiry, 3_000 * USDC, True, False, WETH, quote
    )
    assert writer_after == writer_before.after_fill(
        d.weth, world.expiry, 3_000 * USDC, True, True, WETH, quote
    )
    for after in (buyer_after, writer_after):
        assert [(p.strike, p.is_call) for p in after.positions] == [
            (2_500 * USDC, False),  # the last entry moved into the closed call's slot
            (3_000 * USDC, False),
        ]
    open_ids = wallet_contract(w3, world.writer_wallet).functions.open_positions().call()
    assert [bytes(i) for i in open_ids] == [later_put.id, put.id]
    assert_mirror_matches(world, world.writer_wallet)
    assert_mirror_matches(world, world.buyer_wallet)


def test_unreadable_oracle_reverts_on_both_sides(world: World) -> None:
    w3, d = world.w3, world.d
    settlement = settlement_contract(w3, d)
    put = option(world, 3_000 * USDC, False)
    _, _, batch = trade(world, put, WETH, 150 * USDC, 1)
    world.operator.transact(settlement.functions.settle(batch))
    # the writer's quote (650) is short of 3,000: its WETH must be priced
    world.operator.transact(aggregator_contract(w3, d).functions.set_answer(0))
    state = read_wallet_state(w3, world.writer_wallet)
    assert state.collateral[0].price is None
    with pytest.raises(MarginReverts):
        margin_status(state)
    with pytest.raises(ContractLogicError, match="oracle: bad answer"):
        read_margin_status(w3, world.writer_wallet)
    # the buyer's quote alone covers it (nothing to cover): no oracle read on either side
    assert_mirror_matches(world, world.buyer_wallet)
