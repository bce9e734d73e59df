"""One settled world for the audit tests: an anvil chain, the contracts, two traders' wallets
and a gateway that matched and settled real signed trades on it (two spot trades, the second
filling the rest of the first's resting order in another batch, and a call spread bought
from the wallet that sells it). Tests tamper with copies of its database, never with it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gateway.api.schemas import OrderIn, StrategyIn
from gateway.chain import tokens
from gateway.chain.anvil import Anvil, AnvilConfig, find_anvil_binary
from gateway.chain.deploy import (
    DeployConfig,
    Deployment,
    create_wallet,
    deploy_all,
    register_option,
)
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.transactions import Sender, connect
from gateway.config import Settings
from gateway.devnet.catalogue import OPTION_EXPIRY, devnet_catalogue
from gateway.domain.orders import Order, OrderSignature
from gateway.oms.order_signatures import OrderSignatures
from gateway.oms.service import SystemClock
from gateway.oms.settlement_service import SettlementService, settlement_factory
from gateway.runtime import Runtime
from gateway.settlement import eip712
from tests.market_making import make_market

USDC, WETH = 10**6, 10**18
OPERATOR_TOKEN = "audit-tests-operator-token"
C3000, C3200 = "WETH-20270326-3000-C", "WETH-20270326-3200-C"


@dataclass
class SettledWorld:
    rpc_url: str
    w3: Web3
    d: Deployment
    owner: LocalAccount  # deployed everything; mints the test tokens
    settler: LocalAccount
    seller: LocalAccount
    buyer: LocalAccount
    seller_wallet: str
    buyer_wallet: str
    database: Path
    orders: dict[str, Order] = field(default_factory=dict)  # by name
    nonce: int = 0

    @property
    def tokens(self) -> dict[str, str]:
        return {"WETH": self.d.weth, "USDC": self.d.usdc}

    def runtime(self, database_url: str, *, chain: bool = True) -> Runtime:
        catalogue, clock = devnet_catalogue(), SystemClock()
        onchain = OnchainOrders(catalogue, self.tokens)
        return Runtime.build(
            # the operator token is what API tests authenticate with (access control)
            Settings(database_url=database_url, operator_token=OPERATOR_TOKEN),
            catalogue=catalogue,
            clock=clock,
            signatures=OrderSignatures(self.w3, onchain, clock) if chain else None,
            settlement=settlement_factory(
                self.rpc_url, Web3.to_hex(self.settler.key), self.d.settlement, onchain
            )
            if chain
            else None,
        )

    def copy_database(self, directory: Path) -> str:
        """A copy of the settled store (the SQLite backup API, so the WAL comes too)."""
        target = directory / "copy.db"
        with sqlite3.connect(self.database) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        return f"sqlite:///{target}"


async def _sign_and_submit(
    world: SettledWorld, rt: Runtime, trader: LocalAccount, body: dict[str, Any]
) -> Order:
    """What a wallet app and POST /v1/orders (or /v1/strategies) do: the spec from the API's
    own schema, the owner's EIP-712 signature of it, the gateway's signature check, submit."""
    world.nonce += 1
    schema = StrategyIn if "legs" in body else OrderIn
    deadline = int(world.w3.eth.get_block("latest")["timestamp"]) + 3600
    unsigned = schema.model_validate(body).to_spec()
    onchain = OnchainOrders(rt.orders.catalogue, world.tokens)
    digest = onchain.digest(
        unsigned, OrderSignature(world.nonce, deadline, b""), world.w3.eth.chain_id
    )
    signature = eip712.sign_digest(digest, trader.key)
    body["signature"] = {
        "nonce": str(world.nonce),
        "deadline": deadline,
        "signature": "0x" + signature.hex(),
    }
    spec = schema.model_validate(body).to_spec()
    await rt.check_signature(spec)
    submitted = await rt.orders.submit(spec)
    return await rt.orders.get(submitted.order.id)


async def _trade(world: SettledWorld) -> None:
    rt = world.runtime(f"sqlite:///{world.database}")
    await rt.start(
        expiry_interval=None,
        monitor=False,
        algos=False,
        reconcile_interval=None,
        settle_interval=None,
    )  # the test drives settlement
    try:
        service = rt.settlement
        assert isinstance(service, SettlementService)
        spot = {"instrument": "WETH/USDC"}
        seller, buyer = world.seller_wallet, world.buyer_wallet
        world.orders["ask"] = await _sign_and_submit(
            world,
            rt,
            world.seller,
            {
                "account": seller,
                "client_order_id": "ask",
                "side": "sell",
                "quantity": "1.5",
                "price": "3000.25",
                **spot,
            },
        )
        world.orders["bid"] = await _sign_and_submit(
            world,
            rt,
            world.buyer,
            {
                "account": buyer,
                "client_order_id": "bid",
                "side": "buy",
                "quantity": "1",
                "price": "3001",
                "time_in_force": "ioc",
                **spot,
            },
        )
        assert (await service.run_once()).settled == 2
        world.orders["bid2"] = await _sign_and_submit(
            world,
            rt,
            world.buyer,
            {
                "account": buyer,
                "client_order_id": "bid2",
                "side": "buy",
                "quantity": "0.5",
                "price": "3000.25",
                "time_in_force": "ioc",
                **spot,
            },
        )
        assert (await service.run_once()).settled == 2  # the rest of the ask, a new batch
        for instrument, bid, ask in ((C3000, "300", "310"), (C3200, "200", "210")):
            await make_market(rt, instrument, bid, ask, "5")
        legs = [
            {"instrument": C3000, "side": "buy", "ratio": 1},
            {"instrument": C3200, "side": "sell", "ratio": 1},
        ]
        world.orders["offer"] = await _sign_and_submit(
            world,
            rt,
            world.seller,
            {
                "account": seller,
                "client_order_id": "offer",
                "side": "sell",
                "quantity": "1",
                "price": "100",
                "legs": legs,
            },
        )
        world.orders["spread"] = await _sign_and_submit(
            world,
            rt,
            world.buyer,
            {
                "account": buyer,
                "client_order_id": "spread",
                "side": "buy",
                "quantity": "1",
                "price": "105",
                "legs": legs,
            },
        )
        assert world.orders["spread"].status.value == "filled"
        assert (await service.run_once()).settled == 4  # four legs, one transaction
    finally:
        await rt.stop()


@pytest.fixture(scope="session")
def settled_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SettledWorld]:
    find_anvil_binary()  # a missing anvil is a broken set-up: fail, never skip
    with Anvil(AnvilConfig()) as node:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        deployer = Sender(w3, accounts[0])
        settler, seller, buyer = accounts[6], accounts[3], accounts[4]
        d = deploy_all(deployer, DeployConfig(operators=(settler.address,)))
        seller_wallet = create_wallet(deployer, d, seller.address)
        buyer_wallet = create_wallet(deployer, d, buyer.address)
        tokens.mint(deployer, d.weth, seller_wallet, 5 * WETH)
        tokens.mint(deployer, d.usdc, seller_wallet, 5_000 * USDC)
        tokens.mint(deployer, d.usdc, buyer_wallet, 20_000 * USDC)
        for strike in (3000, 3200):
            register_option(deployer, d, strike * USDC, int(OPTION_EXPIRY.timestamp()), True)
        world = SettledWorld(
            node.rpc_url,
            w3,
            d,
            accounts[0],
            settler,
            seller,
            buyer,
            seller_wallet,
            buyer_wallet,
            tmp_path_factory.mktemp("audit") / "settled.db",
        )
        asyncio.run(_trade(world))
        yield world
