"""kill -9 the real gateway process at random points while signed trades are matched and
settled on anvil; after every restart the pipeline carries on, and in the end every fill is
settled exactly once: each one has its own on-chain Fill log, none has two, and the wallets'
balances moved by exactly what the fills say."""

from __future__ import annotations

import asyncio
import json
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.chain.deploy import DeployConfig, create_wallet, deploy_all
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.settlement_abi import quote_amount
from gateway.chain.transactions import Sender, connect
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.orders import OrderSignature, OrderSpec, OrderType, Side, TimeInForce
from gateway.settlement import eip712
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import OPERATOR_HEADERS

pytestmark = [pytest.mark.slow, pytest.mark.chain]
WETH, USDC = 10**18, 10**6
RUNS = 20
TRADES_PER_RUN = 3


def test_kill_minus_nine_during_settlement_settles_every_fill_exactly_once(
    tmp_path: Path,
) -> None:
    node = Anvil(AnvilConfig()).start()
    try:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        deployer, settler = Sender(w3, accounts[0]), accounts[9]
        d = deploy_all(deployer, DeployConfig(operators=(settler.address,)))
        seller, buyer = accounts[3], accounts[4]
        seller_wallet = create_wallet(deployer, d, seller.address)
        buyer_wallet = create_wallet(deployer, d, buyer.address)
        tokens.mint(deployer, d.weth, seller_wallet, 100 * WETH)
        tokens.mint(deployer, d.usdc, buyer_wallet, 1_000_000 * USDC)
        before = {
            w: (tokens.balance_of(w3, d.weth, w), tokens.balance_of(w3, d.usdc, w))
            for w in (seller_wallet, buyer_wallet)
        }
        config = (
            f'[chain]\nrpc_url = "{node.rpc_url}"\nsettlement = "{d.settlement}"\n'
            f'operator_key_env = "ISTHMUS_TEST_SETTLER_KEY"\n'
            f'tokens = {{ WETH = "{d.weth}", USDC = "{d.usdc}" }}\n'
            '[[venues]]\nkind = "internal"\n'
        )
        gateway = GatewayProcess(
            f"sqlite:///{tmp_path / 'crash.db'}",
            env={
                "ISTHMUS_TEST_SETTLER_KEY": Web3.to_hex(settler.key),
                "ISTHMUS_REQUIRE_SIGNED_ORDERS": "true",
                "ISTHMUS_RISK_ORDERS_PER_SECOND": "1000",
                "ISTHMUS_RISK_ORDER_BURST": "1000",
            },
            config=config,
        )
        onchain = OnchainOrders(devnet_catalogue(), {"WETH": d.weth, "USDC": d.usdc})
        chain_id = int(w3.eth.chain_id)
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        nonce = 0

        def signed(
            account: Any, wallet: str, cid: str, side: Side, qty: str, price: str, tif: TimeInForce
        ) -> dict[str, Any]:
            nonlocal nonce
            nonce += 1
            spec = OrderSpec(
                wallet,
                cid,
                side,
                OrderType.LIMIT,
                Decimal(qty),
                tif,
                instrument="WETH/USDC",
                price=Decimal(price),
            )
            order = onchain.order(spec, OrderSignature(nonce, deadline, b""))
            signature = eip712.sign_order(order, account.key, chain_id, wallet)
            return {
                "account": wallet,
                "client_order_id": cid,
                "instrument": "WETH/USDC",
                "side": side.value,
                "quantity": qty,
                "price": price,
                "time_in_force": tif.value,
                "signature": {
                    "nonce": str(nonce),
                    "deadline": deadline,
                    "signature": "0x" + signature.hex(),
                },
            }

        rng = random.Random(20261125)
        takers: list[str] = []
        makers: list[str] = []

        async def run(n: int) -> None:
            async with httpx.AsyncClient(
                base_url=gateway.url, timeout=30, headers=OPERATOR_HEADERS
            ) as http:
                for t in range(TRADES_PER_RUN):
                    qty = f"0.0{rng.randint(1, 9)}"
                    price = str(3000 + rng.randint(-5, 5))
                    maker = signed(
                        seller, seller_wallet, f"m{n}-{t}", Side.SELL, qty, price, TimeInForce.GTC
                    )
                    taker = signed(
                        buyer, buyer_wallet, f"t{n}-{t}", Side.BUY, qty, price, TimeInForce.IOC
                    )
                    made = await http.post("/v1/orders", json=maker)
                    assert made.status_code in (200, 201), made.text
                    makers.append(made.json()["id"])
                    took = await http.post("/v1/orders", json=taker)
                    assert took.status_code in (200, 201), took.text
                    assert took.json()["status"] == "filled", took.text
                    takers.append(took.json()["id"])

        for n in range(RUNS):
            gateway.start()
            asyncio.run(run(n))
            # somewhere in what follows: the outbox read, the batch commit, the simulation,
            # the broadcast, the receipt, the write of the outcome
            time.sleep(rng.uniform(0, 0.15))  # fault injection, not synchronisation
            gateway.kill()

        gateway.start()  # the last restart finishes what is left
        try:

            async def settled() -> list[dict[str, Any]]:
                """Listen for settlements first, then read where every fill stands; wait on
                the stream for the ones still pending."""
                url = gateway.url.replace("http", "ws") + "/v1/stream"
                async with (
                    websockets.connect(url, additional_headers=OPERATOR_HEADERS) as socket,
                    httpx.AsyncClient(
                        base_url=gateway.url, timeout=30, headers=OPERATOR_HEADERS
                    ) as http,
                ):
                    assert json.loads(await socket.recv())["type"] == "subscribed"
                    await socket.send(
                        json.dumps(
                            {
                                "op": "subscribe",
                                "accounts": [buyer_wallet.lower(), seller_wallet.lower()],
                            }
                        )
                    )
                    while json.loads(await socket.recv())["type"] != "subscribed":
                        pass  # events sent before our subscription took effect
                    fills = []
                    for order_id in makers + takers:
                        fills += (await http.get(f"/v1/orders/{order_id}/fills")).json()
                    waiting = {f["id"] for f in fills if f["settlement"] != "settled"}
                    while waiting:
                        event = json.loads(await socket.recv())
                        if event["type"] == "fill.settled":
                            waiting.discard(event["fill"]["id"])
                    fills = []
                    for order_id in makers + takers:
                        fills += (await http.get(f"/v1/orders/{order_id}/fills")).json()
                    return fills

            fills = asyncio.run(asyncio.wait_for(settled(), 120))
        finally:
            gateway.stop()

        assert len(fills) == 2 * RUNS * TRADES_PER_RUN  # none lost, none doubled
        # every fill has its own Fill log on chain, and no log is claimed twice
        logs = {(f["tx_hash"], f["log_index"]) for f in fills}
        assert len(logs) == len(fills)
        settlement = w3.eth.contract(
            address=d.settlement,
            abi=[
                {
                    "anonymous": False,
                    "name": "Fill",
                    "type": "event",
                    "inputs": [
                        {"indexed": True, "name": "batch_id", "type": "uint256"},
                        {"indexed": True, "name": "wallet", "type": "address"},
                        {"indexed": True, "name": "digest", "type": "bytes32"},
                        {"indexed": False, "name": "instrument", "type": "bytes32"},
                        {"indexed": False, "name": "is_buy", "type": "bool"},
                        {"indexed": False, "name": "amount", "type": "uint256"},
                        {"indexed": False, "name": "quote", "type": "uint256"},
                    ],
                }
            ],
        )
        on_chain = settlement.events.Fill.get_logs(from_block=0)
        assert len(on_chain) == len(fills)  # the chain settled each fill once, no more
        bought = sum(int(Decimal(f["quantity"]) * WETH) for f in fills if f["side"] == "buy")
        paid = sum(
            quote_amount(int(Decimal(f["quantity"]) * WETH), int(Decimal(f["price"]) * USDC), 18)
            for f in fills
            if f["side"] == "buy"
        )
        weth, usdc = (
            tokens.balance_of(w3, d.weth, buyer_wallet),
            tokens.balance_of(w3, d.usdc, buyer_wallet),
        )
        assert (weth, usdc) == (before[buyer_wallet][0] + bought, before[buyer_wallet][1] - paid)
        weth, usdc = (
            tokens.balance_of(w3, d.weth, seller_wallet),
            tokens.balance_of(w3, d.usdc, seller_wallet),
        )
        assert (weth, usdc) == (before[seller_wallet][0] - bought, before[seller_wallet][1] + paid)
    finally:
        node.stop()
