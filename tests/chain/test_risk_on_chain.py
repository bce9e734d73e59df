"""Risk on a real chain: a MarginWallet deployed on anvil, read through web3.

The account risk shows the contract's own margin figures for the wallet, and the pre-trade
check refuses an order (alone, or with the account's working orders) that would leave the
wallet failing the on-chain margin rule, with the mirror's integers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.deploy import (
    WALLET_SEED_UNIT,
    aggregator_contract,
    create_wallet,
    deploy_all,
    settlement_contract,
)
from gateway.chain.transactions import Sender
from gateway.chain.wallet_state import read_margin_status
from gateway.chain.wallets import ChainWallets
from gateway.config import Settings
from gateway.domain.market import BookLevel, OrderBook
from gateway.domain.orders import OrderSpec, OrderType, Side
from gateway.risk.pretrade import PreTradeRejected
from gateway.runtime import Runtime
from tests.chain.option_world import USDC, WETH, World, option, trade
from tests.conftest import ManualClock
from tests.market_making import make_market

pytestmark = pytest.mark.chain
PUT = "WETH-20270326-3000-P"


def book(instrument: str, bid: str, ask: str) -> OrderBook:
    return OrderBook(
        "internal",
        instrument,
        (BookLevel(Decimal(bid), Decimal(10)),),
        (BookLevel(Decimal(ask), Decimal(10)),),
        datetime.now(UTC),
    )


def sell_puts(wallet: str, n: int, quantity: str) -> OrderSpec:
    return OrderSpec(
        wallet,
        f"puts-{n}",
        Side.SELL,
        OrderType.LIMIT,
        Decimal(quantity),
        instrument=PUT,
        price=Decimal(100),
    )


def test_onchain_margin_in_reports_and_pre_trade(
    fresh_chain: Web3, deployer: Sender, tmp_path: Path
) -> None:
    w3 = fresh_chain
    deployment = deploy_all(deployer)
    owner = w3.eth.accounts[3]
    wallet = create_wallet(deployer, deployment, owner)
    tokens.mint(deployer, deployment.usdc, wallet, 5_000 * 10**6)  # 5,000 USDC, no WETH

    async def scenario() -> None:
        wallets = ChainWallets(w3, deployment.settlement, fresh_for_seconds=0)
        rt = Runtime.build(
            Settings(database_url=f"sqlite:///{tmp_path / 'chain.db'}"),
            clock=ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC)),
            wallets=wallets,
        )
        await rt.start(expiry_interval=None, monitor=False)
        try:
            await make_market(rt, "WETH/USDC", "2999", "3001")
            await make_market(rt, PUT, "95", "105")

            report = await rt.risk.account(wallet)
            assert report.onchain is not None
            assert tuple(report.onchain) == read_margin_status(w3, wallet)  # the contract
            assert tuple(report.onchain) == (0, 0, True)  # no option: the rule returns early
            usdc = {c.asset: c.amount for c in await wallets.collateral(wallet)}
            # the funding plus the unit of each token the factory seeded the wallet with
            seeded = Decimal(WALLET_SEED_UNIT)
            assert usdc == {"USDC": 5000 + seeded / 10**6, "WETH": seeded / 10**18}
            assert wallets.token("WETH") == deployment.weth

            # the what-if answers the contract's rule once the proposal settles (the mirror):
            # one short put locks 3,000 USDC and brings 100
            proposal = await rt.risk.what_if(sell_puts(wallet, 0, "1"))
            assert proposal.before.onchain is not None and proposal.after.onchain is not None
            assert tuple(proposal.before.onchain) == (0, 0, True)
            required, available, ok = proposal.after.onchain
            assert required == 3_000 * 10**6 and ok
            assert available == 5_100 * 10**6 + WALLET_SEED_UNIT
            # one short put needs 3,000 USDC less the 100 received: passes
            await rt.orders.submit(sell_puts(wallet, 1, "1"))
            # two alone would need 6,000 against 5,000 + 200: refused
            with pytest.raises(PreTradeRejected) as alone:
                await rt.orders.submit(sell_puts(wallet, 2, "2"))
            assert alone.value.code == "insufficient_margin"
            assert (
                "need 6000000000" in alone.value.message
                and f"have {5_200_000_000 + WALLET_SEED_UNIT}" in alone.value.message
            )
            # one more fits alone (3,000 against 5,100) but not with the first still working
            with pytest.raises(PreTradeRejected) as together:
                await rt.orders.submit(sell_puts(wallet, 3, "1"))
            assert together.value.code == "insufficient_margin"
            assert "need 6000000000" in together.value.message
            # half of one fits with the first: 4,500 against 5,150
            await rt.orders.submit(sell_puts(wallet, 4, "0.5"))

            # an address that is not a wallet has no on-chain figures and no projection
            stranger = Web3.to_checksum_address(w3.eth.accounts[4])
            assert (await rt.risk.account(stranger)).onchain is None
            await rt.orders.submit(sell_puts(stranger, 5, "1"))
        finally:
            await rt.stop()

    asyncio.run(scenario())


def test_the_margin_call_price_is_where_the_contract_flips(world: World, tmp_path: Path) -> None:
    """A short straddle settled on chain: the report's WETH margin-call price is the oracle
    price at which the deployed wallet's own margin_status() stops passing."""
    w3, d = world.w3, world.d
    settlement = settlement_contract(w3, d)
    for batch_id, is_call in ((1, True), (2, False)):
        ins = option(world, 3_000 * USDC, is_call)
        _, _, batch = trade(world, ins, WETH, 150 * USDC, batch_id)
        world.operator.transact(settlement.functions.settle(batch))
    # required 3,000 USDC; held 800 USDC and 2 WETH, one of them cover for the short call,
    # plus the unit of each the factory seeded: the free WETH at 80% must bring 2,199.999999,
    # i.e. a WETH price of 2,749.999999 (2,749.99999875 rounded up to a USDC unit)
    flip = 2_750 * USDC - 1

    async def report() -> Any:
        rt = Runtime.build(
            Settings(database_url=f"sqlite:///{tmp_path / 'calls.db'}"),
            clock=ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC)),
            wallets=ChainWallets(w3, d.settlement, fresh_for_seconds=0),
        )
        await rt.start(expiry_interval=None, monitor=False)
        try:
            await make_market(rt, "WETH/USDC", "2999", "3001")
            return await rt.risk.account(world.writer_wallet)
        finally:
            await rt.stop()

    result = asyncio.run(report())
    call = result.margin_calls["WETH"]
    assert call.outcome.value == "passes_above" and call.threshold == flip
    assert result.onchain == (3_000 * USDC, 3_200 * USDC + WALLET_SEED_UNIT, True)
    feed = aggregator_contract(w3, d)
    scale = 10 ** (feed.functions.decimals().call() - 6)  # feed decimals vs USDC's
    world.operator.transact(feed.functions.set_answer(flip * scale))
    assert read_margin_status(w3, world.writer_wallet)[2] is True
    world.operator.transact(feed.functions.set_answer((flip - 1) * scale))
    assert read_margin_status(w3, world.writer_wallet)[2] is False
