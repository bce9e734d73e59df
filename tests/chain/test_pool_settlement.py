"""A signed order's pool leg settles as a swap inside the settlement transaction: the smart
router takes the internal book first and the Uniswap pair for the rest; nothing is swapped
until the batch runs, then the trader's wallet, the counterparty's wallet and the pool move
together in one transaction, to the token unit the pool's own math gives."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.deploy import settlement_contract
from gateway.chain.transactions import Sender
from gateway.chain.uniswap import get_reserves
from gateway.domain import amm
from gateway.oms.settlement_service import SettlementService
from gateway.venues.amm import UniswapV2Venue
from tests.chain.settlement_desk import USDC, WETH, Desk, serve

pytestmark = pytest.mark.chain


async def until_pool_quoted(rt: object) -> None:
    """Wait on the hub's book feed until the pool's book is live (no polling)."""
    hub = rt.market_data  # type: ignore[attr-defined]
    feed = hub.subscribe(frozenset({"WETH/USDC"}))
    try:
        while "uniswap" not in hub.book("WETH/USDC").live_venues:
            await asyncio.wait_for(feed.next(), 30)
    finally:
        hub.unsubscribe(feed)


async def bid_then_smart_sell(desk: Desk, http: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """1 WETH bid on our book above the pool's price, then a signed 3 WETH smart sell: 1
    against the bid, 2 to the pool."""
    bid = await desk.order(http, desk.buyer, desk.buyer_wallet, "buy", "1", "3010")
    sell = await desk.order(
        http,
        desk.third,
        desk.third_wallet,
        "sell",
        "3",
        "2900",
        route="smart",
        time_in_force="ioc",
    )
    return bid, sell


def test_pool_legs_are_swaps_inside_the_batch_that_settles_the_internal_match(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'pool.db'}")
    tokens.mint(deployer, desk.d.weth, desk.third_wallet, 5 * WETH)
    pair = desk.d.weth_usdc_pair

    def pool() -> tuple[int, int]:
        reserves = get_reserves(w3, pair)
        return reserves.of(desk.d.weth), reserves.of(desk.d.usdc)

    async def scenario() -> None:
        rt = desk.runtime(pool=True)
        http = await serve(rt)
        try:
            await until_pool_quoted(rt)
            weth0, usdc0 = pool()
            buyer0, third0 = desk.balances(desk.buyer_wallet), desk.balances(desk.third_wallet)
            seller0 = desk.balances(desk.seller_wallet)
            bid, sell = await bid_then_smart_sell(desk, http)
            assert sell["status"] == "filled", sell
            fills = (await http.get(f"/v1/orders/{sell['id']}/fills")).json()
            by_venue = {f["venue"]: f for f in fills}
            assert set(by_venue) == {"internal", "uniswap"}
            assert by_venue["internal"]["quantity"] == "1"
            assert by_venue["uniswap"]["quantity"] == "2"
            out_first = amm.amount_out(2 * WETH, weth0, usdc0, 30)
            # nothing moved on chain yet: the pool leg is a fill whose swap waits for the batch
            assert pool() == (weth0, usdc0)

            # a second pool fill is priced on the reserves the first one leaves
            second = await desk.order(
                http,
                desk.seller,
                desk.seller_wallet,
                "sell",
                "0.5",
                "2800",
                route="smart",
                time_in_force="ioc",
            )
            assert second["status"] == "filled", second
            out_second = amm.amount_out(WETH // 2, weth0 + 2 * WETH, usdc0 - out_first, 30)

            service = rt.settlement
            assert isinstance(service, SettlementService)
            outcome = await service.run_once()
            assert (outcome.batches, outcome.settled, outcome.refused) == (1, 4, 0), outcome
            settled = [
                *(await http.get(f"/v1/orders/{sell['id']}/fills")).json(),
                *(await http.get(f"/v1/orders/{bid['id']}/fills")).json(),
                *(await http.get(f"/v1/orders/{second['id']}/fills")).json(),
            ]
            assert {f["settlement"] for f in settled} == {"settled"}
            [tx_hash] = {f["tx_hash"] for f in settled}  # one transaction for everything
            receipt = w3.eth.get_transaction_receipt(tx_hash)
            swaps = settlement_contract(w3, desk.d).events.SwapExecuted().process_receipt(receipt)
            assert [s["args"]["amount_out"] for s in swaps] == [out_first, out_second]

            # to the token unit: the pool, the three wallets
            assert pool() == (weth0 + 2 * WETH + WETH // 2, usdc0 - out_first - out_second)
            assert desk.balances(desk.third_wallet) == (
                third0[0] - 3 * WETH,
                third0[1] + 3010 * USDC + out_first,
            )
            assert desk.balances(desk.buyer_wallet) == (buyer0[0] + WETH, buyer0[1] - 3010 * USDC)
            assert desk.balances(desk.seller_wallet) == (
                seller0[0] - WETH // 2,
                seller0[1] + out_second,
            )
            # and the gateway's fills say the same (price × quantity = what the swap paid)
            pool_fill = next(
                f for f in settled if f["order_id"] == sell["id"] and f["venue"] == "uniswap"
            )
            assert (Decimal(pool_fill["price"]) * 2 * USDC).quantize(Decimal(1)) == out_first
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_healing_from_the_chain_tells_apart_two_fills_of_one_order_in_a_batch(
    w3: Web3, deployer: Sender, anvil_node: Anvil, fresh_chain: Web3, tmp_path: Path
) -> None:
    """The smart sell's internal fill and its pool fill share the order's digest: after a crash
    between the receipt and the write, each is matched to its own `Fill` event by amount."""
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'heal.db'}")
    tokens.mint(deployer, desk.d.weth, desk.third_wallet, 5 * WETH)

    def pool() -> tuple[int, int]:
        reserves = get_reserves(w3, desk.d.weth_usdc_pair)
        return reserves.of(desk.d.weth), reserves.of(desk.d.usdc)

    async def scenario() -> None:
        rt = desk.runtime(pool=True)
        http = await serve(rt)
        try:
            await until_pool_quoted(rt)
            _, sell = await bid_then_smart_sell(desk, http)
            service = rt.settlement
            assert isinstance(service, SettlementService)

            async def crash(*_: object, **__: object) -> int:
                raise RuntimeError("killed between the receipt and the write")

            service._confirm = crash  # type: ignore[method-assign]
            with pytest.raises(RuntimeError):
                await service.run_once()
        finally:
            await http.aclose()
            await rt.stop()

        rt = desk.runtime(pool=True)  # restart on the same store
        http = await serve(rt)
        try:
            assert isinstance(rt.settlement, SettlementService)
            # the pool fill is pending in the store, but its swap is mined: the pool is
            # quoted on the chain's reserves, not on them moved by that swap a second time
            [venue] = [v for v in rt.venues if isinstance(v, UniswapV2Venue)]
            _, base, quote = await asyncio.to_thread(venue.reserves, "WETH/USDC")
            assert (base, quote) == pool()
            await rt.settlement.run_once()  # healed from the chain's events
            fills = (await http.get(f"/v1/orders/{sell['id']}/fills")).json()
            assert {f["settlement"] for f in fills} == {"settled"} and len(fills) == 2
            receipt = w3.eth.get_transaction_receipt(fills[0]["tx_hash"])
            events = settlement_contract(w3, desk.d).events.Fill().process_receipt(receipt)
            amount_at = {e["logIndex"]: e["args"]["amount"] for e in events}
            for fill in fills:  # each fill points at the event of its own amount
                assert amount_at[fill["log_index"]] == int(Decimal(fill["quantity"]) * WETH)
            assert len({f["log_index"] for f in fills}) == 2
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
