"""End-to-end latency of the pipeline on devnet: from the taker's order submit (signature
check, risk, the internal book's match, the commit) to the confirmed on-chain settlement of
the trade (`fill.settled` for the taker's fill), with anvil automining.

Baseline, measured in the same run on the same chain: the bare chain round trip of settling
one equivalent pre-built batch with the same sender (simulate, send, receipt), bypassing the
gateway. The ratio says what the gateway adds around the chain. Trades are one at a time
(latency, not throughput); orders are signed beforehand (a client's work, not the gateway's).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.chain import settlement_abi as abi
from gateway.chain import tokens
from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.chain.deploy import DeployConfig, create_wallet, deploy_all
from gateway.chain.onchain_orders import OnchainOrders
from gateway.chain.transactions import Sender, connect
from gateway.config import Settings
from gateway.devnet.catalogue import devnet_catalogue
from gateway.domain.orders import OrderSignature, OrderSpec, OrderType, Side, TimeInForce
from gateway.oms.order_signatures import OrderSignatures
from gateway.oms.service import SystemClock
from gateway.oms.settlement_service import SettlementService, settlement_factory
from gateway.runtime import Runtime
from gateway.settlement import eip712
from gateway.settlement.items import OrderSettlement, SettlementGroup

WETH, USDC = 10**18, 10**6


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _measure(trades: int) -> dict[str, Any]:
    node = Anvil(AnvilConfig()).start()
    try:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        deployer, settler = Sender(w3, accounts[0]), accounts[9]
        d = deploy_all(deployer, DeployConfig(operators=(settler.address,)))
        seller, buyer = accounts[3], accounts[4]
        seller_wallet = create_wallet(deployer, d, seller.address)
        buyer_wallet = create_wallet(deployer, d, buyer.address)
        tokens.mint(deployer, d.weth, seller_wallet, 10_000 * WETH)
        tokens.mint(deployer, d.usdc, buyer_wallet, 100_000_000 * USDC)
        chain_id = int(w3.eth.chain_id)
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        catalogue, clock = devnet_catalogue(), SystemClock()
        onchain = OnchainOrders(catalogue, {"WETH": d.weth, "USDC": d.usdc})
        nonce = 0

        def signed(account: Any, wallet: str, cid: str, side: Side, tif: TimeInForce) -> OrderSpec:
            nonlocal nonce
            nonce += 1
            spec = OrderSpec(
                wallet,
                cid,
                side,
                OrderType.LIMIT,
                Decimal("0.01"),
                tif,
                instrument="WETH/USDC",
                price=Decimal(3000),
            )
            blank = OrderSignature(nonce, deadline, b"")
            signature = eip712.sign_order(onchain.order(spec, blank), account.key, chain_id, wallet)
            return OrderSpec(
                spec.account,
                spec.client_order_id,
                spec.side,
                spec.order_type,
                spec.quantity,
                spec.time_in_force,
                instrument=spec.instrument,
                price=spec.price,
                signed=OrderSignature(nonce, deadline, signature),
            )

        pairs = [
            (
                signed(seller, seller_wallet, f"m{i}", Side.SELL, TimeInForce.GTC),
                signed(buyer, buyer_wallet, f"t{i}", Side.BUY, TimeInForce.IOC),
            )
            for i in range(trades + 5)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            rt = Runtime.build(
                Settings(
                    database_url=f"sqlite:///{tmp}/bench.db",
                    require_signed_orders=True,
                    risk_orders_per_second=Decimal(100_000),
                    risk_order_burst=100_000,
                ),
                catalogue=catalogue,
                clock=clock,
                signatures=OrderSignatures(w3, onchain, clock, chain_id=chain_id),
                settlement=settlement_factory(
                    node.rpc_url, Web3.to_hex(settler.key), d.settlement, onchain
                ),
            )
            await rt.start(
                expiry_interval=None,
                monitor=False,
                algos=False,
                reconcile_interval=None,
                settle_interval=1.0,
            )
            try:
                service = rt.settlement
                assert isinstance(service, SettlementService)
                stream = rt.events.subscribe(frozenset({buyer_wallet}))
                latencies: list[float] = []
                for i, (maker, taker) in enumerate(pairs):
                    await rt.check_signature(maker)
                    await rt.orders.submit(maker)
                    started = time.perf_counter()
                    await rt.check_signature(taker)
                    order = (await rt.orders.submit(taker)).order
                    while True:
                        event = await asyncio.wait_for(stream.queue.get(), 30)
                        if (
                            event["type"] == "fill.settled"
                            and event["fill"]["order_id"] == order.id
                        ):
                            break
                    if i >= 5:  # the first trades warm caches and connections up
                        latencies.append((time.perf_counter() - started) * 1000)

                # baseline: the same sender settling pre-built equivalent batches directly
                bare: list[float] = []
                spot = onchain.preimage("WETH/USDC")
                for i in range(trades):
                    maker, taker = (
                        signed(seller, seller_wallet, f"bm{i}", Side.SELL, TimeInForce.GTC),
                        signed(buyer, buyer_wallet, f"bt{i}", Side.BUY, TimeInForce.IOC),
                    )
                    items = []
                    for n, spec in enumerate((maker, taker)):
                        assert spec.signed is not None
                        amount = onchain.amount(catalogue.get("WETH/USDC"), spec.quantity)
                        price = onchain.price(catalogue.get("WETH/USDC"), Decimal(3000))
                        items.append(
                            OrderSettlement(
                                f"b{i}-{n}",
                                spec.account,
                                spot,
                                spec.side is Side.BUY,
                                amount,
                                price,
                                spec.signed.nonce,
                                spec.signed.deadline,
                                spec.signed.signature,
                                amount,
                                abi.quote_amount(amount, price, 18),
                            )
                        )
                    started = time.perf_counter()
                    result = await service.sender.settle(
                        10**30 + i, [SettlementGroup(f"b{i}", tuple(items))]
                    )
                    bare.append((time.perf_counter() - started) * 1000)
                    assert result.batch is not None and result.batch.status.value == "confirmed"
            finally:
                await rt.stop()
    finally:
        node.stop()
    p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
    bare_p50 = statistics.median(bare)
    return {
        "benchmark": "pipeline_end_to_end_latency",
        "chain": "anvil, automine",
        "trades": len(latencies),
        "submit_to_confirmed_settlement_ms": {
            "p50": round(p50, 2),
            "p99": round(p99, 2),
            "max": round(max(latencies), 2),
        },
        "goal_ms": {"p50": 100, "p99": 300},
        "baseline_bare_settle_ms": {
            "p50": round(bare_p50, 2),
            "p99": round(_percentile(bare, 0.99), 2),
        },
        "ratio_p50_vs_bare_settle": round(p50 / bare_p50, 2),
    }


def measure(trades: int = 100) -> dict[str, Any]:
    return asyncio.run(_measure(trades))


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))
