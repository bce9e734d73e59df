"""The scenario of the settlement pipeline, end to end on anvil: A's iron condor against B's
opposite condor, A's spot bid taken by a third trader's sell that a DeFi protocol submits with
its API key and the router splits between the internal book and the Uniswap pool; one
settlement transaction settles every leg and the swap; the auditor's verification passes;
every wallet moved exactly what the gateway's fills say."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import register_option, settlement_contract
from gateway.chain.transactions import Sender
from gateway.devnet.catalogue import OPTION_EXPIRY, OPTION_STRIKES, devnet_catalogue
from gateway.devnet.scenario import (
    CONDOR_LEGS,
    Participants,
    Scenario,
    Trader,
    run_hybrid_trade,
)
from gateway.oms.settlement_service import SettlementService
from gateway.settlement.auditor import verify
from tests.chain.settlement_desk import USDC, WETH, Desk, serve_transport
from tests.market_making import MARKET_MAKER
from tests.operator_access import OPERATOR_TOKEN

pytestmark = pytest.mark.chain


def test_the_hybrid_trade_settles_every_leg_in_one_transaction_and_audits_clean(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'e2e.db'}")
    for strike in OPTION_STRIKES:
        for is_call in (True, False):
            register_option(
                deployer, desk.d, int(strike * USDC), int(OPTION_EXPIRY.timestamp()), is_call
            )
    tokens.mint(deployer, desk.d.usdc, desk.buyer_wallet, 5_000 * USDC)
    tokens.mint(deployer, desk.d.usdc, desk.seller_wallet, 1_000 * USDC)
    tokens.mint(deployer, desk.d.weth, desk.third_wallet, 3 * WETH)
    keys = {a.address: Web3.to_hex(a.key) for a in anvil_node.dev_accounts()}
    a = Trader("alice", desk.buyer.address, keys[desk.buyer.address], desk.buyer_wallet)
    b = Trader("bob", desk.seller.address, keys[desk.seller.address], desk.seller_wallet)
    c = Trader("carol", desk.third.address, keys[desk.third.address], desk.third_wallet)
    token_addresses = {"WETH": desk.d.weth, "USDC": desk.d.usdc}

    async def scenario() -> None:
        # the market maker's quotes are unsigned; every trader's order is signed anyway
        rt = desk.runtime(require_signed=False, pool=True)
        # every caller is an isthmus_client with its own credentials and signs for itself
        transport = await serve_transport(rt)
        try:
            hub = rt.market_data
            feed = hub.subscribe(frozenset({"WETH/USDC"}))
            while "uniswap" not in hub.book("WETH/USDC").live_venues:
                await asyncio.wait_for(feed.next(), 30)
            hub.unsubscribe(feed)
            service = rt.settlement
            assert isinstance(service, SettlementService)
            outcomes = []

            async def settle() -> None:
                outcomes.append(await service.run_once())

            async def audit() -> dict[str, Any]:
                report = await asyncio.to_thread(
                    verify, w3, desk.d.settlement, engine=rt.read_engine, tokens=token_addresses
                )
                return report.to_json()

            async with Scenario(
                "http://gw",
                transport=transport,
                operator_token=OPERATOR_TOKEN,
                participants=Participants(a, b, c),
                catalogue=devnet_catalogue(),
                tokens=token_addresses,
                deadline=int(w3.eth.get_block("latest")["timestamp"]) + 3600,
            ) as run:
                report = await run_hybrid_trade(
                    run, w3=w3, market_maker=MARKET_MAKER, settle=settle, audit=audit
                )

            orders = report.orders
            assert orders.condor_a["status"] == "filled" and orders.condor_b["status"] == "filled"
            assert orders.spot_bid["status"] == "filled"
            assert orders.spot_sell["status"] == "filled"
            everything = [orders.condor_a, orders.condor_b, orders.spot_bid, orders.spot_sell]
            assert {o["settlement"] for o in everything} == {"settled"}
            # one batch, one transaction: 4 + 4 condor leg fills, 2 spot fills, 1 pool fill
            assert [(o.batches, o.settled, o.refused) for o in outcomes] == [(1, 11, 0)]
            assert len(report.fills) == 11
            venues = sorted(
                f["venue"] for f in report.fills if f["order_id"] == orders.spot_sell["id"]
            )
            assert venues == ["internal", "uniswap"]
            [tx_hash] = report.tx_hashes
            receipt = w3.eth.get_transaction_receipt(tx_hash)
            contract = settlement_contract(w3, desk.d)
            [batch] = contract.events.BatchSettled().process_receipt(receipt)
            assert (
                batch["args"]["orders"],
                batch["args"]["strategies"],
                batch["args"]["swaps"],
            ) == (
                3,
                2,
                1,
            )
            # to the token unit: each wallet moved what its fills say, options included
            for check in report.wallets:
                assert check.ok, (check.name, check.expected, check.actual)
            alice = next(w for w in report.wallets if w.name == "alice")
            assert {k for k in alice.actual} == {"WETH", "USDC", *(s for s, _ in CONDOR_LEGS)}
            # the auditor: every on-chain fill signed by its owner, matched to the store
            assert report.audit["ok"], [f["problems"] for f in report.audit["fills"] if not f["ok"]]
            assert report.audit["counts"]["fills_with_problems"] == 0
            assert report.ok
        finally:
            await rt.stop()

    asyncio.run(scenario())
