"""A signed smart order filled partly on the internal book, partly in the Uniswap pool and
partly on the simulated Binance (through the real ccxt class, over HTTP): one settlement
transaction moves every part to the trader's wallet. The exchange part trades with the
operator's inventory wallet on chain (at the exchange's average price, fee and spread), whose
exchange execution is the hedge; the auditor proves every fill, and each wallet moved exactly
its fills."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update
from web3 import Web3

from gateway.chain import tokens
from gateway.chain.anvil import Anvil
from gateway.chain.transactions import Sender
from gateway.devnet.catalogue import devnet_catalogue
from gateway.devnet.exchange_sim.binance import BinanceSim
from gateway.devnet.exchange_sim.server import SimServer
from gateway.devnet.exchange_sim.venues import binance_venue_config
from gateway.domain.orders import OrderType, Side, TimeInForce
from gateway.domain.venue_child import VenueChild
from gateway.oms.settlement_service import SettlementService
from gateway.settlement.auditor import verify
from gateway.store.order_repository import FILLS
from gateway.venues.ccxt_venue import CcxtVenue
from gateway.venues.market_data import FeedStatus
from tests.chain.settlement_desk import USDC, WETH, Desk, serve
from tests.market_data.test_hub import status_change

pytestmark = pytest.mark.chain

HEDGE_KEY, HEDGE_SECRET = "inventory-hedge-key", "inventory-hedge-secret"


@pytest.fixture
def binance_sim() -> Iterator[tuple[BinanceSim, SimServer]]:
    sim = BinanceSim(seed=21, start_mid=Decimal("3000.00"))
    sim.add_account(HEDGE_KEY, HEDGE_SECRET, {"ETH": Decimal(50), "USDC": Decimal(500_000)})
    server = SimServer(sim.app).start()
    try:
        yield sim, server
    finally:
        server.stop()


def _binance(server: SimServer) -> CcxtVenue:
    config = binance_venue_config(
        server.url,
        api_key=HEDGE_KEY,
        secret=HEDGE_SECRET,
        enable_rate_limit=False,
        poll_interval=0.05,
        websocket=False,
    )
    return CcxtVenue(config, catalogue=devnet_catalogue())


def _units(quantity: str, price: str) -> int:
    """What settlement moves for a fill: quote units, rounded down (sell side)."""
    return int(Decimal(quantity) * Decimal(price) * USDC)


def test_a_signed_smart_sell_settles_book_pool_and_exchange_parts_in_one_transaction(
    w3: Web3,
    deployer: Sender,
    anvil_node: Anvil,
    fresh_chain: Web3,
    tmp_path: Path,
    binance_sim: tuple[BinanceSim, SimServer],
) -> None:
    sim, server = binance_sim
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'cex.db'}")
    tokens.mint(deployer, desk.d.weth, desk.seller_wallet, 5 * WETH)  # 10 WETH in all
    inventory = desk.open_inventory(
        deployer, anvil_node.dev_accounts()[8], weth=10 * WETH, usdc=100_000 * USDC
    )
    seller_before = desk.balances(desk.seller_wallet)
    buyer_before = desk.balances(desk.buyer_wallet)
    inventory_before = desk.balances(inventory)
    hedge_eth_before = sim.exchange.free(HEDGE_KEY, "ETH")

    async def scenario() -> None:
        rt = desk.runtime(pool=True, venues=(_binance(server),))
        http = await serve(rt)
        try:
            hub = rt.market_data
            feed = hub.subscribe(frozenset({"WETH/USDC"}))
            while not {"uniswap", "binance"} <= set(hub.book("WETH/USDC").live_venues):
                await asyncio.wait_for(feed.next(), 30)
            hub.unsubscribe(feed)
            # a resting signed bid on the internal book, better than anything else
            bid = await desk.order(http, desk.buyer, desk.buyer_wallet, "buy", "1", "3010")
            # 8 WETH: 1 to the bid, ~5 to Binance's levels (3000 - 0.05 down, 0.1% fee),
            # the rest into the pool once its marginal price meets Binance's
            sell = await desk.order(
                http,
                desk.seller,
                desk.seller_wallet,
                "sell",
                "8",
                "2900",
                route="smart",
                time_in_force="ioc",
            )
            assert sell["status"] == "filled", sell
            fills = (await http.get(f"/v1/orders/{sell['id']}/fills")).json()
            by_venue: dict[str, Decimal] = {}
            for fill in fills:
                by_venue[fill["venue"]] = by_venue.get(fill["venue"], Decimal(0)) + Decimal(
                    fill["quantity"]
                )
            assert set(by_venue) == {"internal", "uniswap", "binance"}, by_venue
            assert by_venue["internal"] == 1 and sum(by_venue.values()) == 8
            on_binance = by_venue["binance"]
            # the hedge: what the operator's Binance account sold, exactly the exchange part
            sold = hedge_eth_before - sim.exchange.free(HEDGE_KEY, "ETH")
            assert sold == on_binance
            children = await rt.venue_children.children_of(sell["id"])
            [hedge] = [c for c in children if c.venue == "binance"]
            average = hedge.filled_notional / hedge.filled
            binance_fills = [f for f in fills if f["venue"] == "binance"]
            for fill in binance_fills:  # fee and spread in the price, within the limit
                price = Decimal(fill["price"])
                assert Decimal(2900) <= price < average
                assert fill["fee"] == "0"
            # one settlement transaction settles every part (and the pool swap)
            service = rt.settlement
            assert isinstance(service, SettlementService)
            outcome = await service.run_once()
            assert (outcome.batches, outcome.refused) == (1, 0)
            settled = (await http.get(f"/v1/orders/{sell['id']}")).json()
            assert settled["settlement"] == "settled"
            fills = (await http.get(f"/v1/orders/{sell['id']}/fills")).json()
            assert {f["tx_hash"] for f in fills} == {fills[0]["tx_hash"]}
            assert {f["settlement"] for f in fills} == {"settled"}

            # each wallet moved exactly its fills
            received = sum(
                _units(f["quantity"], f["price"]) for f in fills if f["venue"] != "uniswap"
            )
            seller_weth, seller_usdc = desk.balances(desk.seller_wallet)
            assert seller_before[0] - seller_weth == 8 * WETH
            pool_quote = seller_usdc - seller_before[1] - received
            assert pool_quote > 0  # the pool's swap paid the rest
            assert desk.balances(desk.buyer_wallet)[0] - buyer_before[0] == WETH
            assert bid["id"]
            inventory_weth, inventory_usdc = desk.balances(inventory)
            assert inventory_weth - inventory_before[0] == int(on_binance * WETH)
            paid = sum(_units(f["quantity"], f["price"]) for f in binance_fills)
            assert inventory_before[1] - inventory_usdc == paid

            # a signed order's exchange child that traded with another inventory (an older
            # devnet's, say) is not this inventory's hedge
            await rt.orders.create_venue_child(
                VenueChild(
                    f"{bid['id']}-elsewhere",
                    bid["id"],
                    "binance",
                    "WETH/USDC",
                    Side.BUY,
                    OrderType.LIMIT,
                    TimeInForce.IOC,
                    Decimal(1),
                    Decimal(3010),
                    filled=Decimal(1),
                    filled_notional=Decimal(3000),
                ),
            )
            # the inventory book: the wallet's position mirrors the hedge, flat net
            book = (await http.get("/v1/risk/book")).json()["inventory"]
            [line] = [x for x in book["lines"] if x["instrument"] == "WETH/USDC"]
            assert Decimal(line["wallet_position"]) == on_binance
            assert Decimal(line["hedge_position"]) == -on_binance
            assert Decimal(line["net_position"]) == 0
            assert Decimal(line["pnl"]) > 0  # the spread

            report = await asyncio.to_thread(
                verify,
                w3,
                desk.d.settlement,
                engine=rt.read_engine,
                tokens={"WETH": desk.d.weth, "USDC": desk.d.usdc},
            )
            assert report.ok, report.to_json()
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())


def test_a_hostile_operator_cannot_settle_the_exchange_leg_beyond_the_signed_limit(
    w3: Web3,
    deployer: Sender,
    anvil_node: Anvil,
    fresh_chain: Web3,
    tmp_path: Path,
    binance_sim: tuple[BinanceSim, SimServer],
) -> None:
    """The operator controls its database and the inventory's key: it rewrites the trade of
    a signed order's exchange fill to a price beyond the trader's limit (both sides, so the
    batch balances). The trader's wallet refuses it on chain; its wallet is untouched."""
    _, server = binance_sim
    desk = Desk(w3, deployer, anvil_node, f"sqlite:///{tmp_path / 'hostile.db'}")
    inventory = desk.open_inventory(
        deployer, anvil_node.dev_accounts()[8], weth=10 * WETH, usdc=100_000 * USDC
    )
    seller_before, inventory_before = desk.balances(desk.seller_wallet), desk.balances(inventory)

    async def scenario() -> None:
        rt = desk.runtime(venues=(_binance(server),))
        http = await serve(rt)
        try:
            await status_change(rt.market_data, "binance", FeedStatus.LIVE, timeout=20)
            sell = await desk.order(
                http,
                desk.seller,
                desk.seller_wallet,
                "sell",
                "2",
                "2900",
                route="smart",
                time_in_force="ioc",
            )
            assert sell["status"] == "filled"
            fills = (await http.get(f"/v1/orders/{sell['id']}/fills")).json()
            [trade_id] = {f["trade_id"] for f in fills}
            with rt.write_engine.begin() as connection:  # the operator's own database
                connection.execute(
                    update(FILLS).where(FILLS.c.trade_id == trade_id).values(price=Decimal(2000))
                )
            service = rt.settlement
            assert isinstance(service, SettlementService)
            outcome = await service.run_once()
            assert outcome.refused == 2 and outcome.settled == 0
            fills = (await http.get(f"/v1/orders/{sell['id']}/fills")).json()
            assert {f["settlement"] for f in fills} == {"failed"}
            trader_fill = next(f for f in fills if f["account"] == desk.seller_wallet)
            assert "wallet: limit price" in trader_fill["settlement_reason"]
            assert desk.balances(desk.seller_wallet) == seller_before
            assert desk.balances(inventory) == inventory_before
        finally:
            await http.aclose()
            await rt.stop()

    asyncio.run(scenario())
