"""A deployed Isthmus world with an option writer and a buyer, and the helpers that make
them trade options through real signed batches (`Settlement.settle`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.api.app import create_app
from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import Deployment, create_wallet, deploy_all, register_option
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.transactions import Sender
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.oms.order_signatures import OrderSignatures
from gateway.oms.service import SystemClock
from gateway.risk.wallet_margin import OptionFill
from gateway.runtime import Runtime
from gateway.settlement import eip712
from gateway.settlement.eip712 import Order
from tests.operator_access import OPERATOR_TOKEN, operator_headers

USDC = 10**6
WETH = 10**18
DAY = 86_400


@dataclass
class World:
    w3: Web3
    operator: Sender
    d: Deployment
    writer: LocalAccount
    buyer: LocalAccount
    writer_wallet: str
    buyer_wallet: str
    expiry: int
    nonce: int = 0

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce


@pytest.fixture
def world(w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3) -> World:
    d = deploy_all(deployer)  # WETH counts as collateral at 80% (haircut 2,000 bps)
    writer, buyer = anvil_node.dev_accounts()[3:5]
    writer_wallet = create_wallet(deployer, d, writer.address)
    buyer_wallet = create_wallet(deployer, d, buyer.address)
    tokens.mint(deployer, d.weth, writer_wallet, 2 * WETH)
    tokens.mint(deployer, d.usdc, writer_wallet, 500 * USDC)
    tokens.mint(deployer, d.usdc, buyer_wallet, 100_000 * USDC)
    expiry = int(w3.eth.get_block("latest")["timestamp"]) + 30 * DAY
    return World(w3, deployer, d, writer, buyer, writer_wallet, buyer_wallet, expiry)


def option(world: World, strike: int, is_call: bool, expiry: int | None = None) -> abi.Instrument:
    expiry = expiry or world.expiry
    register_option(world.operator, world.d, strike, expiry, is_call)
    return abi.Instrument.option(world.d.weth, world.d.usdc, strike, expiry, is_call)


def trade(
    world: World, ins: abi.Instrument, amount: int, premium: int, batch_id: int
) -> tuple[list[OptionFill], list[OptionFill], tuple[Any, ...]]:
    """The writer sells `amount` of `ins` to the buyer at `premium` per whole WETH; returns
    each side's fills (for the mirror) and the batch."""
    w3 = world.w3
    chain_id = w3.eth.chain_id
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    quote = abi.quote_amount(amount, premium, 18)
    sell = Order(ins.id, False, amount, premium, world.next_nonce(), deadline)
    buy = Order(ins.id, True, amount, premium, world.next_nonce(), deadline)
    batch = (
        abi.BatchBuilder(batch_id)
        .add_order(
            world.writer_wallet,
            ins,
            sell,
            eip712.sign_order(sell, world.writer.key, chain_id, world.writer_wallet),
            amount,
            quote,
        )
        .add_order(
            world.buyer_wallet,
            ins,
            buy,
            eip712.sign_order(buy, world.buyer.key, chain_id, world.buyer_wallet),
            amount,
            quote,
        )
        .build()
    )

    def fill(is_buy: bool) -> OptionFill:
        return OptionFill(
            ins.base, ins.expiry, ins.strike, ins.is_call, is_buy, amount, quote, ins.quote
        )

    return [fill(False)], [fill(True)], batch


@asynccontextmanager
async def signed_gateway(
    world: World, database: Path, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway checking signatures against the world's chain (more `settings` as
    given), called with the operator's token."""
    unknown = set(settings) - set(Settings.model_fields)
    assert not unknown, f"not settings: {unknown}"  # Settings ignores unknown names
    clock = SystemClock()
    catalogue = devnet_catalogue()
    signatures = OrderSignatures(
        world.w3, OnchainOrders(catalogue, {"WETH": world.d.weth, "USDC": world.d.usdc}), clock
    )
    rt = Runtime.build(
        Settings(database_url=f"sqlite:///{database}", operator_token=OPERATOR_TOKEN, **settings),
        catalogue=catalogue,
        clock=clock,
        signatures=signatures,
    )
    app = create_app(runtime=rt)
    app.state.runtime = rt
    await rt.start(expiry_interval=None, monitor=False, algos=False, reconcile_interval=None)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=operator_headers()
        ) as http:
            yield http
    finally:
        await rt.stop()
