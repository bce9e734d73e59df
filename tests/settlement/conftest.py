"""A deployed Isthmus world for the settlement pipeline tests, on the chain tests' anvil.

The operator is a dedicated dev account (index 5) registered as a Settlement operator, so the
sender's own nonce management never races the deployer's. Every test runs on an
``evm_snapshot`` (``fresh_chain``) and automine is switched back on afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.anvil import Anvil, rpc_call
from gateway.chain.deploy import DeployConfig, Deployment, create_wallet, deploy_all
from gateway.chain.transactions import Sender
from gateway.settlement import eip712
from gateway.settlement.eip712 import Order
from gateway.settlement.items import OrderSettlement, SettlementGroup
from gateway.settlement.sender import FeePolicy, SenderConfig, SettlementSender
from tests.chain.conftest import anvil_node, deployer, fresh_chain, w3  # noqa: F401

PRICE = 3_000 * 10**6  # USDC per WETH
WETH = 10**18


@dataclass
class Trader:
    account: LocalAccount
    wallet: str


@dataclass
class SettlementWorld:
    w3: Web3
    node: Anvil
    deployment: Deployment
    operator: LocalAccount
    buyers: list[Trader]
    sellers: list[Trader]
    spot: abi.Instrument
    nonces: dict[str, int] = field(default_factory=dict)

    def rpc(self, method: str, *params: Any) -> Any:
        return rpc_call(self.node.rpc_url, method, params, timeout=10.0)

    def next_nonce(self, wallet: str) -> int:
        self.nonces[wallet] = self.nonces.get(wallet, 0) + 1
        return self.nonces[wallet]

    def deadline(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"]) + 3600

    def order(
        self, trader: Trader, is_buy: bool, amount: int, item_id: str, *, sign_for: str = ""
    ) -> OrderSettlement:
        order = Order(
            self.spot.id, is_buy, amount, PRICE, self.next_nonce(trader.wallet), self.deadline()
        )
        signature = eip712.sign_order(
            order, trader.account.key, self.w3.eth.chain_id, sign_for or trader.wallet
        )
        quote = abi.quote_amount(amount, PRICE, 18)
        return OrderSettlement(
            item_id,
            trader.wallet,
            self.spot,
            is_buy,
            amount,
            PRICE,
            order.nonce,
            order.deadline,
            signature,
            amount,
            quote,
        )

    def trade(
        self, group_id: str, pair: int = 0, amount: int = WETH, bad: bool = False
    ) -> SettlementGroup:
        """A matched buy and sell (one group); ``bad``: the buy is signed for another wallet."""
        buyer, seller = self.buyers[pair], self.sellers[pair]
        buy = self.order(
            buyer, True, amount, f"{group_id}-buy", sign_for=seller.wallet if bad else ""
        )
        sell = self.order(seller, False, amount, f"{group_id}-sell")
        return SettlementGroup(group_id, (buy, sell))

    def sender(self, **config: Any) -> SettlementSender:
        fees = config.pop("fees", FeePolicy())
        on_progress = config.pop("on_progress", None)
        return SettlementSender(
            self.node.rpc_url,
            self.operator.key,
            self.deployment.settlement,
            self.w3.eth.chain_id,
            fees=fees,
            config=SenderConfig(**{"poll_interval": 0.02, "timeout_seconds": 30.0, **config}),
            on_progress=on_progress,
        )


async def until(condition: Callable[[], Awaitable[bool]], attempts: int = 1_000) -> None:
    """Poll the chain until ``condition`` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


@pytest.fixture
def world(
    w3: Web3,  # noqa: F811
    deployer: Sender,  # noqa: F811
    anvil_node: Anvil,  # noqa: F811
    fresh_chain: Web3,  # noqa: F811
) -> Iterator[SettlementWorld]:
    accounts = anvil_node.dev_accounts()
    operator = accounts[5]
    deployment = deploy_all(deployer, DeployConfig(operators=(operator.address,)))
    buyers, sellers = [], []
    for buyer_account, seller_account in ((accounts[1], accounts[2]), (accounts[3], accounts[4])):
        buyer_wallet = create_wallet(deployer, deployment, buyer_account.address)
        seller_wallet = create_wallet(deployer, deployment, seller_account.address)
        tokens.mint(deployer, deployment.usdc, buyer_wallet, 100_000 * 10**6)
        tokens.mint(deployer, deployment.weth, seller_wallet, 10 * WETH)
        buyers.append(Trader(buyer_account, buyer_wallet))
        sellers.append(Trader(seller_account, seller_wallet))
    world = SettlementWorld(
        w3,
        anvil_node,
        deployment,
        operator,
        buyers,
        sellers,
        abi.Instrument.spot(deployment.weth, deployment.usdc),
    )
    try:
        yield world
    finally:
        world.rpc("evm_setAutomine", True)


def raw_transaction(world: SettlementWorld, tx_hash: str) -> str:
    raw: str = world.rpc("eth_getRawTransactionByHash", tx_hash)
    return raw
