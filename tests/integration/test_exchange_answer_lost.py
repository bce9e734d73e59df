"""The exchange executes a signed order's exchange child, its answer is lost, and the gateway is
killed (-9) and restarted: the child is found once, settles once and is hedged once.

The real gateway process (`isthmus up`) trades on anvil with the contracts deployed, the
operator's inventory wallet configured, and a simulated Binance that it reaches over HTTP with
the real ccxt class. The simulator is cut off right after it executes the child
(`BinanceSim.lose_next_order_answer`): the gateway's `place_order` times out, the child stays
pending, and the reconciler cannot reach the exchange either. The gateway is then killed, the
exchange comes back, and the gateway restarts: at start-up it finds the child by its client
order id and records its fill, which settles against the inventory. A second kill and restart
finds nothing more. In the end:

- recorded once: the trader's order has the exchange part once, and one inventory
  counter-order per exchange fill, sharing its trade id, opposite side, same quantity and price;
- settled once: every fill settled, each on-chain fill claimed once, the auditor's
  verification is ok, and each wallet (trader, buyer, inventory) moved exactly its fills;
- hedged once: the exchange holds one order for the child, and the operator's account there
  moved exactly the exchange part.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from isthmus_client import AsyncIsthmus, NonceStore, OperatorToken
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil, AnvilConfig
from gateway.chain.deploy import DeployConfig, create_wallet, deploy_all
from gateway.chain.transactions import Sender, connect
from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.scenario import Trader, expected_changes
from gateway.domain.venue_child import VenueChildStatus
from tests.integration.exchange_leg import (
    Exchange,
    all_settled,
    audited,
    binance_toml,
    chain_toml,
    gateway_env,
    orders_of,
    start_binance,
    stored_children,
    wait_for_book,
)
from tests.integration.gateway_process import GatewayProcess
from tests.operator_access import OPERATOR_TOKEN, operator_headers

pytestmark = [pytest.mark.slow, pytest.mark.chain]
WETH, USDC = 10**18, 10**6
BID = ("1", "3010")  # the buyer's resting bid on the internal book
SELL = ("2.5", "2900")  # the smart sell: 1 to the bid, 1.5 to Binance's bids (0.5 a level)
ON_EXCHANGE = Decimal("1.5")


@pytest.mark.timeout(300)
def test_a_lost_exchange_answer_then_kill_minus_nine_is_found_settled_and_hedged_once(
    tmp_path: Path,
) -> None:
    node = Anvil(AnvilConfig()).start()
    exchange: Exchange | None = None
    gateway: GatewayProcess | None = None
    try:
        w3 = connect(node.rpc_url)
        accounts = node.dev_accounts()
        deployer, settler, inventory_owner = Sender(w3, accounts[0]), accounts[9], accounts[8]
        d = deploy_all(deployer, DeployConfig(operators=(settler.address,)))
        token_addresses = {"WETH": d.weth, "USDC": d.usdc}
        people: dict[str, Trader] = {}
        for name, account, weth, usdc in (
            ("buyer", accounts[1], 0, 50_000),
            ("seller", accounts[3], 10, 0),
            ("inventory", inventory_owner, 100, 1_000_000),
        ):
            wallet = create_wallet(deployer, d, account.address)
            if weth:
                tokens.mint(deployer, d.weth, wallet, weth * WETH)
            if usdc:
                tokens.mint(deployer, d.usdc, wallet, usdc * USDC)
            people[name] = Trader(name, account.address, Web3.to_hex(account.key), wallet)
        buyer, seller, inventory = people["buyer"], people["seller"], people["inventory"]

        def holdings() -> dict[str, dict[str, int]]:
            return {
                t.wallet: {
                    s: tokens.balance_of(w3, a, t.wallet) for s, a in token_addresses.items()
                }
                for t in people.values()
            }

        exchange = start_binance(seed=5, eth=Decimal(50), usdc=Decimal(500_000))
        database_url = f"sqlite:///{tmp_path / 'lost.db'}"
        gateway = GatewayProcess(
            database_url,
            env=gateway_env(Web3.to_hex(settler.key), inventory.private_key),
            config=chain_toml(node.rpc_url, d, inventory.wallet)
            + '[[venues]]\nkind = "internal"\n'
            + binance_toml(exchange.url),
        )
        catalogue = devnet_catalogue()
        deadline = int(w3.eth.get_block("latest")["timestamp"]) + 86_400
        before = holdings()
        hedge_before = exchange.balances()
        partition = exchange.sim.lose_next_order_answer()

        async def trade() -> dict[str, Any]:
            """The bid rests; the smart sell's exchange child executes and is not answered.
            Each trader signs with its own key (the client builds and checks the EIP-712
            payload); the operator submits both."""
            async with (
                httpx.AsyncClient(
                    base_url=gateway.url, timeout=60, headers=operator_headers()
                ) as http,
                AsyncIsthmus(
                    gateway.url, OperatorToken(OPERATOR_TOKEN), nonces=NonceStore(None), timeout=60
                ) as operator,
            ):
                await wait_for_book(http, {"binance"}, on_binance=Decimal(5))
                quantity, price = BID
                bid = await operator.place_order(
                    "WETH/USDC",
                    "buy",
                    quantity,
                    price=price,
                    client_order_id="bid",
                    signer=buyer.signer(),
                    nonce=1,
                    deadline=deadline,
                )
                assert bid.created and bid.signed, bid
                quantity, price = SELL
                sell = await operator.place_order(
                    "WETH/USDC",
                    "sell",
                    quantity,
                    price=price,
                    route="smart",
                    time_in_force="ioc",
                    client_order_id="sell",
                    signer=seller.signer(),
                    nonce=1,
                    deadline=deadline,
                )
                assert sell.created and sell.signed, sell
                return sell.raw

        gateway.start()
        sell = asyncio.run(trade())  # answered once place_order timed out (ccxt: 10 s)
        assert partition.executed.is_set()
        # only the book's part is known: the exchange's answer never came
        assert Decimal(sell["filled_quantity"]) == 1, sell
        assert sell["status"] == "partially_filled", sell
        gateway.kill()

        [child] = stored_children(database_url, [sell["id"]])
        assert child.venue == "binance" and child.client_order_id == partition.client_order_id
        assert child.status is VenueChildStatus.PENDING and child.filled == 0, child
        [executed] = exchange.orders()  # what the exchange did meanwhile
        assert executed.client_order_id == child.client_order_id
        assert executed.filled == ON_EXCHANGE

        partition.restore()  # the exchange is reachable again; the lost answer stays lost
        gateway.start()  # start-up reconciliation finds the child by its client order id
        first = asyncio.run(asyncio.wait_for(all_settled(gateway.url, [seller.wallet]), 120))
        gateway.kill()  # and once more: nothing is left to find
        gateway.start()
        try:
            fills = asyncio.run(
                asyncio.wait_for(all_settled(gateway.url, [p.wallet for p in people.values()]), 120)
            )
            final_sell, counter_orders = asyncio.run(_orders(gateway.url, sell["id"], inventory))
        finally:
            gateway.stop()

        # recorded once: the exchange part on the trader's order, and the inventory's
        # counter-order for each of its fills (one trade id per pair)
        sell_fills = [f for f in fills if f["order_id"] == sell["id"]]
        assert {f["id"] for f in sell_fills} == {f["id"] for f in first}
        assert final_sell["status"] == "filled", final_sell
        assert Decimal(final_sell["filled_quantity"]) == Decimal(SELL[0])
        on_binance = [f for f in sell_fills if f["venue"] == "binance"]
        assert sum(Decimal(f["quantity"]) for f in on_binance) == ON_EXCHANGE
        [child] = stored_children(database_url, [sell["id"]])
        assert child.status is VenueChildStatus.DONE and child.filled == ON_EXCHANGE, child
        average = child.filled_notional / child.filled
        counter_fills = [f for f in fills if f["account"].lower() == inventory.wallet.lower()]
        assert len(counter_orders) == len(on_binance) == len(counter_fills)
        assert {o["status"] for o in counter_orders} == {"filled"}
        by_trade = {f["trade_id"]: f for f in counter_fills}
        for fill in on_binance:
            counter = by_trade[fill["trade_id"]]
            assert (counter["side"], counter["quantity"], counter["price"]) == (
                "buy",
                fill["quantity"],
                fill["price"],
            )
            # the exchange's average less its fee and the spread, within the signed limit
            assert Decimal(SELL[1]) <= Decimal(fill["price"]) < average

        # settled once: every fill, each on-chain fill claimed once, the auditor agrees
        assert {f["settlement"] for f in fills} == {"settled"}
        # an on-chain fill is its log and its wallet (a paired trade's Traded log is both sides')
        claimed = {(f["tx_hash"], f["log_index"], f["instrument"], f["account"]) for f in fills}
        assert len(claimed) == len(fills)
        report = audited(w3, d.settlement, database_url, token_addresses, len(fills))
        for fill in on_binance:  # each trade's two on-chain fills, in one transaction
            pair = [f for f in report.fills if fill["id"] in f.gateway_fills] + [
                f for f in report.fills if by_trade[fill["trade_id"]]["id"] in f.gateway_fills
            ]
            assert len(pair) == 2 and len({f.tx_hash for f in pair}) == 1, pair
        after = holdings()
        expected = expected_changes(fills, catalogue)
        for trader in people.values():
            moved = {s: after[trader.wallet][s] - before[trader.wallet][s] for s in token_addresses}
            said = expected[Web3.to_checksum_address(trader.wallet)]
            assert moved == {s: said.get(s, 0) for s in token_addresses}, trader.name
        assert after[inventory.wallet]["WETH"] - before[inventory.wallet]["WETH"] == int(
            ON_EXCHANGE * WETH
        )

        # hedged once: one order on the exchange for the child, the account moved by it alone
        [hedge] = exchange.orders()
        assert hedge.order_id == executed.order_id
        hedge_after = exchange.balances()
        assert hedge_before["ETH"] - hedge_after["ETH"] == ON_EXCHANGE
        assert hedge_after["USDC"] - hedge_before["USDC"] == hedge.notional - hedge.fee
        assert (child.filled_notional, child.fee) == (hedge.notional, hedge.fee)
    finally:
        if gateway is not None:
            gateway.stop()
        if exchange is not None:
            exchange.stop()
        node.stop()


async def _orders(
    url: str, sell_id: str, inventory: Trader
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=operator_headers()) as http:
        response = await http.get(f"/v1/orders/{sell_id}")
        assert response.status_code == 200, response.text
        return response.json(), await orders_of(http, inventory.wallet)
