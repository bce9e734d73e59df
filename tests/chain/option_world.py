"""A deployed Isthmus world with an option writer and a buyer, and the helpers that make
them trade options through real signed batches (`Settlement.settle`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import Deployment, create_wallet, deploy_all, register_option
from gateway.chain.transactions import Sender
from gateway.risk.wallet_margin import OptionFill
from gateway.settlement import eip712
from gateway.settlement.eip712 import Order

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
